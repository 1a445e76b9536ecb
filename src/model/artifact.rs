//! The model artifact: a versioned, self-describing file written atomically.
//!
//! Layout: magic `RUNSIZE\n`, format version (u32 LE), header length (u32 LE), a JSON
//! header (format version, crate version, creation time, model id, training summary),
//! the postcard-encoded [`Model`], and an FNV-1a 64 checksum (u64 LE) of the body.
//! `head -c 4096 model.runsize` shows the header; corrupt or incompatible files are
//! refused with a message saying why.

use super::fitted::{Model, TrainingSummary};
use super::ModelError;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// File magic.
pub const MAGIC: &[u8; 8] = b"RUNSIZE\n";
/// Current artifact format version; readers refuse other versions (2: the model carries
/// an optional second stage and per-iteration fit diagnostics; 3: customer ids are a
/// compact dictionary, `i64` keys or one sequence of texts, instead of a list of
/// strings).
pub const FORMAT_VERSION: u32 = 3;

/// The JSON header of an artifact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactHeader {
    /// Artifact format version.
    pub format_version: u32,
    /// runsize version that wrote it.
    pub runsize_version: String,
    /// Seconds since the Unix epoch when it was written.
    pub created_unix: u64,
    /// Model id: checksum of the body, hex.
    pub model_id: String,
    /// Training summary.
    pub summary: TrainingSummary,
}

/// FNV-1a 64-bit hash.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Artifact {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Serialise a model to bytes (header + body + checksum); returns the bytes and the header.
pub fn to_bytes(model: &Model) -> Result<(Vec<u8>, ArtifactHeader), ModelError> {
    let body = postcard::to_stdvec(model)
        .map_err(|e| err(Path::new("<memory>"), format!("encode: {e}")))?;
    let sum = fnv1a(&body);
    let header = ArtifactHeader {
        format_version: FORMAT_VERSION,
        runsize_version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model_id: format!("{sum:016x}"),
        summary: model.summary.clone(),
    };
    let json = serde_json::to_vec_pretty(&header)
        .map_err(|e| err(Path::new("<memory>"), format!("header: {e}")))?;
    let mut out = Vec::with_capacity(body.len() + json.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&body);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok((out, header))
}

/// Write a model atomically: a temp file in the target directory, fsync, rename.
pub fn save(model: &Model, path: &Path) -> Result<ArtifactHeader, ModelError> {
    let (bytes, header) = to_bytes(model)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| err(path, format!("create directory: {e}")))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".runsize-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| err(path, format!("temp file: {e}")))?;
    tmp.write_all(&bytes)
        .map_err(|e| err(path, format!("write: {e}")))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| err(path, format!("sync: {e}")))?;
    tmp.persist(path)
        .map_err(|e| err(path, format!("rename into place: {}", e.error)))?;
    Ok(header)
}

/// Parse an artifact from bytes (`path` is only used in messages).
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Model, ArtifactHeader), ModelError> {
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(err(
            path,
            "not a runsize model (bad magic; expected a file written by `runsize train`)",
        ));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(err(
            path,
            format!("artifact format version {version}, this runsize reads version {FORMAT_VERSION}: retrain the model"),
        ));
    }
    let hlen = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    let body_start = 16usize.checked_add(hlen).filter(|&e| e + 8 <= bytes.len());
    let Some(body_start) = body_start else {
        return Err(err(
            path,
            "truncated artifact (header runs past the end of the file)",
        ));
    };
    let header: ArtifactHeader = serde_json::from_slice(&bytes[16..body_start])
        .map_err(|e| err(path, format!("corrupt header: {e}")))?;
    let body_end = bytes.len() - 8;
    let body = &bytes[body_start..body_end];
    let mut sum_bytes = [0u8; 8];
    sum_bytes.copy_from_slice(&bytes[body_end..]);
    let stored = u64::from_le_bytes(sum_bytes);
    if fnv1a(body) != stored {
        return Err(err(
            path,
            "checksum mismatch: the file is corrupt or truncated",
        ));
    }
    let mut model: Model =
        postcard::from_bytes(body).map_err(|e| err(path, format!("corrupt body: {e}")))?;
    model.reindex();
    Ok((model, header))
}

/// Load and validate a model artifact.
pub fn load(path: &Path) -> Result<(Model, ArtifactHeader), ModelError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    from_bytes(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_hand_values() {
        // published FNV-1a 64 test vectors
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn round_trip_and_corruption() {
        let model = Model::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.runsize");
        let header = save(&model, &path).unwrap();
        let (back, h2) = load(&path).unwrap();
        assert_eq!(header.model_id, h2.model_id);
        assert_eq!(back.labels.len(), 0);
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 9] ^= 0xff;
        let e = from_bytes(&bytes, &path).unwrap_err().to_string();
        assert!(e.contains("checksum") || e.contains("corrupt"), "{e}");
        let e = from_bytes(b"hello world, not a model", &path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a runsize model"), "{e}");
        let mut v2 = std::fs::read(&path).unwrap();
        v2[8] = 99;
        assert!(from_bytes(&v2, &path)
            .unwrap_err()
            .to_string()
            .contains("version 99"));
        assert!(from_bytes(&bytes[..20], &path).is_err());
        // no temp files left behind
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1);
    }
}
