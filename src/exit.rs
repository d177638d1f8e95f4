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
/// `compare`: a profile learned a different knowledge base than the reference, or a KB
/// read back after a run is not what the server answered.
pub const KB_MISMATCH: i32 = 5;
/// `run`: the corpus was trained to the end, but some samples are at risk (their
/// learns may have reached KATO partly or twice; the record lists their rows).
pub const SAMPLES_AT_RISK: i32 = 6;
/// `kb`, `up`, `run`, `run --into`, `doctor`: KATO's Redis or ClickHouse could not be
/// reached, failed during the command, or disagree (rows without frequencies or the
/// reverse).
pub const STORE_FAILED: i32 = 7;
/// `kb load`, `run --into`, `kb merge`: the target was refused before anything was
/// written (it holds data, has an interrupted load, its Redis may evict keys, or the
/// merge's output exists); the message says which flag to use.
pub const KB_REFUSED: i32 = 8;
/// `run`, `kb`: another live katotune process holds the knowledge base or resume
/// journal this command needs (its lock file, `src/lock.rs`), so nothing was started or
/// written; the message names that process (pid, command, since when). Run again once
/// it has finished, or stop it.
pub const IN_USE: i32 = 9;
/// Stopped by Ctrl-C; the journal and a partial run record were written.
pub const INTERRUPTED: i32 = 130;

/// Every documented code with its constant's name (the README's table lists each).
pub const ALL: &[(&str, i32)] = &[
    ("OK", OK),
    ("RUN_FAILED", RUN_FAILED),
    ("BAD_INPUT", BAD_INPUT),
    ("REGRESSION", REGRESSION),
    ("STACK_FAILED", STACK_FAILED),
    ("KB_MISMATCH", KB_MISMATCH),
    ("SAMPLES_AT_RISK", SAMPLES_AT_RISK),
    ("STORE_FAILED", STORE_FAILED),
    ("KB_REFUSED", KB_REFUSED),
    ("IN_USE", IN_USE),
    ("INTERRUPTED", INTERRUPTED),
];
