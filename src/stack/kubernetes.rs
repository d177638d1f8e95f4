//! `render --output kubernetes`: a profile's KATO stack and its sharded training as
//! Kubernetes objects, built from the maintained `k8s-openapi` types (Kubernetes
//! 1.35's API, feature `v1_35`) so that a malformed object cannot be written, and
//! printed as one multi-document YAML stream for `kubectl apply -f`.
//!
//! What is rendered, in apply order (all in one namespace):
//!
//! - the namespace, labelled as the docker backend labels its resources
//!   (`io.katotune.stack`, `io.katotune.profile`; each workload adds
//!   `io.katotune.service`, and its pods `io.katotune.config-hash`);
//! - the KATO stack from the same [`StackPlan`] the docker backend applies (same
//!   images, environment, commands, files, health checks): see [`workloads`];
//! - the training: the profile as a ConfigMap, a shared volume, an Indexed Job whose
//!   pod `I` runs `katotune run PROFILE --shard I/N` on katotune's engine, and a
//!   suspended Job that merges the shard knowledge bases (`katotune kb merge`) and
//!   loads the result into the stack's Redis and ClickHouse (`katotune kb load`, the
//!   KB bridge): see [`training`].
//!
//! Secret environment values never appear: they are read from a Secret the operator
//! creates ([`SECRET_NAME`]); everything else is plain configuration.

mod training;
mod workloads;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::plan::{labels, StackPlan};
use super::template::{self, TemplateError};
use crate::profile::Profile;

pub use training::{merged_kb_path, shard_kb_path, LOAD_JOB, TRAIN_JOB};

/// The Secret the KATO stack reads secret environment values from (`kubectl create
/// secret generic katotune-secrets --from-literal=NAME=VALUE`); render never prints
/// a secret.
pub const SECRET_NAME: &str = "katotune-secrets";
/// Most shards one training Job may have.
pub const MAX_SHARDS: u32 = 1000;

/// What `render --output kubernetes` takes beyond the profile.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeOptions {
    /// Namespace of every object; `None`: [`default_namespace`] of the profile.
    pub namespace: Option<String>,
    /// Training shards: pods of the Indexed Job, 1 to [`MAX_SHARDS`].
    pub shards: u32,
    /// katotune's image for the training pods (`katotune image build`'s tag, pushed
    /// where the cluster can pull it).
    pub image: String,
    /// Size of every persistent volume claim, a Kubernetes quantity (`10Gi`).
    pub volume_size: String,
    /// Storage class of every claim; `None` leaves the cluster's default.
    pub storage_class: Option<String>,
}

impl Default for KubeOptions {
    fn default() -> Self {
        Self {
            namespace: None,
            shards: 1,
            image: "katotune-engine:latest".into(),
            volume_size: "10Gi".into(),
            storage_class: None,
        }
    }
}

/// Why manifests could not be rendered; each says which flag or key to change.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(
        "`{value}` cannot be a Kubernetes {what}: use at most 63 lowercase letters, digits \
         and `-`, starting and ending with a letter or digit{hint}"
    )]
    BadName {
        what: &'static str,
        value: String,
        hint: &'static str,
    },
    #[error("--shards {0}: give 1 to {MAX_SHARDS} shards")]
    BadShards(u32),
    #[error("--volume-size `{0}` is not a Kubernetes quantity; write it like 10Gi or 500Mi")]
    BadSize(String),
    #[error(
        "profile `{profile}` cannot be a Kubernetes label value (at most 63 letters, digits, \
         `-`, `_` and `.`, starting and ending with a letter or digit); rename the profile"
    )]
    BadLabel { profile: String },
    #[error(
        "template `{template}` has no Redis and ClickHouse, so the trained knowledge base has \
         nowhere to load into; render a profile with `stack.template: kato`"
    )]
    NoStores { template: String },
    #[error("cannot write the manifests as YAML: {0}")]
    Yaml(String),
}

/// One Kubernetes object of the rendered stream. Serializes as the object itself
/// (with its `apiVersion` and `kind`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Manifest {
    Namespace(Namespace),
    ConfigMap(ConfigMap),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Service(Service),
    StatefulSet(StatefulSet),
    Deployment(Deployment),
    Job(Job),
}

/// What every object builder needs: the plan, where it goes, and its labels.
struct Scope<'a> {
    plan: &'a StackPlan,
    namespace: String,
    options: &'a KubeOptions,
    /// `io.katotune.stack` and `io.katotune.profile`.
    labels: BTreeMap<String, String>,
}

impl Scope<'_> {
    /// Metadata of an object named `name` in the namespace, with the stack's labels
    /// plus `extra`.
    fn meta(&self, name: &str, extra: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels_with(extra)),
            ..Default::default()
        }
    }

    fn labels_with(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut all = self.labels.clone();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    }

    /// The labels that select one service's pods.
    fn selector(&self, service: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (labels::STACK.to_string(), self.plan.stack.clone()),
            (labels::SERVICE.to_string(), service.to_string()),
        ])
    }
}

