//! The knob table: every KATO server setting katotune knows, what KATO 3.10 really
//! does with it (API.md section 5), and what katotune's embedded engine does with it.
//!
//! This is what makes tuning honest. `validate` refuses values that would crash KATO
//! at start-up, `warnings_for` says once when a profile sets a knob the target ignores,
//! and the embedded engine reads the same environment names to honour the seed knobs.

use serde::Serialize;

/// What a KATO 3.10 server does with a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KatoEffect {
    /// Read and used: it changes how the server behaves.
    ChangesBehaviour,
    /// Parsed and range-checked at start-up, then never used.
    ParsedUnused,
    /// Nothing in the server reads it.
    NotRead,
}

impl KatoEffect {
    pub fn label(self) -> &'static str {
        match self {
            KatoEffect::ChangesBehaviour => "changes behaviour",
            KatoEffect::ParsedUnused => "parsed but unused",
            KatoEffect::NotRead => "not read at all",
        }
    }
}

/// Value shape and accepted range.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Domain {
    /// Whole number in `min..=max`.
    Int { min: i64, max: i64 },
    /// Seconds in `min..=max` (profiles write durations such as `120s`).
    Seconds { min: f64, max: f64 },
    /// Number in `min..=max`.
    Float { min: f64, max: f64 },
    /// `true` or `false`.
    Bool,
    /// One of a fixed set of words.
    OneOf {
        /// The words, as the server spells them.
        values: &'static [&'static str],
    },
    /// Free text.
    Text,
}

impl Domain {
    /// Describes the accepted values for messages: `1-100`, `CLEAR or ROLLING`.
    pub fn describe(&self) -> String {
        match self {
            Domain::Int { min, max } if *max == i64::MAX => format!("{min} or more"),
            Domain::Int { min, max } => format!("{min}-{max}"),
            Domain::Seconds { min, max } => format!("{min}-{max} seconds"),
            Domain::Float { min, max } => format!("{min}-{max}"),
            Domain::Bool => "true or false".into(),
            Domain::OneOf { values } => values.join(", "),
            Domain::Text => "any text".into(),
        }
    }

    /// Checks an environment-style value; `Err` says what is allowed.
    pub fn check(&self, value: &str) -> Result<(), String> {
        let ok = match self {
            Domain::Int { min, max } => value
                .trim()
                .parse::<i64>()
                .is_ok_and(|v| v >= *min && v <= *max),
            Domain::Seconds { min, max } | Domain::Float { min, max } => value
                .trim()
                .parse::<f64>()
                .is_ok_and(|v| v >= *min && v <= *max),
            Domain::Bool => matches!(
                value.trim().to_ascii_lowercase().as_str(),
                "true" | "false" | "1" | "0"
            ),
            Domain::OneOf { values } => values.contains(&value.trim()),
            Domain::Text => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!(
                "`{value}` is outside the valid range {}",
                self.describe()
            ))
        }
    }
}

/// One row of the knob table.
#[derive(Debug, Clone, Serialize)]
pub struct Knob {
    /// Field under `stack.tuning`, if the profile has a first-class field for it.
    pub field: Option<&'static str>,
    /// Environment name the server reads (or is said to read).
    pub env: &'static str,
    pub domain: Domain,
    /// Unit shown in the README and reports.
    pub unit: &'static str,
    pub kato: KatoEffect,
    /// A value outside `domain` makes KATO 3.10 exit at start-up.
    pub crashes_kato_out_of_range: bool,
    /// What KATO 3.10 really does.
    pub kato_note: &'static str,
    /// What katotune's embedded engine does with the same name.
    pub engine_note: &'static str,
    /// Where the effect a user wants from this knob really lives.
    pub advice: &'static str,
}

const ANY_COUNT: Domain = Domain::Int {
    min: 1,
    max: i64::MAX,
};

