//! Checks on a resolved profile: every problem in one pass, plus the once-per-knob
//! warnings about settings the target server ignores.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::knobs::{self, KatoEffect, Knob};
use super::schema::{Backend, Port, Profile, Segmentation, Template, Tuning, MAX_REPLICAS};

/// One thing wrong with a profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// Where the value came from (a file, an env var, a flag), when known.
    pub source: Option<String>,
    /// Key path, e.g. `stack.tuning.connection_pool_size`.
    pub path: String,
    /// Line in `source`, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, self.line) {
            (Some(src), Some(line)) => write!(f, "{src}:{line}: ")?,
            (Some(src), None) => write!(f, "{src}: ")?,
            _ => {}
        }
        write!(f, "`{}`: {}", self.path, self.message)
    }
}

/// What server a profile's settings end up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// A real KATO 3.10 server (docker `kato` template, or an external URL).
    Kato,
    /// katotune's own engine (embedded backend, or the docker `embedded` template).
    Engine,
}

impl Profile {
    /// Which server receives this profile's tuning.
    pub fn target(&self) -> Target {
        match (self.stack.backend, self.stack.template) {
            (Backend::Embedded, _) | (Backend::Docker, Template::Embedded) => Target::Engine,
            _ => Target::Kato,
        }
    }

    /// The server environment this profile sets: tuning fields first, then `env:`.
    pub fn server_env(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = tuning_values(&self.stack.tuning)
            .into_iter()
            .map(|(knob, value)| (knob.env.to_string(), value))
            .collect();
        env.extend(self.stack.env.clone());
        env
    }
}

/// The tuning fields that are set, with their knob and env-style value.
pub fn tuning_values(t: &Tuning) -> Vec<(&'static Knob, String)> {
    let secs = |d: std::time::Duration| {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 {
            format!("{}", s as u64)
        } else {
            format!("{s}")
        }
    };
    let fields: [(&str, Option<String>); 8] = [
        ("batch_size", t.batch_size.map(|v| v.to_string())),
        (
            "connection_pool_size",
            t.connection_pool_size.map(|v| v.to_string()),
        ),
        ("request_timeout", t.request_timeout.map(secs)),
        ("stm_capacity", t.stm_capacity.map(|v| v.to_string())),
        ("workers", t.workers.map(|v| v.to_string())),
        (
            "limit_concurrency",
            t.limit_concurrency.map(|v| v.to_string()),
        ),
        ("session_ttl", t.session_ttl.map(secs)),
        (
            "process_predictions",
            t.process_predictions.map(|v| v.to_string()),
        ),
    ];
    fields
        .into_iter()
        .filter_map(|(field, value)| Some((knobs::by_field(field)?, value?)))
        .collect()
}

/// Every problem with a resolved profile (empty when it is usable).
pub fn problems(p: &Profile) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut bad = |path: &str, message: String| {
        out.push(Problem {
            source: None,
            path: path.to_string(),
            line: None,
            message,
        })
    };
    for (knob, value) in tuning_values(&p.stack.tuning) {
        if let Err(why) = knob.domain.check(&value) {
            let field = knob.field.unwrap_or(knob.env);
            let crash = if knob.crashes_kato_out_of_range {
                format!(
                    " ({} outside it makes KATO 3.10 crash at start-up)",
                    knob.env
                )
            } else {
                String::new()
            };
            bad(&format!("stack.tuning.{field}"), format!("{why}{crash}"));
        }
    }
    for (name, value) in &p.stack.env {
        if let Some(knob) = knobs::by_env(name) {
            if let Some(field) = knob.field {
                bad(
                    &format!("stack.env.{name}"),
                    format!("{name} has a first-class field: set stack.tuning.{field} instead"),
                );
            } else if let Err(why) = knob.domain.check(value) {
                bad(
                    &format!("stack.env.{name}"),
                    format!("{why} (KATO 3.10 crashes at start-up)"),
                );
            }
        }
    }
    let t = &p.training;
    if t.chunk_sizes.len() < 2 {
        bad(
            "training.chunk_sizes",
            "needs at least two levels, e.g. [5, 7]".into(),
        );
    }
    for (level, size) in t.chunk_sizes.iter().enumerate() {
        let min = if level == 0 && t.segmentation == Segmentation::Paragraphs {
            3
        } else {
            2
        };
        if *size < min {
            bad(
                &format!("training.chunk_sizes[{level}]"),
                format!("{size} is too small: level {level} needs a chunk size of at least {min}"),
            );
        }
    }
    if t.node0_batch == 0 || t.node0_batch > 100_000 {
        bad(
            "training.node0_batch",
            format!("{} is outside the valid range 1-100000", t.node0_batch),
        );
    }
    if t.workers == 0 || t.workers > 256 {
        bad(
            "training.workers",
            format!("{} is outside the valid range 1-256", t.workers),
        );
    }
    if t.samples == Some(0) {
        bad(
            "training.samples",
            "0 samples trains nothing: leave it unset for all samples".into(),
        );
    }
    if t.paragraph_token_cap == 0 {
        bad("training.paragraph_token_cap", "must be at least 1".into());
    }
    if t.node_prefix.is_empty()
        || !t
            .node_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        bad(
            "training.node_prefix",
            format!(
                "`{}` must be letters, digits and `_` only (KATO pastes node ids into SQL)",
                t.node_prefix
            ),
        );
    }
    if t.request_timeout.is_zero() {
        bad("training.request_timeout", "must be longer than 0s".into());
    }
    if t.retries.attempts == 0 {
        bad(
            "training.retries.attempts",
            "must be at least 1 (1 = no retry)".into(),
        );
    }
    if t.session.ttl.as_secs() < 1 {
        bad("training.session.ttl", "must be at least 1s".into());
    }
    if p.health.timeout.is_zero() || p.health.interval.is_zero() {
        bad(
            "health",
            "timeout and interval must be longer than 0s".into(),
        );
    } else if p.health.interval > p.health.timeout {
        bad("health.interval", "is longer than health.timeout".into());
    }
    match (p.stack.backend, &p.stack.url) {
        (Backend::External, None) => bad(
            "stack.url",
            "the external backend needs the KATO URL, e.g. http://127.0.0.1:8000".into(),
        ),
        (_, Some(url)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
            bad("stack.url", format!("`{url}` is not an http:// URL"))
        }
        _ => {}
    }
    if let Some(message) = replica_problem(p) {
        bad("stack.replicas", message);
    }
    // The dataset itself is checked by `run` and `profiles validate` (the
    // dataset reader), not here: showing a profile never needs its dataset.
    out
}

