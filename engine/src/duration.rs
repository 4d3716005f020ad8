//! Durations as the definition and the command line write them: `90s`, `5m`, `1h30m`, `500ms`.

use std::time::Duration;

/// The longest duration anything takes (a week): larger values are typos, and would overflow
/// deadlines (`Instant + Duration` panics on overflow).
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// `90s`, `5m`, `1h30m`, `500ms`: units ms, s, m, h, summed; at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("{text:?} is not a duration (like 90s, 5m, 1h30m, 500ms)"));
        }
        let too_long = || format!("{text:?} is longer than a week; durations are at most 168h");
        let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let millis = match &rest[..unit] {
            "ms" => Some(n),
            "s" => n.checked_mul(1000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            other => return Err(format!("{text:?}: unknown unit {other:?} (use ms, s, m or h)")),
        };
        total = millis
            .map(Duration::from_millis)
            .and_then(|d| total.checked_add(d))
            .filter(|t| *t <= MAX_DURATION)
            .ok_or_else(too_long)?;
        rest = &rest[unit..];
    }
    Ok(total)
}

/// A timeout or wait: as [`parse_duration`], and zero is refused (it would fail every run at
/// once).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("{text:?} is zero; give the time the step may take")),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        // Never an overflow, whatever the number: a week at most.
        assert!(parse_duration("99999999999999999999h").unwrap_err().contains("longer than a week"));
        assert!(parse_duration("18446744073709551615h").is_err());
        assert!(parse_duration("5124095576030431h").is_err());
        assert_eq!(parse_duration("168h"), Ok(MAX_DURATION));
        assert!(parse_duration("168h1ms").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_timeout("0s").unwrap_err().contains("zero"));
    }
}
