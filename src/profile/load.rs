//! Loading a profile: find it, follow its `inherits:` chain, layer it with figment
//! (defaults < inherited chain < the file < `KATOTUNE_*` env vars < flags), and say
//! where every value came from.

use std::path::{Path, PathBuf};

use figment::providers::Serialized;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Provider, Source};
use serde_json::Value;

use super::error::ProfileError;
use super::explain::describe_source;
use super::keys::{find_line, unknown_keys};
use super::schema::Profile;
use super::validate::Problem;

/// Profiles shipped inside the binary, so they work from any directory.
pub const SHIPPED: &[(&str, &str)] = &[
    ("baseline", include_str!("../../profiles/baseline.yaml")),
    (
        "phase1-batched",
        include_str!("../../profiles/phase1-batched.yaml"),
    ),
    (
        "phase2-tuned",
        include_str!("../../profiles/phase2-tuned.yaml"),
    ),
    (
        "phase3-parallel",
        include_str!("../../profiles/phase3-parallel.yaml"),
    ),
    ("quick", include_str!("../../profiles/quick.yaml")),
    ("path-b", include_str!("../../profiles/path-b.yaml")),
    (
        "docker-engine",
        include_str!("../../profiles/docker-engine.yaml"),
    ),
    (
        "docker-kato",
        include_str!("../../profiles/docker-kato.yaml"),
    ),
    (
        "docker-stores",
        include_str!("../../profiles/docker-stores.yaml"),
    ),
];

/// Prefix of environment variables that override profile values
/// (`KATOTUNE_TRAINING__WORKERS=4` sets `training.workers`).
pub const ENV_PREFIX: &str = "KATOTUNE_";

/// One YAML document of the chain.
#[derive(Debug, Clone)]
pub struct Layer {
    /// `profiles/x.yaml` or `shipped:baseline`.
    pub label: String,
    /// The file, when it is one.
    pub path: Option<PathBuf>,
    pub text: String,
    pub value: Value,
}

/// A command-line override: a key path and its value, with the flag that set it.
#[derive(Debug, Clone)]
pub struct FlagOverride {
    pub flag: String,
    pub path: String,
    pub value: Value,
}

/// The result of loading: the profile, the figment that made it, and what was said.
pub struct Loaded {
    pub profile: Profile,
    pub figment: Figment,
    /// Leaf profile first, root ancestor last.
    pub chain: Vec<Layer>,
    pub warnings: Vec<String>,
}

