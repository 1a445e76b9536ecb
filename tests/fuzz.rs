//! Fuzz properties on stable (proptest): the size-label parser, the outcome vocabulary,
//! the fast JSON request parser against serde, the artifact decoder (arbitrary bytes,
//! bit-flipped real artifacts, corrupt bodies with a valid checksum; allocations bounded
//! by the file), and the ingest of arbitrary small CSV / NDJSON files.
//!
//! `cargo test` runs a bounded number of cases per property (300 to 20,000 each, about
//! 15 s in all in a debug build on an idle core); `RUNSIZE_FUZZ_CASES=N` sets the cases of every property (benches/fuzz.sh
//! runs them for hours). Crashes found are kept below as named regression tests.
//!
//! This module installs the binary's global allocator: the system allocator plus a
//! per-thread byte count that is only kept while [`tracked`] runs (a thread-local flag
//! check per allocation otherwise).

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use runsize::data::ingest::{ingest, IngestConfig};
use runsize::data::{parse_size, OutcomeMap, SizeLabel};
use runsize::model::artifact::{self, ArtifactHeader, MAGIC};
use runsize::model::{FitParams, Fitted, Predictor};
use runsize::serve::api::fastjson::parse_recommend;
use runsize::serve::api::{
    PastPurchase, ProductQuery, RecommendRequest, RecommendRequestRef, Shopper,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------
// Configuration

/// Cases per property: `RUNSIZE_FUZZ_CASES`, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("RUNSIZE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A proptest config of `cases(default)` cases, failures printed (not persisted).
fn config(default: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Allocation tracking: the live bytes a thread holds (its allocations minus its frees)
// and their peak, while tracking is on for that thread.

struct Tracking;

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(delta: i64, size: usize) {
    let _ = ON.try_with(|on| {
        if on.get() {
            let _ = LIVE.try_with(|l| {
                let now = l.get() + delta;
                l.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
            let _ = LARGEST.try_with(|m| m.set(m.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping
// touches only const-initialised thread-locals (no allocation, no re-entry).
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size() as i64, layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(-(layout.size() as i64), 0);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size as i64 - layout.size() as i64, new_size);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Run `f` and return its result with the peak live bytes and the largest single
/// allocation it made on this thread.
fn tracked<T>(f: impl FnOnce() -> T) -> (T, i64, usize) {
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    LARGEST.with(|m| m.set(0));
    ON.with(|on| on.set(true));
    let out = f();
    ON.with(|on| on.set(false));
    (out, PEAK.with(Cell::get), LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------------------
// Size labels

fn label_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,3}(\\.5| 1/2|½)?",
        "(X{0,5}|[1-6])(XS|S|M|L|XL)",
        "[0-9]X",
        "W?[0-9]{2} ?[xX/]? ?L?[0-9]{2}",
        "(US|UK|EU|IT|FR|JP|us|eu) ?[0-9]{1,3}(\\.5| 1/2|½)?( shoe)?",
        "(one size|OS|onesize|One Size)",
        "[ 0-9xXsSmMlLwW/.½,+-]{0,14}",
        any::<String>(),
    ]
}

fn system_name() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        "(letter|us|uk|eu|it|fr|jp|jeans|numeric|shoe_us|shoe_eu|shoe_uk|one_size)",
        "[a-zA-Z _]{0,10}",
        any::<String>(),
    ])
}

/// A parsed label's canonical text, parsed again in its own system, is the same label.
fn reparses(label: &SizeLabel) -> Result<(), TestCaseError> {
    let again = parse_size(&label.canonical, Some(label.system.as_str()));
    prop_assert_eq!(again.as_ref(), Ok(label), "canonical {:?}", label.canonical);
    Ok(())
}

proptest! {
    #![proptest_config(config(20000))]

    #[test]
    fn size_labels_never_panic_and_canonical_forms_reparse(
        label in label_text(),
        system in system_name(),
    ) {
        match parse_size(&label, system.as_deref()) {
            Ok(parsed) => reparses(&parsed)?,
            Err(e) => {
                let text = e.to_string();
                prop_assert!(text.contains("cannot parse size label"), "{}", text);
                prop_assert!(!e.reason.is_empty());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Outcome vocabulary

fn raw_outcome() -> impl Strategy<Value = String> {
    prop_oneof![
        "(returned|too|runs|true)?[ _-]{0,3}(small|large|fit|to[ _-]size|big|tight|kept|ok)",
        "[a-zA-Z _-]{0,20}",
        "[a-z]{60,70}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(20000))]

    #[test]
    fn outcome_vocabulary_is_normalised_consistently(raw in raw_outcome()) {
        let standard = OutcomeMap::standard();
        let class = standard.classify(&raw);
        // separators around a value never change its class
        prop_assert_eq!(standard.classify(&format!(" -_\t{raw} _-\n")), class);
        if raw.is_ascii() {
            prop_assert_eq!(standard.classify(&raw.to_ascii_uppercase()), class);
        }
        // a value mapped by --outcome-map is found again, whichever path classify takes
        // (short ASCII values are normalised on the stack, others allocate)
        if !raw.contains([',', '=']) {
            match standard.clone().with_overrides(&format!("{raw}=large")) {
                Ok(custom) => prop_assert_eq!(custom.classify(&raw), Some(runsize::data::Outcome::Large)),
                Err(e) => prop_assert!(e.to_string().contains("empty raw value"), "{}", e),
            }
        }
    }

    #[test]
    fn outcome_map_specs_never_panic(spec in "[a-z=, _-]{0,40}|.{0,40}") {
        if let Err(e) = OutcomeMap::standard().with_overrides(&spec) {
            prop_assert!(e.to_string().contains("--outcome-map"), "{}", e);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fast JSON request parser against serde

fn word() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        4 => "(M|XL|32x30|us 8|Acme|kept|too_small|Größe|)".prop_map(serde_json::Value::from),
        1 => ".{0,6}".prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::Null),
        1 => any::<i32>().prop_map(serde_json::Value::from),
        1 => any::<f64>().prop_map(|x| serde_json::json!(x)),
        1 => any::<bool>().prop_map(serde_json::Value::from),
    ]
}

fn obj(keys: &'static [&'static str]) -> impl Strategy<Value = serde_json::Value> {
    proptest::collection::vec((proptest::sample::select(keys), word()), 0..6).prop_map(|kv| {
        serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    })
}

/// JSON values shaped like recommend bodies (known keys, sometimes wrong types).
fn body_value() -> impl Strategy<Value = serde_json::Value> {
    let product = (
        obj(&["brand", "product_id", "category", "size_system", "colour"]),
        proptest::option::of(proptest::collection::vec(word(), 0..4)),
    )
        .prop_map(|(mut p, sizes)| {
            if let (Some(s), Some(map)) = (sizes, p.as_object_mut()) {
                map.insert("sizes".into(), s.into());
            }
            p
        });
    let purchase = obj(&["brand", "product_id", "size", "outcome", "size_system"]);
    let reference = obj(&["brand", "category", "size", "size_system"]);
    let features = proptest::collection::btree_map("[a-z]{1,3}", word(), 0..4)
        .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()));
    let shopper = (
        proptest::option::of(word()),
        proptest::option::of(proptest::collection::vec(purchase, 0..3)),
        proptest::option::of(proptest::collection::vec(reference, 0..2)),
        proptest::option::of(features),
    )
        .prop_map(|(id, history, reference, features)| {
            let mut m = serde_json::Map::new();
            if let Some(v) = id {
                m.insert("customer_id".into(), v);
            }
            if let Some(v) = history {
                m.insert("history".into(), v.into());
            }
            if let Some(v) = reference {
                m.insert("reference".into(), v.into());
            }
            if let Some(v) = features {
                m.insert("features".into(), v);
            }
            serde_json::Value::Object(m)
        });
    (proptest::option::of(product), proptest::option::of(shopper)).prop_map(|(p, s)| {
        let mut m = serde_json::Map::new();
        if let Some(p) = p {
            m.insert("product".into(), p);
        }
        if let Some(s) = s {
            m.insert("shopper".into(), s);
        }
        serde_json::Value::Object(m)
    })
}

/// One edit of a JSON text (as characters): insert, delete, or replace one.
#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let ch = prop_oneof![
        proptest::sample::select(vec![
            '"', '\\', '{', '}', '[', ']', ',', ':', ' ', 'n', 'u', '0', '-', 'e', '.', '\u{0}',
            '\t', 'é'
        ]),
        any::<char>(),
    ];
    let edit = prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
    ];
    proptest::collection::vec(edit, 0..4)
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len();
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (n + 1), c),
            Edit::Delete(i) if n > 0 => {
                chars.remove(i % n);
            }
            Edit::Replace(i, c) if n > 0 => {
                if let Some(x) = chars.get_mut(i % n) {
                    *x = c;
                }
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// The server's parse of a recommend body (fast path, else serde) must decide exactly as
/// serde does, with the same values.
fn same_as_serde(text: &str) -> Result<(), TestCaseError> {
    let serde = serde_json::from_str::<RecommendRequestRef<'_>>(text).ok();
    if let Some(fast) = parse_recommend(text) {
        prop_assert_eq!(Some(&fast), serde.as_ref(), "fast path differs on {}", text);
    }
    let pipeline = parse_recommend(text).or_else(|| serde_json::from_str(text).ok());
    prop_assert_eq!(pipeline.is_some(), serde.is_some(), "{}", text);
    // and the owned type (the error path) accepts what the borrowed one accepts
    let owned = serde_json::from_str::<RecommendRequest>(text).ok();
    prop_assert_eq!(
        owned.is_some(),
        serde.is_some(),
        "owned vs borrowed on {}",
        text
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn fast_json_parser_decides_as_serde(
        body in body_value(),
        pretty in any::<bool>(),
        edits in edits(),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&body).unwrap_or_default()
        } else {
            body.to_string()
        };
        same_as_serde(&text)?;
        same_as_serde(&apply(&text, &edits))?;
    }

    #[test]
    fn fast_json_parser_on_arbitrary_text(text in ".{0,64}|[{}\\[\\]\":,a-z0-9 ]{0,64}") {
        same_as_serde(&text)?;
    }
}

// ---------------------------------------------------------------------------------------
// Artifact decoder

/// A small real model (synthetic events, a short fit) and its artifact bytes.
fn real_artifact() -> &'static (Vec<u8>, ArtifactHeader) {
    static ART: OnceLock<(Vec<u8>, ArtifactHeader)> = OnceLock::new();
    ART.get_or_init(|| {
        let dir = crate::common::tempdir();
        let path = dir.path().join("events.parquet");
        let cfg = runsize::synth::SynthConfig {
            events: 3000,
            brands: 3,
            seed: 5,
            customer_truth: false,
            ..runsize::synth::SynthConfig::default()
        };
        runsize::synth::generate(&cfg, &path).expect("synth");
        let mut icfg = IngestConfig::new(vec![path.display().to_string()]);
        icfg.customer_features = vec!["height_cm".into(), "body_shape".into()];
        let events = ingest(&icfg).expect("ingest").events;
        let model = FitParams::default().max_iter(3).fit(&events).expect("fit");
        artifact::to_bytes(&model).expect("encode")
    })
}

/// Where the body starts in an artifact (after magic, version, header length, header).
fn body_start(bytes: &[u8]) -> usize {
    let hlen = bytes
        .get(12..16)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    16 + hlen
}

/// Decode `bytes` with allocation tracking: never a panic; an error names the file; the
/// peak memory is bounded by the file (a fixed allowance plus a multiple of its length).
fn decode_bounded(bytes: &[u8]) -> Result<Option<(Fitted, ArtifactHeader)>, TestCaseError> {
    let path = Path::new("fuzzed.runsize");
    let (result, peak, largest) = tracked(|| artifact::from_bytes(bytes, path));
    let allowance = 4 * (1 << 20) + 64 * bytes.len() as i64;
    prop_assert!(
        peak <= allowance,
        "decoding {} bytes peaked at {} live bytes (largest allocation {})",
        bytes.len(),
        peak,
        largest
    );
    match result {
        Ok(m) => Ok(Some(m)),
        Err(e) => {
            let text = e.to_string();
            prop_assert!(text.contains("fuzzed.runsize"), "{}", text);
            Ok(None)
        }
    }
}

/// A decoded model (the decoder validated it) can be served: its predictor built (or
/// refused with an error), one request answered or refused, never a panic.
fn serve_one(model: Fitted) {
    let product_id = model.products.first().map(|g| g.name.clone());
    let size = model.labels.first().map(|l| l.canonical.clone());
    let Ok(predictor) = Predictor::new(model) else {
        return;
    };
    let req = RecommendRequest {
        product: ProductQuery {
            product_id,
            ..ProductQuery::default()
        },
        shopper: Shopper {
            history: size
                .map(|size| PastPurchase {
                    size,
                    outcome: "kept".into(),
                    ..PastPurchase::default()
                })
                .into_iter()
                .collect(),
            ..Shopper::default()
        },
    };
    let view = req.view();
    let query = view.to_query();
    let _ = predictor.recommend(&query);
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn artifact_decoder_refuses_arbitrary_bytes(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        prefix in 0usize..3,
    ) {
        let (real, _) = real_artifact();
        let mut bytes = match prefix {
            // past the magic and version checks: the header length and header are fuzzed
            0 => [MAGIC.as_slice(), &artifact::FORMAT_VERSION.to_le_bytes()].concat(),
            // a real prefix up to the body: the body is fuzzed
            1 => real.get(..body_start(real)).unwrap_or_default().to_vec(),
            _ => Vec::new(),
        };
        bytes.extend_from_slice(&tail);
        prop_assert!(decode_bounded(&bytes)?.is_none(), "random bytes decoded as a model");
    }

    #[test]
    fn artifact_decoder_refuses_bit_flips(
        flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..5),
        cut in proptest::option::weighted(0.2, any::<usize>()),
    ) {
        let (real, header) = real_artifact();
        let mut bytes = real.clone();
        for (at, bit) in &flips {
            let n = bytes.len();
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= 1 << bit;
            }
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        if let Some((model, _)) = decode_bounded(&bytes)? {
            // accepted only when the body is intact (a flip in the header's text)
            let (_, again) = artifact::to_bytes(&model).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&again.model_id, &header.model_id, "a corrupt body was accepted");
        }
    }

    #[test]
    fn artifact_bodies_with_a_valid_checksum_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
    ) {
        // a hostile file: body bytes changed and the checksum recomputed
        let (real, _) = real_artifact();
        let start = body_start(real);
        let end = real.len() - 8;
        let mut bytes = real.clone();
        for (at, value) in &flips {
            if let Some(b) = bytes.get_mut(start + at % (end - start)) {
                *b = *value;
            }
        }
        let sum = artifact::fnv1a(bytes.get(start..end).unwrap_or_default());
        if let Some(t) = bytes.get_mut(end..) {
            t.copy_from_slice(&sum.to_le_bytes());
        }
        if let Some((model, _)) = decode_bounded(&bytes)? {
            serve_one(model);
        }
    }
}

