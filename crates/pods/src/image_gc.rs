//! Upstream's image garbage collection policy (`pkg/kubelet/images/image_gc_manager.go`).
//!
//! Every pass records when each image was first detected and last used (in
//! use by a container, or resolved for one, at the time of a pass). Then:
//! - images unused for longer than `imageMaximumGCAge` (off by default) go;
//! - when the image filesystem's usage reaches `imageGCHighThresholdPercent`,
//!   unused images go, least recently used first (then first detected), until
//!   usage is down to `imageGCLowThresholdPercent`;
//! - an image detected less than `imageMinimumGCAge` ago, or in use, never goes.
//!
//! As upstream, the records live in memory: after a restart every image
//! counts as first detected then.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wasmlet_oci::Digest;

/// The thresholds and ages, with upstream's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageGcPolicy {
    /// Usage (%) at which a pass frees space; 100 turns that off.
    pub high_percent: u8,
    /// Usage (%) a pass frees down to.
    pub low_percent: u8,
    /// Images detected more recently are never collected.
    pub min_age: Duration,
    /// Unused images older than this are collected whatever the usage.
    pub max_age: Option<Duration>,
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        Self { high_percent: 85, low_percent: 80, min_age: Duration::from_secs(120), max_age: None }
    }
}

/// The image filesystem's size and free space, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DiskUsage {
    pub(crate) capacity: u64,
    pub(crate) available: u64,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    first_seen: Instant,
    last_used: Instant,
}

/// When each image was first detected and last used.
#[derive(Debug, Default)]
pub(crate) struct ImageRecords {
    records: Mutex<HashMap<Digest, Record>>,
}

impl ImageRecords {
    /// One pass: records `present` images (digest, size) and those `used`
    /// now, forgets the gone, and says which images to delete under `policy`.
    pub(crate) fn select(
        &self,
        present: &[(Digest, u64)],
        used: &HashSet<Digest>,
        usage: Option<DiskUsage>,
        policy: &ImageGcPolicy,
        now: Instant,
    ) -> Vec<Digest> {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.retain(|d, _| present.iter().any(|(p, _)| p == d));
        for (digest, _) in present {
            let record = records.entry(digest.clone()).or_insert(Record { first_seen: now, last_used: now });
            if used.contains(digest) {
                record.last_used = now;
            }
        }
        let mut candidates: Vec<(&Digest, u64, Record)> = present
            .iter()
            .filter(|(d, _)| !used.contains(d))
            .filter_map(|(d, size)| Some((d, *size, *records.get(d)?)))
            .filter(|(_, _, r)| now.saturating_duration_since(r.first_seen) >= policy.min_age)
            .collect();
        candidates.sort_by_key(|(_, _, r)| (r.last_used, r.first_seen));
        let mut delete = Vec::new();
        if let Some(max_age) = policy.max_age {
            candidates.retain(|(d, _, r)| {
                let old = now.saturating_duration_since(r.last_used) > max_age;
                if old {
                    delete.push((*d).clone());
                }
                !old
            });
        }
        let Some(DiskUsage { capacity, available }) = usage.filter(|u| u.capacity > 0) else { return delete };
        let used_bytes = capacity.saturating_sub(available);
        if policy.high_percent >= 100 || used_bytes.saturating_mul(100) < capacity * u64::from(policy.high_percent) {
            return delete;
        }
        // Upstream: amountToFree = capacity * (100 - low) / 100 - available.
        let target_available = capacity * (100 - u64::from(policy.low_percent.min(100))) / 100;
        let mut to_free = target_available.saturating_sub(available);
        for (digest, size, _) in candidates {
            if to_free == 0 {
                break;
            }
            delete.push(digest.clone());
            to_free = to_free.saturating_sub(size);
        }
        delete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32)).parse().unwrap()
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn least_recently_used_unused_images_go_down_to_the_low_threshold() {
        let records = ImageRecords::default();
        let policy =
            ImageGcPolicy { high_percent: 50, low_percent: 30, min_age: Duration::from_secs(60), max_age: None };
        let t0 = Instant::now();
        let present: Vec<_> = (1..=5).map(|n| (digest(n), 10 * MIB)).collect();
        // First pass: everything is new, and under the thresholds anyway.
        let all: HashSet<_> = present.iter().map(|(d, _)| d.clone()).collect();
        assert!(records.select(&present, &all, None, &policy, t0).is_empty());
        // Later, images 1..=5 were last used in the order 3, 1, 5, 2 (4 is in use).
        for (i, n) in [3u8, 1, 5, 2].iter().enumerate() {
            let used = HashSet::from([digest(*n), digest(4)]);
            let at = t0 + Duration::from_secs(100 + i as u64);
            assert!(records.select(&present, &used, None, &policy, at).is_empty());
        }
        // 100 MiB disk, 60 MiB used: 60 % >= 50 %; free to 30 %: 30 MiB = three images.
        let usage = DiskUsage { capacity: 100 * MIB, available: 40 * MIB };
        let used = HashSet::from([digest(4)]);
        let gone = records.select(&present, &used, Some(usage), &policy, t0 + Duration::from_secs(200));
        assert_eq!(gone, [digest(3), digest(1), digest(5)], "least recently used first, never the one in use");
    }

    #[test]
    fn below_the_high_threshold_or_too_young_nothing_goes() {
        let records = ImageRecords::default();
        let policy = ImageGcPolicy::default();
        let t0 = Instant::now();
        let present = [(digest(1), MIB), (digest(2), MIB)];
        let none = HashSet::new();
        let full = DiskUsage { capacity: 100 * MIB, available: MIB };
        // Too young (first detected now): kept even on a full disk.
        assert!(records.select(&present, &none, Some(full), &policy, t0).is_empty());
        // Old enough, but 84 % < 85 %.
        let below = DiskUsage { capacity: 100 * MIB, available: 16 * MIB };
        assert!(records.select(&present, &none, Some(below), &policy, t0 + Duration::from_secs(300)).is_empty());
        // At 85 %: both go (freeing 2 MiB of the 5 MiB asked).
        let at = DiskUsage { capacity: 100 * MIB, available: 15 * MIB };
        assert_eq!(records.select(&present, &none, Some(at), &policy, t0 + Duration::from_secs(300)).len(), 2);
    }

    #[test]
    fn maximum_age_collects_whatever_the_usage() {
        let records = ImageRecords::default();
        let policy = ImageGcPolicy { max_age: Some(Duration::from_secs(600)), ..ImageGcPolicy::default() };
        let t0 = Instant::now();
        let present = [(digest(1), MIB), (digest(2), MIB)];
        records.select(&present, &HashSet::from([digest(2)]), None, &policy, t0);
        let later = t0 + Duration::from_secs(601);
        let gone = records.select(&present, &HashSet::from([digest(2)]), None, &policy, later);
        assert_eq!(gone, [digest(1)]);
    }
}
