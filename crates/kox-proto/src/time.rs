//! RFC 3339 forms of meta/v1 Time and MicroTime.

use serde_json::Value;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds: its JSON form is `null`.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// Formats a Timestamp {seconds, nanos} as Time (`2006-01-02T15:04:05Z`) or MicroTime
/// (`2006-01-02T15:04:05.000000Z`), in UTC; `None` for Go's zero time.
pub(crate) fn format(seconds: i64, nanos: i64, micro: bool) -> Result<Option<Value>, String> {
    // meta/v1 Time keeps whole seconds only (upstream's protobuf decoding drops the nanoseconds).
    let nanos = if micro { nanos } else { 0 };
    let seconds = seconds
        .checked_add(nanos.div_euclid(1_000_000_000))
        .ok_or("time out of range")?;
    let nanos = nanos.rem_euclid(1_000_000_000);
    if seconds == GO_ZERO_TIME && nanos == 0 {
        return Ok(None);
    }
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return Err(format!("time {seconds}s is outside the years 0000-9999"));
    }
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    if micro {
        out.push_str(&format!(".{:06}", nanos / 1000));
    }
    out.push('Z');
    Ok(Some(Value::String(out)))
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: Option<Value>) -> String {
        v.and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    #[test]
    fn times() {
        assert_eq!(s(format(0, 0, false).unwrap()), "1970-01-01T00:00:00Z");
        assert_eq!(
            s(format(1_767_323_045, 999_999_999, false).unwrap()),
            "2026-01-02T03:04:05Z"
        );
        assert_eq!(
            s(format(1_767_323_045, 123_456_789, true).unwrap()),
            "2026-01-02T03:04:05.123456Z"
        );
        assert_eq!(
            s(format(951_782_400, 0, false).unwrap()),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(s(format(-1, 0, false).unwrap()), "1969-12-31T23:59:59Z");
        assert_eq!(format(GO_ZERO_TIME, 0, false).unwrap(), None);
        assert_eq!(format(GO_ZERO_TIME, 0, true).unwrap(), None);
        assert!(format(i64::MAX / 2, 0, false).is_err());
    }
}
