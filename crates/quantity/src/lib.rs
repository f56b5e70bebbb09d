//! Kubernetes resource quantities (`250m`, `128Mi`, `1.5G`, `2e3`) as exact
//! numbers, and written the way the kubelet writes them (`2`, `1500m`,
//! `24684096Ki`). Shared by node status, admission, limits and the downward API.
//!
//! k8s-openapi carries quantities as strings; this parser keeps the exact
//! value (`digits × 2^e2 × 10^e10`) and rounds only when asked, the way the
//! apiserver's `Quantity.Value()` (ceiling) and `MilliValue()` (ceiling of
//! the value in thousandths) do.

/// A quantity that does not parse, or is too large to represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {0:?}")]
pub struct InvalidQuantity(pub String);

/// An exactly parsed quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    digits: i128,
    e2: u32,
    e10: i32,
}

impl Quantity {
    /// Parses `<number><suffix>`: a decimal number (sign and fraction
    /// allowed), then a binary-SI (`Ki`…`Ei`), decimal-SI (`n u m "" k M G T
    /// P E`) or exponent (`e3`, `E-2`) suffix.
    ///
    /// # Errors
    ///
    /// [`InvalidQuantity`] for anything else.
    pub fn parse(q: &str) -> Result<Self, InvalidQuantity> {
        let bad = || InvalidQuantity(q.to_owned());
        let s = q.trim();
        let end = s.find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))).unwrap_or(s.len());
        let (number, suffix) = s.split_at(end);
        let (digits, mut e10) = mantissa(number).ok_or_else(bad)?;
        let mut e2 = 0;
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
            // Checked: an exponent near i32::MIN plus the fraction's digits
            // overflowed (found by the property tests).
            s if s.starts_with(['e', 'E']) => {
                e10 = e10.checked_add(s[1..].parse::<i32>().map_err(|_| bad())?).ok_or_else(bad)?;
            }
            _ => return Err(bad()),
        }
        if !(-40..=40).contains(&e10) {
            return Err(bad());
        }
        let quantity = Self { digits, e2, e10 };
        quantity.scaled_ceil(3).ok_or_else(bad)?;
        Ok(quantity)
    }

    /// The value rounded up to a whole number (`Quantity.Value()`): bytes
    /// for memory and storage.
    pub fn value(&self) -> i64 {
        self.scaled_ceil(0).unwrap_or(i64::MAX)
    }

    /// The value in thousandths, rounded up (`Quantity.MilliValue()`):
    /// millicores for CPU.
    pub fn milli_value(&self) -> i64 {
        self.scaled_ceil(3).unwrap_or(i64::MAX)
    }

    /// ⌈value × 10^`exp10`⌉, `None` if it does not fit an `i64`.
    fn scaled_ceil(&self, exp10: i32) -> Option<i64> {
        let digits = self.digits.checked_mul(1i128.checked_shl(self.e2)?)?;
        let e10 = self.e10 + exp10;
        let value = if e10 >= 0 {
            digits.checked_mul(10i128.checked_pow(e10.unsigned_abs())?)?
        } else {
            match 10i128.checked_pow(e10.unsigned_abs()) {
                Some(divisor) => ceil_div(digits, divisor)?,
                // 10^|e10| is past i128 (and past any |digits|): a positive
                // value rounds up to 1, zero or a negative one to 0. (It
                // was i64::MAX, found by the property tests.)
                None => i64::from(digits > 0).into(),
            }
        };
        i64::try_from(value).ok()
    }
}

/// ⌈a / b⌉ for integers, `None` when `b` is zero.
pub fn ceil_div(a: i128, b: i128) -> Option<i128> {
    if b == 0 {
        return None;
    }
    let (q, r) = (a / b, a % b);
    Some(if r != 0 && ((r > 0) == (b > 0)) { q + 1 } else { q })
}

