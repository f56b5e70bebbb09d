//! The node Lease (`kube-node-lease/<name>`, coordination.k8s.io/v1): the
//! cheap heartbeat the node-lifecycle controller watches.
//!
//! Every `renew_interval` the [`LeaseKeeper`] sets `renewTime` to now with an
//! update that carries the last resourceVersion seen. A missing Lease is
//! created; a conflict re-reads it and tries again at once; any other failure
//! is retried with backoff (200 ms doubling to 7 s, jittered), after which the
//! regular cadence resumes. The Lease is owned by the Node (ownerReferences),
//! so it is garbage-collected with it; a pre-existing Lease without that
//! reference gets it on the next renewal.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::api::{self, LeaseApi};
use crate::backoff::{self, Retry, Step};
use crate::config::{LEASE_NAMESPACE, NodeConfig};

/// A failed renewal attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// Reading the Lease failed.
    #[error("getting the node lease")]
    Get(#[source] api::Error),
    /// Creating the missing Lease failed.
    #[error("creating the node lease")]
    Create(#[source] api::Error),
    /// Updating the Lease failed.
    #[error("renewing the node lease")]
    Renew(#[source] api::Error),
}

/// Keeps one node's Lease renewed.
pub(crate) struct LeaseKeeper<'a, A> {
    api: &'a A,
    config: &'a NodeConfig,
    owner: OwnerReference,
    /// The Lease as last seen; `None` means read it again.
    cached: Option<Lease>,
}

impl<'a, A: LeaseApi> LeaseKeeper<'a, A> {
    pub(crate) fn new(api: &'a A, config: &'a NodeConfig, node_uid: &str) -> Self {
        Self {
            api,
            config,
            owner: OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: config.name.clone(),
                uid: node_uid.to_owned(),
                ..OwnerReference::default()
            },
            cached: None,
        }
    }

    /// Renews the Lease every `renew_interval` until `cancel` fires. Never
    /// returns early on API errors.
    pub(crate) async fn run(mut self, cancel: &CancellationToken) {
        let mut tick = tokio::time::interval(self.config.renew_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let span = tracing::info_span!("renew_lease", node.name = %self.config.name);
            let mut retry = Retry::new(backoff::HEARTBEAT, None, cancel, "renewing the node lease");
            let renewed = async {
                loop {
                    match retry.step(self.renew_once()).await {
                        Step::Done(()) => break true,
                        Step::Again => {}
                        Step::Stopped(_) => break false,
                    }
                }
            }
            .instrument(span.clone())
            .await;
            if renewed {
                span.in_scope(|| tracing::trace!("node lease renewed"));
            }
            // Sliding cadence, as upstream: the next renewal is a full
            // interval after this one ended, however long its retries took.
            tick.reset();
        }
    }

    /// One attempt: read the Lease if needed (creating it when missing), then
    /// update it; on a conflict, read it again and retry once.
    async fn renew_once(&mut self) -> Result<(), Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let current = match self.cached.take() {
                Some(lease) => lease,
                None => match self.api.get_lease().await.map_err(Error::Get)? {
                    Some(lease) => lease,
                    None => {
                        let lease = self.new_lease(Timestamp::now());
                        let created = self.api.create_lease(&lease).await;
                        self.cached = Some(created.map_err(Error::Create)?);
                        return Ok(());
                    }
                },
            };
            let desired = self.renewed(current.clone(), Timestamp::now());
            match self.api.replace_lease(&desired).await {
                Ok(lease) => {
                    self.cached = Some(lease);
                    return Ok(());
                }
                Err(e) if e.is_conflict() && attempts < 2 => {
                    tracing::debug!("node lease changed meanwhile; reading it again");
                }
                Err(e) if e.is_conflict() || e.is_not_found() => return Err(Error::Renew(e)),
                Err(e) => {
                    // Possibly transient: try the same version again next time.
                    self.cached = Some(current);
                    return Err(Error::Renew(e));
                }
            }
        }
    }

    fn new_lease(&self, now: Timestamp) -> Lease {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(LEASE_NAMESPACE.into()),
                ..ObjectMeta::default()
            },
            spec: None,
        };
        self.renewed(lease, now)
    }

    /// `lease` renewed at `now`, held by this node for `lease_duration`, and
    /// owned by its Node.
    fn renewed(&self, mut lease: Lease, now: Timestamp) -> Lease {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.config.name.clone());
        spec.lease_duration_seconds = Some(i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX));
        spec.renew_time = Some(MicroTime(now));
        let owners = lease.metadata.owner_references.get_or_insert_with(Vec::new);
        if !owners.iter().any(|o| o.uid == self.owner.uid) {
            // A reference to an older Node of the same name would get the
            // Lease garbage-collected: replace it.
            owners.retain(|o| !(o.kind == "Node" && o.api_version == "v1"));
            owners.push(self.owner.clone());
        }
        lease
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
