//! Warm starts: a fit that begins from another model's parameters, matched by key
//! (size labels, brands, categories, products, products in sizes, customers), instead of
//! from the data alone. Used by `runsize train --init` (a nightly retrain starting from
//! yesterday's model) and by the second stage's cross-fitting (each fold's refit starts
//! from a model that never saw the fold).

use super::*;

/// How many of the new fit's keys the starting model supplied (the rest start as in a
/// cold fit: offsets at their prior mean 0, customers at their mean chosen size).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WarmMatch {
    /// Size labels matched by canonical label.
    pub labels: usize,
    /// Brands matched by name.
    pub brands: usize,
    /// Categories matched by name.
    pub categories: usize,
    /// Products matched by id.
    pub products: usize,
    /// Products in sizes matched by (product id, canonical label).
    pub article_sizes: usize,
    /// Customers (with fit events) matched by id.
    pub customers: usize,
}

/// Where each key of one model sits in another (`NONE`: not there), level by level:
/// size labels by canonical label, brands, categories and products by name, products
/// in sizes by (product, label).
struct KeyMap {
    labels: Vec<u32>,
    brands: Vec<u32>,
    categories: Vec<u32>,
    products: Vec<u32>,
    article_sizes: Vec<u32>,
}

/// The position in `from` of each of `to`'s names.
fn names_in<'a>(
    to: impl Iterator<Item = &'a String>,
    from: impl Iterator<Item = &'a String>,
) -> Vec<u32> {
    let ix: std::collections::HashMap<&String, u32> =
        from.enumerate().map(|(i, n)| (n, i as u32)).collect();
    to.map(|n| ix.get(n).copied().unwrap_or(NONE)).collect()
}

impl KeyMap {
    /// `to`'s keys in `from`'s numbering.
    fn between(to: &Fitted, from: &Fitted) -> KeyMap {
        let groups = |a: &[GroupParams], b: &[GroupParams]| {
            names_in(a.iter().map(|g| &g.name), b.iter().map(|g| &g.name))
        };
        let labels = names_in(
            to.labels.iter().map(|l| &l.canonical),
            from.labels.iter().map(|l| &l.canonical),
        );
        let products = groups(&to.products, &from.products);
        let as_ix = from.article_size_keys();
        let article_sizes = to
            .article_sizes
            .iter()
            .map(|x| {
                let key = (
                    products.get(x.product as usize).copied().unwrap_or(NONE),
                    labels.get(x.label as usize).copied().unwrap_or(NONE),
                );
                as_ix.get(&key).copied().unwrap_or(NONE)
            })
            .collect();
        KeyMap {
            labels,
            brands: groups(&to.brands, &from.brands),
            categories: groups(&to.categories, &from.categories),
            products,
            article_sizes,
        }
    }
}

/// `merge(t, f)` for each item `t` of `to` whose key `map` places in `from`; how many.
fn each_match<T>(
    to: &mut [T],
    from: &[T],
    map: &[u32],
    mut merge: impl FnMut(&mut T, &T),
) -> usize {
    let mut matched = 0;
    for (t, &i) in to.iter_mut().zip(map) {
        if let Some(f) = from.get(i as usize) {
            merge(t, f);
            matched += 1;
        }
    }
    matched
}

impl State<'_> {
    /// Start from `init`'s parameters wherever its keys match this fit's (see
    /// [`WarmMatch`]); the globals (slope, band, variances, choice model) are taken as
    /// they are. Customers start at their stored posterior; the feature ridge is then
    /// refitted on the started sizes.
    pub(super) fn warm_from(&mut self, init: &Fitted) -> WarmMatch {
        let mut got = WarmMatch::default();
        let model = &mut self.model;
        model.globals = init.globals.clone();
        let keys = KeyMap::between(model, init);
        let copy_group = |g: &mut GroupParams, f: &GroupParams| {
            g.offset.value = f.offset.value;
            g.eta = f.eta;
        };
        got.labels = each_match(&mut model.labels, &init.labels, &keys.labels, |l, f| {
            l.offset.value = f.offset.value;
        });
        got.brands = each_match(&mut model.brands, &init.brands, &keys.brands, copy_group);
        got.categories = each_match(
            &mut model.categories,
            &init.categories,
            &keys.categories,
            copy_group,
        );
        got.products = each_match(
            &mut model.products,
            &init.products,
            &keys.products,
            copy_group,
        );
        got.article_sizes = each_match(
            &mut model.article_sizes,
            &init.article_sizes,
            &keys.article_sizes,
            |x, f| x.offset.value = f.offset.value,
        );
        // non-reference systems' alignment, when both fits align to the same system
        let ref_sys = SizeSystem::ALL.get(self.ref_system).copied();
        let same_ref = init
            .systems
            .iter()
            .any(|s| Some(s.system) == ref_sys && s.align == 0.0);
        if same_ref {
            for sp in &mut model.systems {
                if let Some(f) = init.systems.iter().find(|f| f.system == sp.system) {
                    if Some(sp.system) != ref_sys {
                        sp.align = f.align;
                    }
                }
            }
        }
        got.customers = self.warm_customers(init);
        self.fit_prior(1.0);
        got
    }

    /// Customers at `init`'s stored posterior, matched by id; the number matched.
    fn warm_customers(&mut self, init: &Fitted) -> usize {
        let table = &init.customers;
        if table.is_empty() {
            return 0;
        }
        let ids = &table.ids;
        let index = crate::data::dict::DictIndex::build(ids);
        let keys = &self.meta.customers;
        let ix: Vec<u32> = (0..keys.len())
            .into_par_iter()
            .with_min_len(4096)
            .map(|c| {
                let found = match keys.as_ints() {
                    Some(k) => k.get(c).and_then(|&k| index.find_int(ids, k)),
                    None => keys.text_at(c).and_then(|k| index.find(ids, k)),
                };
                found.unwrap_or(NONE)
            })
            .collect();
        let mut matched = 0;
        for (c, &i) in ix.iter().enumerate().take(self.s.len()) {
            let i = i as usize;
            let has_events = self.data.cust_start[c + 1] > self.data.cust_start[c];
            let (Some(&mean), Some(&bias), Some(&var), Some(&cov), Some(&bias_var)) = (
                table.mean.get(i),
                table.bias.get(i),
                table.var.get(i),
                table.cov.get(i),
                table.bias_var.get(i),
            ) else {
                continue;
            };
            if !has_events {
                continue;
            }
            self.s[c] = f64::from(mean);
            self.u[c] = bias;
            self.cov[c] = [var, cov, bias_var];
            matched += 1;
        }
        matched
    }
}

