//! The brand page: the brand's normalised size chart (one chart per size system, each
//! label's position on the common scale against the catalogue's typical label), its
//! products with their flags, and the conversion table to another brand.

use super::html::{esc, pct, signed, url};
use super::pages::flag_cell;
use super::svg::{dot_interval, DotChart, DotRow};
use crate::model::insight::chart::{
    fits_phrase, size_chart, typical_labels, ChartQuery, SizeChart,
};
use crate::model::insight::convert::{convert, Conversion, ConvertQuery};
use crate::model::insight::flags::{product_flag, product_offset, FlagOptions};
use crate::model::insight::InsightError;
use crate::model::predictor::Predictor;
use std::fmt::Write;

/// Most products listed on a brand page.
pub const MAX_PRODUCTS: usize = 200;

/// What the brand page shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrandParams {
    /// Only this category's products (chart and conversion).
    pub category: Option<String>,
    /// Convert to this brand.
    pub to: Option<String>,
}

/// The brand page body for brand `name`; `live` adds the forms (false in reports).
pub fn brand_page(
    model: &Predictor,
    name: &str,
    p: &BrandParams,
    live: bool,
) -> Result<String, InsightError> {
    let chart = size_chart(
        model,
        &ChartQuery {
            brand: name.into(),
            category: p.category.clone(),
            product: None,
        },
    )?;
    let mut s = String::with_capacity(32 * 1024);
    let _ = write!(
        s,
        "<h1 id=\"brand-{}\">{}</h1><p class=\"lede\"><strong>{}</strong> ({} sizes, 95% {} to {}): {}.</p>",
        url(name),
        esc(name),
        esc(&chart.verdict),
        signed(chart.runs),
        signed(chart.runs - 1.96 * chart.se),
        signed(chart.runs + 1.96 * chart.se),
        esc(&chart.advice)
    );
    if live {
        category_form(&mut s, model, name, p);
    }
    chart_section(&mut s, model, &chart);
    products_section(&mut s, model, name);
    conversion_section(&mut s, model, name, p, live)?;
    Ok(s)
}

fn category_form(s: &mut String, model: &Predictor, name: &str, p: &BrandParams) {
    let Some(b) = model.brand_index(name) else {
        return;
    };
    let mut cats: Vec<u32> = model
        .product_info
        .iter()
        .filter(|i| i.brand == b && i.category != crate::data::schema::NONE)
        .map(|i| i.category)
        .collect();
    cats.sort_unstable();
    cats.dedup();
    if cats.is_empty() {
        return;
    }
    let _ = write!(
        s,
        "<form class=\"controls\" method=\"get\" action=\"/brands/{}\"><label>Category <select name=\"category\"><option value=\"\">all</option>",
        url(name)
    );
    for c in cats {
        if let Some(g) = model.categories.get(c as usize) {
            let sel = p.category.as_deref() == Some(g.name.as_str());
            let _ = write!(
                s,
                "<option value=\"{0}\"{1}>{0}</option>",
                esc(&g.name),
                if sel { " selected" } else { "" }
            );
        }
    }
    s.push_str("</select></label>");
    if let Some(to) = &p.to {
        let _ = write!(
            s,
            "<input type=\"hidden\" name=\"to\" value=\"{}\">",
            esc(to)
        );
    }
    s.push_str("<button type=\"submit\">Show</button></form>");
}

