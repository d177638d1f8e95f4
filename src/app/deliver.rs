//! `katotune run PROFILE --into TARGET`: train at the engine's speed, serve from a real
//! KATO.
//!
//! The steps, in the order a user reads them in the output:
//! 1. bring TARGET's stack up and wait until it is ready (so a stack that cannot come
//!    up costs nothing);
//! 2. check its stores before any training: Redis must not evict KB keys, and the
//!    profile's nodes must be empty there unless `deliver.mode` says `merge`/`replace`;
//! 3. train PROFILE on katotune's embedded engine, its KB ids made with TARGET's
//!    `SERVICE_NAME`;
//! 4. load the profile's nodes (and only those: never the readiness probe's KB) from
//!    the engine's KB file into TARGET's Redis and ClickHouse, writing exactly what KATO
//!    writes when it learns (`kb::kato_form`);
//! 5. read each node back from the stores and compare its digest with the run
//!    record's (the `kb status` definition): equal, or exit 5;
//! 6. optionally run KATO's `finalize-training` per node (API.md 2.11);
//! 7. leave TARGET serving (it exists to serve the KB), saying how to take it down.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::error::{CliError, CliResult, Failure};
use super::run::{new_run_id, train_once, write_record};
use super::{load_profile, BadInput};
use crate::cli::{OutputFormat, ProfileOverrides, RunArgs};
use crate::exit;
use crate::kato::pattern::kb_id;
use crate::kb::dump::DumpItem;
use crate::kb::location::{self, Location};
use crate::kb::stores::load::{LoadMode, LoadOptions, DEFAULT_BATCH};
use crate::kb::stores::{StoreUrls, Stores};
use crate::profile::schema::{Backend, DeliverMode};
use crate::profile::Profile;
use crate::secret::{self, Redacted};
use crate::stack::{self, KbStart, StackHandle};
use crate::train::record::{DeliveryInfo, RunRecord};

/// `run --into`: the whole delivery; returns the exit code.
pub async fn run_into(
    args: RunArgs,
    profile: Profile,
    into: &str,
    global: &crate::cli::GlobalArgs,
) -> CliResult<i32> {
    let target = load_profile(into, &ProfileOverrides::default())?.profile;
    check_profiles(&profile, &target)?;
    let cancel = CancellationToken::new();
    super::run::install_ctrl_c(cancel.clone(), "finishing in-flight samples");
    let run_id = new_run_id();
    eprintln!("{}: bringing its stack up", target.name);
    let handle = stack::up(&target, KbStart::Continue, &run_id, &cancel).await?;
    let outcome = deliver(&args, profile, &target, &handle, &run_id, cancel, global).await;
    match &outcome {
        // A delivered KB is what the stack is for: leave it serving.
        Ok(code) if *code == exit::OK || *code == exit::KB_MISMATCH => {
            eprintln!(
                "{} keeps serving at {}; `katotune down {}` stops it (its volumes keep the KB; \
                 add --volumes to remove them)",
                target.name,
                secret::mask_url(&handle.url),
                target.name
            );
        }
        _ => handle.down(args.keep).await,
    }
    outcome
}