/// True when `init` shares at least one size label, brand, category or product with
/// `meta`'s dictionaries (a warm start from it describes this catalogue).
pub(super) fn shares_keys(init: &Fitted, meta: &Events) -> bool {
    let labels: std::collections::HashSet<&str> =
        init.labels.iter().map(|l| l.canonical.as_str()).collect();
    if meta
        .sizes
        .iter()
        .any(|l| labels.contains(l.canonical.as_str()))
    {
        return true;
    }
    [
        (&init.brands, meta.brands.names()),
        (&init.categories, meta.categories.names()),
        (&init.products, meta.products.names()),
    ]
    .into_iter()
    .any(|(groups, names)| {
        let have: std::collections::HashSet<&str> =
            groups.iter().map(|g| g.name.as_str()).collect();
        names.iter().any(|n| have.contains(n.as_str()))
    })
}

/// An offset's posterior on the events of both halves, from its posteriors `a` and
/// `b` on each (means and standard errors) under the level's shared prior `N(0,
/// prior_sd²)`: the data of both add their information, the prior counts once:
/// precision `1/se_a² + 1/se_b² − 1/prior_sd²`, mean `(a/se_a² + b/se_b²)` over it.
/// The plain mean where a standard error is unknown (0 or not finite).
fn pooled(a: &Offset, b: &Offset, prior_sd: f64) -> f64 {
    let prec = |se: f64| (se.is_finite() && se > 0.0).then(|| 1.0 / (se * se));
    let (Some(pa), Some(pb)) = (prec(a.se), prec(b.se)) else {
        return 0.5 * (a.value + b.value);
    };
    let prior = if prior_sd.is_finite() && prior_sd > 0.0 {
        1.0 / (prior_sd * prior_sd)
    } else {
        0.0
    };
    // the prior cannot hold more information than either half's posterior (so the
    // pooled precision is at least the larger of the two)
    let p = pa + pb - prior.min(pa).min(pb);
    (pa * a.value + pb * b.value) / p
}

