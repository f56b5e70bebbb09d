//! The control loop against a fake node, in virtual time.

use std::sync::Mutex;

use super::*;
use crate::observe::{ContainerStats, Disk, FsStats, Level};
use crate::threshold::Flags;

const MI: u64 = 1 << 20;
const CAPACITY: u64 = 4096 * MI;

/// A node whose free memory is its capacity minus what its live pods use.
#[derive(Default)]
struct Fake {
    pods: Mutex<Vec<PodStats>>,
    /// Evictions in order, with the (virtual) time they were asked for.
    evicted: Mutex<Vec<(Eviction, Instant)>>,
    /// UIDs that never finish stopping.
    stuck: Mutex<Vec<String>>,
    /// Node filesystem: (available, capacity); reclaim adds `reclaimable`.
    disk: Mutex<Option<(u64, u64)>>,
    reclaimable: Mutex<u64>,
    reclaims: Mutex<usize>,
    reclaiming: Mutex<Vec<Resource>>,
    disk_measured: Mutex<usize>,
}

impl Fake {
    fn with(pods: Vec<PodStats>) -> Arc<Self> {
        Arc::new(Self { pods: Mutex::new(pods), ..Self::default() })
    }

    fn evicted(&self) -> Vec<String> {
        self.evicted.lock().unwrap().iter().map(|(e, _)| e.pod.metadata.name.clone().unwrap()).collect()
    }

    fn eviction(&self, n: usize) -> (Eviction, Instant) {
        self.evicted.lock().unwrap()[n].clone()
    }
}

impl Target for Fake {
    fn node(&self) -> NodeStats {
        let used: u64 = self.pods.lock().unwrap().iter().map(PodStats::memory).sum();
        let disk = *self.disk.lock().unwrap();
        NodeStats {
            memory: Some(Level { available: CAPACITY - used, capacity: CAPACITY }),
            nodefs: disk.map(|(available, capacity)| FsStats { bytes: Level { available, capacity }, inodes: None }),
            ..NodeStats::default()
        }
    }

    fn pods(&self, disk: bool) -> Vec<PodStats> {
        if disk {
            *self.disk_measured.lock().unwrap() += 1;
        }
        self.pods.lock().unwrap().clone()
    }

    fn evict(&self, eviction: &Eviction) -> bool {
        self.evicted.lock().unwrap().push((eviction.clone(), Instant::now()));
        let uid = eviction.pod.metadata.uid.clone();
        if !self.stuck.lock().unwrap().contains(uid.as_ref().unwrap()) {
            self.pods.lock().unwrap().retain(|p| p.pod.metadata.uid != uid);
        }
        true
    }

    fn cleaned_up(&self, uid: &str) -> bool {
        !self.pods.lock().unwrap().iter().any(|p| p.uid() == uid)
    }

    async fn reclaim_node_disk(&self) {
        *self.reclaims.lock().unwrap() += 1;
        let freed = std::mem::take(&mut *self.reclaimable.lock().unwrap());
        if let Some((available, _)) = self.disk.lock().unwrap().as_mut() {
            *available += freed;
        }
    }

    async fn reclaiming(&self, resource: Resource) {
        self.reclaiming.lock().unwrap().push(resource);
    }
}

/// A pod using `memory`: BestEffort, or Guaranteed with `guaranteed` as
/// its request and limit.
fn pod(name: &str, memory: u64, guaranteed: Option<&str>, extra: serde_json::Value) -> PodStats {
    let resources = match guaranteed {
        Some(m) => serde_json::json!({"requests": {"memory": m, "cpu": "1"}, "limits": {"memory": m, "cpu": "1"}}),
        None => serde_json::json!({}),
    };
    let mut v = serde_json::json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {"terminationGracePeriodSeconds": 30, "containers": [{"name": "main", "resources": resources}]}
    });
    if let serde_json::Value::Object(m) = extra {
        for (k, val) in m {
            v["spec"][k] = val;
        }
    }
    PodStats {
        pod: Arc::new(serde_json::from_value(v).unwrap()),
        containers: vec![ContainerStats { name: "main".into(), memory_bytes: memory, logs: None }],
        volumes: None,
    }
}

