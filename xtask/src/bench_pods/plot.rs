//! Two SVG plots of a run (plotters, SVG backend only): the CDF of
//! creation → Ready in the start scenario (steady and burst side by side)
//! and the density levels (total RSS and time to all Ready against pods).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::report::{Measured, Report};
use super::{PeerKind, Scenario};

/// Draws `start-cdf.svg` and `density.svg` into `out` (a plot without data
/// is drawn empty, saying so).
pub(crate) fn all(r: &Report, out: &Path) -> anyhow::Result<()> {
    start_cdf(r, &out.join("start-cdf.svg")).map_err(|e| anyhow::anyhow!("drawing the start CDF: {e}"))?;
    density(r, &out.join("density.svg")).map_err(|e| anyhow::anyhow!("drawing the density plot: {e}"))?;
    Ok(())
}

type Res = Result<(), Box<dyn std::error::Error>>;

/// (pods, total RSS MiB, seconds to all Ready) per density level.
type Level = (f64, f64, f64);
/// A peer's levels.
type Levels = Vec<(PeerKind, Vec<Level>)>;

fn color(peer: PeerKind) -> RGBColor {
    match peer {
        PeerKind::Kwok => RGBColor(120, 120, 120),
        PeerKind::Hollow => RGBColor(31, 119, 180),
        PeerKind::Kubelet => RGBColor(255, 127, 14),
        PeerKind::Wasmlet => RGBColor(214, 39, 40),
    }
}

fn start_cdf(r: &Report, path: &Path) -> Res {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    for (area, burst) in panels.iter().zip([false, true]) {
        let series: Vec<(PeerKind, Vec<(f64, f64)>)> = r
            .results
            .get(&Scenario::Start)
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|&peer| {
                let Some(Measured::Start(x)) = r.measured(Scenario::Start, peer) else { return None };
                let phase = if burst { &x.burst } else { &x.steady };
                let n = phase.ready_samples.len() as f64;
                let pts =
                    phase.ready_samples.iter().enumerate().map(|(i, s)| (s.max(1e-4), (i + 1) as f64 / n)).collect();
                Some((peer, pts))
            })
            .collect();
        let (lo, hi) = bounds(series.iter().flat_map(|(_, p)| p.iter().map(|(x, _)| *x)));
        let title = if burst {
            format!("burst of {}: creation → Ready", r.config.start_burst)
        } else {
            format!("{} at {}/s: creation → Ready", r.config.start_steady, r.config.start_rate)
        };
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0f64..1.0)?;
        chart.configure_mesh().x_desc("seconds (log)").y_desc("fraction of pods Ready").draw()?;
        for (peer, pts) in series {
            let c = color(peer);
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
                .label(peer.label())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        }
        legend(&mut chart)?;
    }
    root.present()?;
    Ok(())
}

fn density(r: &Report, path: &Path) -> Res {
    let root = SVGBackend::new(path, (1100, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 2));
    let levels: Levels = r
        .results
        .get(&Scenario::Density)
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(|&peer| {
            let Some(Measured::Density(x)) = r.measured(Scenario::Density, peer) else { return None };
            let pts = x
                .levels
                .iter()
                .filter_map(|l| Some((l.pods as f64, l.steady.as_ref()?.total_rss(), l.to_ready_secs?)))
                .collect();
            Some((peer, pts))
        })
        .collect();
    let (xlo, xhi) = bounds(r.config.density.iter().map(|&n| n as f64));
    panel(&panels[0], "memory of the node's processes at steady state", "RSS (MiB, log)", (xlo, xhi), &levels, |p| {
        p.1
    })?;
    panel(&panels[1], "time until all pods are Ready", "seconds (log)", (xlo, xhi), &levels, |p| p.2)?;
    root.present()?;
    Ok(())
}

fn panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    y_desc: &str,
    (xlo, xhi): (f64, f64),
    levels: &Levels,
    y: fn(&Level) -> f64,
) -> Res {
    let (ylo, yhi) = bounds(levels.iter().flat_map(|(_, p)| p.iter().map(y)));
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())?;
    chart.configure_mesh().x_desc("idle pods on one node (log)").y_desc(y_desc).draw()?;
    for (peer, pts) in levels {
        let c = color(*peer);
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, y(p))).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))?
            .label(peer.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart.draw_series(line.into_iter().map(|p| Circle::new(p, 4, c.filled())))?;
    }
    legend(&mut chart)
}

fn legend<'a, DB: DrawingBackend + 'a, C: plotters::coord::CoordTranslate>(chart: &mut ChartContext<'a, DB, C>) -> Res
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// A log axis range around `values` (half a decade of room; 0.01..10 when empty).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi <= 0.0 { (0.01, 10.0) } else { (lo / 1.5, hi * 1.5) }
}
