//! The "try a shopper" page: a form (product, a past purchase, a reference size, body
//! data) that the embedded script sends to `POST /v1/recommend`, showing the
//! probabilities per size and the explanation. `?run=1` submits it on load (the
//! browser test uses that).

use super::html::esc;
use crate::model::predictor::Predictor;
use std::fmt::Write;

/// Most product ids offered in the product field's suggestion list.
const MAX_SUGGESTIONS: usize = 500;

fn brand_select(s: &mut String, model: &Predictor, name: &str, label: &str) {
    let _ = write!(
        s,
        "<label>{label} <select name=\"{name}\"><option value=\"\">(none)</option>"
    );
    for b in &model.brands {
        let _ = write!(s, "<option value=\"{0}\">{0}</option>", esc(&b.name));
    }
    s.push_str("</select></label>");
}

/// The page body.
pub fn try_page(model: &Predictor) -> String {
    let mut s = String::with_capacity(16 * 1024);
    s.push_str("<h1>Try a shopper</h1><p class=\"lede\">Describe a shopper and a product; the page asks <code>POST /v1/recommend</code> and shows the probability that each size is too small, fits or is too large, with the explanation a shop would show.</p>");
    s.push_str("<noscript><p class=\"note\">This form needs JavaScript. Without it, send the same request to <code>POST /v1/recommend</code> (see <a href=\"/openapi.json\">/openapi.json</a>).</p></noscript>");
    // a default product with sizes, so that submitting the form as it is answers
    let first = model
        .product_info
        .iter()
        .position(|i| i.sizes.len() > 1)
        .and_then(|p| model.products.get(p))
        .map_or("", |g| g.name.as_str());
    s.push_str("<form id=\"try-form\" class=\"try\" method=\"post\" action=\"/v1/recommend\">");
    s.push_str("<fieldset><legend>Product</legend>");
    let _ = write!(
        s,
        "<label>Product id <input name=\"product_id\" list=\"products\" value=\"{}\" autocomplete=\"off\"></label><datalist id=\"products\">",
        esc(first)
    );
    for p in model.products.iter().take(MAX_SUGGESTIONS) {
        let _ = write!(s, "<option value=\"{}\">", esc(&p.name));
    }
    s.push_str("</datalist>");
    brand_select(
        &mut s,
        model,
        "brand",
        "Brand (for a product not seen in training)",
    );
    s.push_str("<label>Sizes on offer (comma-separated; default: the product's) <input name=\"sizes\" placeholder=\"S, M, L\"></label></fieldset>");
    s.push_str("<fieldset><legend>A past purchase (optional)</legend>");
    brand_select(&mut s, model, "h_brand", "Brand");
    s.push_str("<label>Size bought <input name=\"h_size\" placeholder=\"M\"></label><label>How it fit <select name=\"h_outcome\"><option value=\"kept\">fit (kept)</option><option value=\"too_small\">too small</option><option value=\"too_large\">too large</option></select></label></fieldset>");
    s.push_str("<fieldset><legend>A size the shopper wears (optional)</legend>");
    brand_select(&mut s, model, "r_brand", "Brand");
    s.push_str("<label>Size worn <input name=\"r_size\" placeholder=\"M\"></label></fieldset>");
    if !model.features.numeric.is_empty() || !model.features.categorical.is_empty() {
        s.push_str("<fieldset><legend>Body data (optional)</legend>");
        for f in &model.features.numeric {
            let _ = write!(
                s,
                "<label>{0} <input type=\"number\" step=\"any\" name=\"f_{0}\" data-feature=\"{0}\" data-kind=\"number\" placeholder=\"{1:.0}\"></label>",
                esc(&f.name),
                f.mean
            );
        }
        for f in &model.features.categorical {
            let _ = write!(
                s,
                "<label>{0} <select name=\"f_{0}\" data-feature=\"{0}\" data-kind=\"text\"><option value=\"\">(unknown)</option>",
                esc(&f.name)
            );
            for l in &f.levels {
                let _ = write!(s, "<option value=\"{0}\">{0}</option>", esc(l));
            }
            s.push_str("</select></label>");
        }
        s.push_str("</fieldset>");
    }
    s.push_str("<button type=\"submit\">Recommend a size</button></form>");
    s.push_str("<section id=\"result\" aria-live=\"polite\"></section>");
    s
}
