//! `--eviction-hard`: the upstream kubelet's hard eviction thresholds, in its
//! syntax (`memory.available<100Mi,nodefs.available<10%`). They are kept out
//! of allocatable and set the `MemoryPressure` / `DiskPressure` conditions.

use wasmlet_node::EvictionThresholds;

use super::{Invalid, invalid};

/// Parses `spec`; signals not named keep their defaults.
pub(crate) fn parse(spec: &str) -> Result<EvictionThresholds, Invalid> {
    let mut thresholds = EvictionThresholds::default();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| invalid(format!("--eviction-hard {item:?}: {why}"));
        let (signal, value) = item.split_once('<').ok_or_else(|| bad("expected SIGNAL<VALUE"))?;
        let value = value.trim();
        match signal.trim() {
            "memory.available" => {
                let bytes = wasmlet_quantity::units(value).map_err(|e| bad(&e.to_string()))?;
                thresholds.memory_available_bytes = u64::try_from(bytes).map_err(|_| bad("must not be negative"))?;
            }
            "nodefs.available" => {
                let percent = value
                    .strip_suffix('%')
                    .and_then(|p| p.parse::<u8>().ok())
                    .filter(|p| *p <= 100)
                    .ok_or_else(|| bad("nodefs.available takes a percentage, 0% to 100%"))?;
                thresholds.nodefs_available_percent = percent;
            }
            other => return Err(bad(&format!("unknown signal {other:?} (memory.available, nodefs.available)"))),
        }
    }
    Ok(thresholds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_syntax() {
        let t = parse("memory.available<200Mi, nodefs.available<5%").unwrap();
        assert_eq!((t.memory_available_bytes, t.nodefs_available_percent), (200 << 20, 5));
        let only_disk = parse("nodefs.available<1%").unwrap();
        assert_eq!(only_disk.memory_available_bytes, EvictionThresholds::default().memory_available_bytes);
        for bad in ["memory.available=1Gi", "nodefs.available<5", "nodefs.available<101%", "imagefs.available<5%"] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(err.contains("--eviction-hard"), "{bad}: {err}");
        }
    }
}
