//! Fully qualified CDI device names, `vendor.com/class=name`, checked with
//! the rules of the reference implementation (`pkg/parser`).

use std::fmt;

/// A fully qualified CDI device name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    /// `vendor.com`.
    pub vendor: String,
    /// `class`.
    pub class: String,
    /// The device's name within the kind.
    pub name: String,
}

/// Why a device name or kind is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CDI device {input:?}: {reason}")]
pub struct InvalidName {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl QualifiedName {
    /// Parses `vendor/class=name`.
    ///
    /// # Errors
    ///
    /// The name is unqualified or a part has characters CDI does not allow.
    pub fn parse(device: &str) -> Result<Self, InvalidName> {
        let fail = |reason: String| InvalidName { input: device.to_owned(), reason };
        let (kind, name) = device.split_once('=').ok_or_else(|| fail("unqualified device, missing '='".into()))?;
        let (vendor, class) = parse_kind(kind).map_err(|e| fail(e.reason))?;
        validate_device_name(name).map_err(fail)?;
        Ok(Self { vendor, class, name: name.to_owned() })
    }

    /// `vendor/class`.
    pub fn kind(&self) -> String {
        format!("{}/{}", self.vendor, self.class)
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}={}", self.vendor, self.class, self.name)
    }
}

/// Splits and checks a spec's `kind`, `vendor/class`.
///
/// # Errors
///
/// A part is missing or has characters CDI does not allow.
pub fn parse_kind(kind: &str) -> Result<(String, String), InvalidName> {
    let fail = |reason: String| InvalidName { input: kind.to_owned(), reason };
    let (vendor, class) = kind.split_once('/').ok_or_else(|| fail("missing vendor or class".into()))?;
    validate_vendor_or_class(vendor).map_err(|e| fail(format!("invalid vendor: {e}")))?;
    validate_vendor_or_class(class).map_err(|e| fail(format!("invalid class: {e}")))?;
    Ok((vendor.to_owned(), class.to_owned()))
}

/// Vendor and class: start with a letter, end with a letter or digit,
/// letters, digits, `_`, `-` and `.` between.
fn validate_vendor_or_class(s: &str) -> Result<(), String> {
    let first = s.chars().next().ok_or("empty name")?;
    if !first.is_ascii_alphabetic() {
        return Err(format!("{s:?} should start with a letter"));
    }
    check_middle_and_end(s, &['_', '-', '.'])
}

/// A device name: starts and ends with a letter or digit; letters, digits,
/// `_`, `-`, `.` and `:` between.
pub fn validate_device_name(s: &str) -> Result<(), String> {
    let first = s.chars().next().ok_or("invalid (empty) device name")?;
    if !first.is_ascii_alphanumeric() {
        return Err(format!("device name {s:?} should start with a letter or digit"));
    }
    check_middle_and_end(s, &['_', '-', '.', ':'])
}

fn check_middle_and_end(s: &str, extra: &[char]) -> Result<(), String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() == 1 {
        return Ok(());
    }
    if let Some(c) = chars[1..chars.len() - 1].iter().find(|c| !c.is_ascii_alphanumeric() && !extra.contains(c)) {
        return Err(format!("invalid character {c:?} in {s:?}"));
    }
    if !chars[chars.len() - 1].is_ascii_alphanumeric() {
        return Err(format!("{s:?} should end with a letter or digit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_what_drivers_send_and_refuses_the_rest() {
        let n = QualifiedName::parse("test-driver.cdi.k8s.io/test=claim-1f2e-req").unwrap();
        assert_eq!(
            (n.vendor.as_str(), n.class.as_str(), n.name.as_str()),
            ("test-driver.cdi.k8s.io", "test", "claim-1f2e-req")
        );
        assert_eq!(n.kind(), "test-driver.cdi.k8s.io/test");
        for bad in [
            "",
            "/dev/null",
            "vendor.com/class",
            "vendor.com=x",
            "=x",
            "vendor.com/=x",
            "1vendor/class=x",
            "v/c=",
            "v/c=-x",
            "v/c=x-",
            "v/c.=x",
            "v/c=a b",
        ] {
            assert!(QualifiedName::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(QualifiedName::parse("v/c=a:b.c_d").is_ok());
        let e = QualifiedName::parse("vendor.com/class").unwrap_err();
        assert!(e.to_string().contains("vendor.com/class"), "{e}");
    }

    fn part(first: &'static str, rest: &'static str) -> impl Strategy<Value = String> {
        (proptest::string::string_regex(first).unwrap(), proptest::string::string_regex(rest).unwrap())
            .prop_map(|(a, b)| a + &b)
    }

    proptest! {
        #[test]
        fn valid_names_round_trip(
            vendor in part("[a-z]", "([a-z0-9._-]{0,10}[a-z0-9])?"),
            class in part("[a-z]", "([a-z0-9_-]{0,6}[a-z0-9])?"),
            name in part("[A-Za-z0-9]", "([A-Za-z0-9._:-]{0,12}[A-Za-z0-9])?"),
        ) {
            let text = format!("{vendor}/{class}={name}");
            let parsed = QualifiedName::parse(&text).unwrap();
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert_eq!(parsed.name, name);
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_what_it_prints(input in "\\PC{0,40}") {
            if let Ok(n) = QualifiedName::parse(&input) {
                prop_assert_eq!(n.to_string(), input);
            }
        }
    }
}
