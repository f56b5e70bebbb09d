//! What a run measured: per scenario and peer a result, a skip with its
//! reason, or the failure; serialized to `report.json` and printed as tables
//! with wasmlet's ratio to each peer ([`tables`]) and against the goals of
//! issue 13 ([`goals`]).

mod check;
mod goals;
mod tables;

use std::collections::BTreeMap;

use super::probe::{ApiCounts, Usage};
use super::watch_nodes::LeaseGap;
use super::{Config, PeerKind, Scenario};

/// How one scenario went for one peer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "value")]
pub(crate) enum Outcome {
    Done(Box<Measured>),
    Skipped(String),
    Failed(String),
}

/// A scenario's figures.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Measured {
    Start(StartResult),
    Churn(ChurnResult),
    Density(DensityResult),
    Footprint(FootprintResult),
    Nodes(NodesResult),
}

/// Percentiles of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Pcts {
    pub(crate) n: usize,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Pcts {
    /// Nearest-rank percentiles of `samples` (None when empty).
    pub(crate) fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Some(Self { n: s.len(), p50: rank(0.50), p90: rank(0.90), p99: rank(0.99), max: s[s.len() - 1] })
    }
}

/// One phase of the start scenario (steady or burst).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct StartPhase {
    pub(crate) pods: usize,
    pub(crate) created: usize,
    pub(crate) running: usize,
    pub(crate) ready: usize,
    pub(crate) failed: usize,
    /// Creation → Running.
    pub(crate) to_running: Option<Pcts>,
    /// Creation → Ready.
    pub(crate) to_ready: Option<Pcts>,
    /// Every creation → Ready latency, sorted (for the CDF plot).
    pub(crate) ready_samples: Vec<f64>,
    /// Why it ended before every pod was Ready.
    pub(crate) stopped: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct StartResult {
    pub(crate) steady: StartPhase,
    pub(crate) burst: StartPhase,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChurnResult {
    pub(crate) pods: usize,
    pub(crate) created: usize,
    pub(crate) succeeded: usize,
    pub(crate) failed: usize,
    /// First create sent → last pod Succeeded.
    pub(crate) to_succeeded_secs: Option<f64>,
    pub(crate) succeeded_per_sec: Option<f64>,
    pub(crate) deleted: usize,
    /// Delete request → last pod gone.
    pub(crate) to_deleted_secs: Option<f64>,
    pub(crate) deleted_per_sec: Option<f64>,
    pub(crate) stopped: Option<String>,
}

/// One density level.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct DensityLevel {
    pub(crate) pods: usize,
    pub(crate) created: usize,
    pub(crate) ready: usize,
    pub(crate) failed: usize,
    /// First create sent → last pod Ready.
    pub(crate) to_ready_secs: Option<f64>,
    /// The peer's processes before any pod (after warm-up), sampled 10 s.
    pub(crate) idle: Usage,
    /// At steady state once every pod is Ready.
    pub(crate) steady: Option<Usage>,
    /// (steady - idle) total RSS per Ready pod, KiB.
    pub(crate) rss_per_pod_kib: Option<f64>,
    /// (steady - idle) agent RSS per Ready pod, KiB.
    pub(crate) agent_rss_per_pod_kib: Option<f64>,
    /// Longest stretch without a Lease renewal, creation to the end of the sample.
    pub(crate) lease_gap: Option<LeaseGap>,
    /// Apiserver requests in that window.
    pub(crate) requests: ApiCounts,
    /// Requests per created pod, by client.
    pub(crate) requests_per_pod: BTreeMap<String, f64>,
    pub(crate) stopped: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct DensityResult {
    pub(crate) levels: Vec<DensityLevel>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct FootprintResult {
    pub(crate) usage: Usage,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct NodesResult {
    pub(crate) nodes: usize,
    pub(crate) pods: usize,
    pub(crate) created: usize,
    pub(crate) ready: usize,
    pub(crate) failed: usize,
    /// First create sent → last pod Ready.
    pub(crate) to_ready_secs: Option<f64>,
    /// Ready pods per node, fewest and most.
    pub(crate) per_node_min: usize,
    pub(crate) per_node_max: usize,
    /// Every time a node was seen not Ready after it had been Ready.
    pub(crate) not_ready: Vec<String>,
    /// All agents' processes with every pod Ready, sampled 10 s.
    pub(crate) usage: Option<Usage>,
    pub(crate) stopped: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Report {
    pub(crate) started: String,
    pub(crate) finished: String,
    pub(crate) command: String,
    pub(crate) load_average_before: String,
    pub(crate) load_average_after: String,
    pub(crate) config: Config,
    /// Peers whose build failed, with the error.
    pub(crate) build_failures: BTreeMap<PeerKind, String>,
    pub(crate) results: BTreeMap<Scenario, BTreeMap<PeerKind, Outcome>>,
}

/// The time now, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn timestamp() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    pub(crate) fn new(config: &Config, command: &str) -> Self {
        Self {
            started: timestamp(),
            finished: String::new(),
            command: command.to_owned(),
            load_average_before: crate::bench::load_average(),
            load_average_after: String::new(),
            config: config.clone(),
            build_failures: BTreeMap::new(),
            results: BTreeMap::new(),
        }
    }

    pub(crate) fn built(&mut self, peer: PeerKind, error: Option<&anyhow::Error>) {
        if let Some(e) = error {
            self.build_failures.insert(peer, format!("{e:#}"));
        }
    }

    pub(crate) fn record(&mut self, scenario: Scenario, peer: PeerKind, outcome: Outcome) {
        self.results.entry(scenario).or_default().insert(peer, outcome);
    }

    pub(crate) fn finish(&mut self) {
        self.finished = timestamp();
        self.load_average_after = crate::bench::load_average();
    }

    /// Reads report.json files and merges them: the first gives the
    /// settings and start time, each later one adds (or replaces) the
    /// scenarios it ran.
    pub(crate) fn merge(paths: &[std::path::PathBuf]) -> anyhow::Result<Self> {
        let mut merged: Option<Self> = None;
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let r: Self = serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            merged = Some(match merged {
                None => r,
                Some(mut m) => {
                    m.command = format!("{}\n{}", m.command, r.command);
                    m.finished = r.finished;
                    m.load_average_after = r.load_average_after;
                    m.build_failures.extend(r.build_failures);
                    m.results.extend(r.results);
                    m
                }
            });
        }
        merged.ok_or_else(|| anyhow::anyhow!("no report to render"))
    }

    /// The figures of `scenario` for `peer`, if it ran to the end.
    pub(crate) fn measured(&self, scenario: Scenario, peer: PeerKind) -> Option<&Measured> {
        match self.results.get(&scenario)?.get(&peer)? {
            Outcome::Done(m) => Some(m),
            _ => None,
        }
    }

    /// Every table, the ratios and the goals, as Markdown.
    pub(crate) fn tables(&self) -> String {
        let mut s = tables::all(self);
        s.push_str(&goals::table(self));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            config: Config,
        }
        Cli::parse_from(["bench"]).config
    }

    #[test]
    fn a_report_reads_back_as_written() {
        let mut r = Report::new(&config(), "cargo xtask bench pods");
        let phase = StartPhase { pods: 2, created: 2, ready: 2, to_ready: Pcts::of(&[0.1, 0.2]), ..Default::default() };
        let start = StartResult { steady: phase.clone(), burst: phase };
        r.record(Scenario::Start, PeerKind::Wasmlet, Outcome::Done(Box::new(Measured::Start(start))));
        r.record(Scenario::Churn, PeerKind::Hollow, Outcome::Skipped("never exits".into()));
        r.record(Scenario::Footprint, PeerKind::Kwok, Outcome::Failed("no kwok".into()));
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.tables(), r.tables());
        assert!(r.tables().contains("skipped: never exits"), "{}", r.tables());
        assert_eq!(back.config.density, vec![110, 1000, 5000]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Pcts::of(&samples).unwrap();
        assert_eq!((p.n, p.p50, p.p90, p.p99, p.max), (100, 50.0, 90.0, 99.0, 100.0));
        let one = Pcts::of(&[0.25]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (0.25, 0.25, 0.25));
        assert!(Pcts::of(&[]).is_none());
    }
}
