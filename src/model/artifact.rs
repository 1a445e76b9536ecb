//! The model artifact: a versioned, self-describing file written atomically.
//!
//! Layout: magic `RUNSIZE\n`, format version (u32 LE), header length (u32 LE), a JSON
//! header (format version, crate version, creation time, model id, training summary),
//! the postcard-encoded [`Fitted`], and an FNV-1a 64 checksum (u64 LE) of the body.
//! `head -c 4096 model.runsize` shows the header; corrupt or incompatible files are
//! refused with a message saying why.
//!
//! The body is streamed both ways: [`save`] encodes the model straight into the temp
//! file through a buffer that also hashes it, then patches the header's model id (the
//! checksum, fixed-width hex) in place; [`load`] decodes straight from a buffered file
//! reader that hashes what it consumes. Neither holds the encoded body in memory (at 50M
//! customers it is gigabytes).

use super::fitted::{Fitted, TrainingSummary};
use super::predictor::Predictor;
use super::ModelError;
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// File magic.
pub const MAGIC: &[u8; 8] = b"RUNSIZE\n";
/// Current artifact format version; readers refuse other versions (2: the model carries
/// an optional second stage and per-iteration fit diagnostics; 3: customer ids are a
/// compact dictionary, `i64` keys or one sequence of texts, instead of a list of
/// strings; 4: the second stage records how its penalties were chosen).
pub const FORMAT_VERSION: u32 = 4;

/// Bytes buffered between the postcard encoder / decoder and the file.
const IO_BUFFER: usize = 1 << 20;

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
    /// The training run's held-out evaluation (reliability and worth tables), when it
    /// had a held-out part; absent in artifacts written without one (or before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<super::insight::worth::HeldOut>,
}

/// FNV-1a 64-bit hash.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_update(FNV_START, bytes)
}

/// FNV-1a 64 offset basis (the hash of no bytes).
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Continue an FNV-1a 64 hash `h` over `bytes` (hashing in pieces equals hashing the
/// concatenation).
fn fnv1a_update(mut h: u64, bytes: &[u8]) -> u64 {
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

/// A postcard encoder sink: hashes every body byte and writes it to `out` through a
/// buffer; its output is the hash. An I/O error is kept in `error` (postcard's own error
/// cannot carry it).
struct HashingSink<'a, W: Write> {
    out: &'a mut W,
    error: &'a mut Option<std::io::Error>,
    buf: Vec<u8>,
    hash: u64,
}

impl<W: Write> HashingSink<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if let Err(e) = self.out.write_all(bytes) {
            *self.error = Some(e);
            return Err(postcard::Error::SerializeBufferFull);
        }
        Ok(())
    }
}

impl<W: Write> postcard::ser_flavors::Flavor for HashingSink<'_, W> {
    type Output = u64;

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.try_extend(&[data])
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.hash = fnv1a_update(self.hash, data);
        if self.buf.len() + data.len() > IO_BUFFER {
            let buf = std::mem::take(&mut self.buf);
            self.write(&buf)?;
            self.buf = buf;
            self.buf.clear();
        }
        if data.len() > IO_BUFFER {
            self.write(data)
        } else {
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }

    fn finalize(mut self) -> postcard::Result<u64> {
        let buf = std::mem::take(&mut self.buf);
        self.write(&buf)?;
        Ok(self.hash)
    }
}

/// A postcard decoder source: reads `inner` through a buffer and hashes every byte the
/// decoder consumes. Only owned decoding is supported (borrowing `&str` / `&[u8]` from
/// the input is refused; the model owns all its data).
struct HashingSource<R: Read> {
    inner: R,
    /// Bytes of `inner` not read yet (a corrupt length prefix beyond them fails before
    /// any buffer grows).
    left: u64,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    hash: u64,
    error: Option<std::io::Error>,
}

impl<R: Read> HashingSource<R> {
    fn new(inner: R, left: u64) -> Self {
        // no bigger than the file: a small (or hostile) file costs no 1 MiB buffer
        let size = usize::try_from(left).map_or(IO_BUFFER, |l| l.min(IO_BUFFER));
        HashingSource {
            inner,
            left,
            buf: vec![0; size],
            pos: 0,
            end: 0,
            hash: FNV_START,
            error: None,
        }
    }

