//! Swift's TempURL: an object URL that carries its own authority, `temp_url_sig` (an HMAC
//! of the method, the expiry time and the path under a key of the account or of the
//! container) and `temp_url_expires`. Whoever holds it may use that one method on that one
//! object (or, with `temp_url_prefix`, on the objects whose names start with the prefix)
//! until it expires, with no token.
//!
//! Every way a URL can fail (expired, altered, for another method or object, from outside
//! its address range, signed with a key no longer there) is the same 401, as in Swift, so
//! that a URL tells nothing about why it does not work.

use std::net::IpAddr;

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use nefos_storage::SignedScope;

use super::error::SwiftError;
use super::headers;
use crate::ApiState;

/// The methods a URL may be signed for, as `/info` lists them.
pub(super) const METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "POST", "DELETE"];

/// The digests a signature may use (`/info`); SHA-1 only for URLs made by older clients.
pub(super) const DIGESTS: [&str; 3] = ["sha1", "sha256", "sha512"];
pub(super) const DEPRECATED_DIGESTS: [&str; 1] = ["sha1"];

/// Headers a write through a signed URL may not carry: Swift's, which would reach other
/// objects than the one signed for (a manifest's segments, a link's target, a copy's
/// source), and Pithos's that would too (a move's source, a partial update's source) or
/// that give away more than the URL (sharing, a public URL).
const REFUSED_HEADERS: [&str; 9] = [
    "X-Object-Manifest",
    "X-Symlink-Target",
    "X-Copy-From",
    "X-Move-From",
    "X-Source-Object",
    "X-Source-Account",
    "X-Source-Version",
    "X-Object-Sharing",
    "X-Object-Public",
];

/// What a signed URL's answers leave out beyond private metadata: who the owner shares
/// the object with, its public URL, who wrote it.
const WITHHELD_HEADERS: [&str; 3] = [
    "x-object-sharing",
    "x-object-public",
    "x-object-modified-by",
];

/// A request whose signature checked out.
#[derive(Debug)]
pub(super) struct SignedRequest {
    pub scope: SignedScope,
    filename: Option<String>,
    inline: bool,
    expires: i64,
}

/// What the caller of [`check`] learns of the request.
pub(super) enum Outcome {
    /// The request carries no signature: authenticate it as usual.
    Unsigned,
    Signed(SignedRequest),
}

/// The request's parts a signature covers.
pub(super) struct SignedParts<'a> {
    pub method: &'a Method,
    /// The path as requested, percent-encoded (`/v1/AUTH_p/c/o` or `/object/v1/…`).
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub client: Option<IpAddr>,
    pub project: &'a str,
    pub container: &'a str,
    pub object: &'a str,
}

