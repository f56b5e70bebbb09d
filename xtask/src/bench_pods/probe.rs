//! Readings from outside the peers: resident memory and CPU time of their
//! processes (`/proc`), the machine's available memory, and the apiserver's
//! own request counters (`/metrics`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::bench::process_cpu;

/// What a process does for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// The node agent (wasmlet, kwok, the hollow or the real kubelet).
    Agent,
    /// A container runtime beside the agent (containerd and its shims).
    Runtime,
    /// The pods' own processes (containers, sandboxes' pause processes).
    Pods,
}

/// One process of a peer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proc {
    pub(crate) role: Role,
    pub(crate) pid: u32,
}

/// Resident set size of a process (`VmRSS`), in KiB.
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// `MemAvailable` of the machine, in MiB.
pub(crate) fn mem_available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemAvailable:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        })
        .map_or(u64::MAX, |kib: u64| kib / 1024)
}

/// Memory and CPU of a peer's processes over a window.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Usage {
    /// How long it was sampled.
    pub(crate) window_secs: f64,
    /// Mean resident memory per role, MiB.
    pub(crate) rss_mib: BTreeMap<Role, f64>,
    /// CPU per role over the window, % of one CPU.
    pub(crate) cpu_pct: BTreeMap<Role, f64>,
    /// Processes per role at the end.
    pub(crate) processes: BTreeMap<Role, usize>,
}

impl Usage {
    pub(crate) fn rss(&self, role: Role) -> f64 {
        self.rss_mib.get(&role).copied().unwrap_or(0.0)
    }

    pub(crate) fn cpu(&self, role: Role) -> f64 {
        self.cpu_pct.get(&role).copied().unwrap_or(0.0)
    }

    /// Everything the node spends: agent, runtime and pod processes.
    pub(crate) fn total_rss(&self) -> f64 {
        self.rss_mib.values().sum()
    }

    pub(crate) fn total_cpu(&self) -> f64 {
        self.cpu_pct.values().sum()
    }
}

/// Samples `procs()` once a second for `window`: mean RSS and CPU share.
pub(crate) async fn sample(procs: impl Fn() -> Vec<Proc>, window: Duration) -> Usage {
    let cpu_of = |ps: &[Proc]| -> HashMap<u32, (Role, Duration)> {
        ps.iter().filter_map(|p| Some((p.pid, (p.role, process_cpu(p.pid).ok()?)))).collect()
    };
    let start = Instant::now();
    let first = cpu_of(&procs());
    let mut sums: BTreeMap<Role, f64> = BTreeMap::new();
    let mut samples = 0u32;
    let mut last;
    loop {
        last = procs();
        for p in &last {
            *sums.entry(p.role).or_default() += rss_kib(p.pid).unwrap_or(0) as f64 / 1024.0;
        }
        samples += 1;
        if start.elapsed() >= window {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1).min(window)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let end = cpu_of(&last);
    let mut cpu: BTreeMap<Role, f64> = BTreeMap::new();
    for (pid, (role, t)) in &end {
        let before = first.get(pid).map_or(Duration::ZERO, |(_, t0)| *t0);
        *cpu.entry(*role).or_default() += t.saturating_sub(before).as_secs_f64() / elapsed * 100.0;
    }
    let mut processes = BTreeMap::new();
    for p in &last {
        *processes.entry(p.role).or_default() += 1;
    }
    Usage {
        window_secs: elapsed,
        rss_mib: sums.into_iter().map(|(r, s)| (r, s / f64::from(samples))).collect(),
        cpu_pct: cpu,
        processes,
    }
}

/// Counters read from the apiserver's `/metrics`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ApiCounts {
    /// `apiserver_flowcontrol_dispatched_requests_total` by `flow_schema`:
    /// the only per-client split the apiserver's metrics have (v1.36's
    /// `apiserver_request_total` has no user or user-agent label).
    pub(crate) by_flow_schema: BTreeMap<String, f64>,
    /// `apiserver_request_total` by `VERB resource[/subresource]`.
    pub(crate) by_request: BTreeMap<String, f64>,
}

impl ApiCounts {
    /// Reads the counters now.
    pub(crate) async fn scrape(admin: &kube::Client) -> anyhow::Result<Self> {
        let req = http::Request::get("/metrics").body(Vec::new()).context("building the /metrics request")?;
        let text = tokio::time::timeout(std::time::Duration::from_secs(60), admin.request_text(req))
            .await
            .context("the apiserver's /metrics did not answer in 60 s")?
            .context("reading the apiserver's /metrics")?;
        let mut counts = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, labels, value)) = parse_sample(line) else { continue };
            match name {
                "apiserver_flowcontrol_dispatched_requests_total" => {
                    let fs = labels.get("flow_schema").cloned().unwrap_or_default();
                    *counts.by_flow_schema.entry(fs).or_default() += value;
                }
                "apiserver_request_total" => {
                    let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
                    let mut key = format!("{} {}", get("verb"), get("resource"));
                    if !get("subresource").is_empty() {
                        key = format!("{key}/{}", get("subresource"));
                    }
                    *counts.by_request.entry(key).or_default() += value;
                }
                _ => {}
            }
        }
        if counts.by_flow_schema.is_empty() || counts.by_request.is_empty() {
            anyhow::bail!("the apiserver's /metrics has no apiserver_request_total or flow-control counters");
        }
        Ok(counts)
    }

    /// `self - before`, dropping what did not move.
    pub(crate) fn since(&self, before: &Self) -> Self {
        let diff = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            a.iter().map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0.0))).filter(|(_, v)| *v > 0.0).collect()
        };
        Self {
            by_flow_schema: diff(&self.by_flow_schema, &before.by_flow_schema),
            by_request: diff(&self.by_request, &before.by_request),
        }
    }
}

/// `name{k="v",...} value` (Prometheus text format; no escapes in the
/// label values we read).
fn parse_sample(line: &str) -> Option<(&str, HashMap<String, String>, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (head, ""),
    };
    let labels = labels
        .split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once("=\"")?;
            Some((k.trim().to_owned(), v.trim_end_matches('"').to_owned()))
        })
        .collect();
    Some((name, labels, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_samples() {
        let (name, labels, value) = parse_sample(
            r#"apiserver_request_total{code="201",component="apiserver",resource="pods",subresource="",verb="POST"} 42"#,
        )
        .unwrap();
        assert_eq!(name, "apiserver_request_total");
        assert_eq!(labels["verb"], "POST");
        assert_eq!(labels["subresource"], "");
        assert_eq!(value, 42.0);
        let (name, labels, value) = parse_sample("process_open_fds 7").unwrap();
        assert_eq!((name, labels.len(), value), ("process_open_fds", 0, 7.0));
        assert!(parse_sample("garbage").is_none());
    }
}