/// The YAML files of `profiles/` in the working directory (local profiles, found by
/// name before shipped ones), sorted; none when there is no such directory.
pub fn local_profile_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("profiles")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// Finds a profile by file path, `profiles/<name>.yaml`, or shipped name.
pub fn locate(name: &str) -> Result<Layer, ProfileError> {
    let as_path = Path::new(name);
    if as_path.is_file() {
        return read_layer(as_path);
    }
    let local = Path::new("profiles").join(format!("{name}.yaml"));
    let plain_name = !name.contains('/') && !name.ends_with(".yaml") && !name.ends_with(".yml");
    if plain_name && local.is_file() {
        return read_layer(&local);
    }
    if let Some((n, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
        return parse_layer(format!("shipped:{n}"), None, text.to_string());
    }
    let local_names: Vec<String> = local_profile_files()
        .iter()
        .filter_map(|p| p.file_stem()?.to_str().map(str::to_string))
        .collect();
    let candidates: Vec<&str> = SHIPPED
        .iter()
        .map(|(n, _)| *n)
        .chain(local_names.iter().map(String::as_str))
        .collect();
    Err(ProfileError::NotFound {
        name: name.to_string(),
        searched: vec![
            name.to_string(),
            local.display().to_string(),
            "shipped profiles".into(),
        ],
        shipped: SHIPPED.iter().map(|(n, _)| n.to_string()).collect(),
        suggestion: plain_name
            .then(|| super::keys::closest(name, &candidates))
            .flatten()
            .map(str::to_string),
    })
}

fn read_layer(path: &Path) -> Result<Layer, ProfileError> {
    let bytes = std::fs::read(path).map_err(|source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ProfileError::NotUtf8 {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    parse_layer(path.display().to_string(), Some(path.to_path_buf()), text)
}

fn parse_layer(label: String, path: Option<PathBuf>, text: String) -> Result<Layer, ProfileError> {
    let value: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        serde_saphyr::from_str(&text).map_err(|e| {
            let loc = e.location();
            ProfileError::Yaml {
                file: label.clone(),
                line: loc.map(|l| l.line()),
                column: loc.map(|l| l.column()),
                message: super::words::yaml_message(&first_line(&e.to_string())),
            }
        })?
    };
    if !value.is_object() {
        return Err(ProfileError::NotAMapping { file: label });
    }
    let mut value = value;
    super::text_scalars::keep_text_as_written(&text, &mut value);
    Ok(Layer {
        label,
        path,
        text,
        value,
    })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// Where a parent named in `child` lives: next to the child, then shipped.
///
/// A file never inherits itself: `inherits: baseline` in `./baseline.yaml` (or in
/// `profiles/baseline.yaml`) names the next profile of that name, the shipped one, the
/// way nextest resolves a profile that inherits a built-in profile of its own name.
/// Only a chain that comes back to a layer already in it is a cycle.
fn locate_parent(child: &Layer, parent: &str) -> Result<Layer, ProfileError> {
    let dir = child
        .path
        .as_ref()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf);
    let mut searched = Vec::new();
    if let Some(dir) = &dir {
        let file = if parent.ends_with(".yaml") || parent.ends_with(".yml") || parent.contains('/')
        {
            dir.join(parent)
        } else {
            dir.join(format!("{parent}.yaml"))
        };
        let is_child = |file: &Path| match (&child.path, std::fs::canonicalize(file)) {
            (Some(own), Ok(file)) => std::fs::canonicalize(own).is_ok_and(|own| own == file),
            _ => false,
        };
        if is_child(&file) {
            searched.push(format!("{} (the profile itself)", file.display()));
        } else if file.is_file() {
            return read_layer(&file);
        } else {
            searched.push(file.display().to_string());
        }
    }
    if let Some((n, text)) = SHIPPED.iter().find(|(n, _)| *n == parent) {
        return parse_layer(format!("shipped:{n}"), None, text.to_string());
    }
    searched.push("shipped profiles".into());
    Err(ProfileError::UnknownParent {
        child: child.label.clone(),
        parent: parent.to_string(),
        searched,
    })
}

/// Follows `inherits:` from `leaf` to the root, refusing cycles.
pub fn resolve_chain(leaf: Layer) -> Result<Vec<Layer>, ProfileError> {
    let mut chain = vec![leaf];
    loop {
        let current = chain.last().expect("chain starts non-empty");
        let Some(parent) = current.value.get("inherits") else {
            return Ok(chain);
        };
        let Some(parent) = parent.as_str() else {
            return Err(ProfileError::Invalid {
                problems: vec![Problem {
                    source: Some(current.label.clone()),
                    path: "inherits".into(),
                    line: find_line(&current.text, "inherits"),
                    message: "must be a profile name or a path".into(),
                }],
            });
        };
        let next = locate_parent(current, parent)?;
        if let Some(pos) = chain.iter().position(|l| l.label == next.label) {
            let mut cycle: Vec<String> = chain[pos..].iter().map(|l| l.label.clone()).collect();
            cycle.push(next.label);
            return Err(ProfileError::Cycle { chain: cycle });
        }
        chain.push(next);
    }
}

/// A figment provider for one layer, named after its file.
struct LayerProvider<'a>(&'a Layer, Value);

impl Provider for LayerProvider<'_> {
    fn metadata(&self) -> Metadata {
        let meta = Metadata::named(self.0.label.clone());
        match &self.0.path {
            Some(p) => meta.source(Source::File(p.clone())),
            None => meta,
        }
    }

    fn data(&self) -> Result<Map<figment::Profile, Dict>, figment::Error> {
        Serialized::defaults(&self.1).data()
    }
}

/// Loads `name` with every layer of precedence applied and validates the result.
pub fn load(name: &str, flags: &[FlagOverride]) -> Result<Loaded, ProfileError> {
    let leaf = locate(name)?;
    let chain = resolve_chain(leaf)?;
    // Before anything can print a value: every secret the files hold is masked from now on.
    for layer in &chain {
        crate::secret::remember_all(&layer.value);
    }
    let mut problems = Vec::new();
    let mut figment = Figment::from(Serialized::defaults(Profile::default()));
    let default_name = chain[0]
        .path
        .as_ref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| chain[0].label.trim_start_matches("shipped:").to_string());
    figment = figment.merge(Serialized::default("name", default_name));
    // Root ancestor first, so each child overrides its parent.
    let cleaned: Vec<Value> = chain
        .iter()
        .map(|layer| {
            let (value, found) = unknown_keys(&layer.value);
            problems.extend(found.into_iter().map(|mut p| {
                p.line = find_line(&layer.text, p.path.rsplit('.').next().unwrap_or(&p.path));
                p.source = Some(layer.label.clone());
                p
            }));
            value
        })
        .collect();
    for (layer, value) in chain.iter().zip(cleaned).rev() {
        let mut value = value;
        if !std::ptr::eq(layer, &chain[0]) {
            // A parent's name and description describe the parent, not the child.
            if let Some(obj) = value.as_object_mut() {
                obj.remove("name");
                obj.remove("description");
            }
        }
        figment = figment.merge(LayerProvider(layer, value));
    }
    let (env, env_problems) = super::env_layer::env_layer(std::env::vars());
    problems.extend(env_problems);
    figment = figment.merge(super::env_layer::EnvProvider(env));
    for flag in flags {
        let found = flag_problems(flag);
        if found.is_empty() {
            figment = figment.merge(FlagProvider(flag));
        }
        problems.extend(found);
    }
    let profile = extract(&figment, &chain, &mut problems);
    if let Some(p) = &profile {
        // Secrets set by environment variables or flags.
        crate::secret::remember_all(&serde_json::to_value(p).unwrap_or_default());
    }
    match profile {
        Some(profile) if problems.is_empty() => {
            let more = super::validate::problems(&profile);
            if !more.is_empty() {
                return Err(ProfileError::Invalid {
                    problems: locate_problems(more, &figment, &chain),
                });
            }
            let warnings = super::validate::warnings(&profile);
            Ok(Loaded {
                profile,
                figment,
                chain,
                warnings,
            })
        }
        _ => Err(ProfileError::Invalid { problems }),
    }
}

