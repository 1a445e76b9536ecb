//! The Parquet files a plan reads: the prepared events (once per fit) and the visited
//! customers' warm starts (once per pass).

use super::DistError;
use crate::model::fitdata::FitData;
use crate::model::CustomerStart;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

/// Rows per Parquet row group (and per written batch): the unit DataFusion splits a
/// file's scan into partitions by.
const ROW_GROUP: usize = 1 << 20;

/// Schema of the prepared events: `e` (event index, the local pass's order), `cust`
/// (customer index), `asz` (article-size index), `y` (0 small, 1 fit, 2 large).
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("e", DataType::UInt64, false),
        Field::new("cust", DataType::UInt32, false),
        Field::new("asz", DataType::UInt32, false),
        Field::new("y", DataType::UInt8, false),
    ]))
}

/// Schema of a pass's warm starts: `cust`, `s0`, `u0` (start), `m` (prior mean),
/// `feat` (prior from features).
pub fn starts_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("cust", DataType::UInt32, false),
        Field::new("s0", DataType::Float64, false),
        Field::new("u0", DataType::Float32, false),
        Field::new("m", DataType::Float32, false),
        Field::new("feat", DataType::Boolean, false),
    ]))
}

fn create(path: &Path) -> Result<std::fs::File, DistError> {
    std::fs::File::create(path).map_err(|source| DistError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn writer(path: &Path, schema: SchemaRef) -> Result<ArrowWriter<std::fs::File>, DistError> {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    Ok(ArrowWriter::try_new(create(path)?, schema, Some(props))?)
}

/// Write `data`'s fit events (grouped by customer, as the local pass reads them).
pub fn write_events(data: &FitData, path: &Path) -> Result<(), DistError> {
    let schema = events_schema();
    let mut w = writer(path, schema.clone())?;
    let n_cust = data.cust_start.len().saturating_sub(1);
    let mut c = 0usize;
    let mut lo = 0usize;
    while lo < data.len() {
        let hi = (lo + ROW_GROUP).min(data.len());
        let mut cust = Vec::with_capacity(hi - lo);
        for e in lo..hi {
            while c < n_cust && data.cust_start[c + 1] as usize <= e {
                c += 1;
            }
            cust.push(c as u32);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from_iter_values(lo as u64..hi as u64)),
            Arc::new(UInt32Array::from(cust)),
            Arc::new(UInt32Array::from(data.ev_as[lo..hi].to_vec())),
            Arc::new(UInt8Array::from(data.ev_y[lo..hi].to_vec())),
        ];
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
        lo = hi;
    }
    w.close()?;
    Ok(())
}

/// Write a pass's warm starts.
pub fn write_starts(starts: &[CustomerStart], path: &Path) -> Result<(), DistError> {
    let schema = starts_schema();
    let mut w = writer(path, schema.clone())?;
    for part in starts.chunks(ROW_GROUP) {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from_iter_values(
                part.iter().map(|x| x.customer),
            )),
            Arc::new(Float64Array::from_iter_values(part.iter().map(|x| x.s))),
            Arc::new(Float32Array::from_iter_values(part.iter().map(|x| x.u))),
            Arc::new(Float32Array::from_iter_values(
                part.iter().map(|x| x.prior_mean),
            )),
            Arc::new(BooleanArray::from_iter(
                part.iter().map(|x| Some(x.has_features)),
            )),
        ];
        w.write(&RecordBatch::try_new(schema.clone(), cols)?)?;
    }
    w.close()?;
    Ok(())
}
