//! `cargo xtask chaos soak`: continuous churn (create → run → complete →
//! delete) at a steady rate beside a few long-running pods, while the
//! agent's RSS and open file descriptors are sampled; at the end, the slope
//! of each (per hour, least squares), the pods lost and the statuses wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::json;

use super::node::{Node, Workload};
use super::{Checks, Common, bed, container, finish, phase, restarts, running, wait_all};

/// Long-running pods that must still run, unrestarted, at the end.
const STEADY_PODS: usize = 5;
/// How often the agent is sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// A churn pod not finished (or not gone after its deletion) this long after
/// its creation counts as lost.
const LOST_AFTER: Duration = Duration::from_secs(180);

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct SoakArgs {
    /// How long the churn runs.
    #[arg(long, default_value_t = 60.0)]
    minutes: f64,
    /// Pods created per second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    #[command(flatten)]
    common: Common,
}

/// One sample of the agent.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    fds: u64,
}

fn sample(pid: u32, since: Instant) -> anyhow::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading the agent's status")?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    Ok(Sample { secs: since.elapsed().as_secs_f64(), rss_kib, fds })
}

/// Least-squares slope of `ys` over `xs`.
fn slope(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len() as f64;
    if xs.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let cov: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let var: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if var == 0.0 { 0.0 } else { cov / var }
}

/// Churn pods by name: when created, and whether their deletion was asked.
#[derive(Default)]
struct Churn {
    open: BTreeMap<String, Instant>,
    deleting: BTreeSet<String>,
    completed: u64,
    wrong: Vec<String>,
    lost: Vec<String>,
}

