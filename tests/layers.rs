//! Modules stay one-way: profile → plan → train. `train/` takes a `TrainPlan` that
//! `app/` derives from a profile and never reads a profile itself; `profile/` never
//! reaches into the trainer (the enums both name live in `terms`). A `use` that breaks
//! this fails here, naming the file and line.

use std::path::Path;

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// Lines of the files of module `module` (its folder and `module.rs`) that name
/// `forbidden` (`crate::profile`, `super::profile`...).
fn offending_lines(module: &str, forbidden: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = sources(&src.join(module));
    files.push(src.join(format!("{module}.rs")));
    let mut found = Vec::new();
    for file in files.iter().filter(|f| f.exists()) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if code.contains(&format!("crate::{forbidden}"))
                || code.contains(&format!("super::{forbidden}::"))
            {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_trainer_never_imports_the_profile() {
    let found = offending_lines("train", "profile");
    assert!(
        found.is_empty(),
        "train/ must take a TrainPlan, not a profile:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_profile_never_imports_the_trainer() {
    let found = offending_lines("profile", "train");
    assert!(
        found.is_empty(),
        "profile/ must not import train/ (shared enums go in terms):\n{}",
        found.join("\n")
    );
}
