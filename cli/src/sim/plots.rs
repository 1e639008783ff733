//! The simulation's plots, as SVG files: completion over time, completion time by hop
//! count, relay earnings, and how every closed channel ended on chain.

use std::path::{Path, PathBuf};

use eyre::eyre;
use plotters::prelude::*;

use super::report::{Figures, Summary, smt};

const SIZE: (u32, u32) = (800, 480);
const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
];

fn failed(error: impl std::fmt::Display) -> eyre::Report {
    eyre!("plotting: {error}")
}

/// Writes the four plots into `dir` and returns their paths.
pub(crate) fn write(
    dir: &Path,
    figures: &Figures,
    summary: &Summary,
) -> eyre::Result<Vec<PathBuf>> {
    let paths = vec![
        dir.join("completion.svg"),
        dir.join("completion_by_hops.svg"),
        dir.join("relay_earnings.svg"),
        dir.join("outcomes.svg"),
    ];
    completion(&paths[0], figures)?;
    by_hops(&paths[1], figures)?;
    earnings(&paths[2], figures)?;
    outcomes(&paths[3], summary)?;
    Ok(paths)
}

fn completion(path: &Path, figures: &Figures) -> eyre::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let hours = figures
        .series
        .last()
        .map_or(1.0, |s| s.at as f64 / 3_600.0)
        .max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption("Payments and data delivered over time", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..hours, 0.0..1.0)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("simulated hours")
        .y_desc("share so far")
        .draw()
        .map_err(failed)?;
    let share = |done: u64, all: u64| {
        if all == 0 {
            0.0
        } else {
            done as f64 / all as f64
        }
    };
    let payments = figures
        .series
        .iter()
        .map(|s| (s.at as f64 / 3_600.0, share(s.completed, s.requested)));
    chart
        .draw_series(LineSeries::new(payments, COLOURS[0].stroke_width(2)))
        .map_err(failed)?
        .label("payments completed / asked")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLOURS[0]));
    let data = figures.series.iter().map(|s| {
        (
            s.at as f64 / 3_600.0,
            share(s.packets_delivered, s.packets_sent),
        )
    });
    chart
        .draw_series(LineSeries::new(data, COLOURS[1].stroke_width(2)))
        .map_err(failed)?
        .label("packets delivered / sent")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLOURS[1]));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)
}

fn by_hops(path: &Path, figures: &Figures) -> eyre::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let curves: Vec<(usize, Vec<u64>)> = (1..=3)
        .map(|hops| (hops, figures.completion_times(hops)))
        .collect();
    let longest = curves
        .iter()
        .filter_map(|(_, times)| times.last())
        .max()
        .map_or(1.0, |secs| *secs as f64 / 60.0)
        .max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Time to complete a payment, by channels on its route",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..longest, 0.0..1.0)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("minutes from asking to completion")
        .y_desc("share of completed payments")
        .draw()
        .map_err(failed)?;
    for (hops, times) in curves {
        let colour = COLOURS[hops % COLOURS.len()];
        let count = times.len().max(1) as f64;
        let points = times
            .iter()
            .enumerate()
            .map(move |(n, secs)| (*secs as f64 / 60.0, (n + 1) as f64 / count));
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(failed)?
            .label(format!(
                "{hops} channel{} ({} payments)",
                if hops == 1 { "" } else { "s" },
                times.len()
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(failed)?;
    root.present().map_err(failed)
}

fn earnings(path: &Path, figures: &Figures) -> eyre::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let mut earned: Vec<f64> = figures
        .relay_earnings()
        .values()
        .map(|wei| smt(*wei))
        .collect();
    earned.sort_by(|a, b| b.total_cmp(a));
    let top = earned.first().copied().unwrap_or(1.0).max(1e-9) * 1.1;
    let count = earned.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "What each relaying phone earned for data",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(72)
        .build_cartesian_2d(0..count, 0.0..top)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .x_desc("relaying phones, by earnings")
        .y_desc("SMT earned")
        .draw()
        .map_err(failed)?;
    chart
        .draw_series(
            earned
                .iter()
                .enumerate()
                .map(|(n, smt)| Rectangle::new([(n, 0.0), (n + 1, *smt)], COLOURS[2].filled())),
        )
        .map_err(failed)?;
    root.present().map_err(failed)
}

fn outcomes(path: &Path, summary: &Summary) -> eyre::Result<()> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(failed)?;
    let names = [
        "honest_close",
        "stale_close_penalized",
        "stale_close_unpunished",
    ];
    let counts: Vec<usize> = names
        .iter()
        .map(|name| summary.outcomes.get(*name).copied().unwrap_or(0))
        .collect();
    let top = counts.iter().max().copied().unwrap_or(1).max(1) as f64 * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "How every closed channel ended on chain",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((0..names.len()).into_segmented(), 0.0..top)
        .map_err(failed)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_label_formatter(&|segment| match segment {
            SegmentValue::CenterOf(n) => names
                .get(*n)
                .map_or(String::new(), |name| name.replace('_', " ")),
            _ => String::new(),
        })
        .y_desc("channels")
        .draw()
        .map_err(failed)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(n, count)| {
            let colour = COLOURS[n % COLOURS.len()];
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(n), 0.0),
                    (SegmentValue::Exact(n + 1), *count as f64),
                ],
                colour.filled(),
            );
            bar.set_margin(0, 0, 30, 30);
            bar
        }))
        .map_err(failed)?;
    root.present().map_err(failed)
}
