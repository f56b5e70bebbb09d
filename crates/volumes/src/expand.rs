//! Kubernetes `$(VAR)` expansion, as in `command`, `args`, `env[].value` and
//! `subPathExpr`.
//!
//! The rules (upstream `third_party/forked/golang/expansion`):
//!
//! - `$(NAME)` becomes the value the mapping gives for NAME;
//! - `$$` is a literal `$` (so `$$(A)` stays `$(A)`);
//! - a `$` not followed by `(` or `$`, and an unterminated `$(`, are kept
//!   as written.
//!
//! What an undefined NAME becomes is up to the caller: [`expand`] keeps
//! `$(NAME)` as written (env, command, args), `subPathExpr` turns it into an
//! error.

use std::collections::HashMap;

/// Expands `input` with `lookup`; a name `lookup` does not know is kept as
/// `$(NAME)`.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    expand_with(input, |name, out| match lookup(name) {
        Some(value) => out.push_str(value),
        None => {
            out.push_str("$(");
            out.push_str(name);
            out.push(')');
        }
    })
}

/// Expands `input` against a map of variables (see [`expand`]).
pub fn expand_map(input: &str, vars: &HashMap<String, String>) -> String {
    expand(input, |name| vars.get(name).map(String::as_str))
}

/// The expansion loop; `substitute` appends the replacement of one name.
pub(crate) fn expand_with(input: &str, mut substitute: impl FnMut(&str, &mut String)) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            substitute(&inner[..end], &mut out);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        HashMap::from([("A".into(), "1".into()), ("B".into(), "two".into()), ("E".into(), String::new())])
    }

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vars = vars();
        assert_eq!(expand_map("x$(A)y$(B)", &vars), "x1ytwo");
        assert_eq!(expand_map("$(MISSING)", &vars), "$(MISSING)");
        assert_eq!(expand_map("$$(A)", &vars), "$(A)");
        assert_eq!(expand_map("$$$(A)", &vars), "$1");
        assert_eq!(expand_map("cost $5 $(A", &vars), "cost $5 $(A");
        assert_eq!(expand_map("$(E)|$(A)$(A)", &vars), "|11");
        assert_eq!(expand_map("trailing $", &vars), "trailing $");
        assert_eq!(expand_map("$()", &vars), "$()");
        assert_eq!(expand_map("ünï$(A)cødé", &vars), "ünï1cødé");
    }
}
