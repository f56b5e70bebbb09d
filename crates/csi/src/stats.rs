//! Volume stats: `NodeGetVolumeStats` of every published volume whose
//! driver offers it, measured in the background (upstream measures every
//! minute) and served from a cache to `/stats/summary`.

use std::collections::HashMap;
use std::sync::PoisonError;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;
use wasmlet_plugins_proto::csi::v1 as csi;
use wasmlet_volumes::ExternalStats;

use crate::manager::VolumeManager;

impl VolumeManager {
    /// Measures every published volume now.
    pub async fn measure(&self) {
        let (published, staged) = {
            let state = self.inner.ops.lock().await;
            (state.published.clone(), state.staged.clone())
        };
        let mut all: HashMap<String, Vec<ExternalStats>> = HashMap::new();
        for (uid, list) in published {
            for p in list {
                let Some(volume) = p.volume.clone() else { continue };
                let Ok(driver) = self.inner.drivers.get(&p.driver) else { continue };
                if !driver.client.capabilities().await.is_ok_and(|c| c.volume_stats) {
                    continue;
                }
                let staging = staged.get(&(p.driver.clone(), p.handle.clone())).map(|s| s.staging.clone());
                match driver.client.stats(&p.handle, &p.target, staging.as_deref()).await {
                    Ok(r) => all.entry(uid.clone()).or_default().push(to_stats(volume, p.pvc.clone(), &r)),
                    Err(e) => tracing::debug!(pod.uid = %uid, %volume, error = %e, "NodeGetVolumeStats failed"),
                }
            }
        }
        *self.inner.stats.lock().unwrap_or_else(PoisonError::into_inner) = all;
    }

    /// Measures every [`Config::stats_period`](crate::Config::stats_period) until `cancel`.
    pub async fn run_stats(&self, cancel: CancellationToken) {
        loop {
            self.measure().await;
            if !wasmlet_retry::sleep(self.inner.config.stats_period, &cancel).await {
                return;
            }
        }
    }
}

/// A `NodeGetVolumeStats` answer as stats (upstream's mapping: BYTES and
/// INODES usage entries; negative figures are dropped).
pub(crate) fn to_stats(
    volume: String,
    pvc: Option<(String, String)>,
    r: &csi::NodeGetVolumeStatsResponse,
) -> ExternalStats {
    let u = |v: i64| u64::try_from(v).ok();
    let mut s = ExternalStats {
        volume,
        pvc,
        time: SystemTime::now(),
        available_bytes: None,
        capacity_bytes: None,
        used_bytes: None,
        inodes_free: None,
        inodes: None,
        inodes_used: None,
        abnormal: r.volume_condition.as_ref().map(|c| c.abnormal),
    };
    for usage in &r.usage {
        match csi::volume_usage::Unit::try_from(usage.unit) {
            Ok(csi::volume_usage::Unit::Bytes) => {
                s.available_bytes = u(usage.available);
                s.capacity_bytes = u(usage.total);
                s.used_bytes = u(usage.used);
            }
            Ok(csi::volume_usage::Unit::Inodes) => {
                s.inodes_free = u(usage.available);
                s.inodes = u(usage.total);
                s.inodes_used = u(usage.used);
            }
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn usage_maps_by_unit(total in any::<i64>(), used in any::<i64>(), avail in any::<i64>(), unit in 0i32..4) {
            let r = csi::NodeGetVolumeStatsResponse {
                usage: vec![csi::VolumeUsage { available: avail, total, used, unit }],
                volume_condition: None,
            };
            let s = to_stats("v".into(), None, &r);
            let want = |v: i64| u64::try_from(v).ok();
            match unit {
                1 => {
                    prop_assert_eq!(s.capacity_bytes, want(total));
                    prop_assert_eq!(s.used_bytes, want(used));
                    prop_assert_eq!(s.available_bytes, want(avail));
                    prop_assert!(s.inodes.is_none());
                }
                2 => {
                    prop_assert_eq!(s.inodes, want(total));
                    prop_assert_eq!(s.inodes_used, want(used));
                    prop_assert_eq!(s.inodes_free, want(avail));
                    prop_assert!(s.capacity_bytes.is_none());
                }
                _ => prop_assert!(s.capacity_bytes.is_none() && s.inodes.is_none()),
            }
        }
    }
}
