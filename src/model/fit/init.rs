//! The fit's starting state: parameters from the data (size systems and their scales, the offset hierarchy, customers at their mean chosen size) and the feature ridge.

use super::*;

/// Position units per size step: the system's own step where it is known; for bare
/// numeric scales the event-weighted median absolute deviation of chosen positions,
/// divided by 0.9 (the MAD of shoppers' sizes on the letter scale), so one step means
/// roughly one size whatever the retailer's numbering.
fn system_scale(system: SizeSystem, positions: &mut [(f64, u64)]) -> f64 {
    if system != SizeSystem::Numeric || positions.is_empty() {
        return system.step();
    }
    let weighted_median = |v: &mut [(f64, u64)]| -> f64 {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: u64 = v.iter().map(|x| x.1).sum();
        let mut acc = 0u64;
        for &(x, n) in v.iter() {
            acc += n;
            if 2 * acc >= total {
                return x;
            }
        }
        v.last().map_or(0.0, |x| x.0)
    };
    let med = weighted_median(positions);
    let mut dev: Vec<(f64, u64)> = positions
        .iter()
        .map(|&(x, n)| ((x - med).abs(), n))
        .collect();
    let mad = weighted_median(&mut dev);
    if mad > 1e-9 {
        mad / 0.9
    } else {
        1.0
    }
}

fn group_params(names: &[String]) -> Vec<GroupParams> {
    names
        .iter()
        .map(|n| GroupParams {
            name: n.clone(),
            offset: Offset::default(),
            eta: 0.0,
        })
        .collect()
}

/// Index of `i` in `0..n`, or `NONE` when out of range.
fn checked(i: u32, n: usize) -> u32 {
    if (i as usize) < n {
        i
    } else {
        NONE
    }
}

/// Customers per block of the set-up's parallel loops over customers.
const CUSTOMER_BLOCK: usize = 1 << 16;

