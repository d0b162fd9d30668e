//! Durations (`250ms`, `5s`, `1m`) and byte sizes (`64KiB`, `1MiB`, `512`) as written in the YAML.

use std::time::Duration;

pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration `{s}`: {e} (examples: 250ms, 5s, 1m)"))
}

pub fn size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("invalid size `{s}` (examples: 512, 64KiB, 1MiB, 10KB)");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("1m").unwrap(), Duration::from_secs(60));
        assert!(duration("5q").is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(size("64KiB").unwrap(), 65536);
        assert_eq!(size("1MiB").unwrap(), 1 << 20);
        assert_eq!(size("512").unwrap(), 512);
        assert_eq!(size("10KB").unwrap(), 10_000);
        assert!(size("1.5MiB").is_err());
        assert!(size("KiB").is_err());
    }
}
