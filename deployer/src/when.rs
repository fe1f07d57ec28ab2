//! Times as operators read them: AWS timestamps turned into UTC times and short ages
//! ("45s", "12m", "3h05m", "2d04h"), so every command shows time the same way.

use chrono::{DateTime, SecondsFormat, Utc};

/// An AWS SDK timestamp as a chrono UTC time.
pub fn utc(time: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(time.secs(), time.subsec_nanos())
}

/// Milliseconds since the epoch (CloudWatch Logs) as a UTC time.
pub fn from_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

/// RFC 3339 with second precision, for JSON and tables.
pub fn rfc3339(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// How long ago `time` was, relative to `now`, in the largest two units.
pub fn age(time: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let secs = (*now - *time).num_seconds().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_the_two_largest_units() {
        let now = DateTime::from_timestamp(1_000_000, 0).expect("valid");
        let ago = |secs: i64| {
            age(
                &DateTime::from_timestamp(1_000_000 - secs, 0).expect("valid"),
                &now,
            )
        };
        assert_eq!(ago(5), "5s");
        assert_eq!(ago(125), "2m05s");
        assert_eq!(ago(3 * 3600 + 5 * 60), "3h05m");
        assert_eq!(ago(2 * 86_400 + 4 * 3600), "2d04h");
        assert_eq!(ago(-10), "0s", "clock skew never shows a negative age");
    }
}