#[test]
fn real_artifact_decodes_within_the_bound() {
    let (real, header) = real_artifact();
    let (model, h) = tracked(|| artifact::from_bytes(real, Path::new("real.runsize")))
        .0
        .expect("decode");
    assert_eq!(&h, header);
    serve_one(model);
    let (_, peak, _) = tracked(|| artifact::from_bytes(real, Path::new("real.runsize")));
    assert!(
        peak < 64 * real.len() as i64,
        "a valid artifact of {} bytes peaked at {peak}",
        real.len()
    );
}

// ---------------------------------------------------------------------------------------
// Ingest of arbitrary small files

/// A plausible value of a canonical column (or of the `height` feature).
fn good_cell(column: &str) -> BoxedStrategy<String> {
    match column {
        "customer_id" => "(c[0-9]{1,2}|[0-9]{1,3})".boxed(),
        "size" => "(M|L|XS|S|XL|8|10|10\\.5|32x30|EU 38|one size)".boxed(),
        "outcome" => "(fit|small|large|kept|returned_too_small|too big|damaged)".boxed(),
        "timestamp" => "2024-0[1-9]-[12][0-9]".boxed(),
        "size_system" => "(|us|eu|letter)".boxed(),
        "height" => "1[5-9][0-9](\\.[0-9])?".boxed(),
        _ => "[a-z]{1,5}".boxed(),
    }
}

