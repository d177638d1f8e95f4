//! A fixed, hand-built set of run records: three profiles over the same samples,
//! with fixed times, versions and host, so every export is deterministic.
//!
//! - `baseline`: one worker, one call per chunk, three repeats.
//! - `phase3-parallel`: four workers, node0 batching, server workers (engine); same KB.
//! - `broken-batch`: a docker KATO target with inert knobs, two repeats, errors,
//!   one sample at risk, and node1 learned differently.
//!
//! Every run's KB was read back (the engine's for the first two, KATO's stores for
//! the third) and equals its tally; every latency has a histogram. Tests that change
//! what a run learned go through [`relevel`] or [`set_digest`], which keep the
//! read-back in step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use katotune::kato::error::ErrorClass;
use katotune::kato::latency_histogram::LatencyHistogram;
use katotune::kato::metrics::{Endpoint, EndpointSnapshot, LatencySummary, MetricsSnapshot};
use katotune::profile::schema::{Backend, Template};
use katotune::profile::Profile;
use katotune::report::{Comparison, HostInfo, ProfileRuns, ReproMeta};
use katotune::train::dataset::{DatasetFormat, DatasetIdentity};
use katotune::train::digest::digest_of;
use katotune::train::kb_check::{KbCheck, KbSource, NodeReading};
use katotune::train::record::{
    BackendInfo, LevelRecord, ProfileInfo, RunRecord, RunStatus, SampleCounts, SampleIssue,
    RECORD_VERSION,
};
use katotune::train::segment::SegmentCounts;

pub type Kb = Vec<BTreeMap<String, u64>>;

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// What the reference learned: node0 and node1 (node2 learned nothing).
pub fn reference_kb() -> Kb {
    vec![
        counts(&[
            ("PTRN|0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", 3),
            ("PTRN|1f2e3d4c5b6a79880716253443526170819a0b1c", 1),
            ("PTRN|2b4d6f8091a3c5e7f9021436587a9cbedf012345", 2),
            ("PTRN|3c5e7091b3d5f7092143658709badcfe10325476", 1),
            ("PTRN|4d6f8092c4e6a8b0d2f41537597b9dbf02143658", 1),
        ]),
        counts(&[
            ("PTRN|9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3", 1),
            ("PTRN|8b7a6c5d4e3f20110213e4f5c6d7a8b9e0f1c2d3", 1),
        ]),
        BTreeMap::new(),
    ]
}

/// `broken-batch` learned node1 differently: one name twice, one never, two new.
pub fn broken_kb() -> Kb {
    let mut kb = reference_kb();
    kb[1] = counts(&[
        ("PTRN|9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3", 2),
        ("PTRN|aa00000000000000000000000000000000000001", 1),
        ("PTRN|aa00000000000000000000000000000000000002", 1),
    ]);
    kb
}

fn levels(kb: &Kb) -> Vec<LevelRecord> {
    let chunk_sizes = [5, 7, 9];
    kb.iter()
        .enumerate()
        .map(|(i, names)| LevelRecord {
            node: format!("node{i}"),
            chunk_size: chunk_sizes[i],
            requests: names.values().sum(),
            kb: katotune::train::digest::KbDigest {
                digest: digest_of(names),
                learns: names.values().sum(),
                distinct: names.len() as u64,
            },
            dropped: 0,
            receptive_field: chunk_sizes[..=i].iter().product::<usize>() as u64,
            note: names
                .is_empty()
                .then(|| "fewer than 9 names reached this level".to_string()),
        })
        .collect()
}

pub fn baseline_profile() -> Profile {
    let mut p = Profile {
        name: "baseline".into(),
        description: "one worker, one call per chunk".into(),
        ..Profile::default()
    };
    p.training.samples = Some(8);
    p.training.chunk_sizes = vec![5, 7, 9];
    p
}

pub fn parallel_profile() -> Profile {
    let mut p = baseline_profile();
    p.name = "phase3-parallel".into();
    p.description = "four workers, node0 batching".into();
    p.training.workers = 4;
    p.training.node0_batch = 50;
    p.stack.tuning.workers = Some(8);
    p.stack.tuning.batch_size = Some(50);
    p
}

pub fn broken_profile() -> Profile {
    let mut p = baseline_profile();
    p.name = "broken-batch".into();
    p.description = "a KATO stack with the seed plan's knobs".into();
    p.stack.backend = Backend::Docker;
    p.stack.template = Template::Kato;
    p.stack.tuning.batch_size = Some(100);
    p.stack.tuning.connection_pool_size = Some(50);
    p.stack.tuning.workers = Some(4);
    p
}