/// Checks a request's signature, if it carries one.
pub(super) async fn check(
    state: &ApiState,
    parts: &SignedParts<'_>,
) -> Result<Outcome, SwiftError> {
    if parts.method == Method::OPTIONS {
        return Ok(Outcome::Unsigned);
    }
    let query = Query::parse(parts.query);
    if query.sig.is_none() && query.expires.is_none() {
        return Ok(Outcome::Unsigned);
    }
    let invalid = || invalid(parts.method);
    let now = nefos_db::time::now_micros() / 1_000_000;
    let expires = query
        .expires
        .as_deref()
        .and_then(parse_expires)
        .filter(|at| *at >= now)
        .ok_or_else(invalid)?;
    let signature = query
        .sig
        .as_deref()
        .and_then(Signature::parse)
        .ok_or_else(invalid)?;
    if !METHODS.contains(&parts.method.as_str()) || parts.object.trim_matches('/').is_empty() {
        return Err(invalid());
    }
    let path = percent_encoding::percent_decode_str(parts.path)
        .decode_utf8()
        .map_err(|_| invalid())?;
    if let Some(range) = query.ip_range.as_deref().filter(|r| !r.is_empty()) {
        let allowed = parts
            .client
            .is_some_and(|client| ip_in_range(client, range).unwrap_or(false));
        if !allowed {
            return Err(invalid());
        }
    }
    // The path as requested, and as Swift names it (`/v1/…`) when it came by the
    // catalog's `/object/v1/…`: clients sign either, and both name this object alone.
    let mut paths = vec![path.into_owned()];
    if let Some(rest) = paths[0].strip_prefix("/object/v1/") {
        let canonical = format!("/v1/{rest}");
        paths.push(canonical);
    }
    let mut signed_paths = Vec::with_capacity(paths.len());
    for path in paths {
        signed_paths.push(match &query.prefix {
            None => path,
            Some(prefix) => {
                if !parts.object.starts_with(prefix.as_str()) {
                    return Err(invalid());
                }
                // The container's path: the request's without the object's name.
                let container_path = path
                    .strip_suffix(parts.object)
                    .ok_or_else(invalid)?
                    .trim_end_matches('/');
                format!("prefix:{container_path}/{prefix}")
            }
        });
    }
    let keys = state
        .storage
        .signing_keys(parts.project, parts.container)
        .await
        .map_err(SwiftError::from)?;
    // A HEAD may use a URL made for any method that reads or writes the object but DELETE.
    let methods: &[&str] = if parts.method == Method::HEAD {
        &["HEAD", "GET", "POST", "PUT"]
    } else {
        &[parts.method.as_str()]
    };
    let ip_line = query
        .ip_range
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|range| format!("ip={range}\n"))
        .unwrap_or_default();
    let scope = keys.keys.iter().find_map(|(key, scope)| {
        let signs = |method: &&str, path: &String| {
            let message = format!("{ip_line}{method}\n{expires}\n{path}");
            signature.matches(key.as_bytes(), message.as_bytes())
        };
        methods
            .iter()
            .any(|method| signed_paths.iter().any(|path| signs(method, path)))
            .then(|| scope.clone())
    });
    let scope = scope.ok_or_else(invalid)?;
    if !matches!(*parts.method, Method::GET | Method::HEAD)
        && let Some(name) = REFUSED_HEADERS
            .iter()
            .find(|name| parts.headers.contains_key(**name))
    {
        return Err(SwiftError::bad_request(format!(
            "The header '{name}' is not allowed in this tempurl"
        )));
    }
    Ok(Outcome::Signed(SignedRequest {
        scope,
        filename: query.filename.filter(|f| !f.is_empty()),
        inline: query.inline,
        expires,
    }))
}

/// Swift's one answer to every URL that does not check out.
fn invalid(method: &Method) -> SwiftError {
    let body = if method == Method::HEAD {
        ""
    } else {
        "401 Unauthorized: Temp URL invalid\n"
    };
    let mut error = SwiftError::new(StatusCode::UNAUTHORIZED, body);
    error.headers.push((
        header::WWW_AUTHENTICATE,
        "Swift realm=\"unknown\"".to_owned(),
    ));
    error
}

impl SignedRequest {
    /// What a signed URL's answer leaves out and adds: the object's metadata but the
    /// public part (`X-Object-Meta-Public-*`), and on a read a `Content-Disposition`
    /// naming the file and an `Expires` at the URL's expiry.
    pub fn finish(&self, method: &Method, object: &str, mut response: Response) -> Response {
        let out = response.headers_mut();
        let private: Vec<_> = out
            .keys()
            .filter(|name| {
                let name = name.as_str();
                name.starts_with("x-object-meta-") && !name.starts_with("x-object-meta-public-")
            })
            .cloned()
            .collect();
        for name in private {
            out.remove(name);
        }
        for name in WITHHELD_HEADERS {
            out.remove(name);
        }
        let reads = matches!(*method, Method::GET | Method::HEAD);
        if reads && response.status().is_success() {
            let stored = response
                .headers_mut()
                .remove(header::CONTENT_DISPOSITION)
                .and_then(|v| headers::utf8(&v).map(str::to_owned));
            let disposition = self.disposition(object, stored);
            let out = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&disposition) {
                out.insert(header::CONTENT_DISPOSITION, value);
            }
            headers::insert(
                out,
                "expires",
                &headers::http_date(self.expires.saturating_mul(1_000_000)),
            );
        }
        response
    }

    /// Swift's order: `inline` (with the name given, if any), a name given with
    /// `filename`, the object's own `Content-Disposition`, then the object's base name.
    fn disposition(&self, object: &str, stored: Option<String>) -> String {
        let named = |kind: &str, name: &str| {
            format!(
                "{kind}; filename=\"{}\"; filename*=UTF-8''{}",
                quote(name, FILENAME),
                quote(name, FILENAME_STAR)
            )
        };
        let disposition = match (&self.filename, stored) {
            (Some(name), _) if self.inline => named("inline", name),
            (None, _) if self.inline => "inline".to_owned(),
            (Some(name), _) => named("attachment", name),
            (None, Some(stored)) => stored,
            (None, None) => {
                let base = object
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or(object);
                named("attachment", base)
            }
        };
        disposition.replace('\n', "%0A")
    }
}

