//! Readers: Parquet in units of row groups on a helper thread, CSV / NDJSON streamed in batches.

use super::*;

pub(super) fn read_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

pub(super) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Run a polars call, turning errors and panics into [`DataError::Read`].
pub(super) fn guarded<T>(
    path: &Path,
    f: impl FnOnce() -> Result<T, PolarsError>,
) -> Result<T, DataError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(read_err(path, e)),
        Err(p) => Err(read_err(
            path,
            format!("the reader failed: {}", panic_text(p.as_ref())),
        )),
    }
}

/// Canonical columns read as text from CSV, so ids like `007` or mixed ids survive.
pub(super) fn csv_text_columns(cfg: &IngestConfig) -> Vec<String> {
    [
        canon::CUSTOMER_ID,
        canon::SIZE,
        canon::OUTCOME,
        canon::PRODUCT_ID,
        canon::BRAND,
        canon::CATEGORY,
        canon::SIZE_SYSTEM,
    ]
    .iter()
    .map(|c| cfg.source(c))
    .collect()
}

pub(super) const INFER_ROWS: usize = 10_000;

/// Lazily scan one file. CSV key columns are read as text and integer feature columns as
/// floats (a later `140.5` must not break a column inferred as integer).
pub(super) fn scan_file(cfg: &IngestConfig, path: &Path) -> Result<LazyFrame, DataError> {
    let format = detect_format(path)?;
    let pl_path = PlRefPath::try_from_path(path).map_err(|e| read_err(path, e))?;
    guarded(path, || match format {
        InputFormat::Parquet => {
            let args = ScanArgsParquet {
                glob: false,
                hive_options: HiveOptions::new_disabled(),
                ..Default::default()
            };
            LazyFrame::scan_parquet(pl_path, args)
        }
        InputFormat::Csv => {
            let base = || {
                LazyCsvReader::new(pl_path.clone())
                    .with_has_header(true)
                    .with_glob(false)
                    .with_infer_schema_length(Some(INFER_ROWS))
            };
            let mut probe = base().finish()?;
            let schema = probe.collect_schema()?;
            let text_cols = csv_text_columns(cfg);
            let mut over = Schema::default();
            for (name, dt) in schema.iter() {
                if text_cols.iter().any(|c| c.as_str() == name.as_str()) {
                    over.with_column(name.clone(), DataType::String);
                } else if dt.is_integer()
                    && cfg
                        .customer_features
                        .iter()
                        .any(|f| f.as_str() == name.as_str())
                {
                    over.with_column(name.clone(), DataType::Float64);
                }
            }
            let over: SchemaRef = Arc::new(over);
            base().with_dtype_overwrite(Some(over)).finish()
        }
        InputFormat::Ndjson => {
            let base = || {
                LazyJsonLineReader::new(pl_path.clone())
                    .with_infer_schema_length(NonZeroUsize::new(INFER_ROWS))
            };
            let mut probe = base().finish()?;
            let schema = probe.collect_schema()?;
            let mut over = Schema::default();
            for (name, dt) in schema.iter() {
                if dt.is_integer()
                    && cfg
                        .customer_features
                        .iter()
                        .any(|f| f.as_str() == name.as_str())
                {
                    over.with_column(name.clone(), DataType::Float64);
                }
            }
            if over.is_empty() {
                Ok(probe)
            } else {
                base().with_schema_overwrite(Some(Arc::new(over))).finish()
            }
        }
    })
}

pub(super) enum Msg {
    Batch(DataFrame),
    Done(Result<(), DataError>),
}

/// Row ranges `(offset, len)` to read a Parquet file in: consecutive row groups together
/// while they stay within `unit` rows, a row group longer than `2 * unit` in ranges of
/// `unit` rows.
pub(super) fn parquet_units(row_groups: &[usize], unit: usize) -> Vec<(usize, usize)> {
    let unit = unit.max(1);
    let mut out = Vec::new();
    let (mut start, mut len) = (0usize, 0usize);
    for &n in row_groups {
        if len > 0 && len + n > unit {
            out.push((start, len));
            start += len;
            len = 0;
        }
        if n > 2 * unit {
            let mut off = 0;
            while off < n {
                let l = unit.min(n - off);
                out.push((start + off, l));
                off += l;
            }
            start += n;
        } else {
            len += n;
        }
    }
    if len > 0 {
        out.push((start, len));
    }
    out
}