/// `samples` requests in log buckets around `p50_ms`: the bulk at the median, a tail.
fn histogram(samples: u64, p50_ms: f64) -> LatencyHistogram {
    let (a, b, c) = (samples / 8, samples / 2, samples / 4);
    LatencyHistogram {
        buckets_per_decade: 10,
        first: ((p50_ms * 1000.0).log10() * 10.0).floor() as u32 - 1,
        counts: vec![a, b, c, samples - a - b - c - 1, 0, 1],
    }
}

fn metrics(latency_scale: f64, errors: &[(ErrorClass, u64)]) -> MetricsSnapshot {
    let latency = |samples: u64, base: f64| LatencySummary {
        samples,
        p50_ms: base * latency_scale,
        p95_ms: base * 3.0 * latency_scale,
        p99_ms: base * 5.0 * latency_scale,
        max_ms: base * 9.0 * latency_scale,
        mean_ms: base * 1.4 * latency_scale,
        histogram: Some(histogram(samples, base * latency_scale)),
    };
    let mut endpoints = BTreeMap::new();
    let error_total: u64 = errors.iter().map(|(_, n)| n).sum();
    endpoints.insert(
        Endpoint::ObserveSequence,
        EndpointSnapshot {
            calls: 40,
            requests: 40 + error_total,
            errors: error_total,
            latency: latency(40, 4.0),
        },
    );
    endpoints.insert(
        Endpoint::Learn,
        EndpointSnapshot {
            calls: 16,
            requests: 16,
            errors: 0,
            latency: latency(16, 2.0),
        },
    );
    MetricsSnapshot {
        total_calls: 56,
        total_requests: 56 + error_total,
        total_errors: error_total,
        endpoints,
        errors_by_class: errors.iter().copied().collect(),
        latency: latency(56, 3.0),
        retries: error_total,
        session_recreations: 0,
        outages: 0,
        outage_seconds: 0.0,
    }
}

struct Shape<'a> {
    profile: &'a Profile,
    repeat: usize,
    samples_per_second: f64,
    server: &'a str,
    kb: &'a Kb,
    latency_scale: f64,
    errors: &'a [(ErrorClass, u64)],
    at_risk: usize,
    /// Where the KB was read back, and what was read (`kb` when the stores agree).
    source: KbSource,
    stored: &'a Kb,
}

/// Gives `record` these levels, read back as they are (the check agrees).
pub fn relevel(record: &mut RunRecord, levels: Vec<LevelRecord>) {
    record.levels = levels;
    let source = record
        .kb_check
        .as_ref()
        .map_or(KbSource::Engine, |c| c.source);
    let nodes = record
        .levels
        .iter()
        .map(|l| katotune::train::kb_check::NodeCheck {
            node: l.node.clone(),
            kb_id: format!("{}_kato", l.node),
            kb: l.kb.clone(),
            tally: l.kb.clone(),
        })
        .collect();
    record.kb_check = Some(KbCheck {
        source,
        note: "read back".into(),
        nodes,
    });
}

/// Sets one level's digest, read back as it is.
pub fn set_digest(record: &mut RunRecord, level: usize, digest: String) {
    let mut levels = record.levels.clone();
    levels[level].kb.digest = digest;
    relevel(record, levels);
}

/// The KB check of a run: `stored` read from `source` against the tally `kb`.
fn kb_check(source: KbSource, kb: &Kb, stored: &Kb) -> KbCheck {
    let readings: Vec<NodeReading<'_>> = kb
        .iter()
        .zip(stored)
        .enumerate()
        .map(|(i, (tally, read))| NodeReading {
            node: format!("node{i}"),
            kb_id: format!("node{i}_kato"),
            read: Some(read),
            tally,
        })
        .collect();
    let note = match source {
        KbSource::Stores => "read from KATO's stores (Redis redis://127.0.0.1:6379, ClickHouse http://127.0.0.1:8123/)",
        _ => "read from katotune's engine (GET /katotune/kb/{node})",
    };
    KbCheck::build(source, note.into(), &readings)
}

