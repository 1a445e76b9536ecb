//! runsize: learns from purchase and return events how every brand, product and size
//! really runs, and recommends which size a shopper should buy.
//!
//! Layers: [`data`] (schema, ingest, size labels) feeds [`model`] (params, fit, predict,
//! artifact), which [`serve`] puts behind HTTP; [`synth`] makes data with known answers;
//! [`cli`] is the thin command layer the binary calls. With the feature `distributed`,
//! `distributed` runs the fit's passes as Apache DataFusion / Ballista plans.

pub mod cli;
pub mod data;
#[cfg(feature = "distributed")]
pub mod distributed;
pub mod error;
pub mod model;
pub mod serve;
pub mod synth;

pub use error::Error;