    /// Make at least `n` unread bytes available in `buf[pos..end]`.
    fn fill(&mut self, n: usize) -> postcard::Result<()> {
        let have = self.end - self.pos;
        if have >= n {
            return Ok(());
        }
        if (n - have) as u64 > self.left {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.end < n {
            let Some(space) = self.buf.get_mut(self.end..) else {
                return Err(postcard::Error::DeserializeUnexpectedEnd);
            };
            match self.inner.read(space) {
                Ok(0) => return Err(postcard::Error::DeserializeUnexpectedEnd),
                Ok(k) => {
                    self.end += k;
                    self.left = self.left.saturating_sub(k as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e);
                    return Err(postcard::Error::DeserializeUnexpectedEnd);
                }
            }
        }
        Ok(())
    }

    /// Take the next `n` bytes (not hashed: the caller decides).
    fn take(&mut self, n: usize) -> postcard::Result<&[u8]> {
        self.fill(n)?;
        let start = self.pos;
        self.pos += n;
        self.buf
            .get(start..start + n)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)
    }
}

impl<'de, R: Read + 'de> postcard::de_flavors::Flavor<'de> for HashingSource<R> {
    type Remainder = Self;
    type Source = R;

    #[inline]
    fn pop(&mut self) -> postcard::Result<u8> {
        let b = *self
            .take(1)?
            .first()
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.hash = fnv1a_update(self.hash, &[b]);
        Ok(b)
    }

    fn try_take_n(&mut self, _ct: usize) -> postcard::Result<&'de [u8]> {
        Err(postcard::Error::WontImplement)
    }

    #[inline]
    fn try_take_n_temp<'a>(&'a mut self, ct: usize) -> postcard::Result<&'a [u8]>
    where
        'de: 'a,
    {
        let h = self.hash;
        let bytes = self.take(ct)?;
        let h = fnv1a_update(h, bytes);
        let start = self.pos - ct;
        self.hash = h;
        self.buf
            .get(start..start + ct)
            .ok_or(postcard::Error::DeserializeUnexpectedEnd)
    }

    fn finalize(self) -> postcard::Result<Self> {
        Ok(self)
    }
}

/// The header of a model about to be written, with `model_id` from `sum`.
fn header_for(
    model: &Fitted,
    (sum, created_unix): (u64, u64),
    held_out: Option<&super::insight::worth::HeldOut>,
) -> ArtifactHeader {
    ArtifactHeader {
        format_version: FORMAT_VERSION,
        runsize_version: env!("CARGO_PKG_VERSION").to_string(),
        created_unix,
        model_id: format!("{sum:016x}"),
        summary: model.summary.clone(),
        held_out: held_out.cloned(),
    }
}

/// Write an artifact to `out` from its current position: prefix and a header with a
/// placeholder id, the streamed body, the checksum, then the header again in place with
/// the real id (same length: the id is fixed-width hex). Leaves `out` after the
/// checksum.
fn write_to<W: Write + Seek>(
    model: &Fitted,
    held_out: Option<&super::insight::worth::HeldOut>,
    mut out: W,
) -> Result<(W, ArtifactHeader), String> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let placeholder = serde_json::to_vec_pretty(&header_for(model, (0, created), held_out))
        .map_err(|e| format!("header: {e}"))?;
    let start = out.stream_position().map_err(|e| format!("seek: {e}"))?;
    let io = |e: std::io::Error| format!("write: {e}");
    out.write_all(MAGIC).map_err(io)?;
    out.write_all(&FORMAT_VERSION.to_le_bytes()).map_err(io)?;
    out.write_all(&(placeholder.len() as u32).to_le_bytes())
        .map_err(io)?;
    out.write_all(&placeholder).map_err(io)?;
    let mut error = None;
    let sink = HashingSink {
        out: &mut out,
        error: &mut error,
        buf: Vec::with_capacity(IO_BUFFER),
        hash: FNV_START,
    };
    let sum = match postcard::serialize_with_flavor::<Fitted, _, _>(model, sink) {
        Ok(sum) => sum,
        Err(e) => {
            return Err(match error {
                Some(io) => format!("write: {io}"),
                None => format!("encode: {e}"),
            })
        }
    };
    out.write_all(&sum.to_le_bytes()).map_err(io)?;
    let end = out.stream_position().map_err(|e| format!("seek: {e}"))?;
    let header = header_for(model, (sum, created), held_out);
    let json = serde_json::to_vec_pretty(&header).map_err(|e| format!("header: {e}"))?;
    if json.len() != placeholder.len() {
        return Err("header length changed with the model id".into());
    }
    out.seek(SeekFrom::Start(start + 16)).map_err(io)?;
    out.write_all(&json).map_err(io)?;
    out.seek(SeekFrom::Start(end)).map_err(io)?;
    out.flush().map_err(io)?;
    Ok((out, header))
}

