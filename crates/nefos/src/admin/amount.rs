//! Amounts of resources as operators type and read them: sizes with a suffix (`20GiB`,
//! `512MiB`, `1.5TB`) or plain bytes for the resources that count bytes, plain numbers for
//! the ones that count things. Tables show bytes in binary units; JSON keeps them exact.

use thiserror::Error;

/// The unit `quota_resources` records for resources that count bytes.
pub const BYTES: &str = "bytes";

/// Why text is not an amount of a resource.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("{text:?} is not an amount: {reason}")]
    Invalid { text: String, reason: &'static str },
    #[error("{text:?}: a limit cannot be negative")]
    Negative { text: String },
    #[error("{text:?}: {resource} counts things, so it takes a plain number, no size suffix")]
    SuffixOnCount { text: String, resource: String },
    #[error("{text:?} is not a whole number of bytes")]
    Fractional { text: String },
    #[error("{text:?} is too large")]
    TooLarge { text: String },
}

/// Multipliers of the suffixes a size may carry (compared case-insensitively): the binary
/// ones, their one-letter forms (as `qemu-img` and Synnefo read them) and the decimal ones.
const SUFFIXES: &[(&str, u128)] = &[
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("kb", 1_000),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("mb", 1_000_000),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("gb", 1_000_000_000),
    ("t", 1 << 40),
    ("tib", 1 << 40),
    ("tb", 1_000_000_000_000),
    ("p", 1 << 50),
    ("pib", 1 << 50),
    ("pb", 1_000_000_000_000_000),
];

/// Reads a non-negative amount of `resource`, whose unit is `unit` (`bytes` or `count`).
pub fn parse(text: &str, resource: &str, unit: &str) -> Result<i64, AmountError> {
    let trimmed = text.trim();
    let invalid = |reason| AmountError::Invalid {
        text: text.to_owned(),
        reason,
    };
    if trimmed.starts_with('-') {
        return Err(AmountError::Negative {
            text: text.to_owned(),
        });
    }
    let number_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(number_end);
    let suffix = suffix.trim();
    if number.is_empty() {
        return Err(invalid("it starts with no number"));
    }
    let multiplier = if suffix.is_empty() {
        1
    } else if unit != BYTES {
        return Err(AmountError::SuffixOnCount {
            text: text.to_owned(),
            resource: resource.to_owned(),
        });
    } else {
        SUFFIXES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(suffix))
            .map(|(_, multiplier)| *multiplier)
            .ok_or_else(|| {
                invalid("sizes end in B, KiB, MiB, GiB, TiB, PiB or KB, MB, GB, TB, PB")
            })?
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') {
        return Err(invalid("a number is digits with at most one decimal point"));
    }
    if !fraction.is_empty() && unit != BYTES {
        return Err(invalid("a count is a whole number"));
    }
    let too_large = || AmountError::TooLarge {
        text: text.to_owned(),
    };
    // Exact arithmetic: whole.fraction × multiplier must come out as whole bytes.
    let digits = format!("{whole}{fraction}");
    let scaled: u128 = digits.parse().map_err(|_| too_large())?;
    let scale = 10u128
        .checked_pow(u32::try_from(fraction.len()).map_err(|_| too_large())?)
        .ok_or_else(too_large)?;
    let bytes = scaled.checked_mul(multiplier).ok_or_else(too_large)?;
    if bytes % scale != 0 {
        return Err(AmountError::Fractional {
            text: text.to_owned(),
        });
    }
    i64::try_from(bytes / scale).map_err(|_| too_large())
}

/// An amount for a table: bytes in the largest binary unit they reach, counts as they are.
pub fn show(value: i64, unit: &str) -> String {
    if unit == BYTES {
        show_bytes(value)
    } else {
        value.to_string()
    }
}

/// `20 GiB`, `1.5 MiB`, `1023 B` (rounded to two decimals, which tables are for).
pub fn show_bytes(value: i64) -> String {
    const UNITS: &[(&str, u64)] = &[
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    let magnitude = value.unsigned_abs();
    for (name, size) in UNITS {
        if magnitude >= *size {
            // Display only: the rounding of an f64 is what the table shows.
            let scaled = value as f64 / *size as f64;
            let text = format!("{scaled:.2}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            return format!("{text} {name}");
        }
    }
    format!("{value} B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Result<i64, AmountError> {
        parse(text, "pithos.diskspace", BYTES)
    }

    #[test]
    fn sizes_with_binary_and_decimal_suffixes() {
        assert_eq!(bytes("20GiB"), Ok(20 << 30));
        assert_eq!(bytes("512MiB"), Ok(512 << 20));
        assert_eq!(bytes("512 mib"), Ok(512 << 20));
        assert_eq!(bytes("2G"), Ok(2 << 30));
        assert_eq!(bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(bytes("3TB"), Ok(3_000_000_000_000));
        assert_eq!(bytes("1048576"), Ok(1 << 20));
        assert_eq!(bytes("0"), Ok(0));
        assert_eq!(bytes("7B"), Ok(7));
    }

    #[test]
    fn what_is_not_a_size() {
        assert!(matches!(bytes("-1GiB"), Err(AmountError::Negative { .. })));
        assert!(matches!(bytes("-5"), Err(AmountError::Negative { .. })));
        assert!(matches!(bytes("GiB"), Err(AmountError::Invalid { .. })));
        assert!(matches!(
            bytes("10 parsecs"),
            Err(AmountError::Invalid { .. })
        ));
        assert!(matches!(
            bytes("1.2.3GiB"),
            Err(AmountError::Invalid { .. })
        ));
        assert!(matches!(
            bytes("0.1KiB"),
            Err(AmountError::Fractional { .. })
        ));
        assert!(matches!(bytes("0.5"), Err(AmountError::Fractional { .. })));
        assert!(matches!(
            bytes("9000PiB"),
            Err(AmountError::TooLarge { .. })
        ));
        assert!(matches!(
            bytes("99999999999999999999999999999999999999999"),
            Err(AmountError::TooLarge { .. })
        ));
    }

    #[test]
    fn counts_are_plain_numbers() {
        assert_eq!(parse("4", "cyclades.vm", "count"), Ok(4));
        assert!(matches!(
            parse("4G", "cyclades.vm", "count"),
            Err(AmountError::SuffixOnCount { .. })
        ));
        assert!(matches!(
            parse("1.5", "cyclades.vm", "count"),
            Err(AmountError::Invalid { .. })
        ));
    }

    #[test]
    fn tables_show_binary_units() {
        assert_eq!(show(20 << 30, BYTES), "20 GiB");
        assert_eq!(show(3 << 29, BYTES), "1.5 GiB");
        assert_eq!(show(1023, BYTES), "1023 B");
        assert_eq!(show(1024, BYTES), "1 KiB");
        assert_eq!(show(-(2 << 20), BYTES), "-2 MiB");
        assert_eq!(show(5, "count"), "5");
    }
}
