//! Encoding event chunks and streaming them to a Parquet or CSV file.

use super::events::{Chunk, OUTCOME_VALUES};
use super::world::{World, SHAPES};
use crate::data::schema::col;
use crate::data::DataError;
use polars::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Column names of the synthetic files, in order.
pub const COLUMNS: [&str; 11] = [
    col::CUSTOMER_ID,
    col::PRODUCT_ID,
    col::BRAND,
    col::CATEGORY,
    col::SIZE,
    col::SIZE_SYSTEM,
    col::TIMESTAMP,
    col::OUTCOME,
    "height_cm",
    "weight_kg",
    "body_shape",
];

/// Output file format, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `.parquet` (zstd-compressed, one row group per chunk).
    Parquet,
    /// `.csv` (header once, ISO-8601 timestamps, empty fields for nulls).
    Csv,
}

impl Format {
    /// The format of `path` by its extension (`.parquet` or `.csv`, case-insensitive).
    pub fn of(path: &Path) -> Result<Format, DataError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("parquet") => Ok(Format::Parquet),
            Some("csv") => Ok(Format::Csv),
            _ => Err(DataError::Config {
                what: "synth output",
                message: format!(
                    "{}: unsupported extension; expected a .parquet or .csv file",
                    path.display()
                ),
            }),
        }
    }
}

/// A chunk encoded for its sink.
pub(crate) enum Encoded {
    /// A DataFrame to write as one Parquet row group.
    Frame(DataFrame),
    /// CSV text (no header).
    Text(Vec<u8>),
}