/// A flag's key path checked like a file's keys: a misspelt `--set` key gets the
/// closest valid key.
fn flag_problems(flag: &FlagOverride) -> Vec<Problem> {
    let (_, mut problems) = unknown_keys(&nested(&flag.path, flag.value.clone()));
    for p in &mut problems {
        p.source = Some(format!("flag {}", flag.flag));
    }
    problems
}

/// `a.b.c` and a value as `{a: {b: {c: value}}}`.
fn nested(path: &str, mut value: Value) -> Value {
    for key in path.rsplit('.') {
        let mut obj = serde_json::Map::new();
        obj.insert(key.to_string(), value);
        value = Value::Object(obj);
    }
    value
}

struct FlagProvider<'a>(&'a FlagOverride);

impl Provider for FlagProvider<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("flag {}", self.0.flag))
    }

    fn data(&self) -> Result<Map<figment::Profile, Dict>, figment::Error> {
        Serialized::defaults(nested(&self.0.path, self.0.value.clone())).data()
    }
}

/// Extracts section by section so one bad type does not hide the others.
fn extract(figment: &Figment, chain: &[Layer], problems: &mut Vec<Problem>) -> Option<Profile> {
    match figment.extract::<Profile>() {
        Ok(p) => return Some(p),
        Err(_) => {
            for section in ["stack", "health", "training", "report"] {
                let result = match section {
                    "stack" => figment
                        .extract_inner::<super::schema::StackSection>(section)
                        .err(),
                    "health" => figment
                        .extract_inner::<super::schema::HealthSection>(section)
                        .err(),
                    "training" => figment
                        .extract_inner::<super::schema::TrainingSection>(section)
                        .err(),
                    _ => figment
                        .extract_inner::<super::schema::ReportSection>(section)
                        .err(),
                };
                if let Some(err) = result {
                    problems.extend(err.into_iter().map(|mut e| {
                        // Errors of an inner extraction carry the section after the key.
                        e.path.retain(|k| k != section);
                        e.path.insert(0, section.to_string());
                        figment_problem(e, chain, figment)
                    }));
                }
            }
            if problems.is_empty() {
                if let Err(err) = figment.extract::<Profile>() {
                    problems.extend(err.into_iter().map(|e| figment_problem(e, chain, figment)));
                }
            }
        }
    }
    None
}

fn figment_problem(e: figment::Error, chain: &[Layer], figment: &Figment) -> Problem {
    let path = e.path.join(".");
    let words = match &e.kind {
        figment::error::Kind::InvalidType(_, expected) if expected.starts_with("enum ") => {
            enum_words(figment, &path)
        }
        _ => None,
    };
    let keys: Vec<&str> = e.path.iter().map(String::as_str).collect();
    let source = e.metadata.as_ref().map(|m| describe_source(m, &keys));
    let line = source
        .as_ref()
        .and_then(|s| chain.iter().find(|l| &l.label == s))
        .and_then(|l| find_line(&l.text, e.path.last().map(String::as_str).unwrap_or("")));
    Problem {
        source,
        path,
        line,
        message: super::words::value_message(&e.kind, words.as_deref()),
    }
}

/// The words an enum key allows, asked of the profile type itself: the key set to a
/// word no enum has makes serde list the variants (for an item of a list, `formats.0`,
/// the list set to that one word). `None` when it does not.
fn enum_words(figment: &Figment, path: &str) -> Option<Vec<String>> {
    const NO_WORD: &str = "\u{1}";
    let probe = match path.rsplit_once('.') {
        Some((list, index)) if index.parse::<usize>().is_ok() => {
            Serialized::global(list, serde_json::json!([NO_WORD]))
        }
        _ => Serialized::global(path, serde_json::json!(NO_WORD)),
    };
    let err = figment.clone().merge(probe).extract::<Profile>().err()?;
    err.into_iter().find_map(|e| match e.kind {
        figment::error::Kind::UnknownVariant(word, variants) if word == NO_WORD => {
            Some(variants.iter().map(|v| v.to_string()).collect())
        }
        _ => None,
    })
}

/// Fills in where a validation problem's value came from.
fn locate_problems(problems: Vec<Problem>, figment: &Figment, chain: &[Layer]) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|mut p| {
            let key = p.path.split('[').next().unwrap_or(&p.path).to_string();
            if let Some(meta) = figment.find_metadata(&key) {
                let keys: Vec<&str> = key.split('.').collect();
                p.source = Some(describe_source(meta, &keys));
                p.line = chain
                    .iter()
                    .find(|l| Some(&l.label) == p.source.as_ref())
                    .and_then(|l| find_line(&l.text, keys.last().copied().unwrap_or("")));
            }
            p
        })
        .collect()
}
