//! Label keys and values as the API server validates them, for topology
//! labels a driver reports (a bad one must be refused, not sent).

/// A DNS-1123 label: lowercase alphanumerics and '-', 1–63 long, alphanumeric
/// at both ends.
fn dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 long.
fn dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(dns_label)
}

/// A label name: alphanumerics, '-', '_', '.', 1–63 long, alphanumeric at both ends.
fn name(s: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && alnum(s.chars().next())
        && alnum(s.chars().last())
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
pub fn valid_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, n)) => dns_subdomain(prefix) && name(n),
        None => name(key),
    }
}

/// A label value: empty, or a label name.
pub fn valid_value(value: &str) -> bool {
    value.is_empty() || name(value)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn examples() {
        assert!(valid_key("io.kubernetes.storage.mock/node"));
        assert!(valid_key("topology.kubernetes.io/zone"));
        assert!(valid_key("zone"));
        assert!(!valid_key("Bad_Prefix/x"));
        assert!(!valid_key("/x"));
        assert!(!valid_key("a/b/c"));
        assert!(!valid_key(""));
        assert!(valid_value(""));
        assert!(valid_value("some-mock-node"));
        assert!(!valid_value("-x"));
        assert!(!valid_value(&"a".repeat(64)));
    }

    proptest! {
        #[test]
        fn generated_keys_are_valid(p in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]{1,8}){0,3}", n in "[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?") {
            let key = [p.as_str(), n.as_str()].join("/");
            prop_assert!(valid_key(&key), "{}", key);
            prop_assert!(valid_value(&n));
        }

        #[test]
        fn any_string_is_judged_without_panic(s in ".{0,80}") {
            let _ = valid_key(&s);
            let _ = valid_value(&s);
        }
    }
}
