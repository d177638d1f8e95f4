//! Documented process exit codes (the README's table lists the same values).

/// Everything asked for was done.
pub const OK: i32 = 0;
/// A run, apply or compare was attempted and failed.
pub const RUN_FAILED: i32 = 1;
/// Bad input: a profile, flag, file or dataset that cannot be used. Nothing was started.
pub const BAD_INPUT: i32 = 2;
/// `compare --baseline`: a profile regressed past the threshold, or its digest changed.
pub const REGRESSION: i32 = 3;
/// The stack could not be brought up or did not become healthy.
pub const STACK_FAILED: i32 = 4;
/// `compare`: a profile learned a different knowledge base than the reference.
pub const KB_MISMATCH: i32 = 5;
/// `kb`: KATO's Redis or ClickHouse could not be reached or failed during the command.
pub const STORE_FAILED: i32 = 6;
/// `kb load`: the target was refused before anything was written (it holds data, has
/// an interrupted load, or its Redis may evict keys); the message says which flag to use.
pub const KB_REFUSED: i32 = 7;
/// Stopped by Ctrl-C; the journal and a partial run record were written.
pub const INTERRUPTED: i32 = 130;
