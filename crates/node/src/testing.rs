//! A fake API server for the heartbeat loops' unit tests: it keeps one Lease
//! and one Node, records every call with its (virtual) time, and can be told
//! to fail.

use std::sync::{Mutex, MutexGuard};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::time::Instant;

use crate::api::{Error, LeaseApi, NodeApi};
use crate::heartbeat::Probe;
use crate::host::{self, HostSample};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    GetLease,
    CreateLease,
    ReplaceLease,
    GetNode,
    PatchStatus,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) lease: Option<Lease>,
    pub(crate) node: Node,
    /// Every call, with when it happened.
    pub(crate) calls: Vec<(Instant, Call)>,
    /// Every call fails (HTTP 503) before this time.
    pub(crate) down_until: Option<Instant>,
    /// The next this many lease updates conflict (someone else wrote it).
    pub(crate) conflicts: usize,
    /// Ready transitions announced as events.
    pub(crate) events: Vec<bool>,
    version: u64,
}

#[derive(Debug)]
pub(crate) struct Fake(Mutex<State>);

pub(crate) const UID: &str = "0b5e5c2e-0000-4000-8000-000000000001";

impl Fake {
    pub(crate) fn new() -> Self {
        let node = Node {
            metadata: ObjectMeta { name: Some("n1".into()), uid: Some(UID.into()), ..ObjectMeta::default() },
            ..Node::default()
        };
        Self(Mutex::new(State {
            lease: None,
            node,
            calls: Vec::new(),
            down_until: None,
            conflicts: 0,
            events: Vec::new(),
            version: 1,
        }))
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Times (seconds since `start`) of the calls of one kind made since `start`.
    pub(crate) fn times(&self, call: Call, start: Instant) -> Vec<f64> {
        self.state()
            .calls
            .iter()
            .filter(|(t, c)| *c == call && *t >= start)
            .map(|(t, _)| (*t - start).as_secs_f64())
            .collect()
    }

    fn enter(&self, call: Call) -> Result<MutexGuard<'_, State>, Error> {
        let mut s = self.state();
        let now = Instant::now();
        s.calls.push((now, call));
        if s.down_until.is_some_and(|t| now < t) {
            return Err(api_error(503, "ServiceUnavailable"));
        }
        Ok(s)
    }
}

fn api_error(code: u16, reason: &str) -> Error {
    Error::Kube(kube::Error::Api(kube::core::Status::failure("fake", reason).with_code(code).boxed()))
}

impl State {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }
}

impl LeaseApi for Fake {
    async fn get_lease(&self) -> Result<Option<Lease>, Error> {
        Ok(self.enter(Call::GetLease)?.lease.clone())
    }

    async fn create_lease(&self, lease: &Lease) -> Result<Lease, Error> {
        let mut s = self.enter(Call::CreateLease)?;
        if s.lease.is_some() {
            return Err(api_error(409, "AlreadyExists"));
        }
        let mut lease = lease.clone();
        lease.metadata.resource_version = Some(s.next_version());
        s.lease = Some(lease.clone());
        Ok(lease)
    }

    async fn replace_lease(&self, lease: &Lease) -> Result<Lease, Error> {
        let mut s = self.enter(Call::ReplaceLease)?;
        let Some(current) = s.lease.clone() else {
            return Err(api_error(404, "NotFound"));
        };
        if s.conflicts > 0 {
            s.conflicts -= 1;
            let mut bumped = current;
            bumped.metadata.resource_version = Some(s.next_version());
            s.lease = Some(bumped);
            return Err(api_error(409, "Conflict"));
        }
        if current.metadata.resource_version != lease.metadata.resource_version {
            return Err(api_error(409, "Conflict"));
        }
        let mut lease = lease.clone();
        lease.metadata.resource_version = Some(s.next_version());
        s.lease = Some(lease.clone());
        Ok(lease)
    }
}

impl NodeApi for Fake {
    async fn get_node(&self) -> Result<Node, Error> {
        Ok(self.enter(Call::GetNode)?.node.clone())
    }

    /// Applies the status patch roughly as the API server would: conditions
    /// merged by type, every other field replaced.
    async fn patch_node_status(&self, patch: &serde_json::Value) -> Result<Node, Error> {
        let mut s = self.enter(Call::PatchStatus)?;
        let mut value = patch["status"].clone();
        if let Some(a) = value.get_mut("addresses").and_then(|a| a.as_array_mut()) {
            a.retain(|x| x.get("$patch").is_none());
        }
        let Ok(new): Result<NodeStatus, _> = serde_json::from_value(value) else {
            return Err(api_error(422, "Invalid"));
        };
        let status = s.node.status.get_or_insert_with(NodeStatus::default);
        let mut conditions = status.conditions.take().unwrap_or_default();
        for c in new.conditions.clone().unwrap_or_default() {
            conditions.retain(|old| old.type_ != c.type_);
            conditions.push(c);
        }
        *status = NodeStatus { conditions: Some(conditions), ..new };
        Ok(s.node.clone())
    }

    async fn ready_changed(&self, ready: bool) {
        self.state().events.push(ready);
    }
}

/// A host that always measures the same, or fails.
pub(crate) struct FixedProbe(pub(crate) Option<HostSample>);

impl Probe for FixedProbe {
    fn sample(&self) -> Result<HostSample, host::Error> {
        self.0.ok_or_else(|| host::Error::Meminfo { path: "/fake/meminfo".into() })
    }
}

pub(crate) fn sample() -> HostSample {
    HostSample {
        cpus: 2,
        memory_capacity: 8 << 30,
        memory_available: 6 << 30,
        storage_capacity: 100 << 30,
        storage_available: 60 << 30,
    }
}