fn record(shape: Shape<'_>) -> RunRecord {
    let done = 8u64;
    let wall = done as f64 / shape.samples_per_second;
    let kind = match shape.profile.stack.backend {
        Backend::Embedded => "embedded",
        Backend::Docker => "docker",
        Backend::External => "external",
    };
    RunRecord {
        version: RECORD_VERSION,
        katotune_version: "0.1.0".into(),
        run_id: format!("{}-r{}", shape.profile.name, shape.repeat),
        status: RunStatus::Completed,
        stop_reason: None,
        kb_trust: katotune::train::outcome::KbTrust::Verified,
        profile: ProfileInfo {
            name: shape.profile.name.clone(),
            hash: shape.profile.hash(),
            learning_hash: shape.profile.learning_hash(),
            resolved: serde_json::to_value(shape.profile).unwrap(),
        },
        shard: None,
        backend: BackendInfo {
            kind: kind.into(),
            url: "http://127.0.0.1:8000".into(),
            server: shape.server.into(),
            transport: Default::default(),
        },
        dataset: dataset(),
        started_at: format!("2026-11-27T05:0{}:00Z", shape.repeat),
        finished_at: format!("2026-11-27T05:0{}:30Z", shape.repeat),
        wall_seconds: wall,
        resumed: false,
        samples: SampleCounts {
            done,
            filtered: 1,
            skipped: Vec::new(),
            failed: Vec::new(),
            at_risk: (0..shape.at_risk)
                .map(|i| SampleIssue {
                    row: 3 + i as u64,
                    origin: "data/kjv-100.jsonl:4".into(),
                    reason: "learn timed out after it was sent".into(),
                })
                .collect(),
        },
        tokens: 4000,
        samples_per_second: shape.samples_per_second,
        tokens_per_second: 500.0 * shape.samples_per_second,
        calls_per_sample: [
            ("observe-sequence".to_string(), 5.0),
            ("learn".to_string(), 2.0),
        ]
        .into_iter()
        .collect(),
        calls: metrics(shape.latency_scale, shape.errors),
        segmentation: SegmentCounts::default(),
        levels: levels(shape.kb),
        durability: Default::default(),
        delivery: None,
        kb_check: Some(kb_check(shape.source, shape.kb, shape.stored)),
    }
}

pub fn dataset() -> DatasetIdentity {
    DatasetIdentity {
        path: PathBuf::from("data/kjv-100.jsonl"),
        format: DatasetFormat::Jsonl,
        bytes: 412_345,
        files: Vec::new(),
        fingerprint: "5f1d0c9e8b7a69584736251403f2e1d0c9b8a796".into(),
    }
}

/// The three profiles' measured repeats.
/// Where the fixture's settings came from: training knobs from `file`, the rest default.
fn sources(file: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("training.workers", file),
        ("training.node0_batch", file),
        ("training.chunk_sizes", file),
        ("stack.backend", "flag --set"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn inputs() -> Vec<ProfileRuns> {
    let (base, parallel, broken) = (baseline_profile(), parallel_profile(), broken_profile());
    let (reference, broken_names) = (reference_kb(), broken_kb());
    let runs = |profile: &Profile, speeds: &[f64], server: &str, kb: &Kb, scale: f64| {
        speeds
            .iter()
            .enumerate()
            .map(|(i, &sps)| {
                let errors: &[(ErrorClass, u64)] = if server.starts_with("kato 3") {
                    &[(ErrorClass::Timeout, 2), (ErrorClass::Overload, 1)]
                } else {
                    &[]
                };
                let kato = server.starts_with("kato 3");
                record(Shape {
                    profile,
                    repeat: i + 1,
                    samples_per_second: sps,
                    server,
                    kb,
                    latency_scale: scale,
                    errors,
                    at_risk: usize::from(kato && i == 0),
                    source: if kato {
                        KbSource::Stores
                    } else {
                        KbSource::Engine
                    },
                    stored: kb,
                })
            })
            .collect::<Vec<_>>()
    };
    vec![
        ProfileRuns {
            records: runs(
                &base,
                &[2.0, 2.1, 1.9],
                "katotune-engine 0.1.0",
                &reference,
                1.0,
            ),
            sources: sources("profiles/baseline.yaml"),
            profile: base,
            kb: reference.clone(),
            max_runs_reached: None,
        },
        ProfileRuns {
            records: runs(
                &parallel,
                &[8.4, 8.5, 8.3],
                "katotune-engine 0.1.0",
                &reference,
                2.0,
            ),
            sources: sources("profiles/phase3-parallel.yaml"),
            profile: parallel,
            kb: reference,
            max_runs_reached: None,
        },
        ProfileRuns {
            records: runs(
                &broken,
                &[1.5, 1.7],
                "kato 3.10.1 (sha256:4be1c0ffee)",
                &broken_names,
                12.0,
            ),
            sources: sources("/tmp/broken-batch.yaml"),
            profile: broken,
            kb: broken_names,
            max_runs_reached: None,
        },
    ]
}

pub fn meta() -> ReproMeta {
    ReproMeta {
        katotune_version: "0.1.0".into(),
        git_revision: "abc1234".into(),
        host: HostInfo {
            cpu: "Test CPU @ 2.0GHz".into(),
            cores: 2,
            physical_cores: Some(1),
            memory_bytes: 8 << 30,
            os: "Linux (Debian GNU/Linux 12)".into(),
        },
        dataset: None,
        started_at: "2026-11-27T05:00:00Z".into(),
        finished_at: "2026-11-27T05:09:30Z".into(),
        // Above half the two CPUs: the busy-machine warning shows in every export.
        load_average_at_start: Some(1.5),
    }
}

/// The comparison of the fixture against `baseline`, without a gate.
pub fn comparison() -> Comparison {
    Comparison::build(inputs(), 0, None, None, meta())
}