/// The training profile must run on the engine with a KB file; the target must be a
/// docker stack with KATO's stores.
fn check_profiles(profile: &Profile, target: &Profile) -> CliResult<()> {
    if profile.stack.backend != Backend::Embedded {
        return Err(BadInput(format!(
            "run --into trains on katotune's engine, but profile `{}` does not use the \
             embedded backend; use one that does (e.g. phase3-parallel)",
            profile.name
        ))
        .into());
    }
    if profile.stack.ephemeral {
        return Err(BadInput(format!(
            "run --into loads the engine's KB file, but profile `{}` keeps its KB in memory \
             (stack.ephemeral: true); set stack.ephemeral: false",
            profile.name
        ))
        .into());
    }
    if target.stack.backend != Backend::Docker {
        return Err(BadInput(format!(
            "run --into {}: the target must be a docker KATO stack with Redis and ClickHouse \
             (stack.backend: docker, template kato); for stores you run yourself use \
             `katotune kb load FILE --into stores --redis URL --clickhouse URL`",
            target.name
        ))
        .into());
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn deliver(
    args: &RunArgs,
    mut profile: Profile,
    target: &Profile,
    handle: &StackHandle,
    run_id: &str,
    cancel: CancellationToken,
    global: &crate::cli::GlobalArgs,
) -> CliResult<i32> {
    stack::probe::ready(&handle.url, target.health.timeout, target.health.interval).await?;
    let urls = handle.stores().cloned().ok_or_else(|| {
        BadInput(format!(
            "the {} stack has no Redis and ClickHouse katotune can reach (template `kato` \
             publishes them)",
            target.name
        ))
    })?;
    // KATO names KBs `<node>_<SERVICE_NAME>`: train under the target's name.
    if profile.stack.service_name != urls.service_name {
        eprintln!(
            "training with service name `{}` (the target's SERVICE_NAME) instead of `{}`",
            urls.service_name, profile.stack.service_name
        );
        profile.stack.service_name = urls.service_name.clone();
    }
    let kb_ids: Vec<String> = (0..profile.training.chunk_sizes.len())
        .map(|level| kb_id(&profile.node_id(level), &urls.service_name))
        .collect();
    let mode = profile.deliver.mode;
    let checked = (urls.clone(), kb_ids.clone(), args.allow_eviction);
    let holding = blocking(move || precheck(&checked.0, &checked.1, mode, checked.2)).await?;
    if let Some(kb) = holding {
        return Err(CliError::new(
            Failure::KbRefused,
            anyhow::anyhow!(
                "{} already holds {kb}: nothing was trained; add to it with --set \
                 deliver.mode=merge, start these nodes over with --set deliver.mode=replace, \
                 or deliver into another stack",
                target.name
            ),
        ));
    }

    let kb = match (args.resume, args.fresh) {
        (true, _) => KbStart::Continue,
        (_, true) => KbStart::Replace,
        _ => KbStart::RequireEmpty,
    };
    let mut record = train_once(&profile, None, kb, run_id, args.resume, false, cancel).await?;
    let path = args.record.clone().unwrap_or_else(|| {
        profile
            .report
            .output_dir
            .join(format!("{}-{}.json", profile.name, run_id))
    });
    if record.exit_code() != exit::OK {
        write_record(&record, &path)?;
        eprint!("{}", secret::mask_text(&record.summary()));
        eprintln!("run record: {}; nothing was loaded", path.display());
        return Ok(record.exit_code());
    }
    let file = stack::kb_file(&profile).unwrap_or_default();
    let delivery = load_and_verify(&profile, target, &record, file, &urls, kb_ids, handle).await?;
    let verified = delivery.verified;
    record.delivery = Some(delivery);
    write_record(&record, &path)?;
    if global.format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&Redacted(&record))?);
    }
    eprint!("{}", secret::mask_text(&record.summary()));
    eprintln!("run record: {}", path.display());
    Ok(if verified {
        exit::OK
    } else {
        exit::KB_MISMATCH
    })
}

/// Checks before training what the load would refuse after it: an evicting Redis is an
/// error; a node KB that holds data (with `deliver.mode: refuse`) is returned.
fn precheck(
    urls: &StoreUrls,
    kb_ids: &[String],
    mode: DeliverMode,
    allow_eviction: bool,
) -> anyhow::Result<Option<String>> {
    let mut stores = Stores::connect(urls)?;
    stores.redis.check_eviction(allow_eviction)?;
    if mode == DeliverMode::Refuse {
        for kb in kb_ids {
            if !stores.kb_is_empty(kb)? {
                return Ok(Some(kb.clone()));
            }
        }
    }
    Ok(None)
}

