//! The knob table of one profile: each server setting it sets, and what that setting
//! really does on the server the profile targets (KATO 3.10 or katotune's engine).

use serde::{Deserialize, Serialize};

use crate::profile::knobs;
use crate::profile::validate::Target;
use crate::profile::Profile;

/// One server setting a profile sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    /// Environment name, e.g. `KATO_WORKERS`.
    pub env: String,
    /// The value as the server receives it.
    pub value: String,
    /// On KATO: `changes behaviour`, `parsed but unused` or `not read at all`; on the
    /// engine: `engine`; `unknown` for names outside the knob table.
    pub effect: String,
    /// What the target server does with it.
    pub note: String,
    /// Where the effect a user wants really lives, when the knob does not give it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub advice: String,
}

impl Setting {
    /// True when the setting has no effect on the target (worth a second look).
    pub fn is_inert(&self) -> bool {
        self.effect == knobs::KatoEffect::ParsedUnused.label()
            || self.effect == knobs::KatoEffect::NotRead.label()
    }
}

/// `kato` or `engine`: the server a profile's settings end up in.
pub fn target_label(profile: &Profile) -> &'static str {
    match profile.target() {
        Target::Kato => "kato",
        Target::Engine => "engine",
    }
}

/// Every setting of `profile.server_env()`, explained for the profile's target.
pub fn settings_of(profile: &Profile) -> Vec<Setting> {
    let target = profile.target();
    profile
        .server_env()
        .into_iter()
        .map(|(env, value)| match knobs::by_env(&env) {
            Some(knob) => match target {
                Target::Kato => Setting {
                    env,
                    value,
                    effect: knob.kato.label().to_string(),
                    note: knob.kato_note.to_string(),
                    advice: knob.advice.to_string(),
                },
                Target::Engine => Setting {
                    env,
                    value,
                    effect: "engine".to_string(),
                    note: knob.engine_note.to_string(),
                    advice: String::new(),
                },
            },
            None => Setting {
                env,
                value,
                effect: "unknown".to_string(),
                note: "not in katotune's knob table; passed to the server as is".to_string(),
                advice: String::new(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::schema::{Backend, Template};

    #[test]
    fn kato_target_gets_the_kato_note_and_inert_knobs_are_marked() {
        let mut p = Profile::default();
        p.stack.backend = Backend::Docker;
        p.stack.template = Template::Kato;
        p.stack.tuning.batch_size = Some(50);
        p.stack.tuning.workers = Some(8);
        p.stack.env.insert("MY_FLAG".into(), "1".into());
        let settings = settings_of(&p);
        let batch = settings.iter().find(|s| s.env == "KATO_BATCH_SIZE");
        let batch = batch.expect("batch size is set");
        assert_eq!(batch.effect, "not read at all");
        assert!(batch.is_inert());
        assert!(batch.advice.contains("node0_batch"));
        let workers = settings.iter().find(|s| s.env == "KATO_WORKERS");
        assert!(workers.is_some_and(|s| s.note.contains("uvicorn") && !s.is_inert()));
        assert!(settings
            .iter()
            .any(|s| s.env == "MY_FLAG" && s.effect == "unknown"));
    }

    #[test]
    fn engine_target_gets_the_engine_note() {
        let mut p = Profile::default();
        p.stack.tuning.batch_size = Some(50);
        let settings = settings_of(&p);
        assert_eq!(settings.len(), 1);
        assert_eq!(settings[0].effect, "engine");
        assert!(settings[0].note.contains("413"));
        assert_eq!(target_label(&p), "engine");
    }
}
