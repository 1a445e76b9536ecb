//! Customer features: the last non-null value per customer, numeric or categorical.

use super::*;

/// One customer feature being folded per customer.
pub(super) enum FeatureState {
    Numeric {
        name: String,
        values: Vec<f32>,
    },
    Categorical {
        name: String,
        codes: Vec<u32>,
        levels: Vec<String>,
        index: HashMap<String, u32, FixedState>,
    },
}

/// Most distinct values of one categorical customer feature. Each level is a column of
/// the ridge design (whose normal matrix is levels² numbers), so an id-like or free-text
/// column would make the fit allocate without bound; such a file is refused.
pub const MAX_FEATURE_LEVELS: usize = 1000;

/// Refuse a categorical feature with more than [`MAX_FEATURE_LEVELS`] levels (checked
/// after each batch, so at most one batch's levels are held beyond the bound).
pub(super) fn check_feature_levels(
    features: &[FeatureState],
    path: &Path,
) -> Result<(), DataError> {
    for st in features {
        if let FeatureState::Categorical { name, levels, .. } = st {
            if levels.len() > MAX_FEATURE_LEVELS {
                return Err(DataError::Read {
                    path: path.to_path_buf(),
                    message: format!(
                        "customer feature '{name}' has more than {MAX_FEATURE_LEVELS} distinct values \
({} so far); a categorical body feature is one-hot encoded, so at most {MAX_FEATURE_LEVELS} are \
accepted (is it an id, free text, or a numeric column read as text?)",
                        levels.len()
                    ),
                });
            }
        }
    }
    Ok(())
}

pub(super) enum FeatureData {
    Num(Float64Chunked),
    Cat(StringChunked),
}

impl FeatureState {
    pub(super) fn new(name: &str, dt: &DataType) -> Self {
        if dt.is_primitive_numeric() {
            FeatureState::Numeric {
                name: name.to_string(),
                values: Vec::new(),
            }
        } else {
            FeatureState::Categorical {
                name: name.to_string(),
                codes: Vec::new(),
                levels: Vec::new(),
                index: HashMap::default(),
            }
        }
    }

    pub(super) fn accepts(&self, dt: &DataType) -> bool {
        match self {
            FeatureState::Numeric { .. } => dt.is_primitive_numeric() || dt.is_null(),
            FeatureState::Categorical { .. } => dt.is_primitive_numeric() || is_text_like(dt),
        }
    }

    pub(super) fn kind_name(&self) -> &'static str {
        match self {
            FeatureState::Numeric { .. } => "a numeric column (as in earlier files)",
            FeatureState::Categorical { .. } => "a string/boolean column (as in earlier files)",
        }
    }

    pub(super) fn data(&self, c: &Column) -> Result<FeatureData, PolarsError> {
        Ok(match self {
            FeatureState::Numeric { .. } => {
                FeatureData::Num(c.cast(&DataType::Float64)?.f64()?.clone())
            }
            FeatureState::Categorical { .. } => FeatureData::Cat(text_column(c)?),
        })
    }

    /// Fold the kept rows of a batch: last non-null value per customer wins.
    pub(super) fn update(
        &mut self,
        data: &FeatureData,
        kept: &[bool],
        cust: &[u32],
        n_customers: usize,
    ) {
        match (self, data) {
            (FeatureState::Numeric { values, .. }, FeatureData::Num(ca)) => {
                values.resize(n_customers, f32::NAN);
                let mut ci = cust.iter();
                let mut keep = kept.iter();
                for_each_prim(ca, |v| {
                    if !keep.next().copied().unwrap_or(false) {
                        return;
                    }
                    let Some(&c) = ci.next() else { return };
                    if let (Some(v), Some(slot)) = (v, values.get_mut(c as usize)) {
                        if !v.is_nan() {
                            *slot = v as f32;
                        }
                    }
                });
            }
            (
                FeatureState::Categorical {
                    codes,
                    levels,
                    index,
                    ..
                },
                FeatureData::Cat(ca),
            ) => {
                codes.resize(n_customers, NONE);
                let mut ci = cust.iter();
                let mut keep = kept.iter();
                for_each_str(ca, |v| {
                    if !keep.next().copied().unwrap_or(false) {
                        return;
                    }
                    let Some(&c) = ci.next() else { return };
                    let Some(cell) = v else { return };
                    let v = cell.text();
                    // Few levels (the usual case): a linear scan beats hashing.
                    let small = if levels.len() <= 16 {
                        levels.iter().position(|l| l == v).map(|p| p as u32)
                    } else {
                        index.get(v).copied()
                    };
                    let code = match small {
                        Some(code) => code,
                        None => {
                            let code = levels.len() as u32;
                            levels.push(v.to_string());
                            index.insert(v.to_string(), code);
                            code
                        }
                    };
                    if let Some(slot) = codes.get_mut(c as usize) {
                        *slot = code;
                    }
                });
            }
            _ => {}
        }
    }
}