/// Loads the profile's nodes from the engine file into the stores and reads them back.
async fn load_and_verify(
    profile: &Profile,
    target: &Profile,
    record: &RunRecord,
    file: PathBuf,
    urls: &StoreUrls,
    kb_ids: Vec<String>,
    handle: &StackHandle,
) -> CliResult<DeliveryInfo> {
    let opts = LoadOptions {
        mode: match profile.deliver.mode {
            DeliverMode::Refuse => LoadMode::Fresh,
            DeliverMode::Merge => LoadMode::Merge,
            DeliverMode::Replace => LoadMode::Replace,
        },
        resume: false,
        allow_eviction: true, // checked before training
        batch: DEFAULT_BATCH,
        source: file.display().to_string(),
    };
    let learned: Vec<String> = record
        .levels
        .iter()
        .filter(|l| l.kb.distinct > 0)
        .map(|l| kb_id(&l.node, &urls.service_name))
        .collect();
    let idle: Vec<&String> = kb_ids.iter().filter(|id| !learned.contains(id)).collect();
    let idle = match idle.is_empty() {
        true => String::new(),
        false => format!(
            " ({} learned nothing)",
            idle.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    eprintln!(
        "loading {} into {}'s Redis and ClickHouse{idle}",
        learned.join(", "),
        target.name
    );
    let started = std::time::Instant::now();
    let (load_urls, wanted) = (urls.clone(), kb_ids.clone());
    let report = blocking(move || load_nodes(&file, &load_urls, &wanted, &opts)).await?;
    let load_seconds = started.elapsed().as_secs_f64();
    let check_urls = urls.clone();
    let service = urls.service_name.clone();
    let stats = blocking(move || location::stats(&Location::Stores(check_urls), &service)).await?;
    let mut digests = BTreeMap::new();
    let mut verified = true;
    for level in record.levels.iter().filter(|l| l.kb.distinct > 0) {
        let id = kb_id(&level.node, &urls.service_name);
        let found = stats.iter().find(|s| s.kb_id == id);
        let stored = found.map_or("(absent)".to_string(), |s| s.digest.clone());
        let same = stored == level.kb.digest;
        verified &= same;
        eprintln!(
            "  {id}: {} patterns, digest {stored} {}",
            found.map_or(0, |s| s.patterns),
            if same {
                "= the run record's"
            } else {
                "DIFFERS from the run record's"
            }
        );
        digests.insert(id, stored);
    }
    let finalized = if profile.deliver.finalize && verified {
        finalize(&handle.url, profile).await?
    } else {
        Vec::new()
    };
    Ok(DeliveryInfo {
        into: target.name.clone(),
        url: secret::mask_url(&handle.url),
        digests,
        verified,
        patterns: report
            .written
            .iter()
            .map(|(k, (p, _))| (k.clone(), *p))
            .collect(),
        load_seconds,
        finalized,
    })
}

/// Streams only `wanted` KBs of the engine file into the stores.
fn load_nodes(
    file: &std::path::Path,
    urls: &StoreUrls,
    wanted: &[String],
    opts: &LoadOptions,
) -> anyhow::Result<crate::kb::stores::load::LoadReport> {
    let source = Location::EngineFile(file.to_path_buf());
    let (info, stream) = location::open_source(&source, &urls.service_name)?;
    let kb_ids: Vec<String> = info
        .kb_ids
        .iter()
        .filter(|k| wanted.contains(k))
        .cloned()
        .collect();
    let items = stream.filter(|item| match item {
        Ok(DumpItem::Pattern(p)) => wanted.contains(&p.kb_id),
        Ok(DumpItem::Affinity(a)) => wanted.contains(&a.kb_id),
        Err(_) => true,
    });
    let mut stores = Stores::connect(urls)?;
    crate::kb::stores::load::load(&mut stores, &kb_ids, items, opts)
}

/// KATO's `POST /sessions/{sid}/finalize-training` on every node (API.md 2.11).
async fn finalize(url: &str, profile: &Profile) -> CliResult<Vec<String>> {
    let http = reqwest::Client::new();
    let mut done = Vec::new();
    for level in 0..profile.training.chunk_sizes.len() {
        let node = profile.node_id(level);
        let created: serde_json::Value = http
            .post(format!("{url}/sessions"))
            .json(&serde_json::json!({"node_id": node}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| finalize_error(&node, &e))?
            .json()
            .await
            .map_err(|e| finalize_error(&node, &e))?;
        let sid = created["session_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let answer = http
            .post(format!("{url}/sessions/{sid}/finalize-training"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let _ = http.delete(format!("{url}/sessions/{sid}")).send().await;
        answer.map_err(|e| finalize_error(&node, &e))?;
        eprintln!("  {node}: finalize-training done");
        done.push(node);
    }
    Ok(done)
}

fn finalize_error(node: &str, e: &reqwest::Error) -> CliError {
    CliError::from(anyhow::anyhow!(
        "finalize-training on {node} failed: {}; the KB is loaded and verified, finalize is \
         optional (set deliver.finalize: false to skip it)",
        secret::mask_text(&e.to_string())
    ))
}

/// Runs store work off the async threads, keeping the kb layer's exit codes.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> CliResult<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(CliError::from_kb),
        Err(e) => Err(CliError::from(anyhow::anyhow!("a store task failed: {e}"))),
    }
}
