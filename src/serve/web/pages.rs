//! The read-only merchant pages as HTML strings: brands (or categories, products) ranked
//! by how they run, and the model page (training summary, reliability plot, worth
//! table). Pure functions of the model and its artifact header, shared by the server
//! and `runsize report`. The brand page lives in [`super::brand_page`].

use super::html::{esc, pct, signed, url};
use super::svg::{dot_interval, reliability, DotChart, DotRow};
use crate::model::artifact::ArtifactHeader;
use crate::model::insight::flags::{product_flag, FlagOptions};
use crate::model::insight::worth::HeldOut;
use crate::model::predictor::Predictor;
use crate::model::report::{FitProfile, ProfileBy};
use std::fmt::Write;

/// Most rows drawn on the ranking page (search to narrow).
pub const MAX_ROWS: usize = 150;

/// What the ranking page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct RankParams {
    /// Brands, categories or products. Default brands.
    pub by: ProfileBy,
    /// Case-insensitive substring of the name (or a product's brand). Default empty.
    pub q: String,
    /// `score` (default), `offset`, `name` or `n`.
    pub sort: String,
    /// Descending (default true, except by name).
    pub desc: bool,
}

impl Default for RankParams {
    fn default() -> Self {
        RankParams {
            by: ProfileBy::Brand,
            q: String::new(),
            sort: "score".into(),
            desc: true,
        }
    }
}

/// The name of a profile kind in URLs.
pub fn by_name(by: ProfileBy) -> &'static str {
    match by {
        ProfileBy::Brand => "brand",
        ProfileBy::Category => "category",
        ProfileBy::Product => "product",
    }
}

/// Profiles matching `p.q`, sorted by `p.sort`.
pub fn select<'a>(profiles: &'a [FitProfile], p: &RankParams) -> Vec<&'a FitProfile> {
    let q = p.q.trim().to_lowercase();
    let mut v: Vec<&FitProfile> = profiles
        .iter()
        .filter(|f| {
            q.is_empty()
                || f.key.to_lowercase().contains(&q)
                || f.brand
                    .as_deref()
                    .is_some_and(|b| b.to_lowercase().contains(&q))
        })
        .collect();
    v.sort_by(|a, b| {
        let o = match p.sort.as_str() {
            "offset" => a.offset.total_cmp(&b.offset),
            "n" => a.n.cmp(&b.n),
            "name" => a.key.cmp(&b.key),
            _ => a.score.total_cmp(&b.score),
        };
        let o = if p.desc { o.reverse() } else { o };
        o.then_with(|| a.key.cmp(&b.key))
    });
    v
}

fn rank_link(p: &RankParams, sort: &str, desc: bool) -> String {
    format!(
        "/?by={}&amp;q={}&amp;sort={sort}&amp;order={}",
        by_name(p.by),
        url(&p.q),
        if desc { "desc" } else { "asc" }
    )
}

fn option(value: &str, text: &str, selected: bool) -> String {
    format!(
        "<option value=\"{}\"{}>{}</option>",
        esc(value),
        if selected { " selected" } else { "" },
        esc(text)
    )
}

