//! The eviction and reservation settings, in upstream's syntax:
//! `--eviction-hard` / `--eviction-soft` (`memory.available<100Mi,nodefs.available<10%`),
//! `--eviction-soft-grace-period` and `--eviction-minimum-reclaim`
//! (`SIGNAL=VALUE`), `--eviction-max-pod-grace-period` (seconds),
//! `--eviction-pressure-transition-period` and `--eviction-monitoring-period`
//! (Go durations), and `--system-reserved` / `--kube-reserved`
//! (`cpu=500m,memory=1Gi,ephemeral-storage=1Gi`). In the YAML file each map
//! may also be written as a map, as in upstream's KubeletConfiguration
//! (`evictionHard: {memory.available: 100Mi}`).

use std::time::Duration;

use wasmlet_node::Reserved;

use super::{Args, Invalid, invalid};

/// The eviction manager's settings and the node's reservations.
pub(crate) fn settings(args: &Args) -> Result<(wasmlet_eviction::Config, Reserved), Invalid> {
    let flags = wasmlet_eviction::Flags {
        hard: args.eviction_hard.as_deref(),
        soft: args.eviction_soft.as_deref(),
        soft_grace_period: args.eviction_soft_grace_period.as_deref(),
        minimum_reclaim: args.eviction_minimum_reclaim.as_deref(),
        merge_defaults: args.merge_default_eviction_settings.unwrap_or(false),
    };
    let mut config = wasmlet_eviction::Config::from_flags(&flags).map_err(|e| invalid(e.to_string()))?;
    let duration = |flag: &str, value: &Option<String>, default: Duration| match value {
        Some(v) => wasmlet_eviction::duration::parse(v).map_err(|e| invalid(format!("{flag}: {e}"))),
        None => Ok(default),
    };
    config.pressure_transition_period = duration(
        "--eviction-pressure-transition-period",
        &args.eviction_pressure_transition_period,
        config.pressure_transition_period,
    )?;
    config.monitoring_interval =
        duration("--eviction-monitoring-period", &args.eviction_monitoring_period, config.monitoring_interval)?;
    if config.monitoring_interval.is_zero() {
        return Err(invalid("--eviction-monitoring-period must be more than 0"));
    }
    let max_grace = args.eviction_max_pod_grace_period.unwrap_or(0);
    let max_grace = u64::try_from(max_grace)
        .map_err(|_| invalid(format!("--eviction-max-pod-grace-period {max_grace}: must not be negative")))?;
    config.max_pod_grace_period = Duration::from_secs(max_grace);
    let system = reserved("--system-reserved", args.system_reserved.as_deref().unwrap_or(""))?;
    let kube = reserved("--kube-reserved", args.kube_reserved.as_deref().unwrap_or(""))?;
    let total = Reserved {
        cpu_millis: system.cpu_millis.saturating_add(kube.cpu_millis),
        memory_bytes: system.memory_bytes.saturating_add(kube.memory_bytes),
        ephemeral_storage_bytes: system.ephemeral_storage_bytes.saturating_add(kube.ephemeral_storage_bytes),
    };
    config.reserved_memory = total.memory_bytes;
    Ok((config, total))
}

/// `cpu=500m,memory=1Gi,ephemeral-storage=1Gi` (and `pid=N`, accepted and
/// ignored: guests are not processes).
fn reserved(flag: &str, text: &str) -> Result<Reserved, Invalid> {
    let mut out = Reserved::default();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| invalid(format!("{flag} {item:?}: {why}"));
        let (name, value) = item.split_once('=').ok_or_else(|| bad("expected RESOURCE=QUANTITY"))?;
        let (name, value) = (name.trim(), value.trim());
        let parse = |f: fn(&str) -> Result<i64, wasmlet_quantity::InvalidQuantity>| {
            let v = f(value).map_err(|e| bad(&e.to_string()))?;
            u64::try_from(v).map_err(|_| bad("must not be negative"))
        };
        match name {
            "cpu" => out.cpu_millis = parse(wasmlet_quantity::milli)?,
            "memory" => out.memory_bytes = parse(wasmlet_quantity::units)?,
            "ephemeral-storage" => out.ephemeral_storage_bytes = parse(wasmlet_quantity::units)?,
            "pid" => {
                parse(wasmlet_quantity::units)?;
            }
            other => {
                return Err(bad(&format!("unknown resource {other:?} (cpu, memory, ephemeral-storage, pid)")));
            }
        }
    }
    Ok(out)
}

/// A map setting in the file: a map (`{memory.available: 100Mi}`) written
/// as `k<v,...`, or a string in the flag's syntax.
pub(super) fn langle_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    pairs(d, '<')
}

/// Like [`langle_map`], as `k=v,...`.
pub(super) fn equals_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    pairs(d, '=')
}

fn pairs<'de, D: serde::Deserializer<'de>>(d: D, sep: char) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    use serde_yaml::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match <Option<Value> as serde::Deserialize>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Mapping(map)) => {
            let mut items = Vec::new();
            for (k, v) in &map {
                let (Some(k), Some(v)) = (scalar(k), scalar(v)) else {
                    return Err(D::Error::custom(format!("expected scalar keys and values, got {k:?}: {v:?}")));
                };
                items.push(format!("{k}{sep}{v}"));
            }
            Ok(Some(items.join(",")))
        }
        Some(other) => Err(D::Error::custom(format!("expected a map or a string, got {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_in_upstream_syntax() {
        let r = reserved("--system-reserved", "cpu=500m, memory=1Gi,ephemeral-storage=1Gi,pid=1000").unwrap();
        assert_eq!(r, Reserved { cpu_millis: 500, memory_bytes: 1 << 30, ephemeral_storage_bytes: 1 << 30 });
        for (bad, want) in [("memory", "RESOURCE=QUANTITY"), ("gpu=1", "unknown resource"), ("memory=-1Gi", "negative")]
        {
            let err = reserved("--kube-reserved", bad).unwrap_err().to_string();
            assert!(err.contains("--kube-reserved") && err.contains(want), "{bad}: {err}");
        }
    }
}
