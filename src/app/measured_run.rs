//! One run of `compare`, on a knowledge base nothing else has touched, read back after
//! training:
//!
//! - a docker stack is brought up as a disposable stack of the run's own
//!   (`katotune-<profile>-cmp-<id>`, its own volumes) and removed with its volumes;
//! - on a stack the run does not own (an external KATO, or the stack `--reuse-stack`
//!   shares), the run trains nodes of its own (`kt<id>_node0`, see
//!   [`crate::stack::run_nodes`]) and removes exactly those KBs afterwards;
//! - the embedded engine is in memory for each run (`compare` sets `stack.ephemeral`);
//! - warm-up samples train nodes of their own too, removed before the measured run.
//!
//! After training, every node's KB is read back ([`crate::stack::kb_read`]) and set
//! against the client's tally ([`KbCheck`]); the record names the profile's nodes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::measure::RunContext;
use super::run::new_run_id;
use super::CliResult;
use crate::kato::pattern::kb_id;
use crate::profile::schema::Backend;
use crate::profile::Profile;
use crate::stack::kb_read::{self, ReadBack};
use crate::stack::{run_nodes, template, KbStart, Lifetime, StackGuard, StoreUrls};
use crate::train::digest::NodeTally;
use crate::train::journal::Journal;
use crate::train::kb_check::{KbCheck, KbSource, NodeReading};
use crate::train::plan::TrainPlan;
use crate::train::record::RunRecord;
use crate::train::runner::{self, RunOptions, Target};

/// Name counts per level.
pub(super) type Kb = Vec<BTreeMap<String, u64>>;

/// One run (after its warm-up samples) on a stack of its own, or on the shared one.
/// A stack this run brought up is always taken down again ([`StackGuard::scope`]),
/// whatever fails. Returns the record (with its `kb_check`) and the KB's name counts.
pub(super) async fn measured_run(
    profile: &Profile,
    label: &str,
    dir: &Path,
    ctx: &RunContext<'_>,
    shared: Option<&mut Option<StackGuard>>,
) -> CliResult<(RunRecord, Kb)> {
    noteln!(
        "{label}: provisioning ({} backend)",
        super::output::user_name(&profile.stack.backend)
    );
    let run_id = new_run_id();
    let own = match &shared {
        Some(slot) if slot.is_some() => None,
        _ => Some(bring_up(profile, &run_id, shared.is_some(), ctx.cancel).await?),
    };
    let guard = match (own.as_ref(), &shared) {
        (Some(g), _) => g,
        (None, Some(slot)) => slot.as_ref().context("shared stack")?,
        (None, None) => unreachable!("a stack is either owned or shared"),
    };
    let stack = (guard.target(), guard.stores().cloned());
    // A stack that outlives this run gets nodes of the run's own.
    let own_nodes = shared.is_some() || profile.stack.backend == Backend::External;
    let work = train_and_check(profile, label, dir, ctx, &run_id, stack, own_nodes);
    match (own, shared) {
        // The first run on a shared stack keeps it for the next ones (`compare` takes it
        // down at the end); a failed one still leaves it in the slot to be taken down.
        (Some(g), Some(slot)) => {
            *slot = Some(g);
            work.await
        }
        (Some(g), None) => g.scope(work).await,
        (None, _) => work.await,
    }
}

/// The run's stack: a disposable docker stack of its own unless it will be shared.
async fn bring_up(
    profile: &Profile,
    run_id: &str,
    shared: bool,
    cancel: &CancellationToken,
) -> CliResult<StackGuard> {
    let lifetime = match (profile.stack.backend, shared) {
        (Backend::Docker, false) => Lifetime::Disposable {
            stack: template::disposable_stack_name(profile),
        },
        _ => Lifetime::Profile,
    };
    Ok(StackGuard::up_as(profile, KbStart::Continue, run_id, false, cancel, &lifetime).await?)
}

/// Warm-up samples, training, the KB read back, and the removal of the run's own nodes.
async fn train_and_check(
    profile: &Profile,
    label: &str,
    dir: &Path,
    ctx: &RunContext<'_>,
    run_id: &str,
    (target, stores): (Target, Option<StoreUrls>),
    own_nodes: bool,
) -> CliResult<(RunRecord, Kb)> {
    let mut trained = profile.clone();
    if own_nodes {
        trained.training.node_prefix = run_nodes::own_prefix(&profile.training.node_prefix);
    }
    if ctx.warmup_samples > 0 {
        trained.training.skip = warm_up(&trained, label, dir, ctx, run_id, &target).await?;
    }
    noteln!("{label}: training");
    let opts = run_options(run_id, dir, ctx.cancel);
    let outcome = runner::run_detailed(&TrainPlan::from(&trained), &target, &opts).await;
    let nodes = node_ids(&trained);
    let checked = match outcome {
        Ok((record, tallies)) => {
            let read = read_back(label, profile, &target, stores.as_ref(), &nodes).await;
            Ok(checked_record(profile, record, &tallies, read, label))
        }
        Err(e) => Err(e.into()),
    };
    if own_nodes {
        forget(label, &target.url, &nodes).await;
    }
    checked
}