/// The ranking page body. `links`: link brand names to their pages (false in reports,
/// where brand sections are anchors `#brand-<name>`).
pub fn ranking(model: &Predictor, profiles: &[FitProfile], p: &RankParams, live: bool) -> String {
    let kind = match p.by {
        ProfileBy::Brand => "brands",
        ProfileBy::Category => "categories",
        ProfileBy::Product => "products",
    };
    let rows = select(profiles, p);
    let mut s = String::with_capacity(16 * 1024);
    let _ = write!(s, "<h1>How {kind} run</h1>");
    s.push_str("<p class=\"lede\">Each dot is how many sizes it runs against the catalogue's average sizing (the line at 0): right of it runs <strong>large</strong>, left runs <strong>small</strong>. The bar is the 95% interval; hover a dot for details. The table below has the same numbers.</p>");
    if live {
        s.push_str("<form class=\"controls\" method=\"get\" action=\"/\" role=\"search\">");
        let _ = write!(
            s,
            "<label>Search <input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"name contains\"></label>",
            esc(&p.q)
        );
        s.push_str("<label>Show <select name=\"by\">");
        for by in [ProfileBy::Brand, ProfileBy::Category, ProfileBy::Product] {
            s.push_str(&option(by_name(by), by_name(by), by == p.by));
        }
        s.push_str("</select></label><label>Sort by <select name=\"sort\">");
        for (v, t) in [
            ("score", "certain effect"),
            ("offset", "runs (sizes)"),
            ("name", "name"),
            ("n", "events"),
        ] {
            s.push_str(&option(v, t, v == p.sort));
        }
        s.push_str("</select></label><label>Order <select name=\"order\">");
        s.push_str(&option("desc", "descending", p.desc));
        s.push_str(&option("asc", "ascending", !p.desc));
        s.push_str("</select></label><button type=\"submit\">Apply</button></form>");
    }
    if profiles.is_empty() {
        let _ = write!(
            s,
            "<p class=\"note\">The model has no {kind} (its training data had no such column). {}</p>",
            if p.by == ProfileBy::Brand && live {
                "See <a href=\"/?by=category\">categories</a> or <a href=\"/?by=product\">products</a>."
            } else {
                ""
            }
        );
        return s;
    }
    let shown = &rows[..rows.len().min(MAX_ROWS)];
    let _ = write!(
        s,
        "<p class=\"count\">{} of {} {kind}{}.</p>",
        shown.len(),
        profiles.len(),
        if rows.len() > shown.len() {
            format!(" shown ({} match; search to narrow)", rows.len())
        } else {
            String::new()
        }
    );
    let href = |f: &FitProfile| match (p.by, live) {
        (ProfileBy::Brand, true) => Some(format!("/brands/{}", url(&f.key))),
        (ProfileBy::Brand, false) => Some(format!("#brand-{}", url(&f.key))),
        _ => None,
    };
    let chart = DotChart {
        title: format!("How {kind} run, in sizes"),
        desc: format!(
            "Dot and 95% interval per {}: sizes it runs against the catalogue average; positive runs large.",
            by_name(p.by)
        ),
        rows: shown
            .iter()
            .map(|f| DotRow {
                label: f.key.clone(),
                href: href(f),
                value: f.offset,
                interval: f.interval,
                reference: None,
                note: format!(
                    "{}: runs {} sizes (95% {} to {}), {} events; {}",
                    f.key,
                    signed(f.offset),
                    signed(f.interval[0]),
                    signed(f.interval[1]),
                    f.n,
                    f.verdict
                ),
            })
            .collect(),
        zero_line: true,
        axis: "← runs small · sizes · runs large →".into(),
        ..DotChart::default()
    };
    s.push_str("<figure>");
    s.push_str(&dot_interval(&chart, "rank"));
    s.push_str("</figure>");
    // the same numbers as a table, with sortable headers
    let head = |sort: &str, text: &str| {
        if !live {
            return format!("<th scope=\"col\">{text}</th>");
        }
        let current = p.sort == sort;
        let desc = if current { !p.desc } else { sort != "name" };
        let aria = if current {
            format!(
                " aria-sort=\"{}\"",
                if p.desc { "descending" } else { "ascending" }
            )
        } else {
            String::new()
        };
        format!(
            "<th scope=\"col\"{aria}><a href=\"{}\">{text}</a></th>",
            rank_link(p, sort, desc)
        )
    };
    s.push_str("<table class=\"data\"><caption>Numbers behind the chart</caption><thead><tr>");
    s.push_str(&head("name", "Name"));
    if p.by == ProfileBy::Product {
        s.push_str("<th scope=\"col\">Brand</th>");
    }
    s.push_str(&head("offset", "Runs (sizes)"));
    s.push_str("<th scope=\"col\">95% interval</th>");
    s.push_str(&head("n", "Events"));
    s.push_str(&head("score", "Verdict"));
    s.push_str("<th scope=\"col\">Advice</th>");
    if p.by == ProfileBy::Product {
        s.push_str("<th scope=\"col\">Flag</th>");
    }
    s.push_str("</tr></thead><tbody>");
    let opts = FlagOptions::default();
    for f in shown {
        let name = match href(f) {
            Some(h) => format!("<a href=\"{}\">{}</a>", esc(&h), esc(&f.key)),
            None => esc(&f.key),
        };
        let _ = write!(s, "<tr><th scope=\"row\">{name}</th>");
        if p.by == ProfileBy::Product {
            let _ = write!(s, "<td>{}</td>", esc(f.brand.as_deref().unwrap_or("")));
        }
        let _ = write!(
            s,
            "<td class=\"num\">{}</td><td class=\"num\">{} to {}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td>",
            signed(f.offset),
            signed(f.interval[0]),
            signed(f.interval[1]),
            f.n,
            esc(&f.verdict),
            esc(&f.advice)
        );
        if p.by == ProfileBy::Product {
            let flag = model
                .product_index(&f.key)
                .and_then(|i| product_flag(model, i as usize, &opts));
            let _ = write!(s, "<td>{}</td>", flag_cell(flag.as_ref()));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// A product flag as a table cell's HTML (empty when not flagged).
pub fn flag_cell(flag: Option<&crate::model::insight::flags::ProductFlag>) -> String {
    match flag {
        Some(f) => format!(
            "<span class=\"flag {}\" title=\"{}\">{} ({})</span>",
            esc(&f.flag),
            esc(&f.evidence),
            esc(&f.advice),
            pct(f.probability)
        ),
        None => String::new(),
    }
}

/// The model page body: training summary, held-out reliability plot and worth table.
pub fn model_page(model: &Predictor, header: &ArtifactHeader) -> String {
    let sm = &model.summary;
    let mut s = String::with_capacity(16 * 1024);
    s.push_str("<h1>The model</h1><section aria-labelledby=\"training\"><h2 id=\"training\">Training</h2><dl class=\"summary\">");
    let total = sm.outcome_counts.iter().sum::<u64>().max(1) as f64;
    let items = [
        ("Model id", esc(&header.model_id)),
        ("runsize version", esc(&header.runsize_version)),
        ("Source", esc(&sm.source)),
        ("Events read", sm.events.to_string()),
        (
            "Fit events (small / fit / large)",
            sm.fit_events.to_string(),
        ),
        (
            "Outcomes",
            format!(
                "{} small, {} fit, {} large",
                pct(sm.outcome_counts[0] as f64 / total),
                pct(sm.outcome_counts[1] as f64 / total),
                pct(sm.outcome_counts[2] as f64 / total)
            ),
        ),
        (
            "Customers · products · brands · categories · sizes",
            format!(
                "{} · {} · {} · {} · {}",
                sm.customers, sm.products, sm.brands, sm.categories, sm.sizes
            ),
        ),
        (
            "Fit",
            format!(
                "{} iterations, {}, {:.1} s",
                sm.iterations,
                if sm.converged {
                    "converged"
                } else {
                    "not converged"
                },
                sm.fit_seconds
            ),
        ),
        (
            "Second stage",
            if model.stack.is_some() {
                "yes".into()
            } else {
                "no (structural model only)".into()
            },
        ),
    ];
    for (k, v) in items {
        let _ = write!(s, "<dt>{k}</dt><dd>{v}</dd>");
    }
    s.push_str("</dl></section>");
    s.push_str(
        "<section aria-labelledby=\"calibration\"><h2 id=\"calibration\">Held-out calibration</h2>",
    );
    match &header.held_out {
        Some(h) => held_out_section(&mut s, h),
        None => s.push_str("<p class=\"note\">This model carries no held-out evaluation. Train with a held-out part, e.g. <code>runsize train --split 80,10,10 --part train ...</code>: the trainer evaluates on the validation part and stores the reliability and worth tables in the artifact. <code>runsize eval</code> prints both for any events.</p>"),
    }
    s.push_str("</section>");
    s
}

fn held_out_section(s: &mut String, h: &HeldOut) {
    let _ = write!(
        s,
        "<p>{} held-out purchases ({}): average AUC {:.3}, log loss {:.3}, calibration error {:.3}.</p>",
        h.n,
        esc(&h.source),
        h.auc_avg,
        h.log_loss,
        h.ece
    );
    s.push_str("<figure>");
    s.push_str(&reliability(&h.reliability, "rel"));
    s.push_str("<figcaption>Reliability: bins of predicted probability against the observed rate, per outcome.</figcaption></figure>");
    s.push_str("<details><summary>Reliability table</summary><table class=\"data\"><thead><tr><th scope=\"col\">Outcome</th><th scope=\"col\">Bin</th><th scope=\"col\">Purchases</th><th scope=\"col\">Predicted</th><th scope=\"col\">Observed</th></tr></thead><tbody>");
    for r in &h.reliability {
        for b in &r.bins {
            let _ = write!(
                s,
                "<tr><td>{}</td><td class=\"num\">{:.1}–{:.1}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td></tr>",
                esc(&r.outcome),
                b.lo,
                b.hi,
                b.n,
                b.predicted,
                b.observed
            );
        }
    }
    s.push_str("</tbody></table></details>");
    s.push_str("<h2 id=\"worth\">What the advice is worth</h2><p>Held-out purchases whose bought size was the size runsize would have recommended (from what was known before the purchase), against those of another size, by the recommendation's confidence: the offline view of a size-advice A/B test.</p>");
    s.push_str(&worth_table(&h.worth));
}

/// The worth table as HTML.
pub fn worth_table(rows: &[crate::model::insight::worth::WorthRow]) -> String {
    let mut s = String::from("<table class=\"data worth\"><caption>Fit rate when the bought size was the recommended one, vs another size</caption><thead><tr><th scope=\"col\">Confidence</th><th scope=\"col\">Bought recommended: n</th><th scope=\"col\">fit rate</th><th scope=\"col\">Bought other: n</th><th scope=\"col\">fit rate</th><th scope=\"col\">smaller: n · fit rate</th><th scope=\"col\">larger: n · fit rate</th></tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            s,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} · {}</td><td class=\"num\">{} · {}</td></tr>",
            esc(&r.level),
            r.matched_n,
            pct(r.matched_fit_rate),
            r.other_n,
            pct(r.other_fit_rate),
            r.smaller_n,
            pct(r.smaller_fit_rate),
            r.larger_n,
            pct(r.larger_fit_rate)
        );
    }
    s.push_str("</tbody></table>");
    s
}
