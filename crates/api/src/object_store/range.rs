//! `Range: bytes=…` requests (RFC 9110 §14).

use nefos_storage::ByteRange;

/// What a `Range` header asks of an object of a given size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// No header, or one to ignore (a syntax error): the whole object.
    Full,
    Ranges(Vec<ByteRange>),
    /// Every range starts past the end, `bytes=-0`, or a set of ranges that asks for far
    /// more work than data: 416.
    Unsatisfiable,
}

/// Limits on a set of ranges, Swift's answer to RFC 9110 §14.2's warning that many or
/// overlapping ranges make a small request cost a large answer: beyond any of them the
/// request is refused with 416 rather than served.
const MAX_RANGES: usize = 50;
/// Pairs of ranges that overlap.
const MAX_OVERLAPPING_PAIRS: usize = 2;
/// A set of this many ranges or more must be in ascending order.
const MAX_UNORDERED: usize = 8;

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
                // The last zero bytes: nothing can satisfy that (Swift answers 416 too).
                Ok(0) => return RangeRequest::Unsatisfiable,
                Err(_) => return RangeRequest::Full,
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
    if count == 0 {
        RangeRequest::Full
    } else if ranges.is_empty() || count > MAX_RANGES || is_egregious(&ranges) {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Ranges(ranges)
    }
}

/// Whether ranges overlap more than [`MAX_OVERLAPPING_PAIRS`] allows, or are
/// [`MAX_UNORDERED`] or more and not in ascending order (at most [`MAX_RANGES`] of them, so
/// pairs are cheap to count).
fn is_egregious(ranges: &[ByteRange]) -> bool {
    let mut overlapping = 0;
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            if a.first <= b.last && b.first <= a.last {
                overlapping += 1;
                if overlapping > MAX_OVERLAPPING_PAIRS {
                    return true;
                }
            }
        }
    }
    let ascending = ranges.windows(2).all(|pair| pair[0].first <= pair[1].first);
    ranges.len() >= MAX_UNORDERED && !ascending
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
        assert_eq!(parse(Some("bytes=-0"), 10), RangeRequest::Unsatisfiable);
    }

    #[test]
    fn egregious_sets_of_ranges_are_refused() {
        let many = |n: usize, spec: &str| format!("bytes={}", vec![spec; n].join(","));
        // Fifty overlapping `0-` would answer fifty copies of the object.
        assert_eq!(
            parse(Some(&many(50, "0-")), 1 << 30),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse(Some(&many(3, "0-")), 100),
            RangeRequest::Unsatisfiable
        );
        // Two overlapping ranges (one pair) are fine, three pairs are not.
        assert!(matches!(
            parse(Some("bytes=0-10,5-15"), 100),
            RangeRequest::Ranges(r) if r.len() == 2
        ));
        // Fifty disjoint ascending ranges pass; fifty-one do not.
        let ascending = |n: u64| {
            let specs: Vec<String> = (0..n).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
            format!("bytes={}", specs.join(","))
        };
        assert!(matches!(
            parse(Some(&ascending(50)), 1000),
            RangeRequest::Ranges(_)
        ));
        assert_eq!(
            parse(Some(&ascending(51)), 1000),
            RangeRequest::Unsatisfiable
        );
        // Seven ranges may come in any order; eight or more must ascend (one swap is
        // enough to refuse them).
        let swapped = |n: u64| {
            let mut starts: Vec<u64> = (0..n).collect();
            starts.swap(0, 1);
            let specs: Vec<String> = starts
                .iter()
                .map(|i| format!("{}-{}", i * 2, i * 2))
                .collect();
            format!("bytes={}", specs.join(","))
        };
        assert!(matches!(
            parse(Some(&swapped(7)), 1000),
            RangeRequest::Ranges(_)
        ));
        assert_eq!(parse(Some(&swapped(8)), 1000), RangeRequest::Unsatisfiable);
    }
}
