//! The builder: every batch checked row by row into the events table and the report.

use super::*;

pub(super) const ST_OK: u8 = 0;
pub(super) const ST_FILTERED: u8 = 1;
pub(super) const ST_BAD0: u8 = 2;

#[derive(Default)]
pub(super) struct BadAcc {
    pub(super) count: u64,
    pub(super) examples: Vec<RowRef>,
    pub(super) values: Vec<String>,
}

impl BadAcc {
    pub(super) fn add_value(&mut self, v: &str) {
        if self.values.len() < 5 && !self.values.iter().any(|x| x == v) {
            self.values.push(v.to_string());
        }
    }
}

/// Ingest state across files and batches.
pub(super) struct Builder<'a> {
    pub(super) cfg: &'a IngestConfig,
    pub(super) customers: KeyEncoder,
    pub(super) products: KeyEncoder,
    pub(super) brands: KeyEncoder,
    pub(super) categories: KeyEncoder,
    pub(super) sizes: SizeEncoder,
    pub(super) outcomes: OutcomeEncoder,
    pub(super) features: Vec<FeatureState>,
    pub(super) ev: Events,
    pub(super) timestamps: Vec<i64>,
    pub(super) any_timestamp: bool,
    pub(super) all_timestamp: bool,
    pub(super) all_outcome: bool,
    pub(super) bad: Vec<BadAcc>,
    pub(super) report: IngestReport,
    /// Global row number of the next row.
    pub(super) global_row: u64,
}

pub(super) fn batch_col<'c>(b: &Batch<'c>, name: &str) -> Result<&'c Column, DataError> {
    b.df.column(name).map_err(|e| read_err(b.path, e))
}

/// One batch, columns resolved.
pub(super) struct Batch<'b> {
    pub(super) df: &'b DataFrame,
    pub(super) path: &'b Path,
    pub(super) cols: &'b FileColumns,
    /// 0-based row number within the file of the batch's first row.
    pub(super) file_row0: u64,
}

impl<'a> Builder<'a> {
    pub(super) fn new(cfg: &'a IngestConfig) -> Self {
        Builder {
            cfg,
            customers: KeyEncoder::default(),
            products: KeyEncoder::default(),
            brands: KeyEncoder::default(),
            categories: KeyEncoder::default(),
            sizes: SizeEncoder::default(),
            outcomes: OutcomeEncoder::new(cfg.outcome_map.clone()),
            features: Vec::new(),
            ev: Events::default(),
            timestamps: Vec::new(),
            any_timestamp: false,
            all_timestamp: true,
            all_outcome: true,
            bad: BadReason::ALL.iter().map(|_| BadAcc::default()).collect(),
            report: IngestReport::default(),
            global_row: 0,
        }
    }

    /// Check a file's columns against earlier files (features keep their kind).
    pub(super) fn start_file(
        &mut self,
        path: &Path,
        schema: &Schema,
        cols: &FileColumns,
    ) -> Result<(), DataError> {
        for (i, name) in cols.features.iter().enumerate() {
            let Some(dt) = schema.get(name) else { continue };
            if let Some(st) = self.features.get(i) {
                if !st.accepts(dt) {
                    return Err(DataError::WrongType {
                        path: path.to_path_buf(),
                        column: name.clone(),
                        expected: st.kind_name().to_string(),
                        found: dt.to_string(),
                    });
                }
            } else {
                self.features.push(FeatureState::new(name, dt));
            }
        }
        if cols.timestamp.is_some() {
            self.any_timestamp = true;
        } else {
            self.all_timestamp = false;
        }
        if cols.outcome.is_none() {
            self.all_outcome = false;
        }
        self.report.files.push(path.to_path_buf());
        Ok(())
    }

