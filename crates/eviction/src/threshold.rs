//! Eviction thresholds in upstream's flag syntax: `--eviction-hard` and
//! `--eviction-soft` (`memory.available<100Mi,nodefs.available<10%`),
//! `--eviction-soft-grace-period` (`memory.available=1m30s`) and
//! `--eviction-minimum-reclaim` (`nodefs.available=500Mi`).
//!
//! As upstream: a signal's value is a quantity or a percentage of capacity;
//! `0%` and `100%` disable a threshold; every soft threshold needs a grace
//! period; a given `--eviction-hard` replaces the defaults unless
//! `merge_defaults` (upstream `mergeDefaultEvictionSettings`) is set; and
//! the hard `memory.available` threshold is copied to
//! `allocatableMemory.available` (node allocatable is enforced for pods).

use std::time::Duration;

use crate::duration;
use crate::quantity::Amount;
use crate::signal::{SIGNALS, Signal};

/// Upstream's default hard thresholds (Linux).
pub const DEFAULT_HARD: [(Signal, &str); 5] = [
    (Signal::MemoryAvailable, "100Mi"),
    (Signal::NodeFsAvailable, "10%"),
    (Signal::NodeFsInodesFree, "5%"),
    (Signal::ImageFsAvailable, "15%"),
    (Signal::ImageFsInodesFree, "5%"),
];

/// A threshold's level: an amount, or a share of the signal's capacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An absolute amount (`100Mi`).
    Quantity(Amount),
    /// A share of capacity, 0 to 1 (`10%` is 0.1), kept as upstream's
    /// 32-bit float so computed levels match upstream's to the byte.
    Percentage(f32),
}

impl Value {
    /// The level for a signal whose capacity is `capacity`.
    pub fn resolve(&self, capacity: i64) -> Amount {
        match *self {
            Value::Quantity(a) => a,
            Value::Percentage(p) => Amount::bytes((capacity as f64 * f64::from(p)) as i64),
        }
    }
}

/// One threshold: when the signal's available amount drops below `value`
/// (for `grace_period`), the node is under pressure and pods are evicted.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub signal: Signal,
    /// The level below which it is met.
    pub value: Value,
    /// How long it must be met before pods are evicted; zero for a hard threshold.
    pub grace_period: Duration,
    /// How much above `value` the signal must come back before the threshold
    /// counts as resolved (`--eviction-minimum-reclaim`).
    pub min_reclaim: Option<Value>,
}

impl Threshold {
    /// A hard threshold acts at once, without a grace period.
    pub fn is_hard(&self) -> bool {
        self.grace_period.is_zero()
    }

    /// Whether `available` (of `capacity`) meets it; with
    /// `enforce_min_reclaim`, the level is raised by the minimum reclaim.
    pub fn is_met(&self, available: i64, capacity: i64, enforce_min_reclaim: bool) -> bool {
        let mut level = self.value.resolve(capacity).value;
        if enforce_min_reclaim && let Some(extra) = self.min_reclaim {
            level = level.saturating_add(extra.resolve(capacity).value);
        }
        level > available
    }
}

/// A bad eviction setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An item is not `SIGNAL<VALUE` (or `SIGNAL=VALUE`).
    #[error("{flag}: malformed pair {item:?}, expect {expect}")]
    Malformed {
        /// The flag.
        flag: &'static str,
        /// The item.
        item: String,
        /// The expected shape.
        expect: &'static str,
    },
    /// The signal is not one upstream knows.
    #[error("{flag}: unsupported eviction signal {signal:?} (one of: {})", known())]
    UnknownSignal {
        /// The flag.
        flag: &'static str,
        /// The name given.
        signal: String,
    },
    /// The value of a signal is invalid.
    #[error("{flag}: {signal}: {why}")]
    Value {
        /// The flag.
        flag: &'static str,
        /// The signal.
        signal: Signal,
        /// What is wrong.
        why: String,
    },
    /// A soft threshold has no grace period.
    #[error("--eviction-soft-grace-period: grace period must be specified for the soft eviction threshold {0}")]
    MissingGracePeriod(Signal),
}

fn known() -> String {
    SIGNALS.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The eviction flags as given (`None`: not set).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    /// `--eviction-hard`.
    pub hard: Option<&'a str>,
    /// `--eviction-soft`.
    pub soft: Option<&'a str>,
    /// `--eviction-soft-grace-period`.
    pub soft_grace_period: Option<&'a str>,
    /// `--eviction-minimum-reclaim`.
    pub minimum_reclaim: Option<&'a str>,
    /// Upstream `mergeDefaultEvictionSettings`: signals `--eviction-hard`
    /// does not name keep their default threshold.
    pub merge_defaults: bool,
}

