//! Integration tests of wasmlet-metrics: the payloads built from a fake
//! [`StatsSource`] with fixed readings (the clock is the samples' own
//! timestamps, so rates are exact).

mod agent;
mod cadvisor;
mod resource;
mod summary;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wasmlet_metrics::{
    ContainerSample, CpuSample, FsSample, MemorySample, NodeSample, PodSample, ProcessSample, StatsSource,
};

/// 2027-01-15T08:00:00Z plus `secs` (which may be negative).
pub fn at(secs: f64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    if secs < 0.0 { base - Duration::from_secs_f64(-secs) } else { base + Duration::from_secs_f64(secs) }
}

/// A source whose readings the test sets.
pub struct Fake {
    pub node: Mutex<NodeSample>,
    pub pods: Mutex<Vec<PodSample>>,
}

impl StatsSource for Fake {
    fn node(&self) -> NodeSample {
        self.node.lock().unwrap().clone()
    }

    fn pods(&self) -> Vec<PodSample> {
        self.pods.lock().unwrap().clone()
    }
}

impl Fake {
    /// A node `wasm-1` and two pods (one with two containers, one with none
    /// started yet), all read at `at(0)`.
    pub fn standard() -> Self {
        let time = at(0.0);
        let node = NodeSample {
            name: "wasm-1".into(),
            start_time: at(-86_400.0),
            cpu: Some(CpuSample { time, usage_core_nanos: 6_197_005_020_909 }),
            memory: Some(MemorySample {
                available_bytes: Some(20 << 30),
                usage_bytes: Some(5 << 30),
                working_set_bytes: Some(1_137_475_584),
                page_faults: Some(1000),
                major_page_faults: Some(3),
                ..MemorySample::at(time)
            }),
            fs: Some(FsSample {
                time,
                available_bytes: Some(100),
                capacity_bytes: Some(300),
                used_bytes: Some(200),
                inodes_free: Some(10),
                inodes: Some(30),
                inodes_used: Some(20),
            }),
            image_fs: None,
            agent: Some(ProcessSample {
                start_time: at(-60.0),
                cpu: CpuSample { time, usage_core_nanos: 2_000_000_000 },
                memory: MemorySample {
                    working_set_bytes: Some(50 << 20),
                    rss_bytes: Some(50 << 20),
                    ..MemorySample::at(time)
                },
            }),
        };
        let container = |name: &str, cpu_nanos, memory_bytes: u64, running: bool| ContainerSample {
            name: name.into(),
            start_time: at(-30.0),
            time,
            cpu_nanos,
            memory_bytes,
            memory_peak_bytes: memory_bytes + (1 << 20),
            oom_kills: u64::from(!running),
            memory_limit_bytes: Some(64 << 20),
            running,
        };
        let pods = vec![
            PodSample {
                namespace: "demo".into(),
                name: "web-0".into(),
                uid: "uid-web".into(),
                start_time: at(-31.0),
                containers: vec![
                    container("app", 1_500_000_000, 16 << 20, true),
                    container("sidecar", 500_000_000, 1 << 20, false),
                ],
            },
            PodSample {
                namespace: "demo".into(),
                name: "pending".into(),
                uid: "uid-pending".into(),
                start_time: at(-1.0),
                containers: vec![],
            },
        ];
        Self { node: Mutex::new(node), pods: Mutex::new(pods) }
    }

    /// Moves every reading `secs` later, adding `cpu` nanoseconds to each
    /// CPU counter.
    pub fn advance(&self, secs: f64, cpu: u64) {
        let mut node = self.node.lock().unwrap();
        if let Some(c) = node.cpu.as_mut() {
            c.time += Duration::from_secs_f64(secs);
            c.usage_core_nanos += cpu;
        }
        for pod in self.pods.lock().unwrap().iter_mut() {
            for c in &mut pod.containers {
                c.time += Duration::from_secs_f64(secs);
                c.cpu_nanos += cpu;
            }
        }
    }
}
