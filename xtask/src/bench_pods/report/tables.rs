//! The report as Markdown tables: one per scenario, then wasmlet's ratio to
//! each peer (wasmlet ÷ peer: below 1 is better for times, memory, CPU and
//! requests; above 1 for rates).

use std::fmt::Write as _;

use super::{Measured, Outcome, Pcts, Report};
use crate::bench_pods::probe::Role;
use crate::bench_pods::scenarios::density::agent_client;
use crate::bench_pods::{PeerKind, Scenario};

/// Writes one scenario's tables.
type Section = fn(&Report, &mut String);

pub(super) fn all(r: &Report) -> String {
    let mut s = String::new();
    if !r.build_failures.is_empty() {
        s.push_str("### builds that failed\n\n");
        for (peer, e) in &r.build_failures {
            let _ = writeln!(s, "- {}: {}", peer.label(), first_line(e));
        }
        s.push('\n');
    }
    let sections: [(Scenario, Section); 5] = [
        (Scenario::Start, start),
        (Scenario::Churn, churn),
        (Scenario::Density, density),
        (Scenario::Footprint, footprint),
        (Scenario::Nodes, nodes),
    ];
    for (scenario, section) in sections {
        if r.results.contains_key(&scenario) {
            section(r, &mut s);
        }
    }
    s
}

/// A number with `prec` decimals, or a dash.
pub(super) fn num(x: Option<f64>, prec: usize) -> String {
    x.filter(|v| v.is_finite()).map_or_else(|| "–".into(), |v| format!("{v:.prec$}"))
}

/// `×a/b`, or a dash.
pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => format!("×{:.2}", a / b),
        _ => "–".into(),
    }
}

pub(super) fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > 160 {
        format!("{}…", line.chars().take(160).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Peers of a scenario in table order, with their outcomes.
fn rows(r: &Report, scenario: Scenario) -> Vec<(PeerKind, &Outcome)> {
    r.results.get(&scenario).map(|m| m.iter().map(|(p, o)| (*p, o)).collect()).unwrap_or_default()
}

fn not_done(s: &mut String, peer: PeerKind, o: &Outcome, cols: usize) {
    let what = match o {
        Outcome::Skipped(why) => format!("skipped: {}", first_line(why)),
        Outcome::Failed(e) => format!("failed: {}", first_line(e)),
        Outcome::Done(_) => return,
    };
    let _ = writeln!(s, "| {} |{} {what} |", peer.label(), " – |".repeat(cols));
}

fn pcts(p: Option<Pcts>) -> String {
    p.map_or_else(|| "– | – | – | –".into(), |p| format!("{:.3} | {:.3} | {:.3} | {:.3}", p.p50, p.p90, p.p99, p.max))
}

fn start(r: &Report, s: &mut String) {
    let c = &r.config;
    let _ = writeln!(
        s,
        "### start: creation → Ready (s); {} pods at {}/s, then {} at once\n\n| peer | steady p50 | p90 | p99 | max | burst p50 | p90 | p99 | max | Ready | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        c.start_steady, c.start_rate, c.start_burst
    );
    let get = |p| match r.measured(Scenario::Start, p) {
        Some(Measured::Start(x)) => Some(x),
        _ => None,
    };
    for (peer, o) in rows(r, Scenario::Start) {
        let Some(x) = get(peer) else {
            not_done(s, peer, o, 9);
            continue;
        };
        let note = [&x.steady.stopped, &x.burst.stopped]
            .iter()
            .filter_map(|n| n.as_deref())
            .map(first_line)
            .collect::<Vec<_>>()
            .join("; ");
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}+{} | {note} |",
            peer.label(),
            pcts(x.steady.to_ready),
            pcts(x.burst.to_ready),
            x.steady.ready,
            x.burst.ready
        );
    }
    let Some(w) = get(PeerKind::Wasmlet) else { return s.push('\n') };
    s.push_str("\n| wasmlet ÷ | steady p50 | steady p99 | burst p50 | burst p99 |\n|---|---:|---:|---:|---:|\n");
    for (peer, _) in rows(r, Scenario::Start).into_iter().filter(|(p, _)| *p != PeerKind::Wasmlet) {
        let Some(x) = get(peer) else { continue };
        let q = |a: Option<Pcts>, f: fn(Pcts) -> f64| a.map(f);
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            peer.label(),
            ratio(q(w.steady.to_ready, |p| p.p50), q(x.steady.to_ready, |p| p.p50)),
            ratio(q(w.steady.to_ready, |p| p.p99), q(x.steady.to_ready, |p| p.p99)),
            ratio(q(w.burst.to_ready, |p| p.p50), q(x.burst.to_ready, |p| p.p50)),
            ratio(q(w.burst.to_ready, |p| p.p99), q(x.burst.to_ready, |p| p.p99)),
        );
    }
    s.push('\n');
}

