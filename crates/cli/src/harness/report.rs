//! The report of a reproduction run: one document model rendered both as
//! Markdown and as HTML, and the plots (plotters, PNG).
use super::summary::{EvalPoint, Spread};
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::path::Path;

/// One block of a report.
#[derive(Debug, Clone)]
pub enum Block {
    /// A heading (level 1-3).
    Heading(u8, String),
    /// A paragraph of plain text.
    Para(String),
    /// A bullet list.
    List(Vec<String>),
    /// A table: header and rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// An image (path relative to the report) with a caption.
    Image(String, String),
    /// Preformatted text (commands).
    Code(String),
}

/// Renders blocks as Markdown.
pub fn to_markdown(blocks: &[Block]) -> String {
    let mut s = String::new();
    for b in blocks {
        match b {
            Block::Heading(l, t) => s += &format!("{} {t}\n\n", "#".repeat(*l as usize)),
            Block::Para(t) => s += &format!("{t}\n\n"),
            Block::List(items) => {
                for i in items {
                    s += &format!("- {i}\n");
                }
                s += "\n";
            }
            Block::Table(h, rows) => {
                s += &format!("| {} |\n|{}\n", h.join(" | "), " --- |".repeat(h.len()));
                for r in rows {
                    s += &format!("| {} |\n", r.join(" | "));
                }
                s += "\n";
            }
            Block::Image(p, c) => s += &format!("![{c}]({p})\n\n*{c}*\n\n"),
            Block::Code(t) => s += &format!("```\n{t}\n```\n\n"),
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Renders blocks as a self-contained HTML page (images referenced by path).
pub fn to_html(title: &str, blocks: &[Block]) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>\
body{{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}}\
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}\
th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}\
pre{{background:#f4f4f4;padding:8px}}figure{{margin:1em 0}}</style></head><body>\n",
        esc(title)
    );
    for b in blocks {
        match b {
            Block::Heading(l, t) => s += &format!("<h{l}>{}</h{l}>\n", esc(t)),
            Block::Para(t) => s += &format!("<p>{}</p>\n", esc(t)),
            Block::List(items) => {
                s += "<ul>\n";
                for i in items {
                    s += &format!("<li>{}</li>\n", esc(i));
                }
                s += "</ul>\n";
            }
            Block::Table(h, rows) => {
                s += "<table><tr>";
                for c in h {
                    s += &format!("<th>{}</th>", esc(c));
                }
                s += "</tr>\n";
                for r in rows {
                    s += "<tr>";
                    for c in r {
                        s += &format!("<td>{}</td>", esc(c));
                    }
                    s += "</tr>\n";
                }
                s += "</table>\n";
            }
            Block::Image(p, c) => {
                s += &format!(
                    "<figure><img src=\"{}\" alt=\"{}\"><figcaption>{}</figcaption></figure>\n",
                    esc(p),
                    esc(c),
                    esc(c)
                )
            }
            Block::Code(t) => s += &format!("<pre>{}</pre>\n", esc(t)),
        }
    }
    s + "</body></html>\n"
}

/// Formats an optional spread, `—` when absent.
pub fn show(s: &Option<Spread>, digits: usize) -> String {
    s.as_ref().map_or_else(|| "—".to_string(), |s| s.show(digits))
}

static FONT: std::sync::Once = std::sync::Once::new();

fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        );
    });
}

/// A line to plot: label, colour index, points (x, y), and whether it is a
/// secondary (lighter) line.
pub struct Line {
    /// Legend label.
    pub label: String,
    /// Colour index into the palette.
    pub colour: usize,
    /// Points.
    pub points: Vec<(f64, f64)>,
    /// Drawn lighter (e.g. the same curve shifted by the mapping's time).
    pub light: bool,
}

