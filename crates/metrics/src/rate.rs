//! `usageNanoCores`: CPU rates from cumulative CPU readings.
//!
//! The Summary reports a CPU rate next to the cumulative counter. The rate
//! is computed per object (node, agent, pod, container) from a remembered
//! *base* reading and the current one, using the readings' own timestamps:
//!
//! - the first reading of an object has no rate (the field is left out, as
//!   the kubelet's CRI stats provider does on its first scrape);
//! - a reading less than [`Config::min_rate_interval`] after the base
//!   repeats the last rate, so scrapes in quick succession (two clients)
//!   never produce a noisy rate over a few milliseconds;
//! - otherwise the rate is the average over `[base, now]`, and the base
//!   moves to the current reading once it is [`Config::rate_window`] old:
//!   the rate covers between `min_rate_interval` and about `rate_window`
//!   plus one scrape interval (metrics-server scrapes every 15 s: each
//!   scrape then gets the rate since the previous one);
//! - a counter that went back (a new container, a restarted counter) or a
//!   clock that went back starts over from that reading.
//!
//! Objects not seen in a scrape are forgotten, so the table holds at most
//! the objects of one scrape, and never more than [`Config::max_rate_entries`].
//!
//! [`Config::min_rate_interval`]: crate::Config::min_rate_interval
//! [`Config::rate_window`]: crate::Config::rate_window
//! [`Config::max_rate_entries`]: crate::Config::max_rate_entries

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// What a rate belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Node,
    Agent,
    Pod(String),
    Container(String, String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    base_time: SystemTime,
    base_nanos: u64,
    rate: Option<u64>,
}

/// The remembered readings of every object of the last scrape.
#[derive(Debug)]
pub(crate) struct Rates {
    min_interval: Duration,
    window: Duration,
    max_entries: usize,
    entries: HashMap<Key, Entry>,
    seen: HashSet<Key>,
}

impl Rates {
    pub(crate) fn new(min_interval: Duration, window: Duration, max_entries: usize) -> Self {
        Self { min_interval, window, max_entries, entries: HashMap::new(), seen: HashSet::new() }
    }

    /// The rate in nanocores of `key` given its cumulative `nanos` at `time`.
    pub(crate) fn observe(&mut self, key: Key, time: SystemTime, nanos: u64) -> Option<u64> {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max_entries {
            return None;
        }
        self.seen.insert(key.clone());
        let fresh = Entry { base_time: time, base_nanos: nanos, rate: None };
        let entry = self.entries.entry(key).or_insert(fresh);
        let Ok(elapsed) = time.duration_since(entry.base_time) else {
            *entry = fresh;
            return None;
        };
        if nanos < entry.base_nanos {
            *entry = fresh;
            return None;
        }
        if elapsed < self.min_interval {
            return entry.rate;
        }
        let used = u128::from(nanos - entry.base_nanos);
        let rate = used * 1_000_000_000 / elapsed.as_nanos().max(1);
        entry.rate = Some(u64::try_from(rate).unwrap_or(u64::MAX));
        if elapsed >= self.window {
            entry.base_time = time;
            entry.base_nanos = nanos;
        }
        entry.rate
    }

    /// Ends a scrape: forgets the objects it did not observe.
    pub(crate) fn sweep(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        self.entries.retain(|key, _| seen.contains(key));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const SEC: u64 = 1_000_000_000;

    fn at(secs: f64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_secs_f64(secs)
    }

    fn rates() -> Rates {
        Rates::new(Duration::from_secs(1), Duration::from_secs(10), 100)
    }

    #[test]
    fn first_reading_has_no_rate_then_the_average() {
        let mut r = rates();
        assert_eq!(r.observe(Key::Node, at(0.0), 0), None);
        // Half a core over 2 s.
        assert_eq!(r.observe(Key::Node, at(2.0), SEC), Some(500_000_000));
        // Still over [0, 6] (the base stays within the window): 3 s in 6 s.
        assert_eq!(r.observe(Key::Node, at(6.0), 3 * SEC), Some(500_000_000));
    }

    #[test]
    fn quick_scrapes_repeat_the_last_rate() {
        let mut r = rates();
        r.observe(Key::Node, at(0.0), 0);
        // A quarter core over 12 s; the base moves to 12 s.
        assert_eq!(r.observe(Key::Node, at(12.0), 3 * SEC), Some(250_000_000));
        // 5 ms later, with a burst of CPU: not a 200-core rate.
        assert_eq!(r.observe(Key::Node, at(12.005), 4 * SEC), Some(250_000_000));
        // Later readings average over [12, now], the burst included.
        assert_eq!(r.observe(Key::Node, at(14.0), 4 * SEC), Some(500_000_000));
    }

    #[test]
    fn the_base_moves_after_the_window() {
        let mut r = rates();
        r.observe(Key::Node, at(0.0), 0);
        // 15 s (a metrics-server interval) at 1 core: base moves to 15 s.
        assert_eq!(r.observe(Key::Node, at(15.0), 15 * SEC), Some(SEC));
        // Then idle: the rate is over [15, 30] only.
        assert_eq!(r.observe(Key::Node, at(30.0), 15 * SEC), Some(0));
    }

    #[test]
    fn counter_or_clock_going_back_starts_over() {
        let mut r = rates();
        let key = Key::Container("uid".into(), "app".into());
        r.observe(key.clone(), at(0.0), 5 * SEC);
        assert_eq!(r.observe(key.clone(), at(2.0), SEC), None);
        assert_eq!(r.observe(key.clone(), at(4.0), 2 * SEC), Some(500_000_000));
        assert_eq!(r.observe(key.clone(), at(1.0), 3 * SEC), None);
    }

    #[test]
    fn unseen_objects_are_forgotten_and_entries_are_bounded() {
        let mut r = Rates::new(Duration::from_secs(1), Duration::from_secs(10), 2);
        r.observe(Key::Pod("a".into()), at(0.0), 0);
        r.observe(Key::Pod("b".into()), at(0.0), 0);
        assert_eq!(r.observe(Key::Pod("c".into()), at(0.0), 0), None);
        assert_eq!(r.len(), 2);
        r.sweep();
        r.observe(Key::Pod("a".into()), at(2.0), 0);
        r.sweep();
        assert_eq!(r.len(), 1);
    }
}
