//! Cron schedules as CronJobs spell them (robfig/cron's standard parser, which upstream uses):
//! five fields `minute hour day-of-month month day-of-week` with `*`, `?`, lists, ranges,
//! steps and month/weekday names, or one of `@yearly`, `@annually`, `@monthly`, `@weekly`,
//! `@daily`, `@midnight`, `@hourly`, `@every <duration>`.

use k8s_openapi::jiff::civil::{Date, DateTime, Time};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Field sets, as bit masks.
    Fields {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
        /// Whether day-of-month or day-of-week started with `*` or `?` (then both must match;
        /// otherwise either may).
        day_star: bool,
    },
    /// `@every <duration>`, in whole seconds.
    Every(i64),
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parses a schedule; errors read like robfig/cron's.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        return Err("CRON_TZ or TZ used in schedule is not supported".into());
    }
    if let Some(d) = spec.strip_prefix('@') {
        let fields = match d {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            _ => {
                if let Some(dur) = d.strip_prefix("every ") {
                    return parse_duration(dur.trim()).map(Schedule::Every);
                }
                return Err(format!("unrecognized descriptor: {spec}"));
            }
        };
        return parse(fields);
    }
    let f: Vec<&str> = spec.split_whitespace().collect();
    if f.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {spec}",
            f.len()
        ));
    }
    let star = |s: &str| s.starts_with('*') || s.starts_with('?');
    Ok(Schedule::Fields {
        minute: field(f[0], 0, 59, &[])?,
        hour: field(f[1], 0, 23, &[])?,
        dom: field(f[2], 1, 31, &[])?,
        month: field(f[3], 1, 12, &MONTHS)?,
        dow: field(f[4], 0, 6, &DAYS)? | if f[4] == "7" { 1 } else { 0 },
        day_star: star(f[2]) || star(f[4]),
    })
}

fn parse_duration(s: &str) -> Result<i64, String> {
    // Go durations: sequences of <number><unit>, units h, m, s (ms and below round away).
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(format!("failed to parse duration {s}"));
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("failed to parse duration {s}: missing unit"))?;
        let (num, tail) = rest.split_at(n);
        let v: f64 = num
            .parse()
            .map_err(|_| format!("failed to parse duration {s}"))?;
        let u = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u);
        total += v * match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(format!("failed to parse duration {s}: unknown unit {unit}")),
        };
        rest = tail;
    }
    let secs = total as i64;
    // robfig/cron rounds sub-second intervals up to a second.
    Ok(secs.max(1))
}

fn value(s: &str, names: &[&str], lo: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + lo);
    }
    s.parse()
        .map_err(|_| format!("failed to parse int from {s}: invalid syntax"))
}

fn field(s: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st: u32 = st
                    .parse()
                    .map_err(|_| format!("failed to parse int from {st}: invalid syntax"))?;
                if st == 0 {
                    return Err(format!("step of range should be a positive number: {part}"));
                }
                (r, Some(st))
            }
            None => (part, None),
        };
        let (start, end) = if range == "*" || range == "?" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, lo)?, value(b, names, lo)?)
        } else {
            let v = value(range, names, lo)?;
            // `N/step` means N through the maximum.
            (v, if step.is_some() { hi } else { v })
        };
        let max = if hi == 6 { 7 } else { hi };
        if start < lo {
            return Err(format!(
                "beginning of range ({start}) below minimum ({lo}): {part}"
            ));
        }
        if end > max {
            return Err(format!("end of range ({end}) above maximum ({hi}): {part}"));
        }
        if start > end {
            return Err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {part}"
            ));
        }
        let step = step.unwrap_or(1);
        let mut v = start;
        while v <= end {
            // Sunday may be written 7.
            bits |= 1u64 << (if hi == 6 && v == 7 { 0 } else { v });
            v += step;
        }
    }
    Ok(bits)
}

fn has(bits: u64, v: i8) -> bool {
    bits & (1u64 << v as u32) != 0
}