/// Trains the warm-up samples on nodes of their own, removes them, and returns the
/// row the measured run starts at.
async fn warm_up(
    trained: &Profile,
    label: &str,
    dir: &Path,
    ctx: &RunContext<'_>,
    run_id: &str,
    target: &Target,
) -> CliResult<u64> {
    let warmup = ctx.warmup_samples;
    noteln!("{label}: warm-up ({warmup} samples on nodes of their own, not counted)");
    let mut warm = trained.clone();
    warm.training.node_prefix = run_nodes::own_prefix(&trained.training.node_prefix);
    warm.training.samples = Some(warmup);
    let opts = run_options(run_id, &dir.join("warmup"), ctx.cancel);
    let result = runner::run(&TrainPlan::from(&warm), target, &opts).await;
    forget(label, &target.url, &node_ids(&warm)).await;
    result?;
    Ok(Journal::load(&opts.journal_path)?.next_row)
}

fn node_ids(profile: &Profile) -> Vec<String> {
    (0..profile.training.chunk_sizes.len())
        .map(|level| profile.node_id(level))
        .collect()
}

/// Removes the run's own nodes; says which could not be removed.
async fn forget(label: &str, url: &str, nodes: &[String]) {
    for (node, why) in run_nodes::remove_nodes(url, nodes).await {
        noteln!(
            "{label}: could not remove the run's node {node} ({why}); remove it with \
             `katotune kb reset` on the stores, or clear-all on that node"
        );
    }
}

/// The KB read back, or the client tally with the reason when it cannot be read.
async fn read_back(
    label: &str,
    profile: &Profile,
    target: &Target,
    stores: Option<&StoreUrls>,
    nodes: &[String],
) -> ReadBack {
    let service = stores.map_or(profile.stack.service_name.as_str(), |s| {
        s.service_name.as_str()
    });
    match kb_read::read_back(&target.url, stores, nodes, service).await {
        Ok(read) => read,
        Err(e) => {
            noteln!("{label}: could not read the KB back ({e}); the client's tally stands in");
            ReadBack {
                source: KbSource::ClientTally,
                note: format!("could not read the KB back: {e}"),
                kbs: nodes.iter().map(|n| (kb_id(n, service), None)).collect(),
            }
        }
    }
}

/// The record under the profile's own nodes, with its KB check; the name counts the
/// comparison uses (read back, else tallied).
fn checked_record(
    profile: &Profile,
    mut record: RunRecord,
    tallies: &[NodeTally],
    read: ReadBack,
    label: &str,
) -> (RunRecord, Kb) {
    let tallies: Kb = tallies.iter().map(NodeTally::sorted_counts).collect();
    let empty = BTreeMap::new();
    let readings: Vec<NodeReading<'_>> = read
        .kbs
        .iter()
        .enumerate()
        .map(|(level, (kb, counts))| NodeReading {
            node: profile.node_id(level),
            kb_id: kb.clone(),
            read: counts.as_ref(),
            tally: tallies.get(level).unwrap_or(&empty),
        })
        .collect();
    let check = KbCheck::build(read.source, read.note.clone(), &readings);
    say_check(label, &check);
    record.profile = super::plan::profile_info(profile);
    for (level, l) in record.levels.iter_mut().enumerate() {
        l.node = profile.node_id(level);
    }
    record.kb_check = Some(check);
    let kb = read
        .kbs
        .into_iter()
        .map(|(_, counts)| counts)
        .zip(tallies)
        .map(|(read, tally)| read.unwrap_or(tally))
        .collect();
    (record, kb)
}

/// One line for the check, and one per node whose stored KB is not the tally.
fn say_check(label: &str, check: &KbCheck) {
    let bad: Vec<_> = check.mismatches().collect();
    if check.source == KbSource::ClientTally || bad.is_empty() {
        noteln!(
            "{label}: KB {} ({} nodes{})",
            check.source.label(),
            check.nodes.len(),
            match check.source {
                KbSource::ClientTally => "; nothing read back".to_string(),
                _ => ", each equal to the client's tally".to_string(),
            }
        );
        return;
    }
    for n in bad {
        noteln!(
            "{label}: KB MISMATCH {} ({}): {} holds {} learns of {} names (digest {}), the \
             server's answers said {} learns of {} names (digest {})",
            n.node,
            n.kb_id,
            check.source.label().trim_start_matches("from "),
            n.kb.learns,
            n.kb.distinct,
            &n.kb.digest[..12],
            n.tally.learns,
            n.tally.distinct,
            &n.tally.digest[..12]
        );
    }
}

fn run_options(run_id: &str, dir: &Path, cancel: &CancellationToken) -> RunOptions {
    RunOptions {
        run_id: run_id.to_string(),
        resume: false,
        journal_path: dir.join("journal.json"),
        cancel: cancel.clone(),
        drain_deadline: std::time::Duration::from_secs(30),
        progress_bar: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        // The KB check compares what the stores hold with the names the run learned.
        digests_from_kb: false,
    }
}
