//! Server-side SVG charts of the merchant pages (no script, no external assets): a
//! dot-and-interval chart (brands ranked by how they run; a brand's size labels on the
//! common scale) and a reliability plot (predicted vs observed outcome rates).

use super::html::esc;
use crate::model::insight::worth::Reliability;
use std::fmt::Write;

/// One row of a dot-and-interval chart.
#[derive(Clone, Debug, PartialEq)]
pub struct DotRow {
    /// Row label.
    pub label: String,
    /// Link of the label, if any.
    pub href: Option<String>,
    /// The dot.
    pub value: f64,
    /// Interval `[lo, hi]`.
    pub interval: [f64; 2],
    /// A hollow reference marker (e.g. the catalogue's typical label), if any.
    pub reference: Option<f64>,
    /// Tooltip / accessible text of the row.
    pub note: String,
}

/// A dot-and-interval chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DotChart {
    /// Accessible title.
    pub title: String,
    /// Accessible description.
    pub desc: String,
    /// Rows, top to bottom.
    pub rows: Vec<DotRow>,
    /// Axis ticks `(position, text)`; default: whole and half sizes.
    pub ticks: Vec<(f64, String)>,
    /// Draw a line at zero (the catalogue average).
    pub zero_line: bool,
    /// Axis caption.
    pub axis: String,
}

const LEFT: f64 = 190.0;
const PLOT: f64 = 560.0;
const ROW: f64 = 22.0;
const TOP: f64 = 46.0;

fn fmt_num(x: f64) -> String {
    format!("{x:.1}")
}

