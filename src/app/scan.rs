//! `compare PROFILE --scan KEY=VALUES`: one profile run once per value of one
//! setting, each value a profile of its own (`NAME@KEY=VALUE`) with its own stack,
//! so a server knob gets a fresh stack per value.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{flag_overrides, BadInput, CliResult};
use crate::cli::ProfileOverrides;
use crate::profile::{self, FlagOverride, Profile};

/// Most values one scan may take (a typo like `1..10000` should not run for a day).
pub const MAX_SCAN_VALUES: usize = 32;

/// A parsed `--scan`: the dotted key and its values as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSpec {
    pub key: String,
    pub values: Vec<String>,
}

/// Parses `training.workers=1,2,4,8` or `training.workers=1..8` (inclusive), or a
/// mix (`1..3,8`). Values are YAML, as with `--set`.
pub fn parse_scan(text: &str) -> Result<ScanSpec, BadInput> {
    let bad = |why: &str| {
        BadInput(format!(
            "--scan `{text}`: {why}; write KEY=VALUES, like training.workers=1,2,4,8 or training.workers=1..8"
        ))
    };
    let (key, list) = text.split_once('=').ok_or_else(|| bad("no `=`"))?;
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(bad("the key is empty or has spaces"));
    }
    // compare trains every profile on the reference's samples, so these would not vary.
    let fixed = [
        "training.dataset",
        "training.skip",
        "training.samples",
        "training.filter",
    ];
    if let Some(f) = fixed.iter().find(|f| key.starts_with(**f)) {
        return Err(bad(&format!(
            "{f} cannot be scanned: every value trains the same samples (set it with --set)"
        )));
    }
    let mut values = Vec::new();
    for part in list.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(bad("an empty value"));
        }
        match part.split_once("..") {
            Some((a, b)) => {
                let (a, b) = (a.trim().parse::<i64>(), b.trim().parse::<i64>());
                let (Ok(a), Ok(b)) = (a, b) else {
                    return Err(bad(&format!("`{part}` is not a range of whole numbers")));
                };
                if b < a || (b - a) as usize >= MAX_SCAN_VALUES {
                    return Err(bad(&format!(
                        "`{part}` must go upwards and hold at most {MAX_SCAN_VALUES} values"
                    )));
                }
                values.extend((a..=b).map(|v| v.to_string()));
            }
            None => values.push(part.to_string()),
        }
    }
    if values.len() > MAX_SCAN_VALUES {
        return Err(bad(&format!("more than {MAX_SCAN_VALUES} values")));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = values.iter().find(|v| !seen.insert(v.as_str())) {
        return Err(bad(&format!("`{dup}` is given twice")));
    }
    Ok(ScanSpec {
        key: key.to_string(),
        values,
    })
}

/// One profile per value of `spec`: `name` with the value set (after the other
/// overrides, so it wins), named `NAME@LEAF=VALUE`, with where each setting came from.
pub fn scan_profiles(
    name: &str,
    overrides: &ProfileOverrides,
    spec: &ScanSpec,
) -> CliResult<Vec<(Profile, BTreeMap<String, String>)>> {
    let leaf = spec.key.rsplit('.').next().unwrap_or(&spec.key);
    let mut out = Vec::new();
    for raw in &spec.values {
        let value: Value = serde_saphyr::from_str(raw).map_err(|e| {
            BadInput(format!(
                "--scan {}: `{raw}` is not a YAML value: {e}",
                spec.key
            ))
        })?;
        let mut flags = flag_overrides(overrides)?;
        flags.push(FlagOverride {
            flag: format!("--scan {}", spec.key),
            path: spec.key.clone(),
            value,
        });
        let loaded = profile::load(name, &flags)?;
        let sources = crate::profile::explain::explain(&loaded.profile, &loaded.figment)
            .into_iter()
            .map(|o| (o.key, o.source))
            .collect();
        let mut p = loaded.profile;
        p.name = format!("{}@{leaf}={raw}", p.name);
        out.push((p, sources));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_ranges_and_mixes_expand_in_order() {
        let s = parse_scan("training.workers=1,2,4,8").unwrap();
        assert_eq!(s.key, "training.workers");
        assert_eq!(s.values, ["1", "2", "4", "8"]);
        assert_eq!(
            parse_scan("training.workers=1..4").unwrap().values,
            ["1", "2", "3", "4"]
        );
        assert_eq!(
            parse_scan("stack.tuning.batch_size=1..2, 100")
                .unwrap()
                .values,
            ["1", "2", "100"]
        );
    }

    #[test]
    fn bad_scans_say_what_to_write() {
        for bad in [
            "training.workers",
            "=1,2",
            "training.workers=",
            "training.workers=4..1",
            "training.workers=1..100",
            "training.workers=1,1",
        ] {
            let e = parse_scan(bad).unwrap_err().to_string();
            assert!(e.contains("KEY=VALUES"), "{bad}: {e}");
        }
    }
}
