//! stack (being built).