/// Render `c` as an inline SVG element.
pub fn dot_interval(c: &DotChart, id: &str) -> String {
    let finite = |x: f64| x.is_finite();
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for r in &c.rows {
        for x in [r.value, r.interval[0], r.interval[1]]
            .into_iter()
            .chain(r.reference)
            .filter(|x| finite(*x))
        {
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    if c.zero_line {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(0.1);
    let (lo, hi) = (lo - pad, hi + pad);
    let x = |v: f64| LEFT + (v.clamp(lo, hi) - lo) / (hi - lo) * PLOT;
    let height = TOP + ROW * c.rows.len().max(1) as f64 + 10.0;
    let width = LEFT + PLOT + 20.0;
    let mut s = String::with_capacity(256 + 300 * c.rows.len());
    let _ = write!(
        s,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" data-rows=\"{}\">",
        c.rows.len()
    );
    let _ = write!(
        s,
        "<title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(&c.title),
        esc(&c.desc)
    );
    // axis and ticks
    let ticks: Vec<(f64, String)> = if c.ticks.is_empty() {
        let step = if hi - lo > 6.0 { 1.0 } else { 0.5 };
        let mut t = (lo / step).ceil() * step;
        let mut v = Vec::new();
        while t <= hi {
            v.push((t, format!("{t:+}").replace("+0", "0")));
            t += step;
        }
        v
    } else {
        c.ticks
            .iter()
            .filter(|(t, _)| *t >= lo && *t <= hi)
            .cloned()
            .collect()
    };
    let bottom = height - 10.0;
    for (t, text) in &ticks {
        let xt = x(*t);
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{bottom}\"/><text class=\"tick\" x=\"{0}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
            fmt_num(xt),
            TOP - 8.0,
            TOP - 14.0,
            esc(text)
        );
    }
    let _ = write!(
        s,
        "<text class=\"axis\" x=\"{}\" y=\"14\" text-anchor=\"middle\">{}</text>",
        LEFT + PLOT / 2.0,
        esc(&c.axis)
    );
    if c.zero_line {
        let _ = write!(
            s,
            "<line class=\"zero\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{bottom}\"/>",
            fmt_num(x(0.0)),
            TOP - 8.0
        );
    }
    for (i, r) in c.rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + ROW / 2.0;
        s.push_str("<g class=\"row\">");
        let label = esc(&r.label);
        match &r.href {
            Some(h) => {
                let _ = write!(
                    s,
                    "<a href=\"{}\"><text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text></a>",
                    esc(h),
                    LEFT - 8.0,
                    y + 4.0
                );
            }
            None => {
                let _ = write!(
                    s,
                    "<text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{label}</text>",
                    LEFT - 8.0,
                    y + 4.0
                );
            }
        }
        if r.interval.iter().all(|v| v.is_finite()) {
            let _ = write!(
                s,
                "<line class=\"ci\" x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\"/>",
                fmt_num(x(r.interval[0])),
                fmt_num(x(r.interval[1]))
            );
        }
        if let Some(t) = r.reference.filter(|v| v.is_finite()) {
            let _ = write!(
                s,
                "<circle class=\"ref\" cx=\"{}\" cy=\"{y}\" r=\"5\"/>",
                fmt_num(x(t))
            );
        }
        if r.value.is_finite() {
            let _ = write!(
                s,
                "<circle class=\"dot\" cx=\"{}\" cy=\"{y}\" r=\"4.5\"><title>{}</title></circle>",
                fmt_num(x(r.value)),
                esc(&r.note)
            );
        }
        s.push_str("</g>");
    }
    s.push_str("</svg>");
    s
}

/// A reliability plot of each outcome's predicted vs observed rate, with the diagonal.
pub fn reliability(rel: &[Reliability], id: &str) -> String {
    const SIZE: f64 = 300.0;
    const M: f64 = 44.0;
    let px = |v: f64| M + v.clamp(0.0, 1.0) * SIZE;
    let py = |v: f64| M + SIZE - v.clamp(0.0, 1.0) * SIZE;
    let total = M * 2.0 + SIZE;
    let mut s = String::with_capacity(4096);
    let points: usize = rel.iter().map(|r| r.bins.len()).sum();
    let _ = write!(
        s,
        "<svg class=\"chart reliability\" viewBox=\"0 0 {w} {total}\" width=\"{w}\" height=\"{total}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" data-points=\"{points}\">",
        w = total + 110.0
    );
    let _ = write!(
        s,
        "<title id=\"{id}-t\">Reliability: predicted vs observed outcome rates</title><desc id=\"{id}-d\">Each point is a bin of held-out purchases: the mean predicted probability of an outcome (x) against how often it happened (y). Points on the diagonal are well calibrated. The table below lists the same numbers.</desc>"
    );
    for k in 0..=5 {
        let v = f64::from(k) / 5.0;
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{0}\" x2=\"{0}\" y1=\"{1}\" y2=\"{2}\"/><line class=\"grid\" x1=\"{xa}\" x2=\"{xb}\" y1=\"{3}\" y2=\"{3}\"/><text class=\"tick\" x=\"{0}\" y=\"{4}\" text-anchor=\"middle\">{v:.1}</text><text class=\"tick\" x=\"{5}\" y=\"{6}\" text-anchor=\"end\">{v:.1}</text>",
            fmt_num(px(v)),
            fmt_num(py(1.0)),
            fmt_num(py(0.0)),
            fmt_num(py(v)),
            fmt_num(py(0.0) + 16.0),
            fmt_num(px(0.0) - 6.0),
            fmt_num(py(v) + 4.0),
            xa = fmt_num(px(0.0)),
            xb = fmt_num(px(1.0)),
        );
    }
    let _ = write!(
        s,
        "<line class=\"diag\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
        px(0.0),
        py(0.0),
        px(1.0),
        py(1.0)
    );
    let _ = write!(
        s,
        "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">predicted probability</text><text class=\"axis\" transform=\"translate(12 {}) rotate(-90)\" text-anchor=\"middle\">observed rate</text>",
        px(0.5),
        total - 6.0,
        py(0.5)
    );
    for (k, r) in rel.iter().enumerate() {
        let class = format!("series-{}", esc(&r.outcome));
        let pts: Vec<String> = r
            .bins
            .iter()
            .map(|b| format!("{},{}", fmt_num(px(b.predicted)), fmt_num(py(b.observed))))
            .collect();
        let _ = write!(
            s,
            "<polyline class=\"{class}\" fill=\"none\" points=\"{}\"/>",
            pts.join(" ")
        );
        for b in &r.bins {
            let _ = write!(
                s,
                "<circle class=\"dot {class}\" cx=\"{}\" cy=\"{}\" r=\"{:.1}\"><title>{}: predicted {:.3}, observed {:.3}, {} purchases</title></circle>",
                fmt_num(px(b.predicted)),
                fmt_num(py(b.observed)),
                (2.5 + (b.n as f64).log10()).clamp(2.5, 7.0),
                esc(&r.outcome),
                b.predicted,
                b.observed,
                b.n
            );
        }
        let ly = M + 18.0 * k as f64;
        let _ = write!(
            s,
            "<circle class=\"dot {class}\" cx=\"{}\" cy=\"{ly}\" r=\"5\"/><text class=\"tick\" x=\"{}\" y=\"{}\">{}</text>",
            total + 14.0,
            total + 24.0,
            ly + 4.0,
            esc(&r.outcome)
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::insight::worth::ReliabilityBin;

    #[test]
    fn dot_chart_has_a_dot_per_row_and_escapes() {
        let c = DotChart {
            title: "t".into(),
            desc: "d".into(),
            rows: vec![
                DotRow {
                    label: "A<b>".into(),
                    href: Some("/brands/A%3Cb%3E".into()),
                    value: 0.5,
                    interval: [0.3, 0.7],
                    reference: None,
                    note: "n".into(),
                },
                DotRow {
                    label: "Z".into(),
                    href: None,
                    value: -1.0,
                    interval: [-1.2, -0.8],
                    reference: Some(0.0),
                    note: "m".into(),
                },
            ],
            zero_line: true,
            ..DotChart::default()
        };
        let svg = dot_interval(&c, "x");
        assert_eq!(svg.matches("class=\"dot\"").count(), 2);
        assert_eq!(svg.matches("class=\"ci\"").count(), 2);
        assert_eq!(svg.matches("class=\"ref\"").count(), 1);
        assert!(svg.contains("A&lt;b&gt;"));
        assert!(svg.contains("class=\"zero\""));
        assert!(svg.contains("data-rows=\"2\""));
    }

    #[test]
    fn reliability_points() {
        let rel = vec![Reliability {
            outcome: "fit".into(),
            bins: vec![ReliabilityBin {
                lo: 0.7,
                hi: 0.8,
                n: 100,
                predicted: 0.75,
                observed: 0.74,
            }],
        }];
        let svg = reliability(&rel, "r");
        assert!(svg.contains("data-points=\"1\""));
        assert!(svg.contains("observed 0.740, 100 purchases"));
    }
}
