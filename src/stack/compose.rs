//! A stack plan as an equivalent docker-compose file, for users who prefer compose,
//! and a container's environment with its secrets masked.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::plan::{ContainerSpec, StackPlan};

/// The plan as a docker-compose file (secrets masked), for users who prefer compose.
pub fn to_compose(plan: &StackPlan) -> Value {
    let mut services = serde_json::Map::new();
    let mut configs = serde_json::Map::new();
    for c in &plan.containers {
        let env: serde_json::Map<String, Value> = masked_env(c)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let mut svc = json!({
            "image": c.image,
            "container_name": c.name,
            "environment": env,
            "labels": c.labels,
            "networks": ["katotune"],
        });
        if let Some(cmd) = &c.cmd {
            svc["command"] = json!(cmd);
        }
        if !c.ports.is_empty() {
            let ports: Vec<String> = c
                .ports
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}:{}",
                        p.host_ip,
                        p.host.map(|h| h.to_string()).unwrap_or_default(),
                        p.container
                    )
                })
                .collect();
            svc["ports"] = json!(ports);
        }
        if let Some(h) = &c.health {
            svc["healthcheck"] = json!({
                "test": h.test,
                "interval": humantime::format_duration(h.interval).to_string(),
                "timeout": humantime::format_duration(h.timeout).to_string(),
                "retries": h.retries,
                "start_period": humantime::format_duration(h.start_period).to_string(),
            });
        }
        if !c.depends_on.is_empty() {
            let deps: serde_json::Map<String, Value> = c
                .depends_on
                .iter()
                .map(|d| (d.clone(), json!({"condition": "service_healthy"})))
                .collect();
            svc["depends_on"] = Value::Object(deps);
        }
        if !c.mounts.is_empty() {
            svc["volumes"] = json!(c
                .mounts
                .iter()
                .map(|m| format!("{}:{}", m.volume, m.target))
                .collect::<Vec<_>>());
        }
        if !c.files.is_empty() {
            let mut refs = Vec::new();
            for (i, f) in c.files.iter().enumerate() {
                let key = format!("{}-{}", c.service, i);
                configs.insert(key.clone(), json!({"content": f.contents}));
                refs.push(json!({"source": key, "target": f.path}));
            }
            svc["configs"] = json!(refs);
        }
        if let Some(m) = c.memory_bytes {
            svc["mem_limit"] = json!(m);
        }
        services.insert(c.service.clone(), svc);
    }
    let volumes: serde_json::Map<String, Value> = plan
        .volumes
        .iter()
        .map(|v| (v.clone(), json!({"labels": plan.labels})))
        .collect();
    json!({
        "name": plan.stack,
        "services": services,
        "networks": {"katotune": {"name": plan.network, "labels": plan.labels}},
        "volumes": volumes,
        "configs": configs,
    })
}

/// A container's environment with secret values replaced by `***`.
pub fn masked_env(c: &ContainerSpec) -> BTreeMap<String, String> {
    c.env
        .iter()
        .map(|(k, v)| {
            let shown = if c.secret_env.contains(k) {
                "***".to_string()
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}
