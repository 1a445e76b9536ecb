//! runsize's integration tests: one binary (polars is linked once), one module per subject,
//! shared helpers in [`common`]. A new test file needs its `mod` line here (Cargo.toml sets
//! `autotests = false`).

mod common;

mod artifact;
#[cfg(feature = "distributed")]
mod distributed;
mod fuzz;
mod ingest;
mod ingest_bad;
mod labels;
mod model;
mod overload;
mod predict;
mod real_data;
mod serve;
mod stack;
mod synth;
mod web;
