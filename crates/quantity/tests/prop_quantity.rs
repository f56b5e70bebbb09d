//! Property tests: quantities come from pod specs (untrusted). The parser
//! never panics, and what the kubelet writes parses back to the same value.

use proptest::prelude::*;
use wasmlet_quantity::{Quantity, bytes, count, cpu, milli, units};

const SUFFIXES: [&str; 18] =
    ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e", "E"];

/// Quantity-shaped strings: sign, digits, fraction, suffix, exponent.
fn shaped() -> impl Strategy<Value = String> {
    (
        "[+-]?",
        "[0-9]{0,45}",
        proptest::option::of("[0-9]{0,45}"),
        proptest::sample::select(SUFFIXES.to_vec()),
        prop_oneof![any::<i32>().prop_map(i64::from), any::<i64>(), -50i64..50],
    )
        .prop_map(|(sign, int, frac, suffix, exp)| {
            let mut s = format!("{sign}{int}");
            if let Some(frac) = frac {
                s.push('.');
                s.push_str(&frac);
            }
            s.push_str(suffix);
            if suffix.starts_with(['e', 'E']) {
                s.push_str(&exp.to_string());
            }
            s
        })
}

#[test]
fn exponents_at_the_edge_of_i32_are_refused() {
    for q in ["1.5e-2147483648", "1.5E-2147483648", "10e2147483647", "1Ke2147483647", "0.001e-2147483647"] {
        assert!(Quantity::parse(q).is_err(), "{q}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_any_text(s in "\\PC{0,40}") {
        let _ = Quantity::parse(&s);
    }

    #[test]
    fn never_panics_on_quantity_shaped_text(s in shaped()) {
        if let Ok(q) = Quantity::parse(&s) {
            // What parses has a whole value that parses back to itself.
            let v = q.value();
            prop_assert_eq!(units(&v.to_string()), Ok(v));
            // Both round up: 1000 (v - 1) < milli <= 1000 v.
            let (v, m) = (i128::from(v), i128::from(q.milli_value()));
            prop_assert!(m <= v * 1000 && m > (v - 1) * 1000, "{} {} {}", s, v, m);
        }
    }

    #[test]
    fn extreme_exponents_are_refused_not_overflowed(
        frac in "[0-9]{1,40}",
        exp in prop_oneof![any::<i32>(), (i32::MIN..i32::MIN + 64), (i32::MAX - 64..=i32::MAX)],
    ) {
        let _ = Quantity::parse(&format!("1.{frac}e{exp}"));
        let _ = Quantity::parse(&format!("-0.{frac}E{exp}"));
    }

    #[test]
    fn written_bytes_parse_back(n in 0u64..=(i64::MAX as u64 / 1000)) {
        prop_assert_eq!(units(&bytes(n).0), Ok(n as i64));
        prop_assert_eq!(units(&count(n).0), Ok(n as i64));
    }

    #[test]
    fn written_cpu_parses_back(m in 0u64..=(i64::MAX as u64)) {
        prop_assert_eq!(milli(&cpu(m).0), Ok(m as i64));
    }
}
