//! Checking object names taken from the URL path, before they reach the
//! provider (and, through it, the file system).
//!
//! Namespaces and container names are RFC 1123 labels, pod names RFC 1123
//! subdomains, as the API server validates them. Neither admits `/`, `..`,
//! NUL or anything else outside `[a-z0-9.-]`, so a checked name is safe as a
//! path component.

/// The rule a name must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    /// At most 63 characters of `[a-z0-9-]`, alphanumeric at both ends.
    Label,
    /// At most 253 characters: labels joined by `.`.
    Subdomain,
}

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;

/// Checks `value` against `rule`; the error is a message for the client,
/// e.g. `invalid pod name "../x": …`.
pub(crate) fn check(what: &str, value: &str, rule: Rule) -> Result<(), String> {
    let (max, valid, rule_text) = match rule {
        Rule::Label => (
            LABEL_MAX,
            is_label(value),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
             or '-', and must start and end with an alphanumeric character",
        ),
        Rule::Subdomain => (
            SUBDOMAIN_MAX,
            value.split('.').all(is_label),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
             characters, '-' or '.', and must start and end with an alphanumeric character",
        ),
    };
    if value.len() > max {
        return Err(format!("invalid {what} {value:?}: must be no more than {max} characters"));
    }
    if !valid {
        return Err(format!("invalid {what} {value:?}: {rule_text}"));
    }
    Ok(())
}

fn is_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= LABEL_MAX && alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kubernetes_names() {
        for ok in ["a", "default", "kube-system", "x1-2-3"] {
            assert_eq!(check("namespace", ok, Rule::Label), Ok(()), "{ok}");
        }
        for ok in ["web-0", "app.v1.example", "a".repeat(63).as_str()] {
            assert_eq!(check("pod name", ok, Rule::Subdomain), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_anything_that_could_leave_a_directory() {
        let bad = [
            "", ".", "..", "../etc", "a/b", "a\0b", "-a", "a-", "A", "a_b", "a..b", ".a", "a.", "ünï", "a b", "%2e%2e",
        ];
        for value in bad {
            assert!(check("pod name", value, Rule::Subdomain).is_err(), "{value:?}");
            assert!(check("namespace", value, Rule::Label).is_err(), "{value:?}");
        }
        assert!(check("namespace", "a.b", Rule::Label).is_err());
    }

    #[test]
    fn enforces_lengths_with_a_clear_message() {
        let long = "a".repeat(64);
        let err = check("container name", &long, Rule::Label).unwrap_err();
        assert!(err.ends_with("must be no more than 63 characters"), "{err}");
        let long = ["a".repeat(63).as_str(); 5].join(".");
        assert!(check("pod name", &long, Rule::Subdomain).is_err());
        let err = check("pod name", "../../etc", Rule::Subdomain).unwrap_err();
        assert!(err.starts_with("invalid pod name \"../../etc\": a lowercase RFC 1123 subdomain"));
    }
}