/// Civil date (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// ISO-8601 text (`YYYY-MM-DDTHH:MM:SS`, UTC, no zone suffix) of epoch seconds, as written
/// to the CSV `timestamp` column.
pub fn format_iso_seconds(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn polars_err(path: &Path, e: PolarsError) -> DataError {
    DataError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> DataError {
    DataError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The Polars schema of the synthetic files.
pub(crate) fn schema() -> Schema {
    let mut s = Schema::default();
    let types = [
        DataType::Int64,
        DataType::String,
        DataType::String,
        DataType::String,
        DataType::String,
        DataType::String,
        DataType::Datetime(TimeUnit::Milliseconds, None),
        DataType::String,
        DataType::Float64,
        DataType::Float64,
        DataType::String,
    ];
    for (name, dtype) in COLUMNS.iter().zip(types) {
        s.with_column((*name).into(), dtype);
    }
    s
}

/// Encode a chunk as a DataFrame with [`schema`].
pub(crate) fn to_frame(world: &World, chunk: &Chunk, path: &Path) -> Result<DataFrame, DataError> {
    let product = |i: &u32| world.products.get(*i as usize);
    let customer =
        Int64Chunked::from_iter_values(COLUMNS[0].into(), chunk.customer.iter().map(|&c| c as i64));
    let product_id = StringChunked::from_iter_values(
        COLUMNS[1].into(),
        chunk
            .product
            .iter()
            .map(|i| product(i).map_or("", |p| p.id.as_str())),
    );
    let brand = StringChunked::from_iter_values(
        COLUMNS[2].into(),
        chunk.product.iter().map(|i| {
            product(i)
                .and_then(|p| world.brands.get(p.brand))
                .map_or("", |b| b.name.as_str())
        }),
    );
    let category = StringChunked::from_iter_values(
        COLUMNS[3].into(),
        chunk
            .product
            .iter()
            .map(|i| product(i).map_or("", |p| p.category)),
    );
    let size = StringChunked::from_iter_values(
        COLUMNS[4].into(),
        chunk
            .label
            .iter()
            .map(|&l| world.labels.get(l as usize).map_or("", String::as_str)),
    );
    let system = StringChunked::from_iter_values(
        COLUMNS[5].into(),
        chunk
            .product
            .iter()
            .map(|i| product(i).map_or("", |p| p.system.as_str())),
    );
    let time =
        Int64Chunked::from_iter_values(COLUMNS[6].into(), chunk.time.iter().map(|&t| t * 1000))
            .into_datetime(TimeUnit::Milliseconds, None);
    let outcome = StringChunked::from_iter_values(
        COLUMNS[7].into(),
        chunk
            .outcome
            .iter()
            .map(|&o| OUTCOME_VALUES.get(o as usize).copied().unwrap_or("kept")),
    );
    let height = Float64Chunked::from_iter_options(COLUMNS[8].into(), chunk.height.iter().copied());
    let weight = Float64Chunked::from_iter_options(COLUMNS[9].into(), chunk.weight.iter().copied());
    let shape = StringChunked::from_iter_options(
        COLUMNS[10].into(),
        chunk
            .shape
            .iter()
            .map(|s| s.and_then(|s| SHAPES.get(s as usize).copied())),
    );
    DataFrame::new(
        chunk.len(),
        vec![
            customer.into_column(),
            product_id.into_column(),
            brand.into_column(),
            category.into_column(),
            size.into_column(),
            system.into_column(),
            time.into_column(),
            outcome.into_column(),
            height.into_column(),
            weight.into_column(),
            shape.into_column(),
        ],
    )
    .map_err(|e| polars_err(path, e))
}

/// Encode a chunk as CSV rows (no header).
pub(crate) fn to_csv(world: &World, chunk: &Chunk) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(chunk.len() * 110);
    // Timestamps repeat for consecutive events when events outnumber seconds; cache one.
    let mut last_time = i64::MIN;
    let mut last_text = String::new();
    for i in 0..chunk.len() {
        let (Some(&c), Some(&pi), Some(&l), Some(&o), Some(&t)) = (
            chunk.customer.get(i),
            chunk.product.get(i),
            chunk.label.get(i),
            chunk.outcome.get(i),
            chunk.time.get(i),
        ) else {
            continue;
        };
        let Some(p) = world.products.get(pi as usize) else {
            continue;
        };
        let brand = world.brands.get(p.brand).map_or("", |b| b.name.as_str());
        let label = world.labels.get(l as usize).map_or("", String::as_str);
        let outcome = OUTCOME_VALUES.get(o as usize).copied().unwrap_or("kept");
        if t != last_time {
            last_time = t;
            last_text = format_iso_seconds(t);
        }
        let _ = write!(
            out,
            "{c},{},{brand},{},{label},{},{last_text},{outcome},",
            p.id,
            p.category,
            p.system.as_str()
        );
        if let Some(Some(h)) = chunk.height.get(i) {
            let _ = write!(out, "{h:.1}");
        }
        out.push(',');
        if let Some(Some(w)) = chunk.weight.get(i) {
            let _ = write!(out, "{w:.1}");
        }
        out.push(',');
        if let Some(Some(s)) = chunk.shape.get(i) {
            out.push_str(SHAPES.get(*s as usize).copied().unwrap_or(""));
        }
        out.push('\n');
    }
    out.into_bytes()
}

/// A temporary file beside the destination, renamed into place on success.
pub(crate) struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl AtomicFile {
    /// Create a temporary file in the directory of `dest`.
    pub(crate) fn create(dest: &Path) -> Result<AtomicFile, DataError> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".runsize-synth-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| io_err(dest, e))?;
        Ok(AtomicFile {
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    /// The open temporary file.
    pub(crate) fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// Sync and rename the temporary file onto the destination (made readable by all,
    /// `0644` on Unix, like a file created normally).
    pub(crate) fn commit(self) -> Result<u64, DataError> {
        let dest = self.dest;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            self.tmp
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(|e| io_err(&dest, e))?;
        }
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| io_err(&dest, e))?;
        let len = self
            .tmp
            .as_file()
            .metadata()
            .map(|m| m.len())
            .map_err(|e| io_err(&dest, e))?;
        self.tmp
            .persist(&dest)
            .map_err(|e| io_err(&dest, e.error))?;
        Ok(len)
    }
}

/// An open output stream: a batched Parquet writer or a CSV byte stream on `W`
/// (the caller passes `&mut BufWriter<File>` and flushes it after [`Sink::finish`]).
pub(crate) enum Sink<W: Write> {
    /// Parquet, one row group per chunk.
    Parquet(Box<polars::io::parquet::write::BatchedWriter<W>>),
    /// CSV with the header already written.
    Csv(W),
}

impl<W: Write> Sink<W> {
    /// Open a sink of `format` on `out` (`path` names it in errors).
    pub(crate) fn open(format: Format, mut out: W, path: &Path) -> Result<Sink<W>, DataError> {
        match format {
            Format::Parquet => {
                let writer = ParquetWriter::new(out)
                    .with_compression(ParquetCompression::Zstd(None))
                    .batched(&schema())
                    .map_err(|e| polars_err(path, e))?;
                Ok(Sink::Parquet(Box::new(writer)))
            }
            Format::Csv => {
                let header = COLUMNS.join(",");
                out.write_all(header.as_bytes())
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(|e| io_err(path, e))?;
                Ok(Sink::Csv(out))
            }
        }
    }

    /// Append one encoded chunk.
    pub(crate) fn write(&mut self, encoded: &Encoded, path: &Path) -> Result<(), DataError> {
        match (self, encoded) {
            (Sink::Parquet(w), Encoded::Frame(df)) => {
                w.write_batch(df).map_err(|e| polars_err(path, e))
            }
            (Sink::Csv(w), Encoded::Text(bytes)) => w.write_all(bytes).map_err(|e| io_err(path, e)),
            _ => Err(DataError::Write {
                path: path.to_path_buf(),
                message: "internal: chunk encoded for the wrong format".into(),
            }),
        }
    }

    /// Finish the file (Parquet footer) and flush `W`.
    pub(crate) fn finish(self, path: &Path) -> Result<(), DataError> {
        match self {
            Sink::Parquet(w) => w.finish().map(|_| ()).map_err(|e| polars_err(path, e)),
            Sink::Csv(mut w) => w.flush().map_err(|e| io_err(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_seconds_by_hand() {
        assert_eq!(format_iso_seconds(0), "1970-01-01T00:00:00");
        assert_eq!(format_iso_seconds(1_672_531_200), "2023-01-01T00:00:00");
        // 2024-02-29T12:34:56Z = 1709210096.
        assert_eq!(format_iso_seconds(1_709_210_096), "2024-02-29T12:34:56");
        assert_eq!(format_iso_seconds(-1), "1969-12-31T23:59:59");
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            Format::of(Path::new("a/b.parquet")).unwrap(),
            Format::Parquet
        );
        assert_eq!(Format::of(Path::new("x.CSV")).unwrap(), Format::Csv);
        assert!(Format::of(Path::new("x.json")).is_err());
        assert!(Format::of(Path::new("x")).is_err());
    }

    #[test]
    fn schema_has_every_column() {
        let s = schema();
        assert_eq!(s.len(), COLUMNS.len());
        assert_eq!(
            s.get("timestamp"),
            Some(&DataType::Datetime(TimeUnit::Milliseconds, None))
        );
    }
}
