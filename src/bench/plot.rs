//! The recall-against-latency plot of `docent bench retrieval --plot`.

use std::path::Path;

use anyhow::Result;

use super::retrieval::Report;

pub fn plot(path: &Path, r: &Report) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_x = r
        .corpora
        .iter()
        .flat_map(|c| c.sweep.iter().map(|e| e.hnsw_ms.p50))
        .fold(0.0f64, f64::max)
        * 1.1;
    let min_y = r
        .corpora
        .iter()
        .flat_map(|c| c.sweep.iter().map(|e| e.recall))
        .fold(1.0f64, f64::min)
        .min(0.9)
        - 0.02;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("docent: recall@{} against HNSW search latency", r.k),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_x.max(0.01), min_y..1.0)?;
    chart
        .configure_mesh()
        .x_desc("p50 latency (ms)")
        .y_desc(format!("recall@{}", r.k))
        .draw()?;
    for (i, c) in r.corpora.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = c.sweep.iter().map(|e| (e.hnsw_ms.p50, e.recall)).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(format!("{} ({} vectors)", c.name, c.vectors))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    root.present()?;
    Ok(())
}
