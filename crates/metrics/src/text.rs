//! The Prometheus text exposition format (version 0.0.4), written by hand
//! for `/metrics/resource`.
//!
//! `/metrics/resource` needs per-sample timestamps (metrics-server uses them
//! as the time of each reading), which the OpenMetrics encoder of the
//! `prometheus-client` crate does not write, and the format is small: a
//! family is `# HELP`, `# TYPE`, then one `name{labels} value timestamp`
//! line per sample. Values are formatted like Go's
//! `strconv.FormatFloat(v, 'g', -1, 64)`, as the kubelet's client library
//! does, so the output matches the kubelet's byte for byte.

use std::fmt::Write as _;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One sample: labels (name, value) in order, value, optional timestamp in
/// milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) labels: Vec<(&'static str, String)>,
    pub(crate) value: f64,
    pub(crate) timestamp_ms: Option<i64>,
}

/// Appends a family; a family without samples is left out, like the Go
/// registry leaves out empty families.
pub(crate) fn family(out: &mut String, name: &str, help: &str, kind: &str, samples: &[Sample]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for sample in samples {
        out.push_str(name);
        if !sample.labels.is_empty() {
            out.push('{');
            for (i, (label, value)) in sample.labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{label}=\"{}\"", escape_label(value));
            }
            out.push('}');
        }
        out.push(' ');
        out.push_str(&go_float(sample.value));
        if let Some(ts) = sample.timestamp_ms {
            let _ = write!(out, " {ts}");
        }
        out.push('\n');
    }
}

/// A label value with `\`, `"` and newlines escaped.
pub(crate) fn escape_label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

/// `v` as Go's `strconv.FormatFloat(v, 'g', -1, 64)` (with the Prometheus
/// client's special cases): the shortest digits that read back as `v`, in
/// exponent form when the exponent is below -4 or at least 6 (`1.6777216e+07`),
/// else in plain decimal (`6197.005020909`).
pub(crate) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: `1.6777216e7`.
    let exp_form = format!("{v:e}");
    let Some((mantissa, exp)) = exp_form.split_once('e') else {
        return format!("{v}");
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{v}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Figures from a real kubelet's `/metrics/resource`.
    #[test]
    fn floats_read_like_go() {
        assert_eq!(go_float(6197.005020909), "6197.005020909");
        assert_eq!(go_float(1.137475584e9), "1.137475584e+09");
        assert_eq!(go_float(1.7506078364870462e9), "1.7506078364870462e+09");
        assert_eq!(go_float(16_777_216.0), "1.6777216e+07");
        assert_eq!(go_float(123_456.0), "123456");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(0.035062), "0.035062");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001234), "1.234e-05");
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(-2.5), "-2.5");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn families_without_samples_are_left_out() {
        let mut out = String::new();
        family(&mut out, "x_total", "X", "counter", &[]);
        assert_eq!(out, "");
        let sample = Sample { labels: vec![("pod", "p".into())], value: 2.0, timestamp_ms: Some(7) };
        family(&mut out, "x_total", "[STABLE] X", "counter", &[sample]);
        assert_eq!(out, "# HELP x_total [STABLE] X\n# TYPE x_total counter\nx_total{pod=\"p\"} 2 7\n");
    }
}
