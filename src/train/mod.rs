//! train (being built).
