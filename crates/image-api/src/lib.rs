//! The image APIs declared once (docs/images.md): Glance v2 ([`glance`]) and Synnefo's
//! Plankton ([`plankton`]), under [`PREFIX`]. The paths, headers and JSON bodies are those
//! the `openstack` CLI, openstacksdk and kamaki 0.16 send and read; the server
//! (`nefos-api`) renders these types and the `nefos image` client reads them.

pub mod glance;
pub mod plankton;

/// Where the image service is served, under the cloud's public URL; Glance's version
/// document is its root.
pub const PREFIX: &str = "/image";

/// The catalog's service type and name for Glance.
pub const CATALOG_TYPE: &str = "image";
pub const CATALOG_NAME: &str = "glance";

/// Fills `{name}` parameters of a path template in order.
pub fn fill(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut values = values.iter();
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        if let Some(value) = values.next() {
            out.push_str(&percent_encode_segment(value));
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Encodes what cannot stand in one path segment.
fn percent_encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_puts_values_in_order_and_encodes_them() {
        assert_eq!(
            fill("/v2/images/{image_id}/tags/{tag}", &["abc", "a b/c"]),
            "/v2/images/abc/tags/a%20b%2Fc"
        );
    }
}