fn churn(r: &Report, s: &mut String) {
    let _ = writeln!(
        s,
        "### churn: {} run-to-completion pods\n\n| peer | Succeeded | to all Succeeded (s) | pods/s | to all deleted (s) | deleted/s | note |\n|---|---:|---:|---:|---:|---:|---|",
        r.config.churn_pods
    );
    let get = |p| match r.measured(Scenario::Churn, p) {
        Some(Measured::Churn(x)) => Some(x),
        _ => None,
    };
    for (peer, o) in rows(r, Scenario::Churn) {
        let Some(x) = get(peer) else {
            not_done(s, peer, o, 5);
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {}/{} | {} | {} | {} | {} | {} |",
            peer.label(),
            x.succeeded,
            x.pods,
            num(x.to_succeeded_secs, 2),
            num(x.succeeded_per_sec, 1),
            num(x.to_deleted_secs, 2),
            num(x.deleted_per_sec, 1),
            x.stopped.as_deref().map(first_line).unwrap_or_default()
        );
    }
    if let Some(w) = get(PeerKind::Wasmlet) {
        s.push_str("\n| wasmlet ÷ | Succeeded/s | deleted/s |\n|---|---:|---:|\n");
        for (peer, _) in rows(r, Scenario::Churn).into_iter().filter(|(p, _)| *p != PeerKind::Wasmlet) {
            let Some(x) = get(peer) else { continue };
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                peer.label(),
                ratio(w.succeeded_per_sec, x.succeeded_per_sec),
                ratio(w.deleted_per_sec, x.deleted_per_sec)
            );
        }
    }
    s.push('\n');
}

fn density(r: &Report, s: &mut String) {
    s.push_str("### density: idle pods on one node\n\n| peer | pods | Ready | to all Ready (s) | agent RSS idle → steady (MiB) | runtime + pod processes (MiB) | RSS per pod (KiB) | CPU at steady state (% of a CPU) | longest lease gap (s) | agent requests/pod | all requests/pod | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    let get = |p| match r.measured(Scenario::Density, p) {
        Some(Measured::Density(x)) => Some(x),
        _ => None,
    };
    for (peer, o) in rows(r, Scenario::Density) {
        let Some(x) = get(peer) else {
            not_done(s, peer, o, 10);
            continue;
        };
        for l in &x.levels {
            let steady = l.steady.as_ref();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.1} → {} | {} | {} | {} | {} | {} | {} | {} |",
                peer.label(),
                l.pods,
                l.ready,
                num(l.to_ready_secs, 1),
                l.idle.rss(Role::Agent),
                num(steady.map(|u| u.rss(Role::Agent)), 1),
                num(steady.map(|u| u.rss(Role::Runtime) + u.rss(Role::Pods)), 1),
                num(l.rss_per_pod_kib, 0),
                num(steady.map(|u| u.total_cpu()), 2),
                num(l.lease_gap.as_ref().map(|g| g.secs), 1),
                num(l.requests_per_pod.get(agent_client(peer)).copied(), 2),
                num(Some(l.requests_per_pod.values().sum()), 2),
                l.stopped.as_deref().map(first_line).unwrap_or_default()
            );
        }
    }
    if let Some(w) = get(PeerKind::Wasmlet) {
        s.push_str("\n| wasmlet ÷ | pods | to all Ready | RSS per pod | CPU at steady state | agent requests/pod |\n|---|---:|---:|---:|---:|---:|\n");
        for (peer, _) in rows(r, Scenario::Density).into_iter().filter(|(p, _)| *p != PeerKind::Wasmlet) {
            let Some(x) = get(peer) else { continue };
            for wl in &w.levels {
                let Some(pl) = x.levels.iter().find(|l| l.pods == wl.pods) else { continue };
                let cpu = |l: &super::DensityLevel| l.steady.as_ref().map(|u| u.total_cpu());
                let req = |l: &super::DensityLevel, p| l.requests_per_pod.get(agent_client(p)).copied();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    peer.label(),
                    wl.pods,
                    ratio(wl.to_ready_secs, pl.to_ready_secs),
                    ratio(wl.rss_per_pod_kib, pl.rss_per_pod_kib),
                    ratio(cpu(wl), cpu(pl)),
                    ratio(req(wl, PeerKind::Wasmlet), req(pl, peer)),
                );
            }
        }
    }
    s.push('\n');
}

