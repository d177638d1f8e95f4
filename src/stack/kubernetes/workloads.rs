//! The KATO stack of a [`StackPlan`] as Kubernetes workloads, one per service:
//!
//! - the API service (KATO) is a Deployment with `stack.replicas` pods, probed on
//!   `GET /health` (startup, readiness, liveness), behind a ClusterIP Service with
//!   client-IP session affinity (KATO's session locks are per process, API.md 7, so
//!   one client's session should stay on one pod);
//! - a service with data volumes (Redis, ClickHouse) is a one-pod StatefulSet with a
//!   PersistentVolumeClaim template per volume and a headless Service; its health
//!   check (the template's, the same command Docker runs) becomes its readiness and
//!   liveness probes (katotune's engine as the API service keeps its KB on a volume,
//!   so it is a one-pod StatefulSet too);
//! - any other service (Qdrant) is a one-pod Deployment.
//!
//! Each container keeps the plan's image, command, environment (secret values from
//! [`SECRET_NAME`]) and memory limit; the plan's files (KATO's `redis.conf` and
//! `init.sql`) become a ConfigMap per service, mounted file by file at the same paths.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction,
    HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SecretKeySelector, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Manifest, Scope, SECRET_NAME};
use crate::stack::plan::{labels, ContainerSpec, HealthSpec};

/// The path KATO (and katotune's engine) answer health checks on (API.md 2.1).
pub const HEALTH_PATH: &str = "/health";
/// Name of the volume holding a service's files from its ConfigMap.
const FILES_VOLUME: &str = "files";

/// The stack's objects: per service its ConfigMap of files (if any), its Service (if
/// it has ports) and its workload. KATO replicas 2..N of the plan are the API
/// Deployment's replicas, not objects of their own.
pub(super) fn objects(scope: &Scope<'_>) -> Vec<Manifest> {
    let plan = scope.plan;
    let api_replicas = plan.api_containers().len().max(1);
    let mut out = Vec::new();
    for spec in &plan.containers {
        let is_api = spec.service == plan.api_service;
        if plan.replicas.contains(&spec.service) && !is_api {
            continue;
        }
        if !spec.files.is_empty() {
            out.push(Manifest::ConfigMap(files_config_map(scope, spec)));
        }
        // Data on a volume means a StatefulSet (katotune's engine in KATO's place
        // too: its KB file lives there, and validation keeps it at one replica).
        let stateful = !spec.mounts.is_empty();
        if !spec.ports.is_empty() {
            let headless = stateful && !is_api;
            out.push(Manifest::Service(service(scope, spec, is_api, headless)));
        }
        let pod = pod_template(scope, spec, is_api);
        let replicas = if is_api { api_replicas } else { 1 };
        out.push(match stateful {
            true => Manifest::StatefulSet(stateful_set(scope, spec, pod, replicas)),
            false => Manifest::Deployment(deployment(scope, spec, pod, replicas)),
        });
    }
    out
}

fn files_config_map(scope: &Scope<'_>, spec: &ContainerSpec) -> ConfigMap {
    let data = spec
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (file_key(spec, i), f.contents.clone()))
        .collect();
    ConfigMap {
        metadata: scope.meta(&files_name(spec), &[(labels::SERVICE, &spec.service)]),
        data: Some(data),
        ..Default::default()
    }
}

fn files_name(spec: &ContainerSpec) -> String {
    format!("{}-files", spec.service)
}

/// The ConfigMap key of a service's `i`th file: its file name (`redis.conf`), or
/// `<i>-<file name>` when two files share a name.
fn file_key(spec: &ContainerSpec, i: usize) -> String {
    let base = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
    let name = base(&spec.files[i].path);
    let shared = spec.files.iter().filter(|f| base(&f.path) == name).count() > 1;
    match shared {
        true => format!("{i}-{name}"),
        false => name,
    }
}