/// An odd value: empty, huge, non-finite, a bad date, quotes, separators, anything.
fn odd_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "-?[0-9]{1,25}",
        "(NaN|inf|-inf|1e400|null|true|2024-13-45T99:00:00Z|W32 L|\\?\\?|XXXXXXXL)",
        "\"[a-z,\"\n ]{0,6}\"",
        ".{0,8}",
    ]
}

fn cell(column: &str) -> BoxedStrategy<String> {
    prop_oneof![9 => good_cell(column), 1 => odd_cell()].boxed()
}

const OPTIONAL: [&str; 6] = [
    "brand",
    "product_id",
    "category",
    "timestamp",
    "size_system",
    "height",
];

/// A file's columns: usually the required ones, plus a subset of the optional ones and
/// sometimes a junk name, shuffled.
fn columns() -> impl Strategy<Value = Vec<String>> {
    (
        proptest::sample::subsequence(OPTIONAL.to_vec(), 0..=OPTIONAL.len()),
        any::<u8>(),
        proptest::option::weighted(0.2, "[a-z_ ]{0,8}"),
    )
        .prop_map(|(optional, drop, junk)| {
            let mut cols: Vec<String> = ["customer_id", "size", "outcome"]
                .iter()
                .enumerate()
                // one in four files misses a required column
                .filter(|(i, _)| drop % 4 != 0 || usize::from(drop / 4) % 3 != *i)
                .map(|(_, c)| (*c).to_string())
                .chain(optional.into_iter().map(str::to_string))
                .collect();
            cols.extend(junk);
            let n = cols.len();
            cols.rotate_left(usize::from(drop) % n.max(1));
            cols
        })
        .prop_shuffle()
}

