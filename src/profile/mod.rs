//! profile (being built).