/// Every object of the profile's stack and training, in apply order.
///
/// Errors: a bad namespace, shard count or volume size ([`KubeError`], exit 2 at the
/// CLI), a profile name that cannot be a label value, a template without stores.
pub fn render(profile: &Profile, options: &KubeOptions) -> Result<Vec<Manifest>, KubeError> {
    let namespace = match &options.namespace {
        Some(ns) => check_name("namespace", ns, " (--namespace)")?,
        None => default_namespace(profile),
    };
    if !(1..=MAX_SHARDS).contains(&options.shards) {
        return Err(KubeError::BadShards(options.shards));
    }
    if !is_quantity(&options.volume_size) {
        return Err(KubeError::BadSize(options.volume_size.clone()));
    }
    if let Some(class) = &options.storage_class {
        check_name("storage class", class, " (--storage-class)")?;
    }
    let plan = template::render(profile, "render")?;
    if !is_label_value(&plan.profile) {
        return Err(KubeError::BadLabel {
            profile: plan.profile.clone(),
        });
    }
    let scope = Scope {
        labels: BTreeMap::from([
            (labels::STACK.to_string(), plan.stack.clone()),
            (labels::PROFILE.to_string(), plan.profile.clone()),
        ]),
        plan: &plan,
        namespace,
        options,
    };
    let mut out = vec![Manifest::Namespace(Namespace {
        metadata: ObjectMeta {
            name: Some(scope.namespace.clone()),
            labels: Some(scope.labels.clone()),
            ..Default::default()
        },
        ..Default::default()
    })];
    out.extend(workloads::objects(&scope));
    out.extend(training::objects(&scope, profile)?);
    Ok(out)
}

/// The manifests as one YAML stream (`---` between objects), after a comment saying
/// how to apply them and start the final Job.
pub fn to_yaml(manifests: &[Manifest], profile: &str) -> Result<String, KubeError> {
    let body =
        serde_saphyr::to_string_multiple(manifests).map_err(|e| KubeError::Yaml(e.to_string()))?;
    let namespace = manifests
        .iter()
        .find_map(|m| match m {
            Manifest::Namespace(ns) => ns.metadata.name.clone(),
            _ => None,
        })
        .unwrap_or_default();
    Ok(format!(
        "# katotune render {profile} --output kubernetes\n\
         # kubectl apply -f THIS_FILE, then, once every shard has trained:\n\
         #   kubectl -n {namespace} wait --for=condition=complete job/{TRAIN_JOB} --timeout=24h\n\
         #   kubectl -n {namespace} patch job {LOAD_JOB} --type=merge -p '{{\"spec\":{{\"suspend\":false}}}}'\n\
         # Secret environment values come from Secret {SECRET_NAME} (create it first when the\n\
         # stack has any; render never prints them).\n\
         ---\n{body}"
    ))
}

/// The manifests as a Kubernetes `List` (what `--format json` prints; `kubectl apply
/// -f` takes it too).
pub fn to_list(manifests: &[Manifest]) -> Result<serde_json::Value, serde_json::Error> {
    Ok(serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": serde_json::to_value(manifests)?,
    }))
}

/// The namespace a profile's objects go to by default: its docker stack name
/// (`katotune-<profile>`) as a DNS label (lowercase, `_` and other characters as `-`,
/// at most 63 characters).
pub fn default_namespace(profile: &Profile) -> String {
    let stack = template::stack_name(profile).replace('_', "-");
    let mut name: String = stack.chars().take(63).collect();
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// `value` when it is an RFC 1123 DNS label (what namespaces and most object names
/// must be), else [`KubeError::BadName`].
fn check_name(what: &'static str, value: &str, hint: &'static str) -> Result<String, KubeError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    match ok {
        true => Ok(value.to_string()),
        false => Err(KubeError::BadName {
            what,
            value: value.to_string(),
            hint,
        }),
    }
}

/// A Kubernetes label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
fn is_label_value(value: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && (value.is_empty() || edge(value.chars().next()) && edge(value.chars().last()))
}

/// A plain Kubernetes quantity for sizes: digits, then an optional binary or decimal
/// suffix (`10Gi`, `500M`, `1073741824`).
fn is_quantity(text: &str) -> bool {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    let suffix = &text[digits..];
    digits > 0 && ["", "Ki", "Mi", "Gi", "Ti", "Pi", "k", "M", "G", "T", "P"].contains(&suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_labels_and_sizes_are_checked_as_kubernetes_checks_them() {
        assert!(check_name("namespace", "katotune-quick", "").is_ok());
        for bad in ["", "Quick", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(check_name("namespace", bad, "").is_err(), "{bad}");
        }
        assert!(is_label_value("phase3-parallel") && is_label_value("a.b_c"));
        assert!(!is_label_value("NAME@workers=4") && !is_label_value("-x"));
        assert!(is_quantity("10Gi") && is_quantity("1073741824") && is_quantity("500M"));
        assert!(!is_quantity("10 GB") && !is_quantity("Gi") && !is_quantity("1.5Gi"));
    }

    #[test]
    fn the_default_namespace_is_the_stack_name_as_a_dns_label() {
        let mut p = Profile {
            name: "Phase_3".into(),
            ..Profile::default()
        };
        assert_eq!(default_namespace(&p), "katotune-phase-3");
        p.name = "x".repeat(80);
        let ns = default_namespace(&p);
        assert!(
            ns.len() <= 63 && check_name("namespace", &ns, "").is_ok(),
            "{ns}"
        );
    }
}