fn service(scope: &Scope<'_>, spec: &ContainerSpec, is_api: bool, headless: bool) -> Service {
    let ports = spec
        .ports
        .iter()
        .map(|p| ServicePort {
            name: Some(format!("port-{}", p.container)),
            port: i32::from(p.container),
            target_port: Some(IntOrString::Int(i32::from(p.container))),
            ..Default::default()
        })
        .collect();
    Service {
        metadata: scope.meta(&spec.service, &[(labels::SERVICE, &spec.service)]),
        spec: Some(ServiceSpec {
            selector: Some(scope.selector(&spec.service)),
            ports: Some(ports),
            cluster_ip: headless.then(|| "None".to_string()),
            session_affinity: is_api.then(|| "ClientIP".to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_template(scope: &Scope<'_>, spec: &ContainerSpec, is_api: bool) -> PodTemplateSpec {
    let mut volumes = Vec::new();
    if !spec.files.is_empty() {
        volumes.push(Volume {
            name: FILES_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: files_name(spec),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(scope.labels_with(&[
                (labels::SERVICE, &spec.service),
                (labels::CONFIG_HASH, &spec.config_hash),
            ])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container(scope, spec, is_api)],
            volumes: (!volumes.is_empty()).then_some(volumes),
            ..Default::default()
        }),
    }
}

fn container(scope: &Scope<'_>, spec: &ContainerSpec, is_api: bool) -> Container {
    let mut mounts: Vec<VolumeMount> = spec
        .mounts
        .iter()
        .map(|m| VolumeMount {
            name: claim_name(scope, &m.volume),
            mount_path: m.target.clone(),
            ..Default::default()
        })
        .collect();
    mounts.extend(spec.files.iter().enumerate().map(|(i, f)| VolumeMount {
        name: FILES_VOLUME.into(),
        mount_path: f.path.clone(),
        sub_path: Some(file_key(spec, i)),
        read_only: Some(true),
        ..Default::default()
    }));
    let (startup, readiness, liveness) = match (is_api, &spec.health) {
        (true, _) => api_probes(spec),
        (false, Some(h)) => (
            None,
            exec_probe(h, std::time::Duration::ZERO),
            exec_probe(h, h.start_period),
        ),
        (false, None) => (None, None, None),
    };
    Container {
        name: spec.service.clone(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: spec.entrypoint.clone(),
        args: spec.cmd.clone(),
        env: Some(env(spec)),
        ports: Some(
            spec.ports
                .iter()
                .map(|p| ContainerPort {
                    container_port: i32::from(p.container),
                    ..Default::default()
                })
                .collect(),
        ),
        volume_mounts: (!mounts.is_empty()).then_some(mounts),
        resources: spec.memory_bytes.map(|bytes| ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".into(), quantity(bytes))])),
            ..Default::default()
        }),
        startup_probe: startup,
        readiness_probe: readiness,
        liveness_probe: liveness,
        ..Default::default()
    }
}

/// The container's environment in name order; a secret's value comes from
/// [`SECRET_NAME`] under the same key, so it is never printed.
fn env(spec: &ContainerSpec) -> Vec<EnvVar> {
    spec.env
        .iter()
        .map(|(name, value)| match spec.secret_env.contains(name) {
            true => EnvVar {
                name: name.clone(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: SECRET_NAME.into(),
                        key: name.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            false => EnvVar {
                name: name.clone(),
                value: Some(value.clone()),
                ..Default::default()
            },
        })
        .collect()
}

/// KATO's probes, all `GET /health` on its API port: a startup probe that gives the
/// server 3 minutes (the real KATO needs about 17 s on 2 cores), then readiness
/// every 5 s and liveness every 10 s, each failing after 3 misses.
fn api_probes(spec: &ContainerSpec) -> (Option<Probe>, Option<Probe>, Option<Probe>) {
    let port = spec.ports.first().map_or(8000, |p| p.container);
    let probe = |period: i32, failures: i32| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(HEALTH_PATH.into()),
            port: IntOrString::Int(i32::from(port)),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(period.min(5)),
        failure_threshold: Some(failures),
        ..Default::default()
    };
    (Some(probe(2, 90)), Some(probe(5, 3)), Some(probe(10, 3)))
}

/// A Docker health check as an exec probe with the same command, period, timeout and
/// retries, `initial_delay` after the container starts; `None` for `NONE`.
fn exec_probe(h: &HealthSpec, initial_delay: std::time::Duration) -> Option<Probe> {
    let command = match h.test.split_first() {
        Some((kind, rest)) if kind == "CMD" => rest.to_vec(),
        Some((kind, rest)) if kind == "CMD-SHELL" => {
            vec!["sh".into(), "-c".into(), rest.join(" ")]
        }
        _ => return None,
    };
    let secs = |d: std::time::Duration| i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX);
    Some(Probe {
        exec: Some(ExecAction {
            command: Some(command),
        }),
        initial_delay_seconds: (!initial_delay.is_zero()).then(|| secs(initial_delay)),
        period_seconds: Some(secs(h.interval)),
        timeout_seconds: Some(secs(h.timeout)),
        failure_threshold: Some(i32::try_from(h.retries.max(1)).unwrap_or(i32::MAX)),
        ..Default::default()
    })
}

fn deployment(
    scope: &Scope<'_>,
    spec: &ContainerSpec,
    pod: PodTemplateSpec,
    replicas: usize,
) -> Deployment {
    Deployment {
        metadata: scope.meta(&spec.service, &[(labels::SERVICE, &spec.service)]),
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(scope.selector(&spec.service)),
                ..Default::default()
            },
            template: pod,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn stateful_set(
    scope: &Scope<'_>,
    spec: &ContainerSpec,
    pod: PodTemplateSpec,
    replicas: usize,
) -> StatefulSet {
    let claims = spec
        .mounts
        .iter()
        .map(|m| PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(claim_name(scope, &m.volume)),
                labels: Some(scope.labels_with(&[(labels::SERVICE, &spec.service)])),
                ..Default::default()
            },
            spec: Some(claim_spec(scope, "ReadWriteOnce")),
            ..Default::default()
        })
        .collect();
    StatefulSet {
        metadata: scope.meta(&spec.service, &[(labels::SERVICE, &spec.service)]),
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::try_from(replicas).unwrap_or(1)),
            service_name: Some(spec.service.clone()),
            selector: LabelSelector {
                match_labels: Some(scope.selector(&spec.service)),
                ..Default::default()
            },
            template: pod,
            volume_claim_templates: Some(claims),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A claim of `--volume-size` in `--storage-class` (or the cluster's default).
pub(super) fn claim_spec(scope: &Scope<'_>, access: &str) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec![access.to_string()]),
        storage_class_name: scope.options.storage_class.clone(),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".into(),
                Quantity(scope.options.volume_size.clone()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A plan volume (`<stack>-redis-data`) as a claim name inside the namespace
/// (`redis-data`: the namespace already says which stack).
fn claim_name(scope: &Scope<'_>, volume: &str) -> String {
    let prefix = format!("{}-", scope.plan.stack);
    volume.strip_prefix(&prefix).unwrap_or(volume).to_string()
}

/// Bytes as a Kubernetes quantity in the largest binary unit that divides them.
fn quantity(bytes: u64) -> Quantity {
    let text = [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)]
        .iter()
        .find(|(_, unit)| bytes.is_multiple_of(*unit))
        .map_or(bytes.to_string(), |(suffix, unit)| {
            format!("{}{suffix}", bytes / unit)
        });
    Quantity(text)
}