/// Serialise a model to bytes (header + body + checksum); returns the bytes and the header.
pub fn to_bytes(model: &Fitted) -> Result<(Vec<u8>, ArtifactHeader), ModelError> {
    let (cursor, header) = write_to(model, None, std::io::Cursor::new(Vec::new()))
        .map_err(|m| err(Path::new("<memory>"), m))?;
    Ok((cursor.into_inner(), header))
}

/// Write a model atomically: the body streamed into a temp file in the target directory,
/// fsync, rename.
pub fn save(model: &Fitted, path: &Path) -> Result<ArtifactHeader, ModelError> {
    save_with(model, path, None)
}

/// [`save`] with the training run's held-out evaluation in the header.
pub fn save_with(
    model: &Fitted,
    path: &Path,
    held_out: Option<&super::insight::worth::HeldOut>,
) -> Result<ArtifactHeader, ModelError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| err(path, format!("create directory: {e}")))?;
    let tmp = tempfile::Builder::new()
        .prefix(".runsize-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| err(path, format!("temp file: {e}")))?;
    // the sink buffers; no BufWriter needed
    let (file, header) = write_to(model, held_out, tmp).map_err(|m| err(path, m))?;
    file.as_file()
        .sync_all()
        .map_err(|e| err(path, format!("sync: {e}")))?;
    file.persist(path)
        .map_err(|e| err(path, format!("rename into place: {}", e.error)))?;
    Ok(header)
}

/// Read an artifact of `len` bytes from `input` (`path` is only used in messages):
/// prefix, header, then the body decoded as it is read and checked against the trailing
/// checksum.
fn read_from<R: Read>(
    mut input: R,
    len: u64,
    path: &Path,
) -> Result<(Fitted, ArtifactHeader), ModelError> {
    let mut prefix = [0u8; 16];
    let mut got = 0;
    while got < prefix.len() {
        let Some(space) = prefix.get_mut(got..) else {
            break;
        };
        match input.read(space) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(path, format!("cannot read: {e}"))),
        }
    }
    if got < prefix.len() || &prefix[..8] != MAGIC {
        return Err(err(
            path,
            "not a runsize model (bad magic; expected a file written by `runsize train`)",
        ));
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    if version != FORMAT_VERSION {
        return Err(err(
            path,
            format!("artifact format version {version}, this runsize reads version {FORMAT_VERSION}: retrain the model"),
        ));
    }
    let hlen = u64::from(u32::from_le_bytes([
        prefix[12], prefix[13], prefix[14], prefix[15],
    ]));
    let mut json = Vec::new();
    let read = (&mut input)
        .take(hlen)
        .read_to_end(&mut json)
        .map_err(|e| err(path, format!("cannot read: {e}")))?;
    if read as u64 != hlen {
        return Err(err(
            path,
            "truncated artifact (header runs past the end of the file)",
        ));
    }
    let header: ArtifactHeader =
        serde_json::from_slice(&json).map_err(|e| err(path, format!("corrupt header: {e}")))?;
    let mut de = postcard::Deserializer::from_flavor(HashingSource::new(
        input,
        len.saturating_sub(16 + hlen),
    ));
    let decoded = Fitted::deserialize(&mut de);
    let mut source = de
        .finalize()
        .map_err(|e| err(path, format!("corrupt body: {e}")))?;
    let truncated = || {
        err(
            path,
            "truncated or corrupt artifact: the body runs past the end of the file",
        )
    };
    if let Some(e) = source.error.take() {
        return Err(err(path, format!("cannot read: {e}")));
    }
    let model = match decoded {
        Ok(m) => m,
        Err(postcard::Error::DeserializeUnexpectedEnd) => return Err(truncated()),
        Err(e) => {
            return Err(err(
                path,
                format!("corrupt body ({e}): the file is corrupt or truncated"),
            ))
        }
    };
    let sum = source.hash;
    let mut trailer = [0u8; 8];
    let stored = match source.take(8) {
        Ok(b) => {
            trailer.copy_from_slice(b);
            u64::from_le_bytes(trailer)
        }
        Err(_) => return Err(truncated()),
    };
    let trailing = source.end > source.pos
        || source
            .inner
            .read(&mut [0u8; 1])
            .map_err(|e| err(path, format!("cannot read: {e}")))?
            > 0;
    if sum != stored || trailing {
        return Err(err(
            path,
            "checksum mismatch: the file is corrupt or truncated",
        ));
    }
    model.validate().map_err(|e| {
        err(
            path,
            format!("{e} (the artifact was written by a broken or different runsize)"),
        )
    })?;
    Ok((model, header))
}

