//! Times and durations as people type and read them: RFC 3339 in UTC, Unix milliseconds, and
//! durations such as `90s`, `5m`, `1h` or `1500ms`.

use anyhow::{bail, Context};

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

/// Parses a moment: Unix milliseconds, or RFC 3339 in UTC (`2026-11-25T18:00:00Z`, with
/// optional fractional seconds).
pub fn parse_time_ms(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    let hint = || {
        format!("time {text:?} must be Unix milliseconds or RFC 3339 in UTC, such as 2026-11-25T18:00:00Z")
    };
    let rest = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix('z'))
        .with_context(hint)?;
    let (date, clock) = rest.split_once(['T', 't', ' ']).with_context(hint)?;
    let mut date_parts = date.split('-').map(str::parse::<i64>);
    let (Some(Ok(year)), Some(Ok(month)), Some(Ok(day)), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        bail!(hint());
    };
    let (clock, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut clock_parts = clock.split(':').map(str::parse::<i64>);
    let (Some(Ok(hour)), Some(Ok(minute)), Some(Ok(second)), None) = (
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
        clock_parts.next(),
    ) else {
        bail!(hint());
    };
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..=60).contains(&second)
        && fraction.chars().all(|c| c.is_ascii_digit());
    if !valid {
        bail!(hint());
    }
    let millis: i64 = format!("{fraction:0<3}")
        .get(..3)
        .unwrap_or("000")
        .parse()
        .unwrap_or(0);
    let days = days_from_civil(year, month, day);
    let ms = ((days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000) + millis;
    u64::try_from(ms).with_context(hint)
}

/// Formats Unix milliseconds as RFC 3339 in UTC with milliseconds.
pub fn format_time(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    let (days, rest) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (rest / 3_600_000, rest / 60_000 % 60);
    let (second, millis) = (rest / 1_000 % 60, rest % 1_000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
            parse_time_ms("2024-02-29T12:34:56.789Z").unwrap() % 1000,
            789
        );
        assert_eq!(parse_time_ms("1795629600000").unwrap(), 1_795_629_600_000);
        for ms in [0, 951_782_400_000, 1_764_093_600_123, 4_102_444_799_999] {
            assert_eq!(parse_time_ms(&format_time(ms)).unwrap(), ms);
        }
        assert!(parse_time_ms("2026-13-01T00:00:00Z").is_err());
        assert!(parse_time_ms("2026-11-25 18:00").is_err());
        assert!(parse_time_ms("yesterday")
            .unwrap_err()
            .to_string()
            .contains("RFC 3339"));
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
