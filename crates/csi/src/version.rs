//! The CSI registration's version check, as upstream's
//! `HighestSupportedVersion` (`k8s.io/apimachinery/pkg/util/version`): the
//! highest version a driver lists, which must be `1.x`.
//!
//! A version is "generic": an optional `v`, two or more dot-separated
//! numbers (the first without leading zeroes), and anything after the
//! numbers ignored (`1.0.0-rc1` is 1.0.0). Entries that do not parse, or
//! whose major is above 1, are skipped.

use std::cmp::Ordering;
use std::fmt;

/// A parsed version: its numeric components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    /// Parses a generic version (see the module docs).
    ///
    /// # Errors
    ///
    /// Why `s` is not a version.
    pub fn parse(s: &str) -> Result<Self, VersionError> {
        let bad = |why: &'static str| VersionError::Parse { version: s.to_owned(), why };
        let t = s.trim_start();
        let t = t.strip_prefix('v').unwrap_or(t);
        let end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let mut numbers = &t[..end];
        // The regexp takes digits and ".digits" groups; a trailing '.' belongs to the rest.
        while let Some(stripped) = numbers.strip_suffix('.') {
            numbers = stripped;
        }
        if numbers.is_empty() || numbers.contains("..") {
            return Err(bad("could not parse as version"));
        }
        let parts: Vec<&str> = numbers.split('.').collect();
        if parts.len() < 2 {
            return Err(bad("illegal version string"));
        }
        if parts[0].len() > 1 && parts[0].starts_with('0') {
            return Err(bad("illegal zero-prefixed version component"));
        }
        let components = parts.iter().map(|p| p.parse::<u64>()).collect::<Result<Vec<_>, _>>();
        components.map(Version).map_err(|_| bad("illegal non-numeric version component"))
    }

    /// The major version.
    pub fn major(&self) -> u64 {
        self.0[0]
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.0.len().max(other.0.len());
        (0..n)
            .map(|i| self.0.get(i).unwrap_or(&0).cmp(other.0.get(i).unwrap_or(&0)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// Why a driver's versions were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// One entry is not a version.
    #[error("{why} {version:?}")]
    Parse {
        /// The entry.
        version: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The list is empty.
    #[error("Plugin returned an empty list for supported versions")]
    Empty,
    /// No entry is a `1.x` version (or `0.x`, refused below).
    #[error("None of the versions specified {0:?} are supported")]
    NoneSupported(Vec<String>),
    /// The highest usable version is `0.x`.
    #[error("highest supported version reported is {0}, must be v1.x")]
    NotV1(Version),
}

/// The highest version of `versions` with major ≤ 1, which must be `1.x`.
///
/// # Errors
///
/// An empty list, no usable entry, or a highest entry below 1.0.
pub fn highest_supported(versions: &[String]) -> Result<Version, VersionError> {
    if versions.is_empty() {
        return Err(VersionError::Empty);
    }
    let best = versions.iter().filter_map(|v| Version::parse(v).ok()).filter(|v| v.major() <= 1).max();
    match best {
        None => Err(VersionError::NoneSupported(versions.to_vec())),
        Some(v) if v.major() != 1 => Err(VersionError::NotV1(v)),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn upstream_examples() {
        assert_eq!(highest_supported(&strings(&["1.0.0"])).unwrap().to_string(), "1.0.0");
        assert_eq!(highest_supported(&strings(&["v1.2", "1.10.0", "0.3.0"])).unwrap().to_string(), "1.10.0");
        assert_eq!(highest_supported(&strings(&["1.0.0-rc1", "2.0.0"])).unwrap().to_string(), "1.0.0");
        assert_eq!(highest_supported(&[]), Err(VersionError::Empty));
        assert!(matches!(highest_supported(&strings(&["2.0.0", "3.1"])), Err(VersionError::NoneSupported(_))));
        assert!(matches!(highest_supported(&strings(&["0.3.0"])), Err(VersionError::NotV1(_))));
        assert!(matches!(highest_supported(&strings(&["1", "x.y", "01.0"])), Err(VersionError::NoneSupported(_))));
        assert!(Version::parse("1").is_err(), "one component is not a generic version");
        assert!(Version::parse("01.2").is_err(), "a zero-prefixed major is refused");
        assert_eq!(Version::parse("  v1.02.3+meta").unwrap().to_string(), "1.2.3");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,40}") {
            let _ = Version::parse(&s);
        }

        #[test]
        fn picks_the_greatest_one_x(
            versions in proptest::collection::vec((0u64..4, 0u64..30, 0u64..30, proptest::bool::ANY), 0..8)
        ) {
            let texts: Vec<String> = versions
                .iter()
                .map(|(a, b, c, v)| format!("{}{a}.{b}.{c}", if *v { "v" } else { "" }))
                .collect();
            let usable: Vec<(u64, u64, u64)> = versions.iter().filter(|(a, ..)| *a <= 1).map(|(a, b, c, _)| (*a, *b, *c)).collect();
            match highest_supported(&texts) {
                Ok(v) => {
                    let best = usable.iter().max().unwrap();
                    prop_assert_eq!(best.0, 1);
                    prop_assert_eq!(v, Version(vec![best.0, best.1, best.2]));
                }
                Err(VersionError::Empty) => prop_assert!(texts.is_empty()),
                Err(VersionError::NoneSupported(_)) => prop_assert!(usable.is_empty()),
                Err(VersionError::NotV1(v)) => {
                    prop_assert_eq!(v.major(), 0);
                    prop_assert!(usable.iter().all(|u| u.0 == 0));
                }
                Err(e) => prop_assert!(false, "unexpected {}", e),
            }
        }

        #[test]
        fn order_is_total_and_ignores_trailing_zeroes(a in proptest::collection::vec(0u64..5, 2..5), extra in 0usize..3) {
            let mut b = a.clone();
            b.extend(std::iter::repeat_n(0, extra));
            prop_assert_eq!(Version(a).cmp(&Version(b)), Ordering::Equal);
        }
    }
}
