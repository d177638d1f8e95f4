//! Rendering a stack template (templates/*.yaml) and a profile into a [`StackPlan`]
//! (the compose form of a plan lives in [`super::compose`]).
//!
//! Templates are embedded in the binary so `render` and `apply` work from any
//! directory; the files in templates/ are the source.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sha1::{Digest, Sha1};

pub use super::compose::{masked_env, to_compose};
use super::plan::{labels, ContainerSpec, FileSpec, HealthSpec, MountSpec, PortSpec, StackPlan};
use crate::profile::schema::{Port, Template};
use crate::profile::Profile;

const KATO: &str = include_str!("../../templates/kato.yaml");
const EMBEDDED: &str = include_str!("../../templates/embedded.yaml");
const FILES: &[(&str, &str)] = &[
    (
        "kato/init.sql",
        include_str!("../../templates/kato/init.sql"),
    ),
    (
        "kato/redis.conf",
        include_str!("../../templates/kato/redis.conf"),
    ),
];

/// Environment names whose values are secrets and are never printed (the rule is
/// [`crate::secret::is_secret_key`]).
pub fn is_secret(name: &str) -> bool {
    crate::secret::is_secret_key(name)
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template `{template}` is malformed: {message}")]
    Malformed { template: String, message: String },
    #[error("template `{template}` refers to `{file}`, which is not shipped")]
    MissingFile { template: String, file: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateDoc {
    api_service: String,
    #[serde(default)]
    volumes: Vec<String>,
    services: Vec<ServiceDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceDoc {
    service: String,
    image: String,
    #[serde(default)]
    when: Option<String>,
    #[serde(default)]
    tuned: bool,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<FileDoc>,
    #[serde(default)]
    mounts: Vec<MountSpec>,
    #[serde(default)]
    memory: Option<String>,
    #[serde(default)]
    ports: Vec<PortDoc>,
    #[serde(default)]
    depends_on: Vec<String>,
    #[serde(default)]
    health: Option<HealthDoc>,
    /// Replaces `health` when the service runs katotune's engine image (a template's
    /// KATO service with `images.kato` set to `images.engine`).
    #[serde(default)]
    engine_health: Option<HealthDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    path: String,
    from: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortDoc {
    container: u16,
    publish: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthDoc {
    test: Vec<String>,
    interval: String,
    timeout: String,
    retries: u32,
    #[serde(default)]
    start_period: Option<String>,
}

/// Name of the stack a profile's containers belong to.
pub fn stack_name(profile: &Profile) -> String {
    let clean: String = profile
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("katotune-{clean}")
}

/// A stack name of its own for one run of `profile` (`katotune-<profile>-cmp-<8 hex>`):
/// compare's disposable stacks, which never meet the profile's own stack.
pub fn disposable_stack_name(profile: &Profile) -> String {
    format!("{}-cmp-{:08x}", stack_name(profile), rand::random::<u32>())
}

/// Renders the plan the docker backend would apply for `profile`, as the profile's
/// own stack ([`stack_name`]).
pub fn render(profile: &Profile, run_id: &str) -> Result<StackPlan, TemplateError> {
    render_as(profile, run_id, &stack_name(profile))
}

/// [`render`] under another stack name: every container, network and volume is named
/// after `stack` and labelled with it (compare's disposable stacks, one per run).
pub fn render_as(profile: &Profile, run_id: &str, stack: &str) -> Result<StackPlan, TemplateError> {
    let (name, text) = match profile.stack.template {
        Template::Kato => ("kato", KATO),
        Template::Embedded => ("embedded", EMBEDDED),
    };
    let malformed = |message: String| TemplateError::Malformed {
        template: name.into(),
        message,
    };
    let text = substitute(text, profile);
    let doc: TemplateDoc = serde_saphyr::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    let stack = stack.to_string();
    let shared: BTreeMap<String, String> = [
        (labels::STACK, stack.clone()),
        (labels::PROFILE, profile.name.clone()),
        (labels::RUN_ID, run_id.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut containers = Vec::new();
    let mut replicas = Vec::new();
    for svc in doc.services {
        if svc.when.as_deref() == Some("qdrant") && !profile.stack.qdrant {
            continue;
        }
        let spec = container(svc, profile, &stack, &shared, name)?;
        if spec.service == doc.api_service {
            let copies = replicate(&spec, profile.stack.replicas);
            replicas = copies.iter().map(|c| c.service.clone()).collect();
            containers.extend(copies);
        } else {
            containers.push(spec);
        }
    }
    Ok(StackPlan {
        stack: stack.clone(),
        profile: profile.name.clone(),
        template: name.into(),
        network: format!("{stack}-net"),
        volumes: doc.volumes.iter().map(|v| format!("{stack}-{v}")).collect(),
        containers,
        api_service: doc.api_service,
        replicas,
        labels: shared,
    })
}

fn substitute(text: &str, profile: &Profile) -> String {
    let i = &profile.stack.images;
    [
        ("${images.kato}", i.kato.as_str()),
        ("${images.redis}", i.redis.as_str()),
        ("${images.clickhouse}", i.clickhouse.as_str()),
        ("${images.qdrant}", i.qdrant.as_str()),
        ("${images.engine}", i.engine.as_str()),
        ("${service_name}", profile.stack.service_name.as_str()),
    ]
    .iter()
    .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
}

fn duration(text: &str, template: &str) -> Result<Duration, TemplateError> {
    crate::profile::duration::parse(text).map_err(|message| TemplateError::Malformed {
        template: template.into(),
        message,
    })
}

fn container(
    svc: ServiceDoc,
    profile: &Profile,
    stack: &str,
    shared: &BTreeMap<String, String>,
    template: &str,
) -> Result<ContainerSpec, TemplateError> {
    let mut env = svc.env;
    if svc.tuned {
        env.extend(profile.server_env());
    }
    let files = svc
        .files
        .iter()
        .map(|f| {
            let contents = FILES
                .iter()
                .find(|(n, _)| *n == f.from)
                .map(|(_, c)| c.to_string());
            contents
                .map(|contents| FileSpec {
                    path: f.path.clone(),
                    contents,
                    mode: 0o644,
                })
                .ok_or_else(|| TemplateError::MissingFile {
                    template: template.into(),
                    file: f.from.clone(),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let runs_engine = svc.image == profile.stack.images.engine;
    let health = match (svc.engine_health, svc.health) {
        (Some(h), _) if runs_engine => Some(health_spec(h, template)?),
        (_, Some(h)) => Some(health_spec(h, template)?),
        (_, None) => None,
    };
    let ports = svc
        .ports
        .iter()
        .map(|p| port_spec(p, profile, template))
        .collect::<Result<Vec<_>, _>>()?;
    let memory_bytes = svc.memory.as_deref().and_then(parse_bytes);
    let mut spec = ContainerSpec {
        name: format!("{stack}-{}", svc.service),
        service: svc.service,
        image: svc.image,
        entrypoint: None,
        cmd: svc.cmd,
        secret_env: env.keys().filter(|k| is_secret(k)).cloned().collect(),
        env,
        ports,
        health,
        mounts: svc
            .mounts
            .into_iter()
            .map(|m| MountSpec {
                volume: format!("{stack}-{}", m.volume),
                target: m.target,
            })
            .collect(),
        files,
        depends_on: svc.depends_on,
        memory_bytes,
        labels: BTreeMap::new(),
        config_hash: String::new(),
    };
    spec.config_hash = config_hash(&spec);
    spec.labels = shared.clone();
    spec.labels
        .insert(labels::SERVICE.into(), spec.service.clone());
    spec.labels
        .insert(labels::CONFIG_HASH.into(), spec.config_hash.clone());
    Ok(spec)
}

/// `n` copies of the API container (`stack.replicas`), each labelled with its replica
/// number: replica 1 is `spec` itself (so a stack that grows keeps its first KATO),
/// replica `i` is service `<service>-<i>`, container `<name>-<i>`, and publishes a
/// fixed host port `i - 1` above replica 1's (`auto` ports stay for Docker to pick).
fn replicate(spec: &ContainerSpec, n: u32) -> Vec<ContainerSpec> {
    (1..=n.max(1))
        .map(|i| {
            let mut copy = spec.clone();
            if i > 1 {
                copy.service = format!("{}-{i}", spec.service);
                copy.name = format!("{}-{i}", spec.name);
                for port in &mut copy.ports {
                    port.host = port.host.map(|h| h.saturating_add((i - 1) as u16));
                }
                copy.config_hash = config_hash(&copy);
                copy.labels
                    .insert(labels::SERVICE.into(), copy.service.clone());
                copy.labels
                    .insert(labels::CONFIG_HASH.into(), copy.config_hash.clone());
            }
            copy.labels.insert(labels::REPLICA.into(), i.to_string());
            copy
        })
        .collect()
}

fn health_spec(h: HealthDoc, template: &str) -> Result<HealthSpec, TemplateError> {
    Ok(HealthSpec {
        test: h.test,
        interval: duration(&h.interval, template)?,
        timeout: duration(&h.timeout, template)?,
        retries: h.retries,
        start_period: duration(h.start_period.as_deref().unwrap_or("0s"), template)?,
    })
}

/// `publish: api` goes on the profile's host and port (`auto`: Docker picks);
/// `publish: store` (Redis, ClickHouse) always on 127.0.0.1 at a port Docker picks,
/// whatever the API's host, so a knowledge base is never exposed beyond this machine.
fn port_spec(p: &PortDoc, profile: &Profile, template: &str) -> Result<PortSpec, TemplateError> {
    let (host, host_ip) = match p.publish.as_str() {
        "api" => (
            match profile.stack.port {
                Port::Fixed(port) => Some(port),
                Port::Auto => None,
            },
            profile.stack.host.clone(),
        ),
        "store" => (None, "127.0.0.1".to_string()),
        other => {
            return Err(TemplateError::Malformed {
                template: template.into(),
                message: format!(
                    "port {} has `publish: {other}`; use `api` or `store`",
                    p.container
                ),
            })
        }
    };
    Ok(PortSpec {
        container: p.container,
        host,
        host_ip,
    })
}

fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("", 1),
    ]
    .iter()
    .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n, *m)))?;
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// Hash of what defines a container (not its labels or the run id).
pub fn config_hash(spec: &ContainerSpec) -> String {
    let mut copy = spec.clone();
    copy.labels.clear();
    copy.config_hash.clear();
    let text = serde_json::to_string(&copy).unwrap_or_default();
    hex::encode(Sha1::digest(text.as_bytes()))[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::{port_spec, PortDoc, TemplateError};
    use crate::profile::Profile;

    #[test]
    fn a_port_published_as_anything_but_api_or_store_is_a_template_error() {
        let doc = PortDoc {
            container: 9000,
            publish: "public".into(),
        };
        let err = port_spec(&doc, &Profile::default(), "kato").expect_err("unknown publish");
        assert!(matches!(err, TemplateError::Malformed { .. }));
        assert!(err.to_string().contains("use `api` or `store`"), "{err}");
    }
}
