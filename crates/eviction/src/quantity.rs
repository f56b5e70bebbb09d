//! Quantities of eviction signals (bytes, inodes) as upstream's
//! `resource.Quantity` writes them in messages: binary (`100Mi`, `53248Ki`)
//! or decimal (`1G`, `500`) canonical forms.

use std::fmt;

/// How a quantity is written, after the suffix it was given with
/// (upstream's `BinarySI` and `DecimalSI` formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, `Gi`, ...: what measured bytes are written in.
    Binary,
    /// `k`, `M`, `G`, ... or a plain number.
    Decimal,
}

/// An integer amount of a signal's unit with the format it is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    /// Bytes, inodes or PIDs.
    pub value: i64,
    /// How to write it.
    pub format: Format,
}

impl Amount {
    /// Measured bytes (binary format, as upstream's stats).
    pub fn bytes(value: i64) -> Self {
        Self { value, format: Format::Binary }
    }

    /// A count (decimal format, as upstream's inode stats).
    pub fn count(value: i64) -> Self {
        Self { value, format: Format::Decimal }
    }

    /// Parses a Kubernetes quantity, keeping the format its suffix implies.
    ///
    /// # Errors
    ///
    /// The quantity does not parse.
    pub fn parse(text: &str) -> Result<Self, wasmlet_quantity::InvalidQuantity> {
        let value = wasmlet_quantity::units(text)?;
        let binary = text.trim().ends_with('i');
        Ok(Self { value, format: if binary { Format::Binary } else { Format::Decimal } })
    }
}

const BINARY: [(&str, u32); 6] = [("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10)];
const DECIMAL: [(&str, u32); 6] = [("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3)];

impl fmt::Display for Amount {
    /// Upstream's canonical form: the largest suffix that divides the value
    /// exactly. Like upstream, a binary amount below 1024 in magnitude is
    /// written in decimal (`1k`, not `1000`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.value;
        if v == 0 {
            return f.write_str("0");
        }
        let abs = v.unsigned_abs();
        let sign = if v < 0 { "-" } else { "" };
        let binary = self.format == Format::Binary && abs >= 1024;
        if binary {
            for (suffix, shift) in BINARY {
                if abs.is_multiple_of(1u64 << shift) {
                    return write!(f, "{sign}{}{suffix}", abs >> shift);
                }
            }
            return write!(f, "{sign}{abs}");
        }
        for (suffix, power) in DECIMAL {
            let unit = 10u64.pow(power);
            if abs.is_multiple_of(unit) {
                return write!(f, "{sign}{}{suffix}", abs / unit);
            }
        }
        write!(f, "{sign}{abs}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_like_upstream() {
        let b = |v| Amount::bytes(v).to_string();
        assert_eq!(b(100 << 20), "100Mi");
        assert_eq!(b(53248 << 10), "52Mi");
        assert_eq!(b(54525953), "54525953");
        assert_eq!(b(1000), "1k");
        assert_eq!(b(0), "0");
        assert_eq!(b(-(3 << 30)), "-3Gi");
        assert_eq!(Amount::parse("500M").unwrap().to_string(), "500M");
        assert_eq!(Amount::parse("1024Mi").unwrap().to_string(), "1Gi");
        assert_eq!(Amount::count(1_500_000).to_string(), "1500k");
        assert_eq!(Amount::count(1234).to_string(), "1234");
    }
}
