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
/// Stopped by Ctrl-C; the journal and a partial run record were written.
pub const INTERRUPTED: i32 = 130;