impl Profile {
    /// Whether the stack's KATO service runs katotune's engine image (the `embedded`
    /// template, or the `kato` template with `images.kato` set to `images.engine`): one
    /// process that keeps its knowledge base in its own SQLite file.
    pub fn kato_is_engine_image(&self) -> bool {
        self.stack.template == Template::Embedded
            || self.stack.images.kato == self.stack.images.engine
    }
}

/// What is wrong with `stack.replicas`: outside 1 to [`MAX_REPLICAS`], ports past
/// 65535, or replicas of katotune's engine image, which would split the knowledge
/// base (each engine keeps its own file; KATO replicas share Redis and ClickHouse).
fn replica_problem(p: &Profile) -> Option<String> {
    let n = p.stack.replicas;
    if !(1..=MAX_REPLICAS).contains(&n) {
        return Some(format!("{n} is outside the valid range 1-{MAX_REPLICAS}"));
    }
    if n > 1 && p.kato_is_engine_image() {
        return Some(format!(
            "{n} replicas of katotune's engine image would split the knowledge base into {n} \
             (each engine keeps its own file); replicas need the `kato` template, whose KATO \
             servers share one Redis and one ClickHouse, or set stack.replicas: 1"
        ));
    }
    match p.stack.port {
        Port::Fixed(port) if u32::from(port) + n - 1 > 65535 => Some(format!(
            "replica {n} would publish on port {}; lower stack.port or the replicas",
            u32::from(port) + n - 1
        )),
        _ => None,
    }
}

/// A warning when `stack.replicas` cannot take effect: the embedded and external
/// backends talk to one server, and replicas beyond `training.workers` get no worker
/// (each worker stays on one replica).
fn replica_warning(p: &Profile) -> Option<String> {
    let n = p.stack.replicas;
    let backend = match p.stack.backend {
        Backend::Docker => {
            let workers = p.training.workers;
            return (workers < n as usize).then(|| {
                format!(
                    "training.workers ({workers}) is below stack.replicas ({n}): {} replicas \
                     get no worker (each worker's sessions stay on one replica)",
                    n as usize - workers
                )
            });
        }
        Backend::Embedded => "the embedded backend runs one engine in katotune",
        Backend::External => "the external backend talks to the one server at stack.url",
    };
    (n > 1).then(|| {
        format!(
            "stack.replicas ({n}) applies to the docker backend and `render --output \
             kubernetes`; {backend}"
        )
    })
}

/// One warning per knob the target server ignores, saying where the effect lives,
/// and one when `stack.replicas` cannot take effect on the profile's backend.
pub fn warnings(p: &Profile) -> Vec<String> {
    let mut out: Vec<String> = replica_warning(p).into_iter().collect();
    out.extend(knob_warnings(p));
    out
}

fn knob_warnings(p: &Profile) -> Vec<String> {
    if p.target() == Target::Engine {
        return Vec::new();
    }
    let mut names: Vec<String> = tuning_values(&p.stack.tuning)
        .into_iter()
        .map(|(k, _)| k.env.to_string())
        .collect();
    names.extend(p.stack.env.keys().cloned());
    names
        .iter()
        .filter_map(|name| knobs::by_env(name))
        .filter(|k| k.kato != KatoEffect::ChangesBehaviour)
        .map(|k| {
            let what = k
                .field
                .map(|f| format!("stack.tuning.{f}"))
                .unwrap_or_else(|| format!("stack.env.{}", k.env));
            let advice = if k.advice.is_empty() {
                String::new()
            } else {
                format!("; {}", k.advice)
            };
            format!(
                "{what} ({}): KATO 3.10 {}: {}{advice}",
                k.env,
                k.kato.label(),
                k.kato_note
            )
        })
        .collect()
}
