//! `Range: bytes=…` requests (RFC 9110 §14).

use nefos_storage::ByteRange;

/// What a `Range` header asks of an object of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No header, or one to ignore (syntax error, too many ranges): the whole object.
    Full,
    Ranges(Vec<ByteRange>),
    /// Every range starts past the end: 416.
    Unsatisfiable,
}

/// More ranges than this are served as the whole object, as Swift does.
const MAX_RANGES: usize = 50;

pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(specs) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    let mut ranges = Vec::new();
    let mut count = 0;
    for spec in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        count += 1;
        let Some((first, last)) = spec.split_once('-') else {
            return RangeRequest::Full;
        };
        let range = match (first.trim(), last.trim()) {
            ("", suffix) => match suffix.parse::<u64>() {
                Ok(0) | Err(_) => return RangeRequest::Full,
                Ok(_) if size == 0 => None,
                Ok(n) => Some(ByteRange {
                    first: size.saturating_sub(n),
                    last: size - 1,
                }),
            },
            (first, "") => match first.parse::<u64>() {
                Err(_) => return RangeRequest::Full,
                Ok(first) if first >= size => None,
                Ok(first) => Some(ByteRange {
                    first,
                    last: size - 1,
                }),
            },
            (first, last) => match (first.parse::<u64>(), last.parse::<u64>()) {
                (Ok(first), Ok(last)) if first <= last => (first < size).then(|| ByteRange {
                    first,
                    last: last.min(size - 1),
                }),
                _ => return RangeRequest::Full,
            },
        };
        ranges.extend(range);
    }
    if count == 0 || count > MAX_RANGES {
        RangeRequest::Full
    } else if ranges.is_empty() {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Ranges(ranges)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(first: u64, last: u64) -> ByteRange {
        ByteRange { first, last }
    }

    #[test]
    fn ranges_follow_the_rfc() {
        assert_eq!(parse(None, 10), RangeRequest::Full);
        assert_eq!(
            parse(Some("bytes=0-4"), 10),
            RangeRequest::Ranges(vec![r(0, 4)])
        );
        assert_eq!(
            parse(Some("bytes=5-"), 10),
            RangeRequest::Ranges(vec![r(5, 9)])
        );
        assert_eq!(
            parse(Some("bytes=-3"), 10),
            RangeRequest::Ranges(vec![r(7, 9)])
        );
        assert_eq!(
            parse(Some("bytes=-30"), 10),
            RangeRequest::Ranges(vec![r(0, 9)])
        );
        assert_eq!(
            parse(Some("bytes=8-100"), 10),
            RangeRequest::Ranges(vec![r(8, 9)])
        );
        assert_eq!(
            parse(Some("bytes=0-0, 2-3"), 10),
            RangeRequest::Ranges(vec![r(0, 0), r(2, 3)])
        );
        assert_eq!(parse(Some("bytes=10-"), 10), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1"), 0), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=4-2"), 10), RangeRequest::Full);
        assert_eq!(parse(Some("bytes=x-2"), 10), RangeRequest::Full);
        assert_eq!(parse(Some("items=0-2"), 10), RangeRequest::Full);
        assert_eq!(parse(Some("bytes=-0"), 10), RangeRequest::Full);
    }
}
