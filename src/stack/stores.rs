//! Where katotune reaches the knowledge-base stores of a running docker KATO stack.
//!
//! The `kato` template publishes Redis and ClickHouse's HTTP interface on 127.0.0.1 at
//! ports Docker picks; [`stores_of`] finds them from the containers katotune created
//! for the profile's stack (matched by name *and* by katotune's stack and service
//! labels), never from anything else on the engine.

use super::docker::{DockerBackend, DockerError};
use super::plan::StackPlan;
use super::{template, StackError};
use crate::profile::Profile;

/// The service holding KATO's per-pattern metadata (frequencies, symbols, affinity).
pub const REDIS_SERVICE: &str = "redis";
/// The service holding KATO's `kato.patterns_data` table.
pub const CLICKHOUSE_SERVICE: &str = "clickhouse";
/// KATO's own default when `SERVICE_NAME` is unset (KATO `kato/services/kato_fastapi.py`).
pub const KATO_DEFAULT_SERVICE_NAME: &str = "kato";

/// The stores' URLs: one type for the docker stack and the `kb` commands.
pub use crate::kb::stores::StoreUrls;

impl StoreUrls {
    /// The same stores as the `kb` commands' client takes them.
    pub fn for_kb(&self) -> crate::kb::stores::StoreUrls {
        crate::kb::stores::StoreUrls {
            redis: self.redis.clone(),
            clickhouse: self.clickhouse.clone(),
            service_name: self.service_name.clone(),
        }
    }
}

/// Whether the plan has both KATO stores (the `kato` template does; `embedded` not).
pub fn has_stores(plan: &StackPlan) -> bool {
    [REDIS_SERVICE, CLICKHOUSE_SERVICE]
        .iter()
        .all(|s| plan.containers.iter().any(|c| c.service == *s))
}

/// The stores of the profile's running docker stack.
///
/// Errors: [`StackError::NoStores`] when the profile's template has no Redis and
/// ClickHouse; a docker error when no engine answers, when the stack's containers are
/// missing or stopped (run `katotune up` first), when a container of that name is
/// not katotune's, or when a store publishes no port.
pub async fn stores_of(profile: &Profile) -> Result<StoreUrls, StackError> {
    let plan = template::render(profile, "stores")?;
    if !has_stores(&plan) {
        return Err(no_stores(&plan));
    }
    let backend = DockerBackend::connect().await?;
    of_plan(&backend, &plan).await
}

/// The stores of a running stack applied from `plan`.
pub async fn of_plan(backend: &DockerBackend, plan: &StackPlan) -> Result<StoreUrls, StackError> {
    if !has_stores(plan) {
        return Err(no_stores(plan));
    }
    let address = |service: &'static str| async move {
        let port = plan
            .containers
            .iter()
            .find(|c| c.service == service)
            .and_then(|c| c.ports.first())
            .map(|p| p.container)
            .ok_or_else(|| DockerError::NoPublishedPort {
                service: service.to_string(),
                stack: plan.stack.clone(),
                port: "(none)".into(),
            })?;
        Ok::<_, StackError>(backend.published_address(plan, service, port).await?)
    };
    let redis = address(REDIS_SERVICE).await?;
    let clickhouse = address(CLICKHOUSE_SERVICE).await?;
    let service_name = backend
        .service_env(plan, &plan.api_service, "SERVICE_NAME")
        .await?
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| KATO_DEFAULT_SERVICE_NAME.to_string());
    Ok(StoreUrls {
        redis: format!("redis://{redis}"),
        clickhouse: format!("http://{clickhouse}"),
        service_name,
    })
}

fn no_stores(plan: &StackPlan) -> StackError {
    StackError::NoStores {
        stack: plan.stack.clone(),
        template: plan.template.clone(),
    }
}
