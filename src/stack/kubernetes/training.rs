//! The training half of `render --output kubernetes`: a map-reduce over shards.
//!
//! - ConfigMap [`PROFILE_CONFIG`]: the resolved profile as the pods train it, on
//!   katotune's embedded engine (`stack.backend: embedded`, a KB file, no `inherits`,
//!   no `deliver`, secrets masked).
//! - PersistentVolumeClaim [`WORK_CLAIM`] (ReadWriteMany): the pods' working
//!   directory `/work`, shared by every shard and the final Job. A relative
//!   `training.dataset.path` is read from there; the shipped corpus needs nothing.
//! - Job [`TRAIN_JOB`]: Indexed, `completions = parallelism = N`; pod `I` runs
//!   `katotune run PROFILE --shard $(JOB_COMPLETION_INDEX)/N --fresh` into the output
//!   directory `shards`, so its KB is [`shard_kb_path`] (its journal and record carry
//!   the shard in their names too). A shard whose pod fails is retried twice on its
//!   own (`backoffLimitPerIndex`), from scratch (`--fresh`).
//! - Job [`LOAD_JOB`], created suspended: an init container merges the N shard KBs
//!   (`katotune kb merge ... -o` [`merged_kb_path`] `--overwrite`: the shards are the
//!   source, so a re-run merges them again) and the container loads the
//!   result into the stack's Redis and ClickHouse (`katotune kb load ... --into
//!   stores`). Kubernetes has no "after that Job" for Jobs, so the operator resumes it
//!   once the training Job is complete (the YAML's header says how); it never
//!   retries by itself, so a cut load is finished by hand with `kb load --resume`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{KubeError, Manifest, Scope};
use crate::profile::schema::{Backend, DeliverSection};
use crate::profile::Profile;
use crate::stack::plan::labels;
use crate::stack::stores::{CLICKHOUSE_SERVICE, REDIS_SERVICE};
use crate::train::shard::Shard;

/// The Indexed Job that trains the shards.
pub const TRAIN_JOB: &str = "train";
/// The suspended Job that merges the shard KBs and loads them into the stack.
pub const LOAD_JOB: &str = "merge-load";
/// The ConfigMap holding the training profile.
pub const PROFILE_CONFIG: &str = "katotune-profile";
/// The shared working volume of the training pods.
pub const WORK_CLAIM: &str = "katotune-work";
/// Where the profile ConfigMap is mounted, and the profile file inside it.
const PROFILE_DIR: &str = "/etc/katotune";
const PROFILE_FILE: &str = "profile.yaml";
/// The pods' working directory, on [`WORK_CLAIM`].
const WORK_DIR: &str = "/work";
/// The pods' output directory (shard KBs, journals, records), under [`WORK_DIR`].
const SHARDS_DIR: &str = "shards";
/// katotune's binary in its image (`katotune image build`).
const BINARY: &str = "/katotune";

/// Shard `index` of `count`'s knowledge-base file, relative to the working
/// directory: `run --shard`'s own name for it (`train::shard::Shard::suffixed`) of the
/// pods' default KB file, `shards/<profile>.shard-<index>-of-<count>.kato.db`.
pub fn shard_kb_path(profile: &str, index: u32, count: u32) -> String {
    let whole = std::path::PathBuf::from(SHARDS_DIR).join(format!("{profile}.kato.db"));
    match Shard::new(index, count) {
        Ok(shard) => shard.suffixed(&whole).display().to_string(),
        Err(_) => whole.display().to_string(),
    }
}

/// The merged knowledge base the final Job writes and loads.
pub fn merged_kb_path(profile: &str) -> String {
    format!("{profile}.merged.kato.db")
}

/// The training objects, in apply order.
pub(super) fn objects(scope: &Scope<'_>, profile: &Profile) -> Result<Vec<Manifest>, KubeError> {
    let stores = store_urls(scope)?;
    Ok(vec![
        Manifest::ConfigMap(profile_config(scope, profile)?),
        Manifest::PersistentVolumeClaim(PersistentVolumeClaim {
            metadata: scope.meta(WORK_CLAIM, &[]),
            spec: Some(super::workloads::claim_spec(scope, "ReadWriteMany")),
            ..Default::default()
        }),
        Manifest::Job(train_job(scope)),
        Manifest::Job(load_job(scope, profile, &stores)),
    ])
}

