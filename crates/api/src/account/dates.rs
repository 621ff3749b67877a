//! Astakos's dates: ISO 8601 with microseconds and an offset
//! (`2013-06-26T11:48:06.579100+00:00`), written in UTC; read in any offset.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use nefos_db::time::from_micros;

use super::error::AccountError;

/// A stored time as Astakos writes it.
pub(crate) fn iso(micros: i64) -> String {
    from_micros(micros)
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

/// A date a client sent: RFC 3339 (`2030-01-01T00:00:00+00:00`, `…Z`), or without an
/// offset (taken as UTC), or a bare day (its midnight, UTC).
pub(crate) fn parse(field: &str, text: &str) -> Result<i64, AccountError> {
    let text = text.trim();
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|d| d.timestamp_micros())
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|d| d.and_utc().timestamp_micros())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| {
                d.and_time(chrono::NaiveTime::MIN)
                    .and_utc()
                    .timestamp_micros()
            })
        });
    parsed.map_err(|_| {
        AccountError::bad_request(format!(
            "{field} {text:?} is not an ISO 8601 date (2030-01-01T00:00:00+00:00)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_in_astakos_form() {
        let micros = parse("end_date", "2030-01-01T00:00:00+00:00").unwrap();
        assert_eq!(iso(micros), "2030-01-01T00:00:00.000000+00:00");
        assert_eq!(parse("d", "2030-01-01T02:00:00+02:00").unwrap(), micros);
        assert_eq!(parse("d", "2030-01-01T00:00:00Z").unwrap(), micros);
        assert_eq!(parse("d", "2030-01-01T00:00:00").unwrap(), micros);
        assert_eq!(parse("d", "2030-01-01").unwrap(), micros);
        assert!(parse("d", "tomorrow").is_err());
    }
}
