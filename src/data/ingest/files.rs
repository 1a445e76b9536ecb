//! Input discovery (file, directory, glob) and format detection (Parquet, CSV, NDJSON, gzip).

use super::*;

/// File formats ingest reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// CSV with a header row (`.csv`, `.csv.gz`).
    Csv,
    /// Newline-delimited JSON (`.ndjson`, `.jsonl`, `.json`, optionally `.gz`).
    Ndjson,
}

/// The format of a file by its extension (case-insensitive; a trailing `.gz` is allowed
/// for CSV and NDJSON; polars detects the compression itself).
pub fn detect_format(path: &Path) -> Result<InputFormat, DataError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let (stem, gz) = match name.strip_suffix(".gz") {
        Some(s) => (s, true),
        None => (name.as_str(), false),
    };
    if !gz && (stem.ends_with(".parquet") || stem.ends_with(".pq")) {
        Ok(InputFormat::Parquet)
    } else if stem.ends_with(".csv") {
        Ok(InputFormat::Csv)
    } else if stem.ends_with(".ndjson") || stem.ends_with(".jsonl") || stem.ends_with(".json") {
        Ok(InputFormat::Ndjson)
    } else {
        Err(DataError::UnsupportedFormat(path.to_path_buf()))
    }
}

pub(super) fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expand inputs into the list of files to read. Each input is a file (its extension must
/// be supported), a directory (its supported files, not recursive, sorted by path; hidden
/// files skipped) or a glob (matching supported files, sorted by path). Inputs are taken in
/// the order given; a file listed twice is read once.
///
/// Errors: [`DataError::NoInput`] when an input matches nothing,
/// [`DataError::UnsupportedFormat`] for an explicit file of unknown type,
/// [`DataError::Io`] when a directory cannot be listed.
pub fn list_inputs(inputs: &[String]) -> Result<Vec<PathBuf>, DataError> {
    if inputs.is_empty() {
        return Err(DataError::NoInput("(no --events given)".into()));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let p = Path::new(input);
        let mut found: Vec<PathBuf> = Vec::new();
        if p.is_file() {
            detect_format(p)?;
            found.push(p.to_path_buf());
        } else if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| DataError::Io {
                path: p.to_path_buf(),
                source: e,
            })?;
            for entry in rd {
                let entry = entry.map_err(|e| DataError::Io {
                    path: p.to_path_buf(),
                    source: e,
                })?;
                let path = entry.path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if path.is_file() && !hidden && detect_format(&path).is_ok() {
                    found.push(path);
                }
            }
            found.sort();
        } else if has_glob_chars(input) {
            let paths = glob::glob(input).map_err(|e| DataError::Config {
                what: "input glob",
                message: format!("'{input}': {e}"),
            })?;
            for path in paths.flatten() {
                if path.is_file() && detect_format(&path).is_ok() {
                    found.push(path);
                }
            }
            found.sort();
        }
        if found.is_empty() {
            return Err(DataError::NoInput(input.clone()));
        }
        for f in found {
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_format_by_extension() {
        assert_eq!(
            detect_format(Path::new("a/b.parquet")).unwrap(),
            InputFormat::Parquet
        );
        assert_eq!(
            detect_format(Path::new("b.CSV.gz")).unwrap(),
            InputFormat::Csv
        );
        assert_eq!(
            detect_format(Path::new("b.jsonl")).unwrap(),
            InputFormat::Ndjson
        );
        assert_eq!(
            detect_format(Path::new("b.ndjson.gz")).unwrap(),
            InputFormat::Ndjson
        );
        assert!(matches!(
            detect_format(Path::new("b.txt")),
            Err(DataError::UnsupportedFormat(_))
        ));
        assert!(detect_format(Path::new("b.parquet.gz")).is_err());
    }
}