/// What `filename="…"` escapes: what Python's `quote` does but the space.
const FILENAME: &percent_encoding::AsciiSet = &crate::middleware::PYTHON_QUOTED.remove(b' ');
/// What `filename*=UTF-8''…` escapes: what Python's `quote` does.
const FILENAME_STAR: &percent_encoding::AsciiSet = &crate::middleware::PYTHON_QUOTED;

fn quote(text: &str, set: &'static percent_encoding::AsciiSet) -> String {
    percent_encoding::utf8_percent_encode(text, set).to_string()
}

/// The signature parameters of a query string (the first of each name wins).
#[derive(Debug, Default)]
struct Query {
    sig: Option<String>,
    expires: Option<String>,
    prefix: Option<String>,
    ip_range: Option<String>,
    filename: Option<String>,
    inline: bool,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut found = Query::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "temp_url_sig" => &mut found.sig,
                "temp_url_expires" => &mut found.expires,
                "temp_url_prefix" => &mut found.prefix,
                "temp_url_ip_range" => &mut found.ip_range,
                "filename" => &mut found.filename,
                "inline" => {
                    found.inline = true;
                    continue;
                }
                _ => continue,
            };
            slot.get_or_insert_with(|| value.into_owned());
        }
        found
    }
}

/// Seconds since the epoch, or an ISO 8601 UTC time (`2030-01-01T00:00:00Z`).
fn parse_expires(text: &str) -> Option<i64> {
    headers::python_int(text).or_else(|| {
        chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%SZ")
            .ok()
            .map(|at| at.and_utc().timestamp())
    })
}

/// A signature: hex (its length says the digest) or `<digest>:<base64>`.
#[derive(Debug, PartialEq, Eq)]
struct Signature {
    digest: Digest,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digest {
    Sha1,
    Sha256,
    Sha512,
}

impl Signature {
    fn parse(text: &str) -> Option<Signature> {
        if let Some((name, encoded)) = text.split_once(':') {
            let digest = match name {
                "sha1" => Digest::Sha1,
                "sha256" => Digest::Sha256,
                "sha512" => Digest::Sha512,
                _ => return None,
            };
            let encoded = encoded.trim_end_matches('=');
            let url_safe = encoded.contains(['-', '_']);
            if url_safe && encoded.contains(['+', '/']) {
                return None;
            }
            let engine = if url_safe {
                URL_SAFE_NO_PAD
            } else {
                STANDARD_NO_PAD
            };
            let bytes = engine.decode(encoded).ok().filter(|b| !b.is_empty())?;
            return Some(Signature { digest, bytes });
        }
        // Swift compares with the lower-case hex of the HMAC: upper case never matches.
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let digest = match text.len() {
            40 => Digest::Sha1,
            64 => Digest::Sha256,
            128 => Digest::Sha512,
            _ => return None,
        };
        Some(Signature {
            digest,
            bytes: hex::decode(text).ok()?,
        })
    }

    /// Whether this is the HMAC of `message` under `key`, compared in constant time.
    fn matches(&self, key: &[u8], message: &[u8]) -> bool {
        fn verify<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8], sig: &[u8]) -> bool {
            let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
                return false;
            };
            mac.update(message);
            mac.verify_slice(sig).is_ok()
        }
        match self.digest {
            Digest::Sha1 => verify::<Hmac<sha1::Sha1>>(key, message, &self.bytes),
            Digest::Sha256 => verify::<Hmac<sha2::Sha256>>(key, message, &self.bytes),
            Digest::Sha512 => verify::<Hmac<sha2::Sha512>>(key, message, &self.bytes),
        }
    }
}