fn chart_section(s: &mut String, model: &Predictor, chart: &SizeChart) {
    s.push_str("<section aria-labelledby=\"chart-h\"><h2 id=\"chart-h\">Size chart on the common scale</h2>");
    s.push_str("<p>Each filled dot is where this brand's label really sits on the catalogue's common size scale (with its 95% interval); the hollow circle is where the catalogue's typical article of that label sits. A dot right of its circle: the label runs large here.</p>");
    if chart.rows.is_empty() {
        s.push_str("<p class=\"note\">No sized products.</p></section>");
        return;
    }
    let mut systems: Vec<&str> = chart.rows.iter().map(|r| r.system.as_str()).collect();
    systems.dedup();
    for (k, system) in systems.iter().enumerate() {
        let rows: Vec<_> = chart.rows.iter().filter(|r| r.system == *system).collect();
        let sys = model
            .labels
            .iter()
            .find(|l| l.system.as_str() == *system)
            .map(|l| l.system);
        let ticks = sys
            .map(|sy| {
                typical_labels(model, sy)
                    .into_iter()
                    .map(|(t, n)| (t, n.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let c = DotChart {
            title: format!("{} {system} sizes on the common scale", chart.brand),
            desc: format!(
                "For each {system} label of {}: its position on the common scale (dot, with 95% interval) and the catalogue's typical position of that label (circle).",
                chart.brand
            ),
            rows: rows
                .iter()
                .map(|r| DotRow {
                    label: r.label.clone(),
                    href: None,
                    value: r.position,
                    interval: r.interval,
                    reference: Some(r.typical),
                    note: format!("{} ({} events)", r.words, r.n),
                })
                .collect(),
            ticks,
            zero_line: false,
            axis: "common scale: the catalogue's typical labels".into(),
        };
        s.push_str("<figure>");
        s.push_str(&dot_interval(&c, &format!("chart{k}")));
        s.push_str("</figure>");
    }
    s.push_str("<table class=\"data\"><caption>The chart's numbers</caption><thead><tr><th scope=\"col\">Label</th><th scope=\"col\">System</th><th scope=\"col\">Position</th><th scope=\"col\">95% interval</th><th scope=\"col\">Runs</th><th scope=\"col\">Events</th><th scope=\"col\">Fits like</th></tr></thead><tbody>");
    for r in &chart.rows {
        let _ = write!(
            s,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td class=\"num\">{:.2}</td><td class=\"num\">{:.2} to {:.2}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&r.label),
            esc(&r.system),
            r.position,
            r.interval[0],
            r.interval[1],
            signed(r.runs),
            r.n,
            esc(&fits_phrase(&r.fits_like))
        );
    }
    s.push_str("</tbody></table></section>");
}

fn products_section(s: &mut String, model: &Predictor, name: &str) {
    let Some(b) = model.brand_index(name) else {
        return;
    };
    let opts = FlagOptions::default();
    let mut rows: Vec<(usize, f64, f64, u64, Option<_>)> = model
        .product_info
        .iter()
        .enumerate()
        .filter(|(_, i)| i.brand == b)
        .filter_map(|(p, _)| {
            let (m, se, n) = product_offset(model, p)?;
            Some((p, m, se, n, product_flag(model, p, &opts)))
        })
        .collect();
    // flagged first (most certain), then by how far off
    rows.sort_by(|a, c| {
        let pa =
            a.4.as_ref()
                .map_or(0.0, |f: &crate::model::insight::flags::ProductFlag| {
                    f.probability
                });
        let pc =
            c.4.as_ref()
                .map_or(0.0, |f: &crate::model::insight::flags::ProductFlag| {
                    f.probability
                });
        pc.total_cmp(&pa).then(c.1.abs().total_cmp(&a.1.abs()))
    });
    let flagged = rows.iter().filter(|r| r.4.is_some()).count();
    let _ = write!(
        s,
        "<section aria-labelledby=\"products-h\"><h2 id=\"products-h\">Products</h2><p>{} products, {flagged} flagged (at least {} sure it runs more than half a size off).{}</p>",
        rows.len(),
        pct(opts.threshold),
        if rows.len() > MAX_PRODUCTS {
            format!(" The {MAX_PRODUCTS} most notable are listed.")
        } else {
            String::new()
        }
    );
    s.push_str("<table class=\"data\"><thead><tr><th scope=\"col\">Product</th><th scope=\"col\">Runs (sizes)</th><th scope=\"col\">95% interval</th><th scope=\"col\">Events</th><th scope=\"col\">Flag</th></tr></thead><tbody>");
    for (p, m, se, n, flag) in rows.iter().take(MAX_PRODUCTS) {
        let pname = model.products.get(*p).map_or("", |g| g.name.as_str());
        let _ = write!(
            s,
            "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{} to {}</td><td class=\"num\">{n}</td><td>{}</td></tr>",
            esc(pname),
            signed(*m),
            signed(m - 1.96 * se),
            signed(m + 1.96 * se),
            flag_cell(flag.as_ref())
        );
    }
    s.push_str("</tbody></table></section>");
}

fn conversion_section(
    s: &mut String,
    model: &Predictor,
    name: &str,
    p: &BrandParams,
    live: bool,
) -> Result<(), InsightError> {
    s.push_str(
        "<section aria-labelledby=\"convert-h\"><h2 id=\"convert-h\">Convert to another brand</h2>",
    );
    if live {
        let _ = write!(
            s,
            "<form class=\"controls\" method=\"get\" action=\"/brands/{}\"><label>Target brand <select name=\"to\">",
            url(name)
        );
        for b in model.brands.iter().filter(|b| b.name != name) {
            let sel = p.to.as_deref() == Some(b.name.as_str());
            let _ = write!(
                s,
                "<option value=\"{0}\"{1}>{0}</option>",
                esc(&b.name),
                if sel { " selected" } else { "" }
            );
        }
        s.push_str("</select></label>");
        if let Some(c) = &p.category {
            let _ = write!(
                s,
                "<input type=\"hidden\" name=\"category\" value=\"{}\">",
                esc(c)
            );
        }
        s.push_str("<button type=\"submit\">Convert</button></form>");
    }
    let Some(to) = p.to.as_deref().filter(|t| !t.is_empty()) else {
        s.push_str("<p class=\"note\">Pick a brand to see, for each size here, the probability that each of its sizes fits a shopper this size fits.</p></section>");
        return Ok(());
    };
    let table = convert(
        model,
        &ConvertQuery {
            from_brand: name.into(),
            size: None,
            to_brand: to.into(),
            category: p.category.clone(),
        },
    )?;
    conversion_table(s, &table);
    s.push_str("</section>");
    Ok(())
}

/// A conversion table as HTML: one row per source size, one column per target size
/// (fit probability), the best cell marked.
pub fn conversion_table(s: &mut String, t: &Conversion) {
    if t.rows.is_empty() {
        s.push_str("<p class=\"note\">No sizes to convert.</p>");
        return;
    }
    // one table per set of target sizes (a source size converts within its size system)
    let mut start = 0;
    while let Some(first) = t.rows.get(start) {
        let same = |r: &&crate::model::insight::convert::ConversionRow| {
            r.sizes.len() == first.sizes.len()
                && r.sizes
                    .iter()
                    .zip(&first.sizes)
                    .all(|(a, b)| a.size == b.size)
        };
        let n = t.rows.iter().skip(start).take_while(same).count().max(1);
        let rows = t.rows.get(start..start + n).unwrap_or_default();
        one_table(s, t, rows);
        start += n;
    }
}

fn one_table(
    s: &mut String,
    t: &Conversion,
    rows: &[crate::model::insight::convert::ConversionRow],
) {
    let Some(first) = rows.first() else {
        return;
    };
    let _ = write!(
        s,
        "<div class=\"scroll\"><table class=\"data convert\"><caption>Probability that a {} size fits a shopper who wears the {} size (best marked ★)</caption><thead><tr><th scope=\"col\">{} size</th><th scope=\"col\">Best {} size</th>",
        esc(&t.to_brand),
        esc(&t.from_brand),
        esc(&t.from_brand),
        esc(&t.to_brand)
    );
    for o in &first.sizes {
        let _ = write!(s, "<th scope=\"col\">{}</th>", esc(&o.size));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            s,
            "<tr><th scope=\"row\">{}</th><td><strong>{}</strong> ({})</td>",
            esc(&r.from_size),
            esc(&r.best),
            pct(r.best_p_fit)
        );
        for o in &r.sizes {
            let best = o.size == r.best;
            let _ = write!(
                s,
                "<td class=\"num{}\">{}{}</td>",
                if best { " best" } else { "" },
                pct(o.p_fit),
                if best { " ★" } else { "" }
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
}