impl Churn {
    /// Looks at the pods: finished ones are checked and deleted, deleted
    /// ones that are gone are done, old ones are lost.
    async fn reconcile(&mut self, api: &Api<Pod>) -> anyhow::Result<()> {
        let list = api.list(&ListParams::default()).await?.items;
        let seen: BTreeMap<&str, &Pod> = list
            .iter()
            .filter_map(|p| Some((p.metadata.name.as_deref()?, p)))
            .filter(|(n, _)| n.starts_with("churn-"))
            .collect();
        let names: Vec<String> = self.open.keys().cloned().collect();
        for name in names {
            let created = self.open[&name];
            match seen.get(name.as_str()) {
                None if self.deleting.contains(&name) => {
                    self.open.remove(&name);
                    self.deleting.remove(&name);
                }
                Some(p) if !self.deleting.contains(&name) && matches!(phase(p), "Succeeded" | "Failed") => {
                    let t = container(p).and_then(|c| c.state.as_ref()?.terminated.clone());
                    let right = phase(p) == "Succeeded"
                        && restarts(p) == 0
                        && t.is_some_and(|t| t.exit_code == 0 && t.reason.as_deref() == Some("Completed"));
                    if right {
                        self.completed += 1;
                    } else {
                        self.wrong.push(format!("{name}: {:?}", p.status));
                    }
                    api.delete(&name, &DeleteParams::default()).await?;
                    self.deleting.insert(name);
                }
                _ if created.elapsed() > LOST_AFTER => {
                    self.lost.push(name.clone());
                    self.open.remove(&name);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

pub(crate) async fn soak(args: SoakArgs) -> anyhow::Result<()> {
    let bed = bed(&args.common).await?;
    let tb = &bed.tb;
    let mut node = Node::start(tb, &args.common, 500).await?;
    let api: Api<Pod> = node.pods(tb).await?;
    for i in 0..STEADY_PODS {
        node.create(&api, &format!("steady-{i}"), Workload::Idle, "Always").await?;
    }
    wait_all(&api, "steady-", running).await?;
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs_f64(1.0 / args.rate.max(0.01));
    println!("soak: {:.1} min at {} pods/s on {}", args.minutes, args.rate, node.name);

    let started = Instant::now();
    let mut samples = vec![sample(node.pid(), started)?];
    let (mut create, mut probe, mut look) = (
        tokio::time::interval(every),
        tokio::time::interval(SAMPLE_EVERY),
        tokio::time::interval(Duration::from_secs(1)),
    );
    let mut churn = Churn::default();
    let mut created = 0u64;
    while started.elapsed() < duration {
        tokio::select! {
            _ = create.tick() => {
                let name = format!("churn-{created:06}");
                node.create(&api, &name, Workload::Exit(0), "Never").await?;
                churn.open.insert(name, Instant::now());
                created += 1;
            }
            _ = probe.tick() => {
                let s = sample(node.pid(), started)?;
                if samples.len() % 12 == 0 {
                    println!("  {:>6.0} s: RSS {} KiB, {} fds, {} created, {} completed", s.secs, s.rss_kib, s.fds, created, churn.completed);
                }
                samples.push(s);
            }
            _ = look.tick() => churn.reconcile(&api).await?,
        }
    }
    // Drain: every pod created finishes and goes.
    let drain = Instant::now();
    while !churn.open.is_empty() && drain.elapsed() < LOST_AFTER {
        churn.reconcile(&api).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    churn.lost.extend(churn.open.keys().cloned());
    let steady = wait_all(&api, "steady-", |p| running(p) && restarts(p) == 0).await.is_ok();

    let xs: Vec<f64> = samples.iter().map(|s| s.secs / 3600.0).collect();
    let rss: Vec<f64> = samples.iter().map(|s| s.rss_kib as f64 / 1024.0).collect();
    let fds: Vec<f64> = samples.iter().map(|s| s.fds as f64).collect();
    let (rss_slope, fd_slope) = (slope(&xs, &rss), slope(&xs, &fds));
    // Without the first half (caches, pools and allocator arenas warming up).
    let half = samples.len() / 2;
    let (rss_late, fd_late) = (slope(&xs[half..], &rss[half..]), slope(&xs[half..], &fds[half..]));
    let (first, last) = (samples[0], samples[samples.len() - 1]);
    let mut checks = Checks::default();
    println!("soak: {created} pods created, {} completed and deleted", churn.completed);
    checks.check("agent kept running", node.alive(), format!("pid {}", node.pid()));
    checks.check(
        "no pod lost",
        churn.lost.is_empty(),
        format!("{} lost {:?}", churn.lost.len(), churn.lost.iter().take(5).collect::<Vec<_>>()),
    );
    checks.check(
        "no status wrong",
        churn.wrong.is_empty(),
        format!("{} wrong {:?}", churn.wrong.len(), churn.wrong.first()),
    );
    checks.check("long-running pods untouched", steady, format!("{STEADY_PODS} pods running, no restart"));
    println!(
        "  RSS {:.1} → {:.1} MiB, slope {rss_slope:+.2} MiB/h ({rss_late:+.2} over the second half); \
         fds {} → {}, slope {fd_slope:+.1}/h ({fd_late:+.1}) ({} samples)",
        first.rss_kib as f64 / 1024.0,
        last.rss_kib as f64 / 1024.0,
        first.fds,
        last.fds,
        samples.len()
    );
    let figures = json!({
        "minutes": args.minutes, "rate_per_s": args.rate, "created": created, "completed": churn.completed,
        "lost": churn.lost, "wrong": churn.wrong, "rss_slope_mib_per_h": rss_slope, "fd_slope_per_h": fd_slope,
        "rss_slope_second_half_mib_per_h": rss_late, "fd_slope_second_half_per_h": fd_late,
        "samples": samples, "profile": format!("{:?}", args.common.profile),
    });
    node.stop();
    finish(&args.common, "soak", &checks, figures)
}

#[cfg(test)]
mod tests {
    use super::slope;

    #[test]
    fn slope_is_least_squares() {
        assert!((slope(&[0.0, 1.0, 2.0], &[1.0, 3.0, 5.0]) - 2.0).abs() < 1e-9);
        assert_eq!(slope(&[0.0, 1.0, 2.0], &[4.0, 4.0, 4.0]), 0.0);
        assert_eq!(slope(&[1.0], &[4.0]), 0.0);
    }
}