/// The mean of two models of one catalogue, as a starting point: `a` with every global
/// and band averaged with `b`'s and every offset pooled with `b`'s ([`pooled`]: the
/// posterior on both halves' events) where `b` has the same key (size label, brand,
/// category, product, product in size, size system), `a`'s own elsewhere (`b`'s other
/// keys are not added: a fit starts them cold). Customers are `a`'s.
///
/// Cross-fitting's two fold models are fitted on the two halves of the events: their
/// mean is nearer the fit on all of them than either half is, so the final fit that
/// starts from it needs fewer passes.
pub fn mean_start(a: &Fitted, b: &Fitted) -> Fitted {
    let mut m = a.clone();
    let mean = |x: &mut f64, y: f64| *x = 0.5 * (*x + y);
    let (g, h) = (&mut m.globals, &b.globals);
    for (x, y) in [
        (&mut g.w, h.w),
        (&mut g.c, h.c),
        (&mut g.h, h.h),
        (&mut g.k, h.k),
        (&mut g.k_product, h.k_product),
        (&mut g.sd_choice, h.sd_choice),
        (&mut g.sd_drift, h.sd_drift),
        (&mut g.sd_customer_features, h.sd_customer_features),
        (&mut g.sd_customer_population, h.sd_customer_population),
        (&mut g.sd_customer_bias, h.sd_customer_bias),
        (&mut g.sd_label, h.sd_label),
        (&mut g.sd_brand, h.sd_brand),
        (&mut g.sd_category, h.sd_category),
        (&mut g.sd_product, h.sd_product),
        (&mut g.sd_article_size, h.sd_article_size),
        (&mut g.sd_eta_brand, h.sd_eta_brand),
        (&mut g.sd_eta_category, h.sd_eta_category),
        (&mut g.sd_eta_product, h.sd_eta_product),
    ] {
        mean(x, y);
    }
    for s in &mut m.systems {
        if let Some(o) = b.systems.iter().find(|o| o.system == s.system) {
            mean(&mut s.align, o.align);
        }
    }
    let keys = KeyMap::between(&m, b);
    let g = m.globals.clone();
    let group = |sd: f64| {
        move |x: &mut GroupParams, o: &GroupParams| {
            x.offset.value = pooled(&x.offset, &o.offset, sd);
            mean(&mut x.eta, o.eta);
        }
    };
    each_match(&mut m.labels, &b.labels, &keys.labels, |l, o| {
        l.offset.value = pooled(&l.offset, &o.offset, g.sd_label)
    });
    each_match(&mut m.brands, &b.brands, &keys.brands, group(g.sd_brand));
    each_match(
        &mut m.categories,
        &b.categories,
        &keys.categories,
        group(g.sd_category),
    );
    each_match(
        &mut m.products,
        &b.products,
        &keys.products,
        group(g.sd_product),
    );
    each_match(
        &mut m.article_sizes,
        &b.article_sizes,
        &keys.article_sizes,
        |x, o| x.offset.value = pooled(&x.offset, &o.offset, g.sd_article_size),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, value: f64, eta: f64) -> GroupParams {
        GroupParams {
            name: name.into(),
            offset: Offset {
                value,
                ..Offset::default()
            },
            eta,
        }
    }

    fn article(product: u32, label: u32, value: f64) -> ArticleSizeParams {
        ArticleSizeParams {
            product,
            label,
            offset: Offset {
                value,
                ..Offset::default()
            },
        }
    }

    fn label(canonical: &str, value: f64) -> LabelParams {
        LabelParams {
            canonical: canonical.into(),
            system: SizeSystem::ALL[0],
            pos: 0.0,
            offset: Offset {
                value,
                ..Offset::default()
            },
        }
    }

    #[test]
    fn pooled_offsets_add_both_halves_information_with_the_prior_once() {
        let o = |value, se| Offset { value, se, n: 1 };
        // precisions 4 and 1, prior precision 1: (4·1 + 1·3) / (4 + 1 − 1) = 1.75
        assert_eq!(pooled(&o(1.0, 0.5), &o(3.0, 1.0), 1.0), 1.75);
        // no prior: the precision-weighted mean (4·1 + 1·3) / 5
        assert_eq!(pooled(&o(1.0, 0.5), &o(3.0, 1.0), 0.0), 1.4);
        // equal halves pull the mean out of the prior's shrinkage: (2·2 + 2·2) / (2+2−1)
        let h = 0.5f64.sqrt();
        assert!((pooled(&o(2.0, h), &o(2.0, h), 1.0) - 8.0 / 3.0).abs() < 1e-12);
        // an unknown standard error: the plain mean
        assert_eq!(pooled(&o(1.0, 0.0), &o(3.0, 1.0), 1.0), 2.0);
    }

    #[test]
    fn mean_start_averages_matching_keys_in_the_first_models_numbering() {
        let mut a = Fitted::default();
        a.globals.w = 3.0;
        a.globals.sd_product = 0.2;
        a.labels = vec![label("S", 0.2), label("M", -0.4)];
        a.products = vec![group("p1", 1.0, 0.5), group("p2", -1.0, 0.0)];
        a.article_sizes = vec![article(0, 0, 0.1), article(1, 1, 0.3), article(0, 1, 0.7)];
        // b numbers its products and labels the other way round and lacks p2 / (p1, M)
        let mut b = Fitted::default();
        b.globals.w = 4.0;
        b.globals.sd_product = 0.4;
        b.labels = vec![label("M", 0.0), label("S", 0.4)];
        b.products = vec![group("p3", 9.0, 9.0), group("p1", 2.0, -0.5)];
        b.article_sizes = vec![article(1, 1, 0.5), article(0, 0, 9.0)];
        let m = mean_start(&a, &b);
        assert_eq!(m.globals.w, 3.5);
        assert!((m.globals.sd_product - 0.3).abs() < 1e-15);
        assert!((m.labels[0].offset.value - 0.3).abs() < 1e-15); // S: (0.2 + 0.4) / 2
        assert!((m.labels[1].offset.value + 0.2).abs() < 1e-15); // M: (-0.4 + 0) / 2
        assert_eq!(m.products[0].offset.value, 1.5); // p1
        assert_eq!(m.products[0].eta, 0.0);
        assert_eq!(m.products[1].offset.value, -1.0); // p2: a's alone
        assert_eq!(m.products.len(), 2); // p3 is not added
        assert!((m.article_sizes[0].offset.value - 0.3).abs() < 1e-15); // (p1, S)
        assert_eq!(m.article_sizes[1].offset.value, 0.3); // (p2, M): a's alone
        assert_eq!(m.article_sizes[2].offset.value, 0.7); // (p1, M): a's alone
    }
}