/// The profile the shard pods train: this one, resolved, on the embedded engine.
fn profile_config(scope: &Scope<'_>, profile: &Profile) -> Result<ConfigMap, KubeError> {
    let mut pod = profile.clone();
    pod.stack.backend = Backend::Embedded;
    pod.stack.ephemeral = false;
    pod.stack.kb_file = None;
    pod.stack.replicas = 1;
    pod.report.output_dir = SHARDS_DIR.into();
    pod.deliver = DeliverSection::default();
    let mut masked = serde_json::to_value(crate::secret::Redacted(&pod))
        .map_err(|e| KubeError::Yaml(e.to_string()))?;
    // Resolved: nothing to inherit (a profile file refuses `inherits: null`).
    if let Some(map) = masked.as_object_mut() {
        map.remove("inherits");
    }
    let text = serde_saphyr::to_string(&masked).map_err(|e| KubeError::Yaml(e.to_string()))?;
    Ok(ConfigMap {
        metadata: scope.meta(PROFILE_CONFIG, &[]),
        data: Some(BTreeMap::from([(PROFILE_FILE.into(), text)])),
        ..Default::default()
    })
}

/// `redis://redis:6379` and `http://clickhouse:8123`: the stack's Services by name.
fn store_urls(scope: &Scope<'_>) -> Result<(String, String), KubeError> {
    let port = |service: &str| {
        scope
            .plan
            .containers
            .iter()
            .find(|c| c.service == service)
            .and_then(|c| c.ports.first())
            .map(|p| p.container)
    };
    match (port(REDIS_SERVICE), port(CLICKHOUSE_SERVICE)) {
        (Some(redis), Some(clickhouse)) => Ok((
            format!("redis://{REDIS_SERVICE}:{redis}"),
            format!("http://{CLICKHOUSE_SERVICE}:{clickhouse}"),
        )),
        _ => Err(KubeError::NoStores {
            template: scope.plan.template.clone(),
        }),
    }
}

fn train_job(scope: &Scope<'_>) -> Job {
    let shards = scope.options.shards;
    let index = "$(JOB_COMPLETION_INDEX)";
    let args = [
        "run",
        &format!("{PROFILE_DIR}/{PROFILE_FILE}"),
        "--shard",
        &format!("{index}/{shards}"),
        "--fresh",
    ];
    let count = i32::try_from(shards).unwrap_or(i32::MAX);
    Job {
        metadata: scope.meta(TRAIN_JOB, &[(labels::SERVICE, TRAIN_JOB)]),
        spec: Some(JobSpec {
            completion_mode: Some("Indexed".into()),
            completions: Some(count),
            parallelism: Some(count),
            backoff_limit_per_index: Some(2),
            template: pod(scope, TRAIN_JOB, vec![], katotune(scope, "train", &args)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn load_job(scope: &Scope<'_>, profile: &Profile, (redis, clickhouse): &(String, String)) -> Job {
    let merged = merged_kb_path(&profile.name);
    let count = scope.options.shards;
    let shard_files: Vec<String> = (0..count)
        .map(|i| shard_kb_path(&profile.name, i, count))
        .collect();
    let mut merge_args: Vec<&str> = vec!["kb", "merge"];
    merge_args.extend(shard_files.iter().map(String::as_str));
    merge_args.extend(["-o", &merged, "--overwrite"]);
    let load_args = [
        "kb",
        "load",
        &merged,
        "--into",
        "stores",
        "--redis",
        redis,
        "--clickhouse",
        clickhouse,
        "--service-name",
        &profile.stack.service_name,
    ];
    Job {
        metadata: scope.meta(LOAD_JOB, &[(labels::SERVICE, LOAD_JOB)]),
        spec: Some(JobSpec {
            suspend: Some(true),
            backoff_limit: Some(0),
            template: pod(
                scope,
                LOAD_JOB,
                vec![katotune(scope, "merge", &merge_args)],
                katotune(scope, "load", &load_args),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container running katotune's image with `args`, in the shared working
/// directory, its cache (the shipped corpus's copy) and temporary files on the pod's
/// own scratch space.
fn katotune(scope: &Scope<'_>, name: &str, args: &[&str]) -> Container {
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    Container {
        name: name.into(),
        image: Some(scope.options.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec![BINARY.into()]),
        args: Some(args.iter().map(|a| a.to_string()).collect()),
        working_dir: Some(WORK_DIR.into()),
        env: Some(vec![EnvVar {
            name: "XDG_CACHE_HOME".into(),
            value: Some("/cache".into()),
            ..Default::default()
        }]),
        volume_mounts: Some(vec![
            mount("work", WORK_DIR, false),
            mount("profile", PROFILE_DIR, true),
            mount("cache", "/cache", false),
            mount("tmp", "/tmp", false),
        ]),
        ..Default::default()
    }
}

/// A pod that runs once (`restartPolicy: Never`) with the training volumes.
fn pod(scope: &Scope<'_>, service: &str, init: Vec<Container>, main: Container) -> PodTemplateSpec {
    let scratch = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(scope.labels_with(&[(labels::SERVICE, service)])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            init_containers: (!init.is_empty()).then_some(init),
            containers: vec![main],
            volumes: Some(vec![
                Volume {
                    name: "work".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: WORK_CLAIM.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                Volume {
                    name: "profile".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: PROFILE_CONFIG.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                scratch("cache"),
                scratch("tmp"),
            ]),
            ..Default::default()
        }),
    }
}