impl Schedule {
    /// The first activation strictly after `after`, in `tz`; `None` when there is none within
    /// five years (e.g. `0 0 30 2 *`).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let (minute, hour, dom, month, dow, day_star) = match *self {
            Schedule::Every(secs) => {
                // robfig/cron: the next whole second after `after + every`.
                return Timestamp::from_second(after.as_second() + secs).ok();
            }
            Schedule::Fields {
                minute,
                hour,
                dom,
                month,
                dow,
                day_star,
            } => (minute, hour, dom, month, dow, day_star),
        };
        let start = after.to_zoned(tz.clone()).datetime();
        // The next whole minute after `after`.
        let mut t = DateTime::from_parts(
            start.date(),
            Time::new(start.hour(), start.minute(), 0, 0).ok()?,
        )
        .checked_add(1.minute())
        .ok()?;
        let limit = start.year() + 5;
        let day_ok = |d: Date| {
            let dm = has(dom, d.day());
            let dw = has(dow, d.weekday().to_sunday_zero_offset());
            if day_star { dm && dw } else { dm || dw }
        };
        while t.year() <= limit {
            if !has(month, t.month()) {
                let first = Date::new(t.year(), t.month(), 1).ok()?;
                t = first
                    .checked_add(1.month())
                    .ok()?
                    .to_datetime(Time::midnight());
                continue;
            }
            if !day_ok(t.date()) {
                t = t
                    .date()
                    .checked_add(1.day())
                    .ok()?
                    .to_datetime(Time::midnight());
                continue;
            }
            if !has(hour, t.hour()) {
                t = DateTime::from_parts(t.date(), Time::new(t.hour(), 0, 0, 0).ok()?)
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !has(minute, t.minute()) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            let ts = tz.to_timestamp(t).ok()?;
            if ts > after {
                return Some(ts);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }
}

/// Upstream's `mostRecentScheduleTime`: the latest activation in `(earliest, now]` and how
/// many activations that window held.
pub fn most_recent(
    s: &Schedule,
    tz: &TimeZone,
    earliest: Timestamp,
    now: Timestamp,
) -> (Option<Timestamp>, u32) {
    let mut last = None;
    let mut n: u32 = 0;
    let mut t = earliest;
    while let Some(next) = s.next(t, tz) {
        if next > now {
            break;
        }
        last = Some(next);
        n = n.saturating_add(1);
        t = next;
    }
    (last, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn next(spec: &str, after: &str) -> String {
        parse(spec)
            .expect("parse")
            .next(ts(after), &TimeZone::UTC)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn next_activation_times() {
        assert_eq!(
            next("*/5 * * * *", "2026-01-01T00:02:30Z"),
            "2026-01-01T00:05:00Z"
        );
        assert_eq!(
            next("* * * * *", "2026-01-01T00:05:00Z"),
            "2026-01-01T00:06:00Z"
        );
        assert_eq!(
            next("@hourly", "2026-01-01T10:00:00Z"),
            "2026-01-01T11:00:00Z"
        );
        assert_eq!(
            next("@daily", "2026-01-01T10:00:00Z"),
            "2026-01-02T00:00:00Z"
        );
        assert_eq!(
            next("@monthly", "2026-01-15T10:00:00Z"),
            "2026-02-01T00:00:00Z"
        );
        assert_eq!(
            next("@yearly", "2026-01-15T10:00:00Z"),
            "2027-01-01T00:00:00Z"
        );
        // 2026-01-01 is a Thursday.
        assert_eq!(
            next("@weekly", "2026-01-01T00:00:00Z"),
            "2026-01-04T00:00:00Z"
        );
        assert_eq!(
            next("30 9 * * mon-fri", "2026-01-02T10:00:00Z"),
            "2026-01-05T09:30:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-01-01T00:00:00Z"),
            "2026-01-04T00:00:00Z"
        );
        // Day-of-month OR day-of-week when neither is a star.
        assert_eq!(
            next("0 0 13 * 5", "2026-01-01T00:00:00Z"),
            "2026-01-02T00:00:00Z"
        );
        assert_eq!(
            next("0 12 1 JAN,jul *", "2026-02-01T00:00:00Z"),
            "2026-07-01T12:00:00Z"
        );
        assert_eq!(next("0 0 30 2 *", "2026-01-01T00:00:00Z"), "");
        assert_eq!(
            next("@every 90s", "2026-01-01T00:00:00Z"),
            "2026-01-01T00:01:30Z"
        );
    }

    #[test]
    fn time_zones_shift_activations() {
        let tz = crate::workloads::cronjob::time_zone(Some("America/New_York")).expect("tzdb");
        let s = parse("0 9 * * *").expect("parse");
        let t = s.next(ts("2026-01-01T00:00:00Z"), &tz).expect("next");
        assert_eq!(t.to_string(), "2026-01-01T14:00:00Z");
    }

    #[test]
    fn bad_schedules_are_rejected() {
        for bad in [
            "",
            "* * * *",
            "61 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "@fortnightly",
            "TZ=UTC * * * * *",
            "a * * * *",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn missed_activations_are_counted() {
        let s = parse("* * * * *").expect("parse");
        let (last, n) = most_recent(
            &s,
            &TimeZone::UTC,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T00:03:30Z"),
        );
        assert_eq!(n, 3);
        assert_eq!(last.expect("last").to_string(), "2026-01-01T00:03:00Z");
        let (last, n) = most_recent(
            &s,
            &TimeZone::UTC,
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T05:00:00Z"),
        );
        assert_eq!(n, 300);
        assert_eq!(last.expect("last").to_string(), "2026-01-01T05:00:00Z");
    }
}