fn hogs() -> Vec<PodStats> {
    vec![
        pod("small", 30 * MI, None, serde_json::json!({})),
        pod("guaranteed", 170 * MI, Some("180Mi"), serde_json::json!({})),
        pod("big", 220 * MI, None, serde_json::json!({})),
        pod("medium", 150 * MI, None, serde_json::json!({})),
    ]
}

/// The pods' share is 600Mi; evict when less than 300Mi of it is left.
fn allocatable_config() -> Config {
    Config {
        reserved_memory: CAPACITY - 600 * MI,
        pressure_transition_period: Duration::from_secs(30),
        ..Config::from_flags(&Flags { hard: Some("memory.available<300Mi"), ..Flags::default() }).unwrap()
    }
}

#[tokio::test(start_paused = true)]
async fn one_pod_per_pass_biggest_over_request_first() {
    let fake = Fake::with(hogs());
    let mut manager = Manager::new(allocatable_config(), fake.clone());
    // 570Mi used of 600Mi: 30Mi left.
    assert_eq!(manager.synchronize().await.as_deref(), Some("uid-big"));
    assert_eq!(fake.evicted(), ["big"], "exactly one pod per pass");
    let (first, _) = fake.eviction(0);
    assert_eq!(first.signal, Signal::AllocatableMemoryAvailable, "the node has memory; the pods' share does not");
    assert_eq!(first.grace, HARD_EVICTION_GRACE);
    assert_eq!(
        first.message,
        "The node was low on resource: memory. Threshold quantity: 300Mi, available: 30Mi. \
         Container main was using 220Mi, request is 0, has larger consumption of memory. "
    );
    // 350Mi used: 250Mi left, still under 300Mi.
    assert_eq!(manager.synchronize().await.as_deref(), Some("uid-medium"));
    let (second, _) = fake.eviction(1);
    assert!(second.message.contains("Threshold quantity: 300Mi, available: 250Mi."), "{}", second.message);
    // 200Mi used: 400Mi left. The Guaranteed pod and the small one stay.
    assert_eq!(manager.synchronize().await, None);
    assert_eq!(fake.evicted(), ["big", "medium"]);
    assert!(manager.conditions().borrow().memory_pressure, "within the transition period");
}

