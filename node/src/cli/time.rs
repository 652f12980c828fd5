//! Times and durations as people type and read them: RFC 3339 in UTC, times relative to now
//! (`+1h`, `-30m`), Unix time with an explicit unit (`1795629600s`, `1795629600000ms`), and
//! durations such as `90s`, `5m`, `1h` or `1500ms`. Calendar dates are checked by `jiff`, so
//! 30 February is refused rather than read as 2 March.

use anyhow::{bail, Context};
use jiff::Timestamp;

/// Parses a duration: a whole number followed by `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration_ms(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().with_context(|| {
        format!("duration {text:?} must start with a whole number, as in 90s or 5m")
    })?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => bail!("duration {text:?} needs a unit: ms, s, m, h or d"),
        other => bail!("unknown unit {other:?} in duration {text:?}: use ms, s, m, h or d"),
    };
    number
        .checked_mul(scale)
        .with_context(|| format!("duration {text:?} is too large"))
}

/// Parses a moment, given `now_ms` for relative times: RFC 3339 (`2026-11-25T18:00:00Z`, any
/// offset, optional fractional seconds), `+DURATION` or `-DURATION` from now, or Unix time
/// with its unit (`1795629600s`, `1795629600000ms`). A bare number is refused: seconds and
/// milliseconds are both common, and guessing wrong is off by a factor of a thousand.
pub fn parse_time_ms_at(text: &str, now_ms: u64) -> anyhow::Result<u64> {
    let text = text.trim();
    let hint = "use RFC 3339 such as 2026-11-25T18:00:00Z, a time relative to now such as +1h \
                or -30m, or Unix time with its unit such as 1795629600s or 1795629600000ms";
    if let Some(offset) = text.strip_prefix('+') {
        let offset = parse_duration_ms(offset).with_context(|| format!("time {text:?}"))?;
        return now_ms
            .checked_add(offset)
            .with_context(|| format!("time {text:?} is too far in the future"));
    }
    if let Some(offset) = text.strip_prefix('-') {
        let offset = parse_duration_ms(offset).with_context(|| format!("time {text:?}"))?;
        return now_ms
            .checked_sub(offset)
            .with_context(|| format!("time {text:?} is before 1970"));
    }
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        bail!("time {text:?} has no unit: {hint}");
    }
    if let Some(number) = text.strip_suffix("ms") {
        if let Ok(ms) = number.parse::<u64>() {
            return Ok(ms);
        }
    }
    if let Some(number) = text.strip_suffix('s') {
        if let Ok(seconds) = number.parse::<u64>() {
            return seconds
                .checked_mul(1_000)
                .with_context(|| format!("time {text:?} is too large"));
        }
    }
    let timestamp: Timestamp = text
        .parse()
        .map_err(|error| anyhow::anyhow!("time {text:?} is not valid ({error}): {hint}"))?;
    u64::try_from(timestamp.as_millisecond())
        .map_err(|_| anyhow::anyhow!("time {text:?} is before 1970"))
}

/// [`parse_time_ms_at`] relative to this machine's clock.
pub fn parse_time_ms(text: &str) -> anyhow::Result<u64> {
    parse_time_ms_at(text, crate::clock::now_ms())
}

/// Formats Unix milliseconds as RFC 3339 in UTC with milliseconds.
pub fn format_time(ms: u64) -> String {
    let timestamp = i64::try_from(ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .unwrap_or(Timestamp::MAX);
    format!("{timestamp:.3}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_match_known_dates() {
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        // 2026-11-25T18:00:00Z, checked with `date -u -d 2026-11-25T18:00:00Z +%s`.
        assert_eq!(
            parse_time_ms("2026-11-25T18:00:00Z").unwrap(),
            1_795_629_600_000
        );
        assert_eq!(
            parse_time_ms("2026-11-25T19:00:00+01:00").unwrap(),
            1_795_629_600_000
        );
        assert_eq!(
            parse_time_ms("2024-02-29T12:34:56.789Z").unwrap() % 1000,
            789
        );
        assert_eq!(parse_time_ms("1795629600000ms").unwrap(), 1_795_629_600_000);
        assert_eq!(parse_time_ms("1795629600s").unwrap(), 1_795_629_600_000);
        for ms in [0, 951_782_400_000, 1_764_093_600_123, 4_102_444_799_999] {
            assert_eq!(parse_time_ms(&format_time(ms)).unwrap(), ms);
        }
        assert_eq!(format_time(1_764_064_800_123), "2025-11-25T10:00:00.123Z");
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert!(parse_time_ms("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time_ms("2026-11-25 18:00").is_err());
        assert!(parse_time_ms("yesterday")
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
    }

    #[test]
    fn impossible_dates_and_unitless_numbers_are_refused() {
        let error = parse_time_ms("2026-02-30T00:00:00Z").unwrap_err();
        assert!(error.to_string().contains("not valid"), "{error}");
        assert!(parse_time_ms("2025-02-29T00:00:00Z").is_err());
        assert!(parse_time_ms("2024-02-29T00:00:00Z").is_ok());
        let error = parse_time_ms("1795629600000").unwrap_err();
        assert!(error.to_string().contains("has no unit"), "{error}");
    }

    #[test]
    fn times_relative_to_now() {
        let now = 1_795_629_600_000;
        assert_eq!(parse_time_ms_at("+1h", now).unwrap(), now + 3_600_000);
        assert_eq!(parse_time_ms_at("-30m", now).unwrap(), now - 1_800_000);
        assert!(parse_time_ms_at("+1", now)
            .unwrap_err()
            .chain()
            .any(|cause| cause.to_string().contains("needs a unit")));
        assert!(parse_time_ms_at("-1d", 0).is_err());
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("5m").unwrap(), 300_000);
        assert_eq!(parse_duration_ms("1500ms").unwrap(), 1_500);
        assert_eq!(parse_duration_ms("2h").unwrap(), 7_200_000);
        assert!(parse_duration_ms("90")
            .unwrap_err()
            .to_string()
            .contains("needs a unit"));
        assert!(parse_duration_ms("5w")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_duration_ms("s").is_err());
    }
}
