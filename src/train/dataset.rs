//! Datasets (being built).