fn footprint(r: &Report, s: &mut String) {
    let _ = writeln!(
        s,
        "### footprint: no pods, {} s\n\n| peer | agent RSS (MiB) | runtime RSS (MiB) | agent CPU (% of a CPU) | all CPU (%) |\n|---|---:|---:|---:|---:|",
        r.config.footprint_secs
    );
    let get = |p| match r.measured(Scenario::Footprint, p) {
        Some(Measured::Footprint(x)) => Some(&x.usage),
        _ => None,
    };
    for (peer, o) in rows(r, Scenario::Footprint) {
        let Some(u) = get(peer) else {
            not_done(s, peer, o, 4);
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.1} | {:.2} | {:.2} |",
            peer.label(),
            u.rss(Role::Agent),
            u.rss(Role::Runtime),
            u.cpu(Role::Agent),
            u.total_cpu()
        );
    }
    if let Some(w) = get(PeerKind::Wasmlet) {
        s.push_str("\n| wasmlet ÷ | all RSS | all CPU |\n|---|---:|---:|\n");
        for (peer, _) in rows(r, Scenario::Footprint).into_iter().filter(|(p, _)| *p != PeerKind::Wasmlet) {
            let Some(u) = get(peer) else { continue };
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                peer.label(),
                ratio(Some(w.total_rss()), Some(u.total_rss())),
                ratio(Some(w.total_cpu()), Some(u.total_cpu()))
            );
        }
    }
    s.push('\n');
}

fn nodes(r: &Report, s: &mut String) {
    let _ = writeln!(
        s,
        "### nodes: {} nodes × {} pods, spread by the scheduler\n\n| peer | Ready | to all Ready (s) | pods per node | NotReady seen | agents' RSS (MiB) | note |\n|---|---:|---:|---:|---:|---:|---|",
        r.config.nodes, r.config.pods_per_node
    );
    let get = |p| match r.measured(Scenario::Nodes, p) {
        Some(Measured::Nodes(x)) => Some(x),
        _ => None,
    };
    for (peer, o) in rows(r, Scenario::Nodes) {
        let Some(x) = get(peer) else {
            not_done(s, peer, o, 5);
            continue;
        };
        let _ = writeln!(
            s,
            "| {} | {}/{} | {} | {}–{} | {} | {} | {} |",
            peer.label(),
            x.ready,
            x.pods,
            num(x.to_ready_secs, 1),
            x.per_node_min,
            x.per_node_max,
            x.not_ready.len(),
            num(x.usage.as_ref().map(|u| u.total_rss()), 0),
            x.stopped.as_deref().map(first_line).unwrap_or_default()
        );
    }
    if let Some(w) = get(PeerKind::Wasmlet) {
        s.push_str("\n| wasmlet ÷ | to all Ready | agents' RSS |\n|---|---:|---:|\n");
        for (peer, _) in rows(r, Scenario::Nodes).into_iter().filter(|(p, _)| *p != PeerKind::Wasmlet) {
            let Some(x) = get(peer) else { continue };
            let rss = |n: &super::NodesResult| n.usage.as_ref().map(|u| u.total_rss());
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                peer.label(),
                ratio(w.to_ready_secs, x.to_ready_secs),
                ratio(rss(w), rss(x))
            );
        }
    }
    s.push('\n');
}
