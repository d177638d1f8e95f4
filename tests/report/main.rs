//! The comparison report: model, correctness explanations, regression gate, every
//! exporter (snapshots), the JSON schema, loading saved results, and the HTML as a
//! browser renders it.

mod browser;
mod exports;
mod fixture;
mod gate;
mod load;
mod model;
mod schema;