impl<'a> State<'a> {
    pub(super) fn init(meta: &'a Events, data: &'a FitData) -> Result<State<'a>, ModelError> {
        let n_as = data.article_sizes.len();
        let mut model = Fitted {
            labels: meta
                .sizes
                .iter()
                .map(|l| LabelParams {
                    canonical: l.canonical.clone(),
                    system: l.system,
                    pos: l.pos,
                    offset: Offset::default(),
                })
                .collect(),
            brands: group_params(&meta.brands.names()),
            categories: group_params(&meta.categories.names()),
            products: group_params(&meta.products.names()),
            product_info: vec![
                ProductInfo {
                    brand: NONE,
                    category: NONE,
                    sizes: Vec::new(),
                };
                meta.products.len()
            ],
            ..Default::default()
        };
        let mut as_ref = Vec::with_capacity(n_as);
        let mut as_sys = Vec::with_capacity(n_as);
        let mut sys_n = [0u64; N_SYS];
        let mut sys_pos = [0.0f64; N_SYS];
        let mut sys_positions: Vec<Vec<(f64, u64)>> = vec![Vec::new(); N_SYS];
        for (j, k) in data.article_sizes.iter().enumerate() {
            let label = meta
                .sizes
                .get(k.label as usize)
                .ok_or_else(|| ModelError::Data(format!("size index {} out of range", k.label)))?;
            let a = ArticleRef {
                product: checked(k.product, meta.products.len()),
                brand: checked(k.brand, meta.brands.len()),
                category: checked(k.category, meta.categories.len()),
                label: k.label,
                system: label.system,
                pos: label.pos,
            };
            let si = label.system.index();
            let n = data.as_count[j];
            sys_n[si] += n;
            sys_positions[si].push((label.pos, n));
            if a.product != NONE {
                let info = &mut model.product_info[a.product as usize];
                if info.brand == NONE {
                    info.brand = a.brand;
                }
                if info.category == NONE {
                    info.category = a.category;
                }
                if !info.sizes.contains(&a.label) {
                    info.sizes.push(a.label);
                }
                model.article_sizes.push(ArticleSizeParams {
                    product: a.product,
                    label: a.label,
                    offset: Offset::default(),
                });
            }
            as_ref.push(a);
            as_sys.push(si as u8);
        }
        let scales: Vec<f64> = SizeSystem::ALL
            .iter()
            .map(|s| system_scale(*s, &mut sys_positions[s.index()]))
            .collect();
        let as_pos: Vec<f64> = as_ref
            .iter()
            .map(|a| a.pos / scales[a.system.index()])
            .collect();
        for (j, a) in as_ref.iter().enumerate() {
            let si = a.system.index();
            sys_pos[si] += as_pos[j] * data.as_count[j] as f64;
        }
        for info in &mut model.product_info {
            info.sizes.sort_by(|&x, &y| {
                match (meta.sizes.get(x as usize), meta.sizes.get(y as usize)) {
                    (Some(a), Some(b)) => a.cmp_order(b),
                    _ => x.cmp(&y),
                }
            });
        }
        // align systems so their mean chosen positions coincide with the busiest system's
        let ref_system = (0..N_SYS).max_by_key(|&i| sys_n[i]).unwrap_or(0);
        let mean_pos = |i: usize| {
            if sys_n[i] > 0 {
                sys_pos[i] / sys_n[i] as f64
            } else {
                0.0
            }
        };
        model.systems = SizeSystem::ALL
            .iter()
            .filter(|s| sys_n[s.index()] > 0)
            .map(|&s| SystemParams {
                system: s,
                scale: scales[s.index()],
                align: if s.index() == ref_system {
                    0.0
                } else {
                    mean_pos(ref_system) - mean_pos(s.index())
                },
                n: sys_n[s.index()],
            })
            .collect();
        let article_size = model.article_size_keys();
        let art_of = |a: &ArticleRef| {
            if a.product == NONE {
                NONE
            } else {
                article_size
                    .get(&(a.product, a.label))
                    .copied()
                    .unwrap_or(NONE)
            }
        };
        let as_group = [
            as_ref.iter().map(|a| a.label).collect(),
            as_ref.iter().map(|a| a.brand).collect(),
            as_ref.iter().map(|a| a.category).collect(),
            as_ref.iter().map(|a| a.product).collect(),
            as_ref.iter().map(art_of).collect(),
        ];
        // customers start at their mean chosen size (in parallel blocks of customers,
        // their sums added in block order: the same start for any thread count)
        let nc = data.customers();
        let mut s = vec![0.0; nc];
        let model_ref = &model;
        let totals: Vec<f64> = s
            .par_chunks_mut(CUSTOMER_BLOCK)
            .enumerate()
            .map(|(b, part)| {
                let mut total = 0.0;
                for (k, sc) in part.iter_mut().enumerate() {
                    let c = b * CUSTOMER_BLOCK + k;
                    let (lo, hi) = (data.cust_start[c] as usize, data.cust_start[c + 1] as usize);
                    if hi > lo {
                        let sum: f64 = data.ev_as[lo..hi]
                            .iter()
                            .map(|&j| {
                                let a = &as_ref[j as usize];
                                as_pos[j as usize] + model_ref.align(a.system)
                            })
                            .sum();
                        *sc = sum / (hi - lo) as f64;
                        total += sum;
                    }
                }
                total
            })
            .collect();
        let total: f64 = totals.iter().sum();
        let pop_mean = total / data.len().max(1) as f64;
        for (c, sc) in s.iter_mut().enumerate() {
            if data.cust_start[c + 1] == data.cust_start[c] {
                *sc = pop_mean;
            }
        }
        model.features = FeatureModel::from_training(&meta.features, pop_mean);
        let dim = model.features.dim();
        let mut has_feat = vec![false; nc];
        let fm = &model.features;
        has_feat
            .par_chunks_mut(CUSTOMER_BLOCK)
            .enumerate()
            .for_each(|(b, part)| {
                let mut row = vec![0.0; dim];
                for (k, hf) in part.iter_mut().enumerate() {
                    *hf = fm.encode_training(&meta.features, b * CUSTOMER_BLOCK + k, &mut row);
                }
            });
        let mut st = State {
            meta,
            data,
            model,
            arts: as_pos
                .iter()
                .zip(&as_sys)
                .map(|(&pos, &sys)| ArtRow {
                    pos,
                    sys,
                    ..ArtRow::default()
                })
                .collect(),
            as_group,
            as_ref,
            ref_system,
            m: vec![pop_mean as f32; nc],
            u: vec![0.0; nc],
            cov: vec![[1.0, 0.0, 0.1]; nc],
            s,
            has_feat,
            steps: 2,
            last_drift_step: 0.0,
            last_k_step: [0.0; 2],
            last_glob_step: [0.0; 3],
            shard_sums: Vec::new(),
        };
        st.fit_prior(1.0);
        Ok(st)
    }

    /// Ridge fit of the feature model on the current customer sizes, then prior means.
    pub(super) fn fit_prior(&mut self, lambda: f64) {
        let fm = &self.model.features;
        let dim = fm.dim();
        let n = self.data.customers();
        // in blocks of customers, merged in block order (the same sums for any thread
        // count)
        let parts: Vec<RidgeStats> = (0..n)
            .step_by(CUSTOMER_BLOCK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|lo| {
                let mut stats = RidgeStats::new(dim);
                let mut row = vec![0.0; dim];
                for c in lo..(lo + CUSTOMER_BLOCK).min(n) {
                    if self.data.cust_start[c + 1] > self.data.cust_start[c] {
                        fm.encode_training(&self.meta.features, c, &mut row);
                        stats.add(&row, self.s[c]);
                    }
                }
                stats
            })
            .collect();
        let mut stats = RidgeStats::new(dim);
        for part in &parts {
            stats.merge(part);
        }
        if let Some(coef) = stats.solve(lambda) {
            self.model.features.coef = coef;
        }
        let all: Vec<(usize, usize)> = (0..n)
            .step_by(CUSTOMER_BLOCK)
            .map(|lo| (lo, (lo + CUSTOMER_BLOCK).min(n)))
            .collect();
        self.refresh_prior_means(&all);
    }

    /// Prior means of the customers in `chunks` from the current feature model.
    pub(super) fn refresh_prior_means(&mut self, chunks: &[(usize, usize)]) {
        let fm = &self.model.features;
        let feats = &self.meta.features;
        split_chunks(&mut self.m, chunks)
            .into_par_iter()
            .zip(chunks.par_iter())
            .for_each(|(part, &(lo, _))| {
                for (k, m) in part.iter_mut().enumerate() {
                    *m = fm.predict_training(feats, lo + k) as f32;
                }
            });
    }

    /// `XᵀX` of the feature ridge over the customers with events in `chunks`.
    pub(super) fn gram(&self, chunks: &[(usize, usize)]) -> Vec<f64> {
        let fm = &self.model.features;
        let dim = fm.dim();
        let parts: Vec<RidgeStats> = chunks
            .par_iter()
            .map(|&(lo, hi)| {
                let mut row = vec![0.0; dim];
                let mut stats = RidgeStats::new(dim);
                for c in lo..hi {
                    if self.data.cust_start[c + 1] > self.data.cust_start[c] {
                        fm.encode_training(&self.meta.features, c, &mut row);
                        stats.add(&row, 0.0);
                    }
                }
                stats
            })
            .collect();
        // merged in chunk order: the same sums whatever the thread count
        let mut total = RidgeStats::new(dim);
        for part in &parts {
            total.merge(part);
        }
        total.xtx
    }
}