    pub(super) fn process(&mut self, b: &Batch) -> Result<(), DataError> {
        let n = b.df.height();
        if n == 0 {
            return Ok(());
        }
        let path = b.path;
        let pe = |e: PolarsError| read_err(path, e);
        let g0 = self.global_row;
        self.global_row += n as u64;
        self.report.rows_read += n as u64;
        let cfg = self.cfg;

        // 1. Filters.
        let mut status = vec![ST_OK; n];
        if let Some(split) = &cfg.filter.split {
            for (i, s) in status.iter_mut().enumerate() {
                if split.part_of(g0 + i as u64) != split.part {
                    *s = ST_FILTERED;
                }
            }
        }
        let ts = match &b.cols.timestamp {
            Some((name, kind)) => {
                let (vals, bad_values) = timestamps(batch_col(b, name)?, *kind).map_err(pe)?;
                for v in bad_values {
                    if let Some(acc) = self.bad.get_mut(BadReason::BadTimestamp as usize) {
                        acc.add_value(&v);
                    }
                }
                if cfg.filter.since_ms.is_some() || cfg.filter.before_ms.is_some() {
                    let lo = cfg.filter.since_ms.unwrap_or(i64::MIN);
                    let hi = cfg.filter.before_ms.unwrap_or(i64::MAX);
                    for (s, v) in status.iter_mut().zip(&vals) {
                        if let TsVal::Ok(t) = v {
                            if *t < lo || *t >= hi {
                                *s = ST_FILTERED;
                            }
                        }
                    }
                }
                Some(vals)
            }
            None => None,
        };
        let skip: Vec<bool> = status.iter().map(|&s| s != ST_OK).collect();

        // 2. Required fields, sizes, outcomes (columns are independent: in parallel).
        let cust = KeyData::from_column(batch_col(b, &b.cols.customer)?).map_err(pe)?;
        let size = KeyData::from_column(batch_col(b, &b.cols.size)?).map_err(pe)?;
        let sys_col = match &b.cols.size_system {
            Some(name) => Some(text_column(batch_col(b, name)?).map_err(pe)?),
            None => None,
        };
        let out_col = match &b.cols.outcome {
            Some(name) => Some(text_column(batch_col(b, name)?).map_err(pe)?),
            None => None,
        };
        let sizes = &mut self.sizes;
        let outcomes = &mut self.outcomes;
        let ((cust_null, size_ids), out_codes) = rayon::join(
            || {
                let size_ids = {
                    let sys: Vec<u32> = match &sys_col {
                        Some(ca) => sizes.system_codes(ca),
                        None => vec![0; n],
                    };
                    sizes.ids(&size, &sys, &skip)
                };
                (cust.null_mask(), size_ids)
            },
            || out_col.as_ref().map(|ca| outcomes.codes(ca, &skip)),
        );

        // 3. Combine into row status; collect kept rows.
        let mut kept = vec![false; n];
        let mut n_kept = 0usize;
        let require_outcome = cfg.require_outcome;
        let keep_ts = cfg.keep_timestamps;
        let mut skipped_rows: Vec<u64> = Vec::new();
        for i in 0..n {
            let st = status.get(i).copied().unwrap_or(ST_FILTERED);
            if st == ST_FILTERED {
                self.report.rows_filtered += 1;
                skipped_rows.push(g0 + i as u64);
                continue;
            }
            let sid = size_ids.get(i).copied().unwrap_or(SIZE_NULL);
            let oc = out_codes
                .as_ref()
                .and_then(|o| o.get(i).copied())
                .unwrap_or(OUT_NULL);
            let tv = ts.as_ref().and_then(|t| t.get(i).copied());
            let reason = if cust_null.get(i).copied().unwrap_or(true) {
                Some(BadReason::MissingCustomerId)
            } else if sid == SIZE_NULL {
                Some(BadReason::MissingSize)
            } else if require_outcome && oc == OUT_NULL {
                Some(BadReason::MissingOutcome)
            } else if self.sizes.is_bad(sid) {
                Some(BadReason::BadSize)
            } else if require_outcome && oc == OUT_UNKNOWN {
                Some(BadReason::UnknownOutcome)
            } else if tv == Some(TsVal::Null) {
                Some(BadReason::MissingTimestamp)
            } else if tv == Some(TsVal::Bad) {
                Some(BadReason::BadTimestamp)
            } else {
                None
            };
            if let Some(r) = reason {
                if let Some(s) = status.get_mut(i) {
                    *s = r.code();
                }
                self.report.rows_bad += 1;
                if let Some(acc) = self.bad.get_mut(r as usize) {
                    acc.count += 1;
                    if acc.examples.len() < 5 {
                        acc.examples.push(RowRef {
                            file: path.to_path_buf(),
                            row: b.file_row0 + i as u64 + 1,
                        });
                    }
                    match r {
                        BadReason::BadSize => {
                            if let Some(t) = self.sizes.parsed_text.get(sid as usize) {
                                acc.add_value(t);
                            }
                        }
                        BadReason::UnknownOutcome => {
                            if let Some(Some(v)) = out_col.as_ref().map(|c| c.get(i)) {
                                acc.add_value(v);
                            }
                        }
                        _ => {}
                    }
                }
                skipped_rows.push(g0 + i as u64);
                continue;
            }
            if let Some(k) = kept.get_mut(i) {
                *k = true;
            }
            n_kept += 1;
            let e = self.sizes.event_index(sid);
            self.ev.size.push(e);
            let outcome = match Outcome::from_code(oc) {
                Some(o) => {
                    match o {
                        Outcome::Small => self.report.outcomes.small += 1,
                        Outcome::Fit => self.report.outcomes.fit += 1,
                        Outcome::Large => self.report.outcomes.large += 1,
                        Outcome::Other => self.report.outcomes.other += 1,
                    }
                    o
                }
                None => {
                    if oc == OUT_NULL {
                        self.report.rows_without_outcome += 1;
                    } else {
                        // unknown outcome with optional outcomes
                        self.report.outcomes.other += 1;
                    }
                    Outcome::Other
                }
            };
            self.ev.outcome.push(outcome);
            if let (true, Some(TsVal::Ok(t))) = (keep_ts, tv) {
                self.timestamps.push(t);
            }
        }
        self.ev.row.extend_batch(g0, n as u64, &skipped_rows);
        self.report.rows_kept += n_kept as u64;
        if n_kept == 0 {
            return Ok(());
        }

        // 4. Keys of kept rows (independent dictionaries: in parallel).
        let opt_data = |name: &Option<String>| -> Result<Option<KeyData>, DataError> {
            match name {
                Some(nm) => Ok(Some(KeyData::from_column(batch_col(b, nm)?).map_err(pe)?)),
                None => Ok(None),
            }
        };
        let prod = opt_data(&b.cols.product)?;
        let brand = opt_data(&b.cols.brand)?;
        let cat = opt_data(&b.cols.category)?;
        let mut feat_data = Vec::with_capacity(self.features.len());
        for (st, name) in self.features.iter().zip(&b.cols.features) {
            feat_data.push(st.data(batch_col(b, name)?).map_err(pe)?);
        }
        let encode = |enc: &mut KeyEncoder, d: &Option<KeyData>| match d {
            Some(d) => enc.encode_kept(d, &kept, n_kept),
            None => vec![NONE; n_kept],
        };
        let (customers, products, brands, categories) = (
            &mut self.customers,
            &mut self.products,
            &mut self.brands,
            &mut self.categories,
        );
        let (cust_codes, (prod_codes, (brand_codes, cat_codes))) = rayon::join(
            || customers.encode_kept(&cust, &kept, n_kept),
            || {
                rayon::join(
                    || encode(products, &prod),
                    || rayon::join(|| encode(brands, &brand), || encode(categories, &cat)),
                )
            },
        );
        self.customers.check_capacity("customer ids")?;
        self.products.check_capacity("product ids")?;
        self.brands.check_capacity("brands")?;
        self.categories.check_capacity("categories")?;

        // 5. Customer features (one column per task).
        let n_customers = self.customers.keys.dict().len();
        {
            use rayon::prelude::*;
            self.features
                .par_iter_mut()
                .zip(feat_data.par_iter())
                .for_each(|(st, d)| st.update(d, &kept, &cust_codes, n_customers));
        }
        super::features::check_feature_levels(&self.features, b.path)?;
        self.ev.customer.extend_from_slice(&cust_codes);
        self.ev.product.extend_from_slice(&prod_codes);
        self.ev.brand.extend_from_slice(&brand_codes);
        self.ev.category.extend_from_slice(&cat_codes);
        Ok(())
    }

