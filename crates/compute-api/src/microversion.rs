//! Nova's microversions: which one a request asks for (`OpenStack-API-Version: compute
//! 2.x`, or the older `X-OpenStack-Nova-API-Version`), and the headers that echo it.

use std::fmt;

/// A compute microversion, `2.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u32,
    pub minor: u32,
}

/// The oldest and newest microversions served. 2.96 is what the `openstack` CLI asks for
/// servers; responses are shaped as each microversion up to it defines.
pub const MIN: Microversion = Microversion::new(2, 1);
pub const MAX: Microversion = Microversion::new(2, 96);

/// The standard header and the service name in it.
pub const HEADER: &str = "OpenStack-API-Version";
pub const SERVICE: &str = "compute";
/// Nova's older header, sent and echoed beside the standard one.
pub const LEGACY_HEADER: &str = "X-OpenStack-Nova-API-Version";

impl Microversion {
    pub const fn new(major: u32, minor: u32) -> Microversion {
        Microversion { major, minor }
    }

    /// Whether this is at least `2.minor`.
    pub fn at_least(self, minor: u32) -> bool {
        self >= Microversion::new(2, minor)
    }

    /// Parses `2.42` (or `latest`, the newest served).
    pub fn parse(text: &str) -> Result<Microversion, VersionError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("latest") {
            return Ok(MAX);
        }
        let invalid = || VersionError::Invalid(text.to_owned());
        let (major, minor) = text.split_once('.').ok_or_else(invalid)?;
        let number = |part: &str| -> Result<u32, VersionError> {
            let leading_zero = part.len() > 1 && part.starts_with('0');
            if part.is_empty() || leading_zero || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse().map_err(|_| invalid())
        };
        let version = Microversion::new(number(major)?, number(minor)?);
        if version.major == 0 {
            return Err(invalid());
        }
        Ok(version)
    }

    /// The microversion a request asks for, from its headers' values (`standard`: every
    /// `OpenStack-API-Version` value, `legacy`: every `X-OpenStack-Nova-API-Version`);
    /// [`MIN`] when it asks for none. Refused when malformed or not served.
    pub fn negotiate<'a>(
        standard: impl IntoIterator<Item = &'a str>,
        legacy: impl IntoIterator<Item = &'a str>,
    ) -> Result<Microversion, VersionError> {
        let asked = standard
            .into_iter()
            .flat_map(|value| value.split(','))
            .filter_map(|entry| {
                let mut parts = entry.split_whitespace();
                let service = parts.next()?;
                let version = parts.next()?;
                service.eq_ignore_ascii_case(SERVICE).then_some(version)
            })
            .last()
            .or_else(|| {
                legacy
                    .into_iter()
                    .flat_map(|value| value.split(','))
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .last()
            });
        let Some(asked) = asked else {
            return Ok(MIN);
        };
        let version = Microversion::parse(asked)?;
        if version < MIN || version > MAX {
            return Err(VersionError::Unsupported(version));
        }
        Ok(version)
    }
}

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a microversion request is refused, in Nova's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// 400.
    Invalid(String),
    /// 406.
    Unsupported(Microversion),
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionError::Invalid(text) => write!(
                f,
                "API Version String {text} is of invalid format. Must be of format \
                 MajorNum.MinorNum."
            ),
            VersionError::Unsupported(version) => write!(
                f,
                "Version {version} is not supported by the API. Minimum is {MIN} and maximum \
                 is {MAX}."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_header_wins_and_its_last_compute_entry() {
        let v = Microversion::negotiate(["identity 3.1, compute 2.47", "compute 2.60"], ["2.10"]);
        assert_eq!(v, Ok(Microversion::new(2, 60)));
        assert_eq!(
            Microversion::negotiate([], ["2.10"]),
            Ok(Microversion::new(2, 10))
        );
        assert_eq!(Microversion::negotiate([], []), Ok(MIN));
        assert_eq!(Microversion::negotiate(["compute latest"], []), Ok(MAX));
        assert_eq!(
            Microversion::negotiate(["compute 2.200"], []),
            Err(VersionError::Unsupported(Microversion::new(2, 200)))
        );
        assert!(matches!(
            Microversion::negotiate(["compute 2.x"], []),
            Err(VersionError::Invalid(_))
        ));
        assert!(Microversion::new(2, 96).at_least(47));
        assert!(!Microversion::new(2, 1).at_least(2));
    }
}
