//! Where KATO runs: the embedded engine, a Docker stack, or an external URL.

pub mod docker;
pub mod image;
pub mod plan;
pub mod template;