    pub(super) fn finish(mut self, started: Instant) -> Result<Ingested, DataError> {
        let cfg = self.cfg;
        let mut bad_rows = Vec::new();
        for (reason, acc) in BadReason::ALL.iter().zip(std::mem::take(&mut self.bad)) {
            if acc.count > 0 {
                bad_rows.push(BadRows {
                    reason: *reason,
                    message: reason.as_str().to_string(),
                    count: acc.count,
                    examples: acc.examples,
                    values: acc.values,
                });
            }
        }
        let checked = self.report.rows_read - self.report.rows_filtered;
        let bad = self.report.rows_bad;
        if bad > 0 && (bad as f64) > cfg.max_bad_fraction * checked as f64 {
            return Err(DataError::TooManyBadRows {
                bad,
                total: checked,
                pct: 100.0 * bad as f64 / checked.max(1) as f64,
                max_pct: 100.0 * cfg.max_bad_fraction,
                summary: bad_rows_text(&bad_rows),
            });
        }
        if self.report.rows_read == 0 {
            return Err(DataError::Config {
                what: "input",
                message: format!(
                    "no data rows in {} (empty or header-only file(s))",
                    self.report
                        .files
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let n_customers = self.customers.keys.dict().len();
        let mut features = CustomerFeatures::default();
        for st in self.features {
            match st {
                FeatureState::Numeric { name, mut values } => {
                    values.resize(n_customers, f32::NAN);
                    features.numeric.push(NumericFeature { name, values });
                }
                FeatureState::Categorical {
                    name,
                    mut codes,
                    levels,
                    ..
                } => {
                    codes.resize(n_customers, NONE);
                    features.categorical.push(CategoricalFeature {
                        name,
                        codes,
                        levels,
                    });
                }
            }
        }
        let mut ev = self.ev;
        ev.has_outcome = cfg.require_outcome || self.all_outcome;
        ev.timestamp = if self.all_timestamp && self.any_timestamp && cfg.keep_timestamps {
            Some(self.timestamps)
        } else {
            None
        };
        ev.customers = self.customers.into_dict();
        ev.products = self.products.into_dict();
        ev.brands = self.brands.into_dict();
        ev.categories = self.categories.into_dict();
        ev.sizes = self.sizes.event_sizes;
        ev.features = features;
        let mut report = self.report;
        report.bad_rows = bad_rows;
        report.other_outcomes = report.outcomes.other;
        report.customers = ev.customers.len();
        report.products = ev.products.len();
        report.brands = ev.brands.len();
        report.categories = ev.categories.len();
        report.sizes = ev.sizes.len();
        report.seconds = started.elapsed().as_secs_f64();
        Ok(Ingested { events: ev, report })
    }
}