#[tokio::test(start_paused = true)]
async fn the_loop_waits_for_cleanup_and_the_condition_clears_after_the_transition_period() {
    let fake = Fake::with(hogs());
    let config = allocatable_config();
    let manager = Manager::new(config.clone(), fake.clone());
    let mut conditions = manager.conditions();
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(manager.run(cancel.clone()));
    conditions.wait_for(|c| c.memory_pressure).await.unwrap();
    let cleared = tokio::time::timeout(Duration::from_secs(600), conditions.wait_for(|c| !c.memory_pressure)).await;
    assert!(cleared.is_ok(), "the condition never cleared");
    let cleared_at = Instant::now();
    assert_eq!(fake.evicted(), ["big", "medium"]);
    let (_, first) = fake.eviction(0);
    let (_, second) = fake.eviction(1);
    assert_eq!(first, start, "the first pass evicts at once");
    assert_eq!(second - first, POD_CLEANUP_POLL, "the next pass follows the cleanup");
    // The last pass that saw pressure evicted `medium`; the condition stays a
    // transition period after it (checked on the pass that follows).
    let quiet = cleared_at - second;
    assert!(
        quiet >= config.pressure_transition_period
            && quiet < config.pressure_transition_period + config.monitoring_interval + POD_CLEANUP_POLL,
        "cleared {quiet:?} after the last pressure"
    );
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_pod_that_does_not_stop_holds_the_loop_for_the_cleanup_timeout() {
    let fake = Fake::with(hogs());
    fake.stuck.lock().unwrap().push("uid-big".into());
    let manager = Manager::new(allocatable_config(), fake.clone());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(manager.run(cancel.clone()));
    while fake.evicted.lock().unwrap().len() < 2 {
        tokio::time::sleep(POD_CLEANUP_POLL).await;
    }
    let (_, first) = fake.eviction(0);
    let (second_pod, second) = fake.eviction(1);
    assert_eq!(second - first, POD_CLEANUP_TIMEOUT);
    // Still the biggest user (it never stopped): asked again.
    assert_eq!(second_pod.pod.metadata.name.as_deref(), Some("big"));
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn soft_thresholds_evict_after_their_grace_period_with_a_bounded_pod_grace() {
    let fake = Fake::with(vec![pod("hog", 3800 * MI, None, serde_json::json!({}))]);
    let flags = Flags {
        hard: Some("memory.available<100Mi"),
        soft: Some("memory.available<500Mi"),
        soft_grace_period: Some("memory.available=1m30s"),
        ..Flags::default()
    };
    let config = Config { max_pod_grace_period: Duration::from_secs(5), ..Config::from_flags(&flags).unwrap() };
    let manager = Manager::new(config, fake.clone());
    let mut conditions = manager.conditions();
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let task = tokio::spawn(manager.run(cancel.clone()));
    conditions.wait_for(|c| c.memory_pressure).await.unwrap();
    assert_eq!(Instant::now(), start, "the condition comes with the first pass");
    while fake.evicted.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (eviction, at) = fake.eviction(0);
    assert_eq!(at - start, Duration::from_secs(90), "evicted on the first pass after the grace period");
    assert_eq!(eviction.grace, Duration::from_secs(5), "min(30 s of the pod, 5 s max)");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn critical_pods_are_skipped() {
    let critical = pod("critical", 3000 * MI, None, serde_json::json!({"priority": 2_000_000_000}));
    let fake = Fake::with(vec![critical, pod("other", 10 * MI, None, serde_json::json!({}))]);
    let config = Config::from_flags(&Flags { hard: Some("memory.available<2Gi"), ..Flags::default() }).unwrap();
    let mut manager = Manager::new(config, fake.clone());
    assert_eq!(manager.synchronize().await.as_deref(), Some("uid-other"));
}

#[tokio::test(start_paused = true)]
async fn disk_pressure_reclaims_node_garbage_before_evicting() {
    let with_logs = |name: &str, bytes: u64| {
        let mut p = pod(name, 0, None, serde_json::json!({}));
        p.containers[0].logs = Some(Disk { bytes, inodes: 1 });
        p
    };
    let fake = Fake::with(vec![with_logs("quiet", MI), with_logs("chatty", 500 * MI)]);
    *fake.disk.lock().unwrap() = Some((5 << 30, 100 << 30));
    *fake.reclaimable.lock().unwrap() = 10 << 30;
    let config = Config::from_flags(&Flags { hard: Some("nodefs.available<10%"), ..Flags::default() }).unwrap();
    let mut manager = Manager::new(config, fake.clone());
    // Garbage collection frees 10Gi: 15 % free, enough.
    assert_eq!(manager.synchronize().await, None);
    assert_eq!(*fake.reclaims.lock().unwrap(), 1);
    assert!(manager.conditions().borrow().disk_pressure, "the threshold was met on this pass");
    assert!(fake.evicted().is_empty());
    assert_eq!(*fake.reclaiming.lock().unwrap(), [Resource::EphemeralStorage]);
    // Nothing left to collect and the disk fills again: the biggest log writer goes.
    *fake.disk.lock().unwrap() = Some((5 << 30, 100 << 30));
    assert_eq!(manager.synchronize().await.as_deref(), Some("uid-chatty"));
    assert_eq!(*fake.disk_measured.lock().unwrap(), 1, "disk usage is measured only to rank");
    let (eviction, _) = fake.eviction(0);
    assert!(eviction.message.starts_with("The node was low on resource: ephemeral-storage. "), "{}", eviction.message);
    assert!(eviction.message.contains("Container main was using 500Mi, request is 0"), "{}", eviction.message);
}
