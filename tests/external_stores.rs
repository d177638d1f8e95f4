//! An external KATO whose stores katotune is told about (`KATOTUNE_REDIS_URL`,
//! `KATOTUNE_CLICKHOUSE_URL`) gets the docker backend's guard: a run into nodes that
//! hold data is refused, `--fresh` removes only the profile's nodes, and stores that
//! disagree are reported. Real Redis and ClickHouse (kb_support); under CI they must
//! be there.

mod kb_support;

use katotune::engine::{self, EngineConfig};
use katotune::profile::{self, FlagOverride};
use katotune::stack::{self, KbStart, StackError};

async fn seed(urls: &katotune::kb::stores::StoreUrls, kb: &str, name: &str, freq: u64) {
    let sql = format!(
        "INSERT INTO kato.patterns_data (kb_id, name, pattern_data, length) \
         VALUES ('{kb}', '{name}', [['a'], ['b']], 2)"
    );
    let answer = reqwest::Client::new()
        .post(&urls.clickhouse)
        .body(sql)
        .send()
        .await
        .expect("ClickHouse answers");
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
    set(&urls.redis, &format!("{kb}:frequency:{name}"), freq);
}

fn set(redis_url: &str, key: &str, value: u64) {
    let client = redis::Client::open(redis_url).unwrap();
    let mut con = client.get_connection().unwrap();
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(&mut con)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_kato_with_known_stores_is_guarded_like_a_docker_one() {
    let Some(s) = kb_support::start("external stores guard", "noeviction") else {
        return;
    };
    let kato = engine::start(EngineConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    // The only test in this file: the process env is its own.
    std::env::set_var("KATOTUNE_REDIS_URL", &s.urls.redis);
    std::env::set_var("KATOTUNE_CLICKHOUSE_URL", &s.urls.clickhouse);
    let flag = |path: &str, value: serde_json::Value| FlagOverride {
        flag: "test".into(),
        path: path.into(),
        value,
    };
    let p = profile::load(
        "quick",
        &[
            flag("stack.backend", "external".into()),
            flag("stack.url", kato.url().into()),
        ],
    )
    .unwrap()
    .profile;
    let service = p.stack.service_name.clone();
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    seed(&s.urls, &format!("node0_{service}"), &a, 3).await;
    seed(&s.urls, &format!("other_{service}"), &b, 1).await;
    let cancel = tokio_util::sync::CancellationToken::new();

    let refused = stack::up(&p, KbStart::RequireEmpty, "r1", &cancel).await;
    let Err(StackError::KbInStores(kbs)) = refused else {
        panic!("a run into nodes that hold data is refused");
    };
    assert_eq!(kbs, [format!("node0_{service}")]);
    let msg = StackError::KbInStores(kbs).to_string();
    assert!(msg.contains("--resume") && msg.contains("--fresh"), "{msg}");

    stack::up(&p, KbStart::Replace, "r2", &cancel)
        .await
        .expect("--fresh removes the profile's nodes and goes on")
        .down(false)
        .await;
    let (urls, svc) = (s.urls.clone(), service.clone());
    let (node0_empty, other_empty) = tokio::task::spawn_blocking(move || {
        let mut stores = katotune::kb::stores::Stores::connect(&urls).unwrap();
        (
            stores.kb_is_empty(&format!("node0_{svc}")).unwrap(),
            stores.kb_is_empty(&format!("other_{svc}")).unwrap(),
        )
    })
    .await
    .unwrap();
    assert!(node0_empty, "--fresh removed the profile's node0");
    assert!(!other_empty, "another KB is not the profile's to remove");

    // A frequency without its row: the stores disagree, and the error says so.
    set(
        &s.urls.redis,
        &format!("other_{service}:frequency:ghost"),
        1,
    );
    let Err(StackError::StoresDisagree(bad)) =
        stack::up(&p, KbStart::Continue, "r3", &cancel).await
    else {
        panic!("stores that disagree are reported");
    };
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].kb_id, format!("other_{service}"));
    assert_eq!(bad[0].frequencies, 2, "{bad:?}");
    kato.shutdown().await;
}
