//! The fitted model's invariants: finite constants, consistent table lengths, a second
//! stage that fits its model. Checked once when an artifact is loaded.

use super::Fitted;
use crate::model::stack::{n_features, FeatureSpec, Stack};
use crate::model::ModelError;

/// Sanity checks beyond the artifact checksum: finite constants, positive slope and band,
/// at least one size label, tables of consistent lengths, finite offsets, and a second
/// stage (if any) whose count tables are aligned with the model's and whose learners'
/// coefficients fit their feature maps.
impl Fitted {
    /// Check the model is usable (what [`crate::model::artifact::load`] does after the
    /// checksum, so every command refuses a broken artifact with the same message).
    pub fn validate(&self) -> Result<(), ModelError> {
        validate(self).map_err(ModelError::Invalid)
    }
}

fn validate(m: &Fitted) -> Result<(), String> {
    let g = &m.globals;
    let constants = [
        ("w", g.w),
        ("c", g.c),
        ("h", g.h),
        ("k", g.k),
        ("sd_choice", g.sd_choice),
        ("sd_customer_features", g.sd_customer_features),
        ("sd_customer_population", g.sd_customer_population),
    ];
    if let Some((name, v)) = constants.iter().find(|(_, v)| !v.is_finite()) {
        return Err(format!("global constant {name} is {v}"));
    }
    if g.w <= 0.0 || g.h <= 0.0 {
        return Err(format!(
            "slope w = {} and band h = {} must be positive",
            g.w, g.h
        ));
    }
    if m.labels.is_empty() {
        return Err("no size labels: the model was trained on nothing".into());
    }
    if m.product_info.len() != m.products.len() {
        return Err(format!(
            "{} products but {} product records",
            m.products.len(),
            m.product_info.len()
        ));
    }
    let c = &m.customers;
    if c.mean.len() != c.ids.len() || c.var.len() != c.ids.len() {
        return Err("customer table columns differ in length".into());
    }
    let groups = [
        ("brand", &m.brands),
        ("category", &m.categories),
        ("product", &m.products),
    ];
    for (kind, list) in groups {
        if let Some(g) = list
            .iter()
            .find(|g| !g.offset.value.is_finite() || !g.eta.is_finite())
        {
            return Err(format!("{kind} {} has a non-finite offset", g.name));
        }
    }
    if let Some(l) = m
        .labels
        .iter()
        .find(|l| !l.offset.value.is_finite() || !l.pos.is_finite())
    {
        return Err(format!(
            "size label {} has a non-finite offset",
            l.canonical
        ));
    }
    if let Some(stack) = &m.stack {
        validate_stack(m, stack)?;
    }
    Ok(())
}

/// The second stage's tables must be aligned with the model's (prediction would fall
/// back on structural probabilities or zero counts for keys out of range, silently
/// answering with another model's numbers), and its learners' coefficients must fit
/// their feature maps.
fn validate_stack(m: &Fitted, stack: &Stack) -> Result<(), String> {
    let t = &stack.tables;
    let tables = [
        (
            "category",
            t.category.len(),
            m.categories.len(),
            "categories",
        ),
        ("brand", t.brand.len(), m.brands.len(), "brands"),
        ("product", t.product.len(), m.products.len(), "products"),
        (
            "article_size",
            t.article_size.len(),
            m.article_sizes.len(),
            "products in sizes",
        ),
        (
            "customer",
            t.customer.len(),
            m.customers.ids.len(),
            "customers",
        ),
        (
            "customer_pos",
            t.customer_pos.len(),
            m.customers.ids.len(),
            "customers",
        ),
    ];
    for (name, got, want, what) in tables {
        if got != want {
            return Err(format!(
                "second stage table {name} has {got} rows but the model has {want} {what}"
            ));
        }
    }
    if let Some(x) = t.customer_pos.iter().find(|x| !x.is_finite()) {
        return Err(format!("second stage table customer_pos holds {x}"));
    }
    let body_dim = m.features.dim().saturating_sub(1);
    let spec_ok = |s: &FeatureSpec| {
        let p = s.mean.len();
        p > 0
            && s.body_dim == body_dim
            && s.scale.len() == p
            && s.lo.len() == p
            && s.hi.len() == p
            && n_features(s) == p
            && s.scale.iter().all(|v| v.is_finite() && *v > 0.0)
            && s.mean.iter().all(|v| v.is_finite())
            // (clamping to [lo, hi] panics when lo > hi or either is NaN)
            && s.lo.iter().zip(&s.hi).all(|(lo, hi)| lo <= hi)
    };
    let finite = |c: &[f64]| c.iter().all(|v| v.is_finite());
    let purchase = &stack.purchase;
    if !spec_ok(&purchase.spec)
        || purchase.coef.len() != 2 * purchase.spec.mean.len()
        || !finite(&purchase.coef)
    {
        return Err(format!(
            "second stage purchase learner: {} coefficients for {} features (expected twice as many, finite, with a consistent standardisation)",
            purchase.coef.len(),
            purchase.spec.mean.len()
        ));
    }
    if let Some(offer) = &stack.offer {
        let p = offer.spec.mean.len();
        if !spec_ok(&offer.spec)
            || offer.fit.len() + 1 != p
            || offer.split.len() != p
            || !finite(&offer.fit)
            || !finite(&offer.split)
        {
            return Err(format!(
                "second stage offer calibration: {} fit and {} split coefficients for {p} features (expected {} and {p}, finite, with a consistent standardisation)",
                offer.fit.len(),
                offer.split.len(),
                p.saturating_sub(1)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_model_is_refused() {
        let e = Fitted::default().validate().unwrap_err().to_string();
        assert!(e.contains("no size labels"), "{e}");
        let mut m = Fitted::default();
        m.globals.w = f64::NAN;
        assert!(m.validate().unwrap_err().to_string().contains("w is NaN"));
    }
}