/// A decimal number as (integer digits, power of ten).
fn mantissa(number: &str) -> Option<(i128, i32)> {
    let (negative, unsigned) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut digits: i128 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        if !c.is_ascii_digit() {
            return None;
        }
        digits = digits.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
    }
    let e10 = -i32::try_from(frac.len()).ok()?;
    Some((if negative { -digits } else { digits }, e10))
}

/// The value of `q` in thousandths, rounded up (millicores for CPU).
///
/// # Errors
///
/// `q` does not parse.
pub fn milli(q: &str) -> Result<i64, InvalidQuantity> {
    Quantity::parse(q).map(|x| x.milli_value())
}

/// The value of `q` rounded up to a whole number (bytes for memory and storage).
///
/// # Errors
///
/// `q` does not parse.
pub fn units(q: &str) -> Result<i64, InvalidQuantity> {
    Quantity::parse(q).map(|x| x.value())
}

/// Whether two quantities are the same value (`1Gi` and `1024Mi` are).
pub fn same(
    a: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
    b: &k8s_openapi::apimachinery::pkg::api::resource::Quantity,
) -> bool {
    match (Quantity::parse(&a.0), Quantity::parse(&b.0)) {
        (Ok(x), Ok(y)) => x.milli_value() == y.milli_value(),
        _ => a.0 == b.0,
    }
}

const BINARY_SUFFIXES: [(&str, u32); 6] = [("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)];

/// CPU as the kubelet writes it: whole cores (`2`) or millicores (`1500m`).
pub fn cpu(millis: u64) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    let s = if millis.is_multiple_of(1000) { (millis / 1000).to_string() } else { format!("{millis}m") };
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(s)
}

/// Bytes with the largest exact binary suffix (`24684096Ki`, `1Gi`, `100`).
pub fn bytes(n: u64) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    let s = BINARY_SUFFIXES
        .iter()
        .find(|(_, power)| n != 0 && n.is_multiple_of(1u64 << (10 * power)))
        .map_or_else(|| n.to_string(), |(suffix, power)| format!("{}{suffix}", n >> (10 * power)));
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(s)
}

/// A plain count (`110`).
pub fn count(n: u64) -> k8s_openapi::apimachinery::pkg::api::resource::Quantity {
    k8s_openapi::apimachinery::pkg::api::resource::Quantity(n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn values_round_up_like_the_apiserver() {
        assert_eq!(q("250m").milli_value(), 250);
        assert_eq!(q("250m").value(), 1);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("2").milli_value(), 2000);
        assert_eq!(q("1Ki").value(), 1024);
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("1n").value(), 1);
        assert_eq!(q("1n").milli_value(), 1);
        assert_eq!(q("0").value(), 0);
        assert_eq!(q("-1").value(), -1);
        assert_eq!(q("0e-39").value(), 0);
        assert_eq!(q("1e-39").value(), 1);
        assert_eq!(q("-1e-39").value(), 0);
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "m", "1x", "1.2.3", "Mi", "1e", "1e999", "99999999999999999999999Ei"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ceiling_division() {
        assert_eq!(ceil_div(7, 2), Some(4));
        assert_eq!(ceil_div(6, 2), Some(3));
        assert_eq!(ceil_div(-7, 2), Some(-3));
        assert_eq!(ceil_div(0, 5), Some(0));
        assert_eq!(ceil_div(1, 0), None);
    }

    #[test]
    fn kubelet_formatting_and_comparison() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
        assert_eq!(cpu(2000).0, "2");
        assert_eq!(cpu(1500).0, "1500m");
        assert_eq!(bytes(0).0, "0");
        assert_eq!(bytes(1 << 30).0, "1Gi");
        assert_eq!(bytes(24_684_096 * 1024).0, "24684096Ki");
        assert_eq!(bytes(1000).0, "1000");
        assert_eq!(count(110).0, "110");
        assert!(same(&Q("1Gi".into()), &Q("1024Mi".into())));
        assert!(!same(&Q("1G".into()), &Q("1Gi".into())));
        assert_eq!(milli("100m"), Ok(100));
        assert_eq!(units("1.5Ki"), Ok(1536));
        assert!(units("1Zi").is_err());
    }
}