/// Draws lines into a PNG with a log-scaled x axis (`log_x`) or linear.
pub fn plot_lines(path: &Path, title: &str, x_label: &str, y_label: &str, lines: &[Line], log_x: bool) -> Result<()> {
    register_font();
    let pts: Vec<(f64, f64)> =
        lines.iter().flat_map(|l| l.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    if pts.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (mut y0, mut y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    if log_x {
        x0 = x0.max(1e-3) * 0.8;
        x1 = x1.max(x0 * 2.0) * 1.2;
    } else if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
        let palette = [
            RGBColor(31, 119, 180),
            RGBColor(214, 39, 40),
            RGBColor(44, 160, 44),
            RGBColor(148, 103, 189),
            RGBColor(255, 127, 14),
            RGBColor(140, 86, 75),
        ];
        let mut builder = ChartBuilder::on(&root);
        builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(60);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(x_label)
                    .y_desc(y_label)
                    .label_style(("sans-serif", 13))
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                for l in lines {
                    let base = palette[l.colour % palette.len()];
                    let colour = if l.light { base.mix(0.35) } else { base.mix(1.0) };
                    let style = ShapeStyle { color: colour, filled: true, stroke_width: if l.light { 1 } else { 2 } };
                    let pts: Vec<(f64, f64)> = l
                        .points
                        .iter()
                        .copied()
                        .filter(|(x, y)| x.is_finite() && y.is_finite() && (!log_x || *x > 0.0))
                        .collect();
                    chart
                        .draw_series(LineSeries::new(pts.clone(), style))
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .label(l.label.clone())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                    chart
                        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, style)))
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 13))
                    .draw()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }};
        }
        if log_x {
            draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(|e| anyhow::anyhow!("{e}"))?);
        } else {
            draw!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// FID (or another metric) against GAN training time, one line per pipeline
/// and seed; dual pipelines also drawn lighter at GAN + mapping time.
pub fn metric_vs_time(path: &Path, metric: &str, points: &[EvalPoint]) -> Result<()> {
    let mut keys: Vec<(String, u64)> = Vec::new();
    for p in points {
        if !keys.contains(&(p.pipeline.clone(), p.seed)) {
            keys.push((p.pipeline.clone(), p.seed));
        }
    }
    let mut pipes: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
    pipes.dedup();
    let mut lines = Vec::new();
    for (pipe, seed) in &keys {
        let colour = pipes.iter().position(|p| p == pipe).unwrap_or(0);
        let mut pts: Vec<&EvalPoint> = points.iter().filter(|p| &p.pipeline == pipe && p.seed == *seed).collect();
        pts.sort_by(|a, b| a.gan_seconds.total_cmp(&b.gan_seconds));
        let xy = |shift: bool| -> Vec<(f64, f64)> {
            pts.iter()
                .filter_map(|p| {
                    p.metrics.get(metric).map(|v| (p.gan_seconds + if shift { p.map_seconds } else { 0.0 }, *v))
                })
                .collect()
        };
        lines.push(Line { label: format!("{pipe} seed {seed}"), colour, points: xy(false), light: false });
        if pts.first().is_some_and(|p| p.map_seconds > 0.0) {
            lines.push(Line {
                label: format!("{pipe} seed {seed} incl. mapping"),
                colour,
                points: xy(true),
                light: true,
            });
        }
    }
    plot_lines(path, &format!("{metric} vs training time"), "training seconds (log)", metric, &lines, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_and_html_hold_every_block() {
        let blocks = vec![
            Block::Heading(1, "Title".into()),
            Block::Para("a < b".into()),
            Block::List(vec!["one".into()]),
            Block::Table(vec!["k".into(), "v".into()], vec![vec!["x".into(), "1".into()]]),
            Block::Image("p.png".into(), "cap".into()),
            Block::Code("cmd".into()),
        ];
        let md = to_markdown(&blocks);
        assert!(
            md.contains("# Title")
                && md.contains("| k | v |")
                && md.contains("| x | 1 |")
                && md.contains("![cap](p.png)")
        );
        let html = to_html("T", &blocks);
        assert!(
            html.contains("<h1>Title</h1>")
                && html.contains("a &lt; b")
                && html.contains("<td>1</td>")
                && html.contains("src=\"p.png\"")
        );
    }

    #[test]
    fn plot_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fid.png");
        let mk = |pipe: &str, t: f64, v: f64, m: f64| EvalPoint {
            seed: 1,
            pipeline: pipe.into(),
            step: 1,
            gan_seconds: t,
            map_seconds: m,
            eval_seconds: 0.1,
            metrics: [("fid_judge".to_string(), v)].into_iter().collect(),
        };
        let pts = vec![
            mk("pixel", 1.0, 200.0, 0.0),
            mk("pixel", 10.0, 90.0, 0.0),
            mk("dual-ae", 1.0, 150.0, 20.0),
            mk("dual-ae", 5.0, 120.0, 20.0),
        ];
        metric_vs_time(&p, "fid_judge", &pts).unwrap();
        let img = image::open(&p).unwrap();
        assert_eq!((img.width(), img.height()), (900, 520));
        // Not a blank canvas: some non-white pixels.
        assert!(img.to_rgb8().pixels().filter(|px| px.0 != [255, 255, 255]).count() > 1000);
    }
}
