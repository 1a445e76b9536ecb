//! Writing data frames (batch prediction output) as Parquet, CSV or NDJSON, atomically:
//! written to a temporary file in the target directory, then renamed into place.

use super::DataError;
use polars::prelude::{CsvWriter, DataFrame, JsonFormat, JsonWriter, ParquetWriter, SerWriter};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Output formats [`write_frame`] chooses by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// `.parquet` / `.pq`.
    Parquet,
    /// `.csv` (with a header row).
    Csv,
    /// `.ndjson` / `.jsonl` (one JSON object per line).
    Ndjson,
}

/// The output format for a path by its extension (case-insensitive); `None` when unknown.
pub fn output_format(path: &Path) -> Option<OutputFormat> {
    let ext = path.extension()?.to_string_lossy().to_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => Some(OutputFormat::Parquet),
        "csv" => Some(OutputFormat::Csv),
        "ndjson" | "jsonl" => Some(OutputFormat::Ndjson),
        _ => None,
    }
}

/// Write `df` to `path`, format by extension (`.parquet`/`.pq`, `.csv`, `.ndjson`/`.jsonl`).
/// The frame is written to a temporary file in the same directory and renamed over `path`
/// only when complete, so readers never see a half-written file. The directory must exist.
///
/// Errors: [`DataError::Write`] naming `path` (unknown extension, missing directory, I/O or
/// encoding failure); no temporary file is left behind.
pub fn write_frame(df: &mut DataFrame, path: &Path) -> Result<(), DataError> {
    let werr = |message: String| DataError::Write {
        path: path.to_path_buf(),
        message,
    };
    let format = output_format(path).ok_or_else(|| {
        werr("unsupported output extension (expected .parquet, .csv, .ndjson or .jsonl)".into())
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".runsize-write-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| {
            werr(format!(
                "cannot create a temporary file in {}: {e}",
                dir.display()
            ))
        })?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        let r = match format {
            OutputFormat::Parquet => ParquetWriter::new(&mut w).finish(df).map(|_| ()),
            OutputFormat::Csv => CsvWriter::new(&mut w).include_header(true).finish(df),
            OutputFormat::Ndjson => JsonWriter::new(&mut w)
                .with_json_format(JsonFormat::JsonLines)
                .finish(df),
        };
        r.map_err(|e| werr(e.to_string()))?;
        w.flush().map_err(|e| werr(e.to_string()))?;
    }
    tmp.as_file().sync_all().map_err(|e| werr(e.to_string()))?;
    tmp.persist(path).map_err(|e| werr(e.error.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::{df, IntoLazy, LazyCsvReader, LazyFileListReader, PlRefPath};

    #[test]
    fn format_by_extension() {
        assert_eq!(
            output_format(Path::new("a/b.PARQUET")),
            Some(OutputFormat::Parquet)
        );
        assert_eq!(output_format(Path::new("b.csv")), Some(OutputFormat::Csv));
        assert_eq!(
            output_format(Path::new("b.jsonl")),
            Some(OutputFormat::Ndjson)
        );
        assert_eq!(output_format(Path::new("b.txt")), None);
        assert_eq!(output_format(Path::new("b")), None);
    }

    #[test]
    fn writes_csv_atomically_and_rejects_unknown_extension() {
        let dir = tempfile::tempdir().unwrap();
        let mut frame = df!("a" => [1i64, 2, 3], "b" => ["x", "y", "z"]).unwrap();
        let path = dir.path().join("out.csv");
        write_frame(&mut frame, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "a,b\n1,x\n2,y\n3,z\n");
        // Only the target remains: no temporary file left over.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let back = LazyCsvReader::new(PlRefPath::try_from_path(&path).unwrap())
            .finish()
            .unwrap()
            .collect()
            .unwrap();
        assert_eq!(back.height(), 3);

        let bad = dir.path().join("out.txt");
        let err = write_frame(&mut frame, &bad).unwrap_err();
        assert!(matches!(err, DataError::Write { ref path, .. } if path == &bad));
        let missing_dir = dir.path().join("nope").join("out.csv");
        assert!(matches!(
            write_frame(&mut frame, &missing_dir),
            Err(DataError::Write { .. })
        ));
        let _ = frame.lazy();
    }

    #[test]
    fn writes_parquet_and_ndjson() {
        let dir = tempfile::tempdir().unwrap();
        let mut frame = df!("a" => [1i64, 2], "b" => ["x", "y"]).unwrap();
        let pq = dir.path().join("out.parquet");
        write_frame(&mut frame, &pq).unwrap();
        let back = polars::prelude::LazyFrame::scan_parquet(
            PlRefPath::try_from_path(&pq).unwrap(),
            Default::default(),
        )
        .unwrap()
        .collect()
        .unwrap();
        assert!(back.equals(&frame));
        let nd = dir.path().join("out.ndjson");
        write_frame(&mut frame, &nd).unwrap();
        let text = std::fs::read_to_string(&nd).unwrap();
        assert_eq!(text, "{\"a\":1,\"b\":\"x\"}\n{\"a\":2,\"b\":\"y\"}\n");
    }
}