/// Whether `client` is in `range` (an address or a network, strictly written: no host
/// bits set); `None` when the range does not parse.
fn ip_in_range(client: IpAddr, range: &str) -> Option<bool> {
    let network: ipnet::IpNet = match range.parse::<ipnet::IpNet>() {
        Ok(network) => network,
        Err(_) => ipnet::IpNet::from(range.parse::<IpAddr>().ok()?),
    };
    if network.trunc() != network {
        return None;
    }
    // An IPv4 client may arrive as an IPv4-mapped IPv6 address.
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    Some(network.contains(&client))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &str, message: &str) -> String {
        let mut mac =
            <Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_parse_in_every_form_swift_takes() {
        let hex_sig = sign("k", "GET\n10\n/v1/a/c/o");
        let parsed = Signature::parse(&hex_sig).unwrap();
        assert_eq!(parsed.digest, Digest::Sha256);
        assert!(parsed.matches(b"k", b"GET\n10\n/v1/a/c/o"));
        assert!(!parsed.matches(b"k", b"GET\n11\n/v1/a/c/o"));
        assert!(!parsed.matches(b"other", b"GET\n10\n/v1/a/c/o"));
        assert!(Signature::parse(&hex_sig.to_uppercase()).is_none());
        assert!(Signature::parse("abc").is_none());

        let bytes = hex::decode(&hex_sig).unwrap();
        let standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let url_safe = URL_SAFE_NO_PAD.encode(&bytes);
        for form in [
            format!("sha256:{standard}"),
            format!("sha256:{}", standard.trim_end_matches('=')),
            format!("sha256:{url_safe}"),
        ] {
            assert_eq!(Signature::parse(&form).unwrap(), parsed, "{form}");
        }
        assert!(Signature::parse(&format!("SHA256:{standard}")).is_none());
        assert!(Signature::parse("md5:AAAA").is_none());
        assert!(Signature::parse("sha256:").is_none());
        assert!(Signature::parse("sha256:a-b+").is_none());
    }

    #[test]
    fn expiry_times_parse_like_swift() {
        assert_eq!(parse_expires("1893456000"), Some(1_893_456_000));
        assert_eq!(parse_expires(" +1_893_456_000 "), Some(1_893_456_000));
        assert_eq!(parse_expires("2030-01-01T00:00:00Z"), Some(1_893_456_000));
        assert_eq!(parse_expires("1893456000.0"), None);
        assert_eq!(parse_expires("2030-01-01T00:00:00+0000"), None);
        assert_eq!(parse_expires("1__0"), None);
        assert_eq!(parse_expires(""), None);
    }

    #[test]
    fn address_ranges_are_strict() {
        let client: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(ip_in_range(client, "10.1.2.0/24"), Some(true));
        assert_eq!(ip_in_range(client, "10.1.2.3"), Some(true));
        assert_eq!(ip_in_range(client, "10.1.3.0/24"), Some(false));
        assert_eq!(ip_in_range(client, "10.1.2.3/24"), None);
        assert_eq!(ip_in_range(client, "nonsense"), None);
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(ip_in_range(mapped, "10.1.2.0/24"), Some(true));
    }

    #[test]
    fn dispositions_follow_swifts_order() {
        let request = |filename: Option<&str>, inline| SignedRequest {
            scope: SignedScope {
                project_id: "p".into(),
                container_id: None,
            },
            filename: filename.map(str::to_owned),
            inline,
            expires: 0,
        };
        assert_eq!(
            request(None, false).disposition("dir/ä b\"c;d.pdf", None),
            "attachment; filename=\"%C3%A4 b%22c%3Bd.pdf\"; filename*=UTF-8''%C3%A4%20b%22c%3Bd.pdf"
        );
        assert_eq!(request(None, true).disposition("o", None), "inline");
        assert_eq!(
            request(Some("a b.pdf"), true).disposition("o", None),
            "inline; filename=\"a b.pdf\"; filename*=UTF-8''a%20b.pdf"
        );
        assert_eq!(
            request(None, false).disposition("o", Some("attachment; filename=x".into())),
            "attachment; filename=x"
        );
        assert_eq!(
            request(None, false).disposition("d/o/", None),
            "attachment; filename=\"o\"; filename*=UTF-8''o"
        );
    }

    #[test]
    fn queries_take_the_first_of_each_name() {
        let query =
            Query::parse("temp_url_sig=a&temp_url_sig=b&inline=0&filename=x+y&temp_url_prefix=");
        assert_eq!(query.sig.as_deref(), Some("a"));
        assert!(query.inline);
        assert_eq!(query.filename.as_deref(), Some("x y"));
        assert_eq!(query.prefix.as_deref(), Some(""));
    }
}
