//! `katotune run PROFILE --shard I/N`: what a shard changes about a run before it
//! starts. The rule of which samples a shard trains is `train::shard`'s; here the
//! shard gets its own knowledge-base file, journal and record name, and what cannot
//! be sharded is refused.

use std::path::{Path, PathBuf};

use super::{BadInput, CliResult};
use crate::profile::schema::Backend;
use crate::profile::Profile;
use crate::train::shard::Shard;

/// Makes `profile` the shard's: its KB file gets `.shard-I-of-N` before its
/// extensions (`runs/quick.kato.db` → `runs/quick.shard-1-of-3.kato.db`), which also
/// moves its journal beside it. Refuses a delivery (`--into`, `deliver.into`) and any
/// backend but the embedded engine: a shard trains into a KB file of its own, to be
/// merged with `katotune kb merge` and then loaded (`kb load`).
pub fn apply(profile: &mut Profile, shard: Shard, into: Option<&str>) -> CliResult<()> {
    if let Some(into) = into {
        return Err(BadInput(format!(
            "--shard {shard} cannot deliver into `{into}`: a shard holds only part of the \
             knowledge base. Train every shard, merge them with `katotune kb merge \
             SHARD... -o OUT`, then load OUT with `katotune kb load OUT --into {into}`"
        ))
        .into());
    }
    if profile.stack.backend != Backend::Embedded {
        return Err(BadInput(format!(
            "--shard {shard} needs the embedded engine (stack.backend: embedded), so each \
             shard trains into a knowledge-base file of its own; this profile's backend is \
             {}. Set --backend embedded, then merge the shards with `katotune kb merge` and \
             load the result into the stack with `katotune kb load`",
            super::output::user_name(&profile.stack.backend)
        ))
        .into());
    }
    match crate::stack::kb_file(profile) {
        Some(file) => profile.stack.kb_file = Some(shard.suffixed(&file)),
        None => noteln!(
            "shard {shard} keeps its knowledge base in memory (stack.ephemeral: true): its \
             run record has the digests, but there is no KB file to merge; set \
             stack.ephemeral=false to merge shards"
        ),
    }
    Ok(())
}

/// The run record's default path: `<output_dir>/<profile>[.shard-I-of-N]-<run id>.json`.
pub fn record_path(profile: &Profile, shard: Option<Shard>, run_id: &str) -> PathBuf {
    let word = shard
        .map(|s| format!(".{}", s.file_word()))
        .unwrap_or_default();
    (profile.report.output_dir).join(format!("{}{word}-{run_id}.json", profile.name))
}

/// Before a `--resume` of `original` (the profile before [`apply`]) whose journal and
/// row log for `shard` are missing: when journals of the same profile exist for other
/// shard specs (or for the whole run), refuses and names them, since the user most
/// likely resumed with another `--shard` than the run started with.
pub fn refuse_other_spec(original: &Profile, shard: Option<Shard>) -> CliResult<()> {
    let whole = super::run::journal_path(original, None);
    // Shards' journals sit beside their KB files (`<kb>.shard-I-of-N...journal.json`),
    // or, in memory, beside the whole run's journal.
    let base = crate::stack::kb_file(original).map_or_else(
        || whole.clone(),
        |kb| PathBuf::from(format!("{}.journal.json", kb.display())),
    );
    let journal = shard.map_or_else(|| whole.clone(), |s| s.suffixed(&base));
    let log = crate::train::journal::RowLog::path_for(&journal);
    if journal.exists() || log.exists() {
        return Ok(());
    }
    let mut others = other_shards(&base, shard);
    if shard.is_some() && whole.exists() {
        others.insert(0, "the whole run (no --shard)".to_string());
    }
    if others.is_empty() {
        return Ok(());
    }
    let this = shard.map_or("the whole run (no --shard)".to_string(), |s| {
        format!("shard {s}")
    });
    Err(BadInput(format!(
        "nothing to resume for {this}: there is no journal at {}, but this profile has \
         journals for {}; resume with the --shard the run started with (a shard's samples \
         depend on N, so a run cannot change N half-way), or start this one without --resume",
        journal.display(),
        others.join(", ")
    ))
    .into())
}

/// The shards other than `shard` whose journals (`base` with `.shard-I-of-N` put in)
/// exist, as `shard I/N`, found by file name.
fn other_shards(base: &Path, shard: Option<Shard>) -> Vec<String> {
    let dir = base.parent().filter(|d| !d.as_os_str().is_empty());
    let entries = std::fs::read_dir(dir.unwrap_or(Path::new(".")))
        .into_iter()
        .flatten();
    let mut found: Vec<Shard> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let spec = spec_in(&file).filter(|s| Some(*s) != shard)?;
            let expected = spec.suffixed(base);
            (expected.file_name() == Some(e.file_name().as_os_str())).then_some(spec)
        })
        .collect();
    found.sort_by_key(|s| (s.count, s.index));
    found.iter().map(|s| format!("shard {s}")).collect()
}

/// The shard a file name carries (`...shard-1-of-3...`).
fn spec_in(file: &str) -> Option<Shard> {
    let at = file.find(".shard-")? + ".shard-".len();
    let rest = &file[at..];
    let (index, rest) = rest.split_once("-of-")?;
    let count: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Shard::new(index.parse().ok()?, count.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_with_another_shard_spec_names_the_specs_that_have_journals() {
        let dir = tempfile::tempdir().unwrap();
        let mut profile = Profile {
            name: "quick".into(),
            ..Profile::default()
        };
        profile.report.output_dir = dir.path().to_path_buf();
        let third = |i| Shard::new(i, 3).unwrap();
        for i in [0, 2] {
            let mut sharded = profile.clone();
            apply(&mut sharded, third(i), None).unwrap();
            let journal = super::super::run::journal_path(&sharded, Some(third(i)));
            std::fs::write(journal, "{}").unwrap();
        }
        let err = refuse_other_spec(&profile, Some(Shard::new(1, 2).unwrap()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing to resume for shard 1/2"), "{err}");
        assert!(err.contains("journals for shard 0/3, shard 2/3;"), "{err}");
        let err = refuse_other_spec(&profile, None).unwrap_err().to_string();
        assert!(err.contains("nothing to resume for the whole run"), "{err}");
        assert!(
            refuse_other_spec(&profile, Some(third(0))).is_ok(),
            "its own journal exists"
        );
    }
}
