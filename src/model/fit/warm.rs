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

fn name_map(names: impl Iterator<Item = String>) -> std::collections::HashMap<String, u32> {
    names.enumerate().map(|(i, n)| (n, i as u32)).collect()
}

/// Copy `from`'s offset value and band of every group whose name is in it.
fn copy_groups(to: &mut [GroupParams], from: &[GroupParams]) -> (usize, Vec<u32>) {
    let ix = name_map(from.iter().map(|g| g.name.clone()));
    let mut matched = 0;
    let map = to
        .iter_mut()
        .map(
            |g| match ix.get(&g.name).and_then(|&i| from.get(i as usize)) {
                Some(f) => {
                    g.offset.value = f.offset.value;
                    g.eta = f.eta;
                    matched += 1;
                    ix[&g.name]
                }
                None => NONE,
            },
        )
        .collect();
    (matched, map)
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
        // labels by canonical form
        let lab_ix = name_map(init.labels.iter().map(|l| l.canonical.clone()));
        let lab_map: Vec<u32> = model
            .labels
            .iter_mut()
            .map(|l| match lab_ix.get(&l.canonical) {
                Some(&i) => {
                    if let Some(f) = init.labels.get(i as usize) {
                        l.offset.value = f.offset.value;
                        got.labels += 1;
                    }
                    i
                }
                None => NONE,
            })
            .collect();
        got.brands = copy_groups(&mut model.brands, &init.brands).0;
        got.categories = copy_groups(&mut model.categories, &init.categories).0;
        let (products, prod_map) = copy_groups(&mut model.products, &init.products);
        got.products = products;
        // products in sizes by (product, label) in the init model's numbering
        let as_ix: std::collections::HashMap<(u32, u32), u32> = init
            .article_sizes
            .iter()
            .enumerate()
            .map(|(i, a)| ((a.product, a.label), i as u32))
            .collect();
        for x in &mut model.article_sizes {
            let key = (
                prod_map.get(x.product as usize).copied().unwrap_or(NONE),
                lab_map.get(x.label as usize).copied().unwrap_or(NONE),
            );
            if let Some(f) = as_ix
                .get(&key)
                .and_then(|&i| init.article_sizes.get(i as usize))
            {
                x.offset.value = f.offset.value;
                got.article_sizes += 1;
            }
        }
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
