//! The full KATO stack cannot start here (its images cannot be pulled), so its
//! template is checked by rendering it and comparing with the values of KATO's own
//! docker-compose file (API.md section 6).

use std::time::Duration;

use katotune::profile::{self, FlagOverride};
use katotune::stack::plan::{ContainerSpec, StackPlan};
use katotune::stack::template;

fn render(flags: &[FlagOverride]) -> StackPlan {
    let loaded = profile::load("docker-kato", flags).expect("docker-kato loads");
    template::render(&loaded.profile, "test").expect("renders")
}

fn service<'a>(plan: &'a StackPlan, name: &str) -> &'a ContainerSpec {
    plan.containers
        .iter()
        .find(|c| c.service == name)
        .unwrap_or_else(|| panic!("no {name} service"))
}

#[test]
fn kato_service_gets_the_environment_kato_needs_plus_the_tuning() {
    let plan = render(&[]);
    assert_eq!(plan.api_service, "kato");
    let kato = service(&plan, "kato");
    assert_eq!(kato.image, "kato:latest");
    for (key, value) in [
        ("SERVICE_NAME", "kato"),
        ("REDIS_URL", "redis://redis:6379"),
        ("REDIS_ENABLED", "true"),
        ("CLICKHOUSE_HOST", "clickhouse"),
        ("CLICKHOUSE_PORT", "8123"),
        ("CLICKHOUSE_DB", "kato"),
        ("LOG_LEVEL", "INFO"),
        ("SESSION_TTL", "3600"),
        ("SESSION_AUTO_EXTEND", "true"),
        ("KATO_WORKERS", "4"),
        ("KATO_LIMIT_CONCURRENCY", "100"),
    ] {
        assert_eq!(kato.env.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert_eq!(
        kato.env.get("PROCESS_PREDICTIONS"),
        None,
        "katotune's training default goes in the session config, not the server's env"
    );
    assert_eq!(kato.ports.len(), 1);
    assert_eq!(kato.ports[0].container, 8000);
    assert_eq!(kato.ports[0].host_ip, "127.0.0.1");
    assert_eq!(kato.depends_on, ["clickhouse", "redis"]);
    let health = kato.health.as_ref().expect("kato health check");
    assert!(health
        .test
        .join(" ")
        .contains("urllib.request.urlopen('http://localhost:8000/health')"));
    assert_eq!(
        (health.interval, health.retries),
        (Duration::from_secs(30), 3)
    );
}

#[test]
fn stores_match_katos_compose_file() {
    let plan = render(&[]);
    let ch = service(&plan, "clickhouse");
    assert_eq!(ch.image, "clickhouse/clickhouse-server:latest");
    let h = ch.health.as_ref().unwrap();
    assert!(h
        .test
        .join(" ")
        .contains("clickhouse-client --query 'SELECT 1'"));
    assert_eq!(
        (h.interval, h.retries, h.start_period),
        (Duration::from_secs(30), 5, Duration::from_secs(30))
    );
    assert_eq!(ch.memory_bytes, Some(8 << 30));
    let init = ch
        .files
        .iter()
        .find(|f| f.path.ends_with("init.sql"))
        .expect("init.sql copied in");
    // KATO's config/clickhouse/init.sql: its tables, sort key and skip indexes.
    let sql: String = init
        .contents
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for needed in [
        "CREATE TABLE IF NOT EXISTS kato.patterns_data",
        "PARTITION BY kb_id ORDER BY (kb_id, length, name) SETTINGS index_granularity = 8192",
        "ADD INDEX IF NOT EXISTS idx_length length TYPE minmax GRANULARITY 4",
        "ADD INDEX IF NOT EXISTS idx_token_bloom token_set TYPE bloom_filter(0.01) GRANULARITY 4",
        "ADD INDEX IF NOT EXISTS idx_token_count token_count TYPE minmax GRANULARITY 4",
        "CREATE TABLE IF NOT EXISTS kato.lsh_buckets",
        "ORDER BY (kb_id, band_hash, pattern_name)",
        "CREATE TABLE IF NOT EXISTS kato.pattern_stats",
        "ORDER BY (kb_id, date)",
    ] {
        assert!(sql.contains(needed), "init.sql lacks {needed}");
    }
    let redis = service(&plan, "redis");
    assert_eq!(redis.image, "redis:7-alpine");
    let h = redis.health.as_ref().unwrap();
    assert_eq!(h.test, ["CMD", "redis-cli", "ping"]);
    assert_eq!((h.interval, h.retries), (Duration::from_secs(10), 5));
    let conf = &redis.files[0].contents;
    // KATO's cap, with persistence on (its compose's REDIS_PERSISTENCE file names)
    // and eviction off, so a KB outlives `down` whole.
    for line in [
        "maxmemory 8gb",
        "maxmemory-policy noeviction",
        "dir /data",
        "appendonly yes",
        "appendfilename kato_patterns.aof",
        "dbfilename kato_patterns.rdb",
    ] {
        assert!(
            conf.lines().any(|l| l.trim() == line),
            "redis.conf lacks {line}"
        );
    }
    let data = redis
        .mounts
        .iter()
        .find(|m| m.target == "/data")
        .expect("Redis keeps /data on a volume");
    assert!(
        plan.volumes.contains(&data.volume)
            && plan.volumes.iter().any(|v| v.ends_with("clickhouse-data")),
        "both stores' volumes are the stack's: {:?}",
        plan.volumes
    );
    assert!(
        plan.containers.iter().all(|c| c.service != "qdrant"),
        "Qdrant only when asked"
    );
    let with_qdrant = render(&[FlagOverride {
        flag: "test".into(),
        path: "stack.qdrant".into(),
        value: true.into(),
    }]);
    assert_eq!(
        service(&with_qdrant, "qdrant").image,
        "qdrant/qdrant:latest"
    );
}

#[test]
fn every_resource_is_labelled_and_a_tuning_change_touches_only_kato() {
    let plan = render(&[]);
    for c in &plan.containers {
        assert_eq!(c.labels["io.katotune.stack"], "katotune-docker-kato");
        assert_eq!(c.labels["io.katotune.profile"], "docker-kato");
        assert_eq!(c.labels["io.katotune.config-hash"], c.config_hash);
        assert_eq!(c.labels["io.katotune.run-id"], "test");
    }
    let tuned = render(&[FlagOverride {
        flag: "test".into(),
        path: "stack.tuning.workers".into(),
        value: 2.into(),
    }]);
    for (a, b) in plan.containers.iter().zip(&tuned.containers) {
        assert_eq!(
            a.config_hash == b.config_hash,
            a.service != "kato",
            "{}",
            a.service
        );
    }
}

fn set(path: &str, value: serde_json::Value) -> FlagOverride {
    FlagOverride {
        flag: "test".into(),
        path: path.into(),
        value,
    }
}

#[test]
fn the_stores_are_published_on_loopback_even_when_the_api_is_not() {
    let plan = render(&[set("stack.host", "0.0.0.0".into())]);
    assert_eq!(service(&plan, "kato").ports[0].host_ip, "0.0.0.0");
    for (name, port) in [("redis", 6379), ("clickhouse", 8123)] {
        let ports = &service(&plan, name).ports;
        assert_eq!(ports.len(), 1, "{name}");
        assert_eq!(ports[0].container, port, "{name}");
        assert_eq!(ports[0].host, None, "{name}: Docker picks the host port");
        assert_eq!(ports[0].host_ip, "127.0.0.1", "{name}");
    }
    let fixed = render(&[set("stack.port", 8000.into())]);
    assert_eq!(service(&fixed, "kato").ports[0].host, Some(8000));
    assert_eq!(
        service(&fixed, "redis").ports[0].host,
        None,
        "a fixed API port is not given to the stores"
    );
}

#[test]
fn the_engine_in_katos_place_checks_itself_and_the_stores_use_the_test_images() {
    let loaded = profile::load("docker-stores", &[]).expect("docker-stores loads");
    let plan = template::render(&loaded.profile, "test").expect("renders");
    assert_eq!(plan.template, "kato");
    let kato = service(&plan, "kato");
    assert_eq!(kato.image, "katotune-engine:latest");
    let health = kato.health.as_ref().expect("a health check");
    assert_eq!(
        health.test,
        [
            "CMD",
            "/katotune",
            "health",
            "--url",
            "http://127.0.0.1:8000"
        ],
        "the FROM-scratch engine image has no Python for KATO's check"
    );
    assert_eq!(
        kato.env.get("REDIS_URL").map(String::as_str),
        Some("redis://redis:6379")
    );
    assert_eq!(service(&plan, "redis").image, "katotune-test-redis:latest");
    assert_eq!(
        service(&plan, "clickhouse").image,
        "katotune-test-clickhouse:latest"
    );
    let real = render(&[]);
    assert!(
        service(&real, "kato").health.as_ref().unwrap().test[1] == "python",
        "KATO's own image keeps KATO's check"
    );
}

#[tokio::test]
async fn a_stack_without_redis_and_clickhouse_has_no_stores_to_name() {
    let loaded = profile::load("docker-engine", &[]).expect("docker-engine loads");
    let err = katotune::stack::stores_of(&loaded.profile)
        .await
        .expect_err("the embedded template has no stores");
    let text = err.to_string();
    assert!(text.contains("template `embedded`"), "{text}");
    assert!(text.contains("stack.template: kato"), "{text}");
}