/// Parse an artifact from bytes (`path` is only used in messages).
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Fitted, ArtifactHeader), ModelError> {
    read_from(bytes, bytes.len() as u64, path)
}

/// Load a model artifact: decode, check the checksum, then [`Fitted::validate`]
/// (streamed: the encoded body is never held whole).
pub fn load(path: &Path) -> Result<(Fitted, ArtifactHeader), ModelError> {
    let file = std::fs::File::open(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| err(path, format!("cannot read: {e}")))?
        .len();
    read_from(file, len, path)
}

/// [`load`] and build the model's [`Predictor`]: what every command that predicts
/// (`predict`, `eval`, `brands`, the server) starts from.
pub fn load_predictor(path: &Path) -> Result<(Predictor, ArtifactHeader), ModelError> {
    let (fitted, header) = load(path)?;
    Ok((Predictor::new(fitted)?, header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::fitted::CustomerTable;

    #[test]
    fn fnv_hand_values() {
        // published FNV-1a 64 test vectors
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_update(fnv1a(b"ab"), b"c"), fnv1a(b"abc"));
    }

    #[test]
    fn held_out_table_round_trips_in_the_header_and_is_optional() {
        use crate::model::insight::worth::{HeldOut, WorthRow};
        let model = Fitted::minimal();
        let dir = tempfile::tempdir().unwrap();
        let held = HeldOut {
            source: "part 1".into(),
            n: 7,
            worth: vec![WorthRow {
                level: "all".into(),
                matched_n: 3,
                matched_fit_rate: 0.5,
                ..WorthRow::default()
            }],
            ..HeldOut::default()
        };
        let with = dir.path().join("with.runsize");
        let h = save_with(&model, &with, Some(&held)).unwrap();
        let (_, back) = load(&with).unwrap();
        assert_eq!(back.held_out.as_ref(), Some(&held));
        assert_eq!(back, h);
        // the body (and so the model id) does not depend on the header's extras
        let without = dir.path().join("without.runsize");
        let h0 = save(&model, &without).unwrap();
        assert_eq!(h0.model_id, h.model_id);
        assert_eq!(load(&without).unwrap().1.held_out, None);
        // a rate over no events (NaN, written as null) reads back as NaN: a model
        // whose held-out part had no "larger" purchase at some level once saved fine
        // and could not be loaded
        let nan = HeldOut {
            worth: vec![WorthRow {
                larger_fit_rate: f64::NAN,
                ..WorthRow::default()
            }],
            auc_avg: f64::NAN,
            ..HeldOut::default()
        };
        let with_nan = dir.path().join("nan.runsize");
        save_with(&model, &with_nan, Some(&nan)).unwrap();
        let back = load(&with_nan).unwrap().1.held_out.unwrap();
        assert!(back.worth[0].larger_fit_rate.is_nan() && back.auc_avg.is_nan());
        assert_eq!(back.worth[0].matched_fit_rate, 0.0);
        // a header written before the field existed still parses
        let json = serde_json::to_value(&h0).unwrap();
        assert!(json.get("held_out").is_none());
        let old: ArtifactHeader = serde_json::from_value(json).unwrap();
        assert_eq!(old.held_out, None);
    }

    #[test]
    fn round_trip_and_corruption() {
        let model = Fitted::minimal();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.runsize");
        let header = save(&model, &path).unwrap();
        let (back, h2) = load(&path).unwrap();
        assert_eq!(header.model_id, h2.model_id);
        assert_eq!(back.labels, model.labels);
        // written whole but not a usable model: refused at load, naming the invariant
        let other = tempfile::tempdir().unwrap();
        let empty = other.path().join("empty.runsize");
        save(&Fitted::default(), &empty).unwrap();
        let e = load(&empty).unwrap_err().to_string();
        assert!(e.contains("not a usable model: no size labels"), "{e}");
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

    /// A model whose only content is a customer table with these ids.
    fn with_customers(ids: &[String]) -> Fitted {
        let n = ids.len();
        Fitted {
            customers: CustomerTable {
                ids: ids.iter().collect(),
                mean: (0..n).map(|i| i as f32 * 0.5).collect(),
                var: vec![0.25; n],
                bias: vec![0.0; n],
                bias_var: vec![0.09; n],
                cov: vec![0.0; n],
                n: (0..n as u32).collect(),
            },
            ..Fitted::minimal()
        }
    }

    #[test]
    fn customer_ids_round_trip_as_integers_and_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let ints: Vec<String> = (0..5000).map(|i| (i * 7919 - 3).to_string()).collect();
        let text: Vec<String> = (0..5000).map(|i| format!("shopper-{i}")).collect();
        for (name, ids) in [("ints", &ints), ("text", &text)] {
            let model = with_customers(ids);
            assert_eq!(model.customers.ids.as_ints().is_some(), name == "ints");
            let path = dir.path().join(format!("{name}.runsize"));
            let header = save(&model, &path).unwrap();
            let (back, h2) = load(&path).unwrap();
            assert_eq!(h2, header);
            assert_eq!(back.customers, model.customers, "{name}");
            assert_eq!(
                back.customers.ids.as_ints().is_some(),
                name == "ints",
                "storage kept"
            );
            let back = crate::model::Predictor::new(back).unwrap();
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(back.customer_index(id), Some(i as u32), "{name} {id}");
            }
            for unknown in ["", "shopper-5000", "x", "-2", "007", "1"] {
                assert_eq!(back.customer_index(unknown), None, "{name} {unknown:?}");
            }
            // the index holds a few bytes per customer (5 per slot, load factor 7/8)
            let per = back.customer_lookup().heap_bytes() as f64 / ids.len() as f64;
            assert!(per < 12.0, "{name}: {per} index bytes per customer");
            // in memory and on disk: the same bytes
            let (bytes, h3) = to_bytes(&model).unwrap();
            assert_eq!(h3.model_id, header.model_id);
            let file = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), file.len());
            let (mem, _) = from_bytes(&bytes, &path).unwrap();
            assert_eq!(mem.customers, model.customers);
            // integer ids cost about their varint, text ids their length + 1
            let per_id = file.len() as f64 / ids.len() as f64;
            let limit = if name == "ints" { 40.0 } else { 48.0 };
            assert!(per_id < limit, "{name}: {per_id} bytes per customer");
        }
    }

    #[test]
    fn streamed_body_is_checked() {
        let ids: Vec<String> = (0..3000).map(|i| format!("c{i}")).collect();
        let (bytes, _) = to_bytes(&with_customers(&ids)).unwrap();
        let path = Path::new("m.runsize");
        // cut inside the body, inside the checksum, or with a byte appended
        let n = bytes.len();
        for cut in [n / 2, n - 3] {
            let e = from_bytes(&bytes[..cut], path).unwrap_err().to_string();
            assert!(e.contains("past the end"), "cut at {cut}: {e}");
        }
        // a corrupt length prefix (4 GiB for the first key) fails before any buffer grows
        let at = bytes.windows(6).position(|w| w == b"\x02c0\x02c1").unwrap();
        let mut huge = bytes[..at].to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        huge.extend_from_slice(&bytes[at + 1..]);
        let e = from_bytes(&huge, path).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
        let mut longer = bytes.clone();
        longer.push(0);
        let e = from_bytes(&longer, path).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        // a flipped byte in a key: the text still decodes, the checksum does not match
        let at = bytes.windows(5).position(|w| w == b"c1234").unwrap();
        let mut flipped = bytes.clone();
        flipped[at + 1] = b'9';
        let e = from_bytes(&flipped, path).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
    }

    #[test]
    fn previous_format_is_refused() {
        let (mut bytes, _) = to_bytes(&Fitted::default()).unwrap();
        bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
        let e = from_bytes(&bytes, Path::new("old.runsize"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("format version 2")
                && e.contains("reads version 4")
                && e.contains("retrain"),
            "{e}"
        );
    }
}