/// Every setting katotune knows. First-class profile fields come first.
pub static KNOBS: &[Knob] = &[
    Knob {
        field: Some("batch_size"),
        env: "KATO_BATCH_SIZE",
        domain: ANY_COUNT,
        unit: "observations per request",
        kato: KatoEffect::NotRead,
        crashes_kato_out_of_range: false,
        kato_note: "never read (the settings field reads BATCH_SIZE, which nothing uses); there is no per-request limit",
        engine_note: "most observations one request may carry; beyond it the request gets 413",
        advice: "node0 batching happens in the client: set training.node0_batch (auto-learn in one observe-sequence)",
    },
    Knob {
        field: Some("connection_pool_size"),
        env: "CONNECTION_POOL_SIZE",
        domain: Domain::Int { min: 1, max: 100 },
        unit: "requests",
        kato: KatoEffect::ParsedUnused,
        crashes_kato_out_of_range: true,
        kato_note: "range-checked 1-100 at start-up (outside it the server crashes), never used; real Redis pools are hard-coded",
        engine_note: "most requests served at once; beyond it the request gets 503 at once",
        advice: "server concurrency comes from stack.tuning.workers and limit_concurrency; client concurrency from training.workers",
    },
    Knob {
        field: Some("request_timeout"),
        env: "REQUEST_TIMEOUT",
        domain: Domain::Seconds { min: 1.0, max: 300.0 },
        unit: "",
        kato: KatoEffect::ParsedUnused,
        crashes_kato_out_of_range: true,
        kato_note: "range-checked 1-300 s at start-up (outside it the server crashes), never used; KATO has no server-side timeout",
        engine_note: "per-request deadline; a slower request gets 504",
        advice: "the client deadline is training.request_timeout",
    },
    Knob {
        field: Some("stm_capacity"),
        env: "STM_CAPACITY",
        domain: ANY_COUNT,
        unit: "events",
        kato: KatoEffect::NotRead,
        crashes_kato_out_of_range: false,
        kato_note: "does not exist; STM is silently capped at 1000 events per session, hard-coded",
        engine_note: "most events one session's STM keeps (default 1000); the response says how many were dropped",
        advice: "training STMs never exceed a chunk, so the cap does not matter for training speed",
    },
    Knob {
        field: Some("workers"),
        env: "KATO_WORKERS",
        domain: Domain::Int { min: 1, max: 64 },
        unit: "processes",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: false,
        kato_note: "uvicorn --workers (default 4)",
        engine_note: "worker threads of `katotune serve`; in-process the engine shares katotune's runtime",
        advice: "",
    },
    Knob {
        field: Some("limit_concurrency"),
        env: "KATO_LIMIT_CONCURRENCY",
        domain: ANY_COUNT,
        unit: "connections per worker",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: false,
        kato_note: "uvicorn --limit-concurrency per worker (default 100); beyond it 503",
        engine_note: "open requests before 503 Service Unavailable",
        advice: "",
    },
    Knob {
        field: Some("session_ttl"),
        env: "SESSION_TTL",
        domain: Domain::Seconds { min: 60.0, max: 86400.0 },
        unit: "",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: true,
        kato_note: "default session TTL and processor idle eviction; outside 60-86400 the server crashes",
        engine_note: "default session TTL",
        advice: "",
    },
    Knob {
        field: Some("process_predictions"),
        env: "PROCESS_PREDICTIONS",
        domain: Domain::Bool,
        unit: "",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: false,
        kato_note: "default for new sessions; katotune always sends false for training sessions",
        engine_note: "accepted; the engine never computes predictions",
        advice: "",
    },
    Knob {
        field: None,
        env: "SORT_SYMBOLS",
        domain: Domain::Bool,
        unit: "",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: false,
        kato_note: "sorts symbols inside an event; false changes pattern names for multi-symbol events",
        engine_note: "always sorted, as KATO's default",
        advice: "",
    },
    Knob {
        field: None,
        env: "STM_MODE",
        domain: Domain::OneOf {
            values: &["CLEAR", "ROLLING"],
        },
        unit: "",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: true,
        kato_note: "default stm_mode; katotune sends it explicitly per session",
        engine_note: "default stm_mode",
        advice: "",
    },
    Knob {
        field: None,
        env: "MAX_PATTERN_LENGTH",
        domain: Domain::Int { min: 0, max: i64::MAX },
        unit: "events",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: true,
        kato_note: "default max_pattern_length; katotune sends it explicitly per session",
        engine_note: "default max_pattern_length",
        advice: "",
    },
    Knob {
        field: None,
        env: "PERSISTENCE",
        domain: Domain::Int { min: 1, max: 100 },
        unit: "entries",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: true,
        kato_note: "server-wide emotive window per pattern",
        engine_note: "fixed at 5",
        advice: "",
    },
    Knob {
        field: None,
        env: "RECALL_THRESHOLD",
        domain: Domain::Float { min: 0.0, max: 1.0 },
        unit: "",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: true,
        kato_note: "prediction threshold",
        engine_note: "no predictions",
        advice: "",
    },
    Knob {
        field: None,
        env: "MAX_PREDICTIONS",
        domain: Domain::Int { min: 1, max: 10000 },
        unit: "",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: true,
        kato_note: "prediction cap",
        engine_note: "no predictions",
        advice: "",
    },
    Knob {
        field: None,
        env: "LOG_LEVEL",
        domain: Domain::OneOf {
            values: &["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        },
        unit: "",
        kato: KatoEffect::ChangesBehaviour,
        crashes_kato_out_of_range: true,
        kato_note: "log level; lowercase values crash the server",
        engine_note: "ignored (use -v)",
        advice: "",
    },
    Knob {
        field: None,
        env: "WORKERS",
        domain: Domain::Int { min: 1, max: 16 },
        unit: "",
        kato: KatoEffect::ParsedUnused,
        crashes_kato_out_of_range: true,
        kato_note: "parsed 1-16, never used",
        engine_note: "ignored",
        advice: "use stack.tuning.workers (KATO_WORKERS)",
    },
    Knob {
        field: None,
        env: "MAX_REQUEST_SIZE",
        domain: Domain::Int { min: 1024, max: i64::MAX },
        unit: "bytes",
        kato: KatoEffect::ParsedUnused,
        crashes_kato_out_of_range: true,
        kato_note: "parsed, never used: there is no request-size limit",
        engine_note: "ignored",
        advice: "",
    },
    Knob {
        field: None,
        env: "SORT",
        domain: Domain::Text,
        unit: "",
        kato: KatoEffect::NotRead,
        crashes_kato_out_of_range: false,
        kato_note: "documented but ignored",
        engine_note: "ignored",
        advice: "the real name is SORT_SYMBOLS",
    },
    Knob {
        field: None,
        env: "ENABLE_BATCH_OPTIMIZATION",
        domain: Domain::Text,
        unit: "",
        kato: KatoEffect::NotRead,
        crashes_kato_out_of_range: false,
        kato_note: "does not exist anywhere in KATO",
        engine_note: "ignored",
        advice: "node0 batching happens in the client: training.node0_batch",
    },
    Knob {
        field: None,
        env: "ENABLE_PARALLEL_PROCESSING",
        domain: Domain::Text,
        unit: "",
        kato: KatoEffect::NotRead,
        crashes_kato_out_of_range: false,
        kato_note: "does not exist anywhere in KATO",
        engine_note: "ignored",
        advice: "parallelism is training.workers (client) and stack.tuning.workers (server)",
    },
    Knob {
        field: None,
        env: "KATO_STRICT_MODE",
        domain: Domain::Text,
        unit: "",
        kato: KatoEffect::NotRead,
        crashes_kato_out_of_range: false,
        kato_note: "set in KATO's compose files, read by nothing",
        engine_note: "ignored",
        advice: "",
    },
    Knob {
        field: None,
        env: "KATO_ARCHITECTURE_MODE",
        domain: Domain::Text,
        unit: "",
        kato: KatoEffect::NotRead,
        crashes_kato_out_of_range: false,
        kato_note: "read into a variable that is never used",
        engine_note: "ignored",
        advice: "",
    },
];

/// The row for an environment name.
pub fn by_env(env: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.env == env)
}

/// The row for a `stack.tuning` field.
pub fn by_field(field: &str) -> Option<&'static Knob> {
    KNOBS.iter().find(|k| k.field == Some(field))
}

/// The knob table as Markdown (the README carries this exact text).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| profile field | env | valid | KATO 3.10 | crashes KATO when out of range | katotune engine |\n|---|---|---|---|---|---|\n",
    );
    for k in KNOBS {
        let field = k
            .field
            .map(|f| format!("`stack.tuning.{f}`"))
            .unwrap_or_else(|| "`stack.env`".into());
        let unit = if k.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", k.unit)
        };
        out.push_str(&format!(
            "| {field} | `{}` | {}{unit} | {}: {} | {} | {} |\n",
            k.env,
            k.domain.describe(),
            k.kato.label(),
            k.kato_note,
            if k.crashes_kato_out_of_range {
                "yes"
            } else {
                "no"
            },
            k.engine_note,
        ));
    }
    out
}
