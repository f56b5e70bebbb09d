//! Kubernetes resource quantities (`100m`, `128Mi`, `1.5G`, `2e3`), parsed as
//! the apiserver does, rounded up to whole units.
//!
//! k8s-openapi carries quantities as strings and kube-rs has no parser, so this
//! small one lives here.

/// A quantity that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}")]
pub struct InvalidQuantity(pub String);

/// The value in thousandths (for CPU: millicores), rounded up.
pub fn milli(q: &str) -> Result<i64, InvalidQuantity> {
    scaled(q, 3)
}

/// The value in whole units (for memory and storage: bytes), rounded up.
pub fn units(q: &str) -> Result<i64, InvalidQuantity> {
    scaled(q, 0)
}

/// value × 10^`exp10`, rounded up.
fn scaled(q: &str, exp10: i32) -> Result<i64, InvalidQuantity> {
    let bad = || InvalidQuantity(q.to_owned());
    let s = q.trim();
    let (number, suffix) = split(s);
    if number.is_empty() {
        return Err(bad());
    }
    let (mut digits, mut e10) = mantissa(number).ok_or_else(bad)?;
    let mut e2 = 0u32;
    match suffix {
        "" => {}
        "n" => e10 -= 9,
        "u" => e10 -= 6,
        "m" => e10 -= 3,
        "k" => e10 += 3,
        "M" => e10 += 6,
        "G" => e10 += 9,
        "T" => e10 += 12,
        "P" => e10 += 15,
        "E" => e10 += 18,
        "Ki" => e2 = 10,
        "Mi" => e2 = 20,
        "Gi" => e2 = 30,
        "Ti" => e2 = 40,
        "Pi" => e2 = 50,
        "Ei" => e2 = 60,
        s if s.starts_with(['e', 'E']) => e10 += s[1..].parse::<i32>().map_err(|_| bad())?,
        _ => return Err(bad()),
    }
    e10 += exp10;
    digits = digits.checked_mul(1i128.checked_shl(e2).ok_or_else(bad)?).ok_or_else(bad)?;
    let value = if e10 >= 0 {
        digits.checked_mul(10i128.checked_pow(e10 as u32).ok_or_else(bad)?).ok_or_else(bad)?
    } else {
        let div = 10i128.checked_pow((-e10) as u32).ok_or_else(bad)?;
        (digits + div - 1).div_euclid(div)
    };
    i64::try_from(value).map_err(|_| bad())
}

/// Splits `1.5Gi` into (`1.5`, `Gi`); an exponent (`2e3`) stays in the suffix.
fn split(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    s.split_at(end)
}

/// `1.25` → (125, -2). Negative quantities are rejected (requests and limits
/// cannot be negative).
fn mantissa(n: &str) -> Option<(i128, i32)> {
    let n = n.strip_prefix('+').unwrap_or(n);
    if n.starts_with('-') {
        return None;
    }
    let (int, frac) = n.split_once('.').unwrap_or((n, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digits: String = format!("{int}{frac}");
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() > 30 {
        return None;
    }
    Some((digits.parse().ok()?, -(frac.len() as i32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_in_millicores() {
        assert_eq!(milli("100m"), Ok(100));
        assert_eq!(milli("1"), Ok(1000));
        assert_eq!(milli("0.5"), Ok(500));
        assert_eq!(milli("2.0001"), Ok(2001), "rounded up");
        assert_eq!(milli("250000u"), Ok(250));
        assert_eq!(milli("1e3"), Ok(1_000_000));
    }

    #[test]
    fn memory_in_bytes() {
        assert_eq!(units("128Mi"), Ok(128 << 20));
        assert_eq!(units("1Gi"), Ok(1 << 30));
        assert_eq!(units("1G"), Ok(1_000_000_000));
        assert_eq!(units("1.5Ki"), Ok(1536));
        assert_eq!(units("100"), Ok(100));
        assert_eq!(units("1500m"), Ok(2), "rounded up");
        assert_eq!(units("4Ei"), Ok(4 << 60));
    }

    #[test]
    fn garbage_is_rejected() {
        for q in ["", "abc", "1Zi", "-1", "1..2", "Mi", "99999999999999999999Ei", "1e"] {
            assert!(units(q).is_err(), "{q:?} parsed");
        }
    }
}
