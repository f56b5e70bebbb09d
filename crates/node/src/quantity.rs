//! Resource quantities in the Kubernetes format: writing them the way the
//! kubelet does, and comparing them by value (the API server re-serializes
//! quantities in canonical form, so `1000` may come back as `1k`).

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

const BINARY_SUFFIXES: [(&str, u32); 6] = [("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)];

/// CPU in millicores: whole cores as an integer (`"2"`), else millicores (`"1500m"`).
pub(crate) fn cpu(millis: u64) -> Quantity {
    if millis.is_multiple_of(1000) { Quantity((millis / 1000).to_string()) } else { Quantity(format!("{millis}m")) }
}

/// Bytes in canonical binary-SI form: the largest power-of-1024 suffix that
/// divides exactly (`"24684096Ki"`, `"2Gi"`), else plain bytes.
pub(crate) fn bytes(n: u64) -> Quantity {
    if n == 0 {
        return Quantity("0".into());
    }
    for (suffix, power) in BINARY_SUFFIXES {
        let unit = 1u64 << (10 * power);
        if n.is_multiple_of(unit) {
            return Quantity(format!("{}{suffix}", n / unit));
        }
    }
    Quantity(n.to_string())
}

/// A plain count (`pods`).
pub(crate) fn count(n: u64) -> Quantity {
    Quantity(n.to_string())
}

/// Whether two quantities have the same value (falls back to string equality
/// when either does not parse).
pub(crate) fn same(a: &Quantity, b: &Quantity) -> bool {
    match (millis(&a.0), millis(&b.0)) {
        (Some(x), Some(y)) => x == y,
        _ => a.0 == b.0,
    }
}

/// The value of a quantity in thousandths of its unit, truncated; `None` when it
/// does not parse or overflows.
pub(crate) fn millis(s: &str) -> Option<i128> {
    let s = s.trim();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || number.len() > 30 || frac.contains('.') {
        return None;
    }
    let digits: i128 = format!("{int}{frac}").parse().ok()?;
    // value = digits * num / den
    let mut num: i128 = 1000;
    let mut den: i128 = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    let pow10 = |e: u32| 10i128.checked_pow(e);
    match suffix {
        "" => {}
        "n" => den = den.checked_mul(pow10(9)?)?,
        "u" => den = den.checked_mul(pow10(6)?)?,
        "m" => den = den.checked_mul(pow10(3)?)?,
        "k" => num = num.checked_mul(pow10(3)?)?,
        "M" => num = num.checked_mul(pow10(6)?)?,
        "G" => num = num.checked_mul(pow10(9)?)?,
        "T" => num = num.checked_mul(pow10(12)?)?,
        "P" => num = num.checked_mul(pow10(15)?)?,
        "E" => num = num.checked_mul(pow10(18)?)?,
        _ => {
            if let Some((_, power)) = BINARY_SUFFIXES.iter().find(|(x, _)| *x == suffix) {
                num = num.checked_mul(1i128 << (10 * power))?;
            } else {
                let exp: i32 = suffix.strip_prefix(['e', 'E'])?.parse().ok()?;
                let e = exp.unsigned_abs();
                if e > 30 {
                    return None;
                }
                if exp >= 0 {
                    num = num.checked_mul(pow10(e)?)?;
                } else {
                    den = den.checked_mul(pow10(e)?)?;
                }
            }
        }
    }
    let value = digits.checked_mul(num)? / den;
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_kubelet() {
        assert_eq!(cpu(2000).0, "2");
        assert_eq!(cpu(1500).0, "1500m");
        assert_eq!(cpu(0).0, "0");
        assert_eq!(bytes(24_684_096 * 1024).0, "24684096Ki");
        assert_eq!(bytes(2 << 30).0, "2Gi");
        assert_eq!(bytes(1000).0, "1000");
        assert_eq!(bytes(0).0, "0");
        assert_eq!(count(110).0, "110");
    }

    #[test]
    fn parses_every_suffix() {
        assert_eq!(millis("2"), Some(2000));
        assert_eq!(millis("1500m"), Some(1500));
        assert_eq!(millis("1k"), Some(1_000_000));
        assert_eq!(millis("1Ki"), Some(1_024_000));
        assert_eq!(millis("1.5Gi"), Some(1_610_612_736_000));
        assert_eq!(millis("1e3"), Some(1_000_000));
        assert_eq!(millis("1E-3"), Some(1));
        assert_eq!(millis("100n"), Some(0));
        assert_eq!(millis("-1"), Some(-1000));
        assert_eq!(millis("abc"), None);
        assert_eq!(millis("1.2.3"), None);
        assert_eq!(millis("1Xi"), None);
        assert_eq!(millis(""), None);
    }

    #[test]
    fn compares_by_value() {
        let q = |s: &str| Quantity(s.to_owned());
        assert!(same(&q("1000"), &q("1k")));
        assert!(same(&q("2Gi"), &q("2097152Ki")));
        assert!(same(&q("2"), &q("2000m")));
        assert!(!same(&q("2"), &q("3")));
        assert!(same(&q("weird"), &q("weird")));
    }
}
