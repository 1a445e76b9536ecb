//! Everything before the model: the event schema, size labels, outcome vocabularies and
//! readers that turn Parquet / CSV / NDJSON files into the compact [`Events`] table, and
//! the compact key dictionary with its one index ([`dict`]).

pub mod dict;
pub mod error;
pub mod ingest;
pub mod labels;
pub mod outcome;
pub mod output;
pub mod schema;

pub use dict::{Dict, DictIndex, IndexedDict};
pub use error::DataError;
pub use ingest::{
    ingest, ingest_with_frame, list_inputs, IngestConfig, IngestReport, Ingested, RowFilter,
    SplitFilter,
};
pub use labels::{parse_size, parse_system, LabelError};
pub use outcome::OutcomeMap;
pub use output::write_frame;
pub use schema::{Events, Outcome, RowIds, SizeLabel, SizeSystem, NONE};
