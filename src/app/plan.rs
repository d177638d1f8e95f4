//! From a resolved profile to the trainer's plan: the one place that reads the
//! profile's training, health and naming sections for `train/` (profile → plan →
//! train; `train/` never imports `profile/`).

use crate::kato::client::RetryPolicy;
use crate::profile::schema::MetadataPolicy;
use crate::profile::Profile;
use crate::terms::Segmentation;
use crate::train::dataset::DatasetSpec;
use crate::train::hierarchy::{Flow, TailPolicy};
use crate::train::plan::TrainPlan;
use crate::train::record::ProfileInfo;
use crate::train::worker::TrainSettings;

/// The plan a profile implies, for the whole run (no shard: set `plan.shard` after).
impl From<&Profile> for TrainPlan {
    fn from(profile: &Profile) -> Self {
        let t = &profile.training;
        TrainPlan {
            profile: profile_info(profile),
            dataset: dataset_spec(profile),
            skip: t.skip,
            samples: t.samples,
            filter: t.filter,
            shard: None,
            segmentation: t.segmentation,
            paragraph_token_cap: t.paragraph_token_cap,
            settings: train_settings(profile),
            workers: t.workers,
            request_timeout: t.request_timeout,
            retry: RetryPolicy {
                max_attempts: t.retries.attempts,
                base_backoff: t.retries.backoff,
                max_backoff: t.retries.max_backoff,
            },
            outage_timeout: profile.health.timeout,
            on_bad_sample: t.on_bad_sample,
            checkpoint_every: t.checkpoint_every,
            http_only: profile.stack.transport == crate::profile::schema::TransportChoice::Http,
        }
    }
}

/// What the run record says about `profile`: name, hashes, and the resolved profile
/// as JSON (`report` reads it back as a [`Profile`]).
pub fn profile_info(profile: &Profile) -> ProfileInfo {
    ProfileInfo {
        name: profile.name.clone(),
        hash: profile.hash(),
        learning_hash: profile.learning_hash(),
        resolved: serde_json::to_value(profile).unwrap_or_default(),
    }
}

/// The dataset section of `profile` as a reader spec, the shipped corpus resolved to
/// a readable path (a cache directory that cannot be written leaves the path as it
/// is, and the dataset error names it).
pub fn dataset_spec(profile: &Profile) -> DatasetSpec {
    let d = &profile.training.dataset;
    DatasetSpec {
        path: crate::train::shipped_data::resolve(&d.path).unwrap_or_else(|_| d.path.clone()),
        format: d.format,
        text_field: d.text_field.clone(),
        split: d.split.clone(),
    }
}

/// The worker settings a profile implies: node ids, chunk sizes, the reference
/// path's flow (TRAINING.md 2.3), batching, metadata and session config.
pub fn train_settings(profile: &Profile) -> TrainSettings {
    let t = &profile.training;
    TrainSettings {
        node_ids: (0..t.chunk_sizes.len())
            .map(|l| profile.node_id(l))
            .collect(),
        chunk_sizes: t.chunk_sizes.clone(),
        flow: match t.segmentation {
            Segmentation::Paragraphs => Flow::SinglePass,
            Segmentation::Slices => Flow::LevelByLevel,
        },
        tail: TailPolicy::LearnIfAtLeastTwo,
        node0_batch: t.node0_batch,
        metadata: t.metadata == MetadataPolicy::Reference,
        session_ttl: Some(t.session.ttl.as_secs().max(1)),
        extra_config: t.session.config.clone().into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_carries_what_the_profile_says_training_does() {
        let mut profile = Profile::default();
        profile.training.chunk_sizes = vec![4, 6];
        profile.training.node_prefix = "lvl".into();
        profile.training.workers = 3;
        profile.training.samples = Some(12);
        profile.training.segmentation = Segmentation::Slices;
        let plan = TrainPlan::from(&profile);
        assert_eq!(plan.node_ids(), ["lvl0", "lvl1"]);
        assert_eq!(plan.chunk_sizes(), [4, 6]);
        assert_eq!(plan.settings.flow, Flow::LevelByLevel);
        assert_eq!((plan.workers, plan.samples), (3, Some(12)));
        assert_eq!(plan.profile.learning_hash, profile.learning_hash());
        let back: Profile = serde_json::from_value(plan.profile.resolved).unwrap();
        assert_eq!(
            back, profile,
            "the record's resolved profile reads back whole"
        );
    }
}
