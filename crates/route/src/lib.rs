//! Route templates declared once. Each API crate (`nefos-image-api`, `nefos-node-api`, …)
//! exports its paths as templates in axum's syntax (`/vms/{id}/start`): the server routes
//! on them as they are, and clients build URLs from the same text with [`fill`], so a
//! path is never written twice.

/// Fills the `{name}` parameters of a path template in order, each value encoded as a
/// single path segment. Parameters without a value are left out.
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
            push_segment(&mut out, value);
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// Appends `value`, percent-encoding what cannot stand in one path segment.
fn push_segment(out: &mut String, value: &str) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
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
        assert_eq!(fill("/vms", &["ignored"]), "/vms");
    }
}