/// Rows of cells for `cols`: 0 to 8 rows, a few with a field too many or too few.
fn rows(cols: Vec<String>) -> impl Strategy<Value = (Vec<String>, Vec<Vec<String>>)> {
    let row: Vec<BoxedStrategy<String>> = cols.iter().map(|c| cell(c)).collect();
    let rows = proptest::collection::vec(
        (row, proptest::option::weighted(0.1, odd_cell())).prop_map(|(mut r, extra)| {
            match extra {
                Some(x) if x.len() % 2 == 0 => r.push(x),
                Some(_) => {
                    r.pop();
                }
                None => {}
            }
            r
        }),
        0..8,
    );
    (Just(cols), rows)
}

/// A small CSV text: a header and a few rows of mostly plausible, sometimes odd cells.
fn csv_text() -> impl Strategy<Value = String> {
    columns().prop_flat_map(rows).prop_map(|(cols, rows)| {
        let mut s = cols.join(",");
        s.push('\n');
        for r in rows {
            s.push_str(&r.join(","));
            s.push('\n');
        }
        s
    })
}

/// A small NDJSON text: objects over the columns (values as strings, numbers, nulls or
/// nested values), sometimes a junk line.
fn ndjson_text() -> impl Strategy<Value = String> {
    columns().prop_flat_map(rows).prop_flat_map(|(cols, rows)| {
        let n = rows.len();
        (
            Just(cols),
            Just(rows),
            proptest::collection::vec(0u8..12, n),
        )
            .prop_map(|(cols, rows, kinds)| {
                rows.iter()
                    .zip(kinds)
                    .map(|(r, kind)| {
                        if kind == 11 {
                            return "{\"customer_id\": 1, oops".to_string();
                        }
                        let obj: serde_json::Map<String, serde_json::Value> = cols
                            .iter()
                            .zip(r)
                            .map(|(c, v)| {
                                let value = match (kind, v.parse::<f64>()) {
                                    (0..=2, Ok(x)) => serde_json::json!(x),
                                    (3, _) => serde_json::Value::Null,
                                    (4, _) => serde_json::json!([v]),
                                    _ => serde_json::Value::from(v.as_str()),
                                };
                                (c.clone(), value)
                            })
                            .collect();
                        serde_json::Value::Object(obj).to_string()
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    })
}

/// Ingest `text` as a file `name`: rows or a clear error naming the file, never a panic.
fn ingest_text(name: &str, text: &str, lenient: bool) -> Result<(), TestCaseError> {
    let dir = crate::common::tempdir();
    let path = dir.path().join(name);
    std::fs::write(&path, text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut cfg = IngestConfig::new(vec![path.display().to_string()]);
    if lenient {
        // bad rows counted, not fatal; and the body feature read when present
        cfg.max_bad_fraction = 1.0;
        if text.lines().next().is_some_and(|h| h.contains("height")) {
            cfg.customer_features = vec!["height".into()];
        }
    }
    match ingest(&cfg) {
        Ok(got) => {
            prop_assert!(
                got.events.len() <= text.lines().count(),
                "more events than lines"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains(name), "error does not name the file: {}", msg);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn ingest_of_small_csv_files_never_panics(text in csv_text(), lenient in any::<bool>()) {
        ingest_text("fuzz.csv", &text, lenient)?;
    }

    #[test]
    fn ingest_of_small_ndjson_files_never_panics(text in ndjson_text(), lenient in any::<bool>()) {
        ingest_text("fuzz.ndjson", &text, lenient)?;
    }
}

// ---------------------------------------------------------------------------------------
// The generators reach the paths worth fuzzing (not only the first refusal)

#[test]
fn generators_reach_the_interesting_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut sample = |s: &dyn Fn(&mut TestRunner) -> String| s(&mut runner);
    let (mut csv_ok, mut nd_ok) = (0, 0);
    for _ in 0..40 {
        let csv = sample(&|r| {
            csv_text()
                .new_tree(r)
                .map(|t| t.current())
                .unwrap_or_default()
        });
        let nd = sample(&|r| {
            ndjson_text()
                .new_tree(r)
                .map(|t| t.current())
                .unwrap_or_default()
        });
        for (name, text, ok) in [("a.csv", csv, &mut csv_ok), ("a.ndjson", nd, &mut nd_ok)] {
            let dir = crate::common::tempdir();
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            let mut cfg = IngestConfig::new(vec![path.display().to_string()]);
            cfg.max_bad_fraction = 1.0;
            match ingest(&cfg) {
                Ok(_) => *ok += 1,
                Err(e) if std::env::var("FUZZ_DEBUG").is_ok() => eprintln!("{e}"),
                Err(_) => {}
            }
        }
    }
    eprintln!("ingested: {csv_ok} of 40 CSV, {nd_ok} of 40 NDJSON files");
    assert!(csv_ok >= 2 && nd_ok >= 2, "csv {csv_ok}, ndjson {nd_ok}");

    // corrupt bodies with a valid checksum: some decode and are served
    let (real, _) = real_artifact();
    let start = body_start(real);
    let end = real.len() - 8;
    let mut decoded = 0;
    for k in 0..200usize {
        let mut bytes = real.clone();
        let at = start + (k * 7919) % (end - start);
        bytes[at] = bytes[at].wrapping_add(1 + (k % 3) as u8);
        let sum = artifact::fnv1a(&bytes[start..end]);
        bytes[end..].copy_from_slice(&sum.to_le_bytes());
        if let Ok((model, _)) = artifact::from_bytes(&bytes, Path::new("x.runsize")) {
            decoded += 1;
            serve_one(model);
        }
    }
    eprintln!("valid-checksum corruptions decoded: {decoded} of 200");
    assert!(decoded >= 20, "{decoded}");
}

// ---------------------------------------------------------------------------------------
// Bounds on what a file can make the trainer allocate

#[test]
fn a_categorical_feature_with_too_many_levels_is_refused() {
    // an id-like column read as a body feature: one-hot over 1001 levels would make the
    // ridge fit's normal matrix grow with the square of the column's distinct values
    let dir = crate::common::tempdir();
    let path = dir.path().join("levels.csv");
    let mut text = String::from("customer_id,size,outcome,body\n");
    for i in 0..1001 {
        text.push_str(&format!("{i},M,fit,shape-{i}\n"));
    }
    std::fs::write(&path, &text).expect("write");
    let mut cfg = IngestConfig::new(vec![path.display().to_string()]);
    cfg.customer_features = vec!["body".into()];
    let e = ingest(&cfg).map(|_| ()).expect_err("refused").to_string();
    assert!(
        e.contains("levels.csv")
            && e.contains("more than 1000 distinct values")
            && e.contains("'body'"),
        "{e}"
    );
    // 1000 levels are fine
    let cut: String = text.lines().take(1001).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, cut).expect("write");
    let got = ingest(&cfg).expect("1000 levels are accepted");
    assert_eq!(got.events.features.categorical[0].levels.len(), 1000);
}