/// Read a Parquet file's `columns` unit by unit (see [`parquet_units`],
/// [`IngestConfig::read_rows`]) with polars' in-memory reader on a helper thread, one unit
/// ahead, and feed them to `f` in slices of [`IngestConfig::chunk_rows`] rows, in order.
///
/// Why not the streaming engine: with a consumer slower than the decoder (ours, by
/// design) polars' streaming Parquet source decodes far ahead: 2.6 GB of buffered row
/// groups for a 100M-row file with 1M-row groups, plus the whole file mapped. Here at most
/// two units (the one being processed and the next) are in memory, and each unit's file
/// mapping is dropped once it is decoded.
pub(super) fn read_parquet_units(
    path: &Path,
    columns: &[String],
    cfg: &IngestConfig,
    mut f: impl FnMut(DataFrame) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let chunk_rows = cfg.chunk_rows;
    let open = |p: &Path| {
        std::fs::File::open(p).map_err(|e| DataError::Io {
            path: p.to_path_buf(),
            source: e,
        })
    };
    let metadata = {
        let mut reader = ParquetReader::new(open(path)?);
        guarded(path, || reader.get_metadata().cloned())?
    };
    let row_groups: Vec<usize> = metadata.row_groups.iter().map(|rg| rg.num_rows()).collect();
    let units = parquet_units(&row_groups, cfg.read_rows);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(0);
    let thread_path = path.to_path_buf();
    let columns = columns.to_vec();
    let handle = std::thread::Builder::new()
        .name("runsize-parquet-reader".into())
        .spawn(move || {
            for unit in units {
                let file = match open(&thread_path) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.send(Msg::Done(Err(e)));
                        return;
                    }
                };
                let md = metadata.clone();
                let read = guarded(&thread_path, || {
                    let mut reader = ParquetReader::new(file)
                        .with_columns(Some(columns.clone()))
                        .with_slice(Some(unit));
                    reader.set_metadata(md);
                    reader.finish()
                });
                let msg = match read {
                    Ok(df) => Msg::Batch(df),
                    Err(e) => Msg::Done(Err(e)),
                };
                let stop = matches!(msg, Msg::Done(_));
                if tx.send(msg).is_err() || stop {
                    return;
                }
            }
            let _ = tx.send(Msg::Done(Ok(())));
        })
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    let chunk = chunk_rows.max(1);
    let mut result = Err(read_err(path, "the reader stopped unexpectedly"));
    'units: while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch(df) => {
                let mut offset = 0usize;
                while offset < df.height() {
                    if let Err(e) = f(df.slice(offset as i64, chunk)) {
                        result = Err(e);
                        break 'units;
                    }
                    offset += chunk;
                }
            }
            Msg::Done(r) => {
                result = r;
                break;
            }
        }
    }
    drop(rx);
    let _ = handle.join();
    result
}

/// Stream a lazy frame through `f` in batches of about `chunk_rows` rows, in order.
pub(super) fn stream_batches(
    lf: LazyFrame,
    chunk_rows: usize,
    path: &Path,
    mut f: impl FnMut(DataFrame) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(1);
    let tx_batch = tx.clone();
    let callback =
        PlanCallback::new(move |df: DataFrame| Ok(tx_batch.send(Msg::Batch(df)).is_err()));
    let lf = guarded(path, || {
        lf.sink_batches(callback, true, NonZeroUsize::new(chunk_rows))
    })?;
    let thread_path = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("runsize-ingest-reader".into())
        .spawn(move || {
            let r = guarded(&thread_path, || {
                lf.collect_with_engine(Engine::Streaming).map(|_| ())
            });
            let _ = tx.send(Msg::Done(r));
        })
        .map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
    let mut result = Err(read_err(path, "the reader stopped unexpectedly"));
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Batch(df) => {
                if let Err(e) = f(df) {
                    result = Err(e);
                    break;
                }
            }
            Msg::Done(r) => {
                result = r;
                break;
            }
        }
    }
    drop(rx);
    let _ = handle.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parquet_units_group_small_row_groups_and_split_big_ones() {
        assert_eq!(parquet_units(&[], 10), vec![]);
        assert_eq!(parquet_units(&[4, 4, 4], 10), vec![(0, 8), (8, 4)]);
        assert_eq!(parquet_units(&[10, 10], 10), vec![(0, 10), (10, 10)]);
        assert_eq!(parquet_units(&[15], 10), vec![(0, 15)]);
        assert_eq!(
            parquet_units(&[3, 25, 2], 10),
            vec![(0, 3), (3, 10), (13, 10), (23, 5), (28, 2)]
        );
        let units = parquet_units(&[7, 1, 30, 0, 9, 9], 8);
        let total: usize = units.iter().map(|u| u.1).sum();
        assert_eq!(total, 56);
        for w in units.windows(2) {
            assert_eq!(w[0].0 + w[0].1, w[1].0, "contiguous: {units:?}");
        }
    }
}
