//! `--since`: a duration back from now (`90s`, `30m`, `1h`, `2d`, `1h30m`) or a point in time
//! (RFC 3339), as the millisecond start time CloudWatch Logs takes.

use chrono::{DateTime, Utc};

use crate::exit::{Exit, fail};

/// The start time in milliseconds since the epoch.
pub fn parse(text: &str, now: DateTime<Utc>) -> anyhow::Result<i64> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    let seconds = duration_seconds(text).ok_or_else(|| {
        fail(
            Exit::Usage,
            format!(
                "--since '{text}' is neither a duration (e.g. 30m, 1h, 2d, 1h30m) nor an RFC 3339 \
                 time (e.g. 2024-05-01T12:00:00Z)"
            ),
        )
    })?;
    Ok(now.timestamp_millis() - seconds.saturating_mul(1000))
}

/// `1h30m` -> 5400; `None` for anything else (empty, unknown unit, missing number).
fn duration_seconds(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let value: i64 = number.parse().ok()?;
        total = total.checked_add(value.checked_mul(unit)?)?;
        number.clear();
    }
    (number.is_empty() && total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::classify;

    #[test]
    fn durations_count_back_from_now() {
        let now = DateTime::from_timestamp(10_000, 0).expect("valid");
        assert_eq!(parse("30m", now).expect("30m"), (10_000 - 1800) * 1000);
        assert_eq!(parse("1h30m", now).expect("1h30m"), (10_000 - 5400) * 1000);
        assert_eq!(parse("2d", now).expect("2d"), (10_000 - 172_800) * 1000);
    }

    #[test]
    fn rfc3339_is_an_absolute_time() {
        let now = Utc::now();
        assert_eq!(parse("1970-01-01T00:01:00Z", now).expect("time"), 60_000);
        assert_eq!(
            parse("1970-01-01T01:01:00+01:00", now).expect("offset"),
            60_000
        );
    }

    #[test]
    fn anything_else_is_a_usage_error() {
        for bad in ["", "1", "m", "1y", "-1h", "yesterday", "0m"] {
            let err = parse(bad, Utc::now()).expect_err(bad);
            assert_eq!(classify(&err), Exit::Usage, "{bad}");
            assert!(err.to_string().contains("--since"), "{err}");
        }
    }
}