/// Parses the flags into the thresholds the manager enforces: hard, soft,
/// then `allocatableMemory.available` copies of the hard `memory.available`.
///
/// # Errors
///
/// The first bad item, as a [`ParseError`].
pub fn parse(flags: &Flags<'_>) -> Result<Vec<Threshold>, ParseError> {
    let mut hard = match flags.hard {
        None => defaults(),
        Some(text) => statements(text, "--eviction-hard", '<', "SIGNAL<VALUE", threshold_value)?,
    };
    if flags.hard.is_some() && flags.merge_defaults {
        for d in defaults() {
            if !hard.iter().any(|(s, _)| *s == d.0) {
                hard.push(d);
            }
        }
    }
    let soft = statements(flags.soft.unwrap_or(""), "--eviction-soft", '<', "SIGNAL<VALUE", threshold_value)?;
    let grace = statements(
        flags.soft_grace_period.unwrap_or(""),
        "--eviction-soft-grace-period",
        '=',
        "SIGNAL=DURATION",
        |_, v| duration::parse(v).map(Some),
    )?;
    let reclaim = statements(
        flags.minimum_reclaim.unwrap_or(""),
        "--eviction-minimum-reclaim",
        '=',
        "SIGNAL=VALUE",
        reclaim_value,
    )?;
    let mut out: Vec<Threshold> = hard
        .into_iter()
        .map(|(signal, value)| Threshold { signal, value, grace_period: Duration::ZERO, min_reclaim: None })
        .collect();
    for (signal, value) in soft {
        let grace_period =
            grace.iter().find(|(s, _)| *s == signal).map(|(_, g)| *g).ok_or(ParseError::MissingGracePeriod(signal))?;
        out.push(Threshold { signal, value, grace_period, min_reclaim: None });
    }
    for t in &mut out {
        t.min_reclaim = reclaim.iter().find(|(s, _)| *s == t.signal).map(|(_, v)| *v);
    }
    let allocatable: Vec<Threshold> = out
        .iter()
        .filter(|t| t.signal == Signal::MemoryAvailable && t.is_hard())
        .map(|t| Threshold { signal: Signal::AllocatableMemoryAvailable, ..t.clone() })
        .collect();
    out.extend(allocatable);
    Ok(out)
}

fn defaults() -> Vec<(Signal, Value)> {
    DEFAULT_HARD.iter().filter_map(|(s, v)| threshold_value(*s, v).ok().flatten().map(|value| (*s, value))).collect()
}

/// `a<b,c<d` (or with `=`) as upstream's map flags read it: items split at
/// `,`, each at the first separator, both sides trimmed, empty items skipped,
/// a repeated signal replacing the earlier one. `value` returns `None` for a
/// value that disables the item.
fn statements<T>(
    text: &str,
    flag: &'static str,
    sep: char,
    expect: &'static str,
    value: impl Fn(Signal, &str) -> Result<Option<T>, String>,
) -> Result<Vec<(Signal, T)>, ParseError> {
    let mut out: Vec<(Signal, T)> = Vec::new();
    for item in text.split(',').filter(|s| !s.is_empty()) {
        let Some((name, raw)) = item.split_once(sep) else {
            return Err(ParseError::Malformed { flag, item: item.to_owned(), expect });
        };
        let name = name.trim();
        let signal = Signal::parse(name).ok_or_else(|| ParseError::UnknownSignal { flag, signal: name.to_owned() })?;
        let parsed = value(signal, raw.trim()).map_err(|why| ParseError::Value { flag, signal, why })?;
        out.retain(|(s, _)| *s != signal);
        if let Some(v) = parsed {
            out.push((signal, v));
        }
    }
    Ok(out)
}

fn percentage(text: &str) -> Result<f32, String> {
    let number = text.trim_end_matches('%');
    number.parse::<f32>().map(|p| p / 100.0).map_err(|_| format!("invalid percentage {text:?}"))
}

/// A threshold value: `0%` and `100%` disable it; a percentage must be in
/// 0–100 %; a quantity must be positive.
fn threshold_value(_: Signal, text: &str) -> Result<Option<Value>, String> {
    if text.ends_with('%') {
        if text == "0%" || text == "100%" {
            return Ok(None);
        }
        let p = percentage(text)?;
        if !(0.0..=1.0).contains(&p) {
            return Err(format!("eviction percentage threshold must be between 0% and 100%: {text}"));
        }
        return Ok(Some(Value::Percentage(p)));
    }
    let amount = Amount::parse(text).map_err(|e| e.to_string())?;
    if amount.value <= 0 {
        return Err(format!("eviction threshold must be positive: {text}"));
    }
    Ok(Some(Value::Quantity(amount)))
}

/// A minimum reclaim: a positive percentage, or a non-negative quantity.
fn reclaim_value(_: Signal, text: &str) -> Result<Option<Value>, String> {
    if text.ends_with('%') {
        let p = percentage(text)?;
        if p <= 0.0 {
            return Err(format!("eviction percentage minimum reclaim must be positive: {text}"));
        }
        return Ok(Some(Value::Percentage(p)));
    }
    let amount = Amount::parse(text).map_err(|e| e.to_string())?;
    if amount.value < 0 {
        return Err(format!("negative eviction minimum reclaim: {text}"));
    }
    Ok(Some(Value::Quantity(amount)))
}

/// What the hard threshold on `signal` keeps out of allocatable, for a
/// resource of `capacity` (upstream `hardEvictionReservation`): the
/// `memory.available` level for memory, the `nodefs.available` one for
/// ephemeral storage.
pub fn hard_reservation(thresholds: &[Threshold], signal: Signal, capacity: u64) -> u64 {
    let capacity = i64::try_from(capacity).unwrap_or(i64::MAX);
    thresholds
        .iter()
        .filter(|t| t.signal == signal && t.is_hard())
        .map(|t| u64::try_from(t.value.resolve(capacity).value).unwrap_or(0))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "threshold_tests.rs"]
mod tests;
