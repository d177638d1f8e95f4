//! `katotune kb ...` as a user runs it, against a real Redis and ClickHouse engine:
//! digests agree with the run record, bad dumps are refused with their line, and a
//! load killed with SIGKILL is visible and finishes with `--resume`.

mod kb_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use katotune::kato::pattern::pattern_hash;
use katotune::kb::dump::{DumpHeader, DumpItem, DumpWriter};
use katotune::kb::stats::StatsBuilder;
use katotune::kb::stores::Stores;
use katotune::kb::PatternEntry;
use predicates::prelude::*;
use serde_json::Value;

fn kt(s: &kb_support::TestStores) -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1")
        .env("KATOTUNE_REDIS_URL", &s.urls.redis)
        .env("KATOTUNE_CLICKHOUSE_URL", &s.urls.clickhouse);
    cmd
}

#[test]
fn kb_status_of_a_loaded_kb_equals_the_run_record() {
    let Some(s) = kb_support::start(
        "kb_status_of_a_loaded_kb_equals_the_run_record",
        "noeviction",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, rec, dump) = (
        dir.path().join("quick.db"),
        dir.path().join("rec.json"),
        dir.path().join("kb.jsonl"),
    );
    let mut run = Command::cargo_bin("katotune").unwrap();
    run.args(["run", "quick", "--record"])
        .arg(&rec)
        .args(["--set", "stack.ephemeral=false", "--set"])
        .arg(format!("stack.kb_file={}", db.display()))
        .arg("--set")
        .arg(format!("report.output_dir={}", dir.path().display()))
        .assert()
        .success();
    kt(&s)
        .args(["kb", "dump"])
        .arg(&db)
        .arg("-o")
        .arg(&dump)
        .assert()
        .success();
    kt(&s)
        .args(["kb", "load"])
        .arg(&dump)
        .args(["--into", "stores"])
        .assert()
        .success();
    let out = kt(&s)
        .args(["kb", "status", "stores", "--record"])
        .arg(&rec)
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert_eq!(text.matches("matches the run record").count(), 3, "{text}");
    let out = kt(&s)
        .args(["--format", "json", "kb", "status", "stores"])
        .assert()
        .success();
    let doc: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
    for level in record["levels"].as_array().unwrap() {
        let kb = format!("{}_kato", level["node"].as_str().unwrap());
        let got = doc["kbs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kb_id"] == kb.as_str())
            .unwrap();
        assert_eq!(got["digest"], level["kb"]["digest"], "{kb}");
        assert_eq!(got["learns"], level["kb"]["learns"], "{kb}");
    }
    kt(&s)
        .args(["kb", "diff"])
        .arg(&db)
        .arg("stores")
        .assert()
        .code(0);
    let copy = dir.path().join("copy.db");
    kt(&s)
        .args(["kb", "load", "stores", "--into"])
        .arg(&copy)
        .assert()
        .success();
    kt(&s)
        .args(["kb", "diff"])
        .arg(&db)
        .arg(&copy)
        .assert()
        .code(0)
        .stdout(predicates::str::contains(
            "A and B hold the same knowledge bases",
        ));
    kt(&s)
        .args(["kb", "reset", "stores", "--node", "node2"])
        .assert()
        .success()
        .stdout(predicates::str::contains("removed node2_kato"));
    let node2 = record["levels"][2]["kb"]["distinct"].as_u64().unwrap();
    kt(&s)
        .args(["kb", "diff"])
        .arg(&db)
        .arg("stores")
        .assert()
        .code(5)
        .stdout(predicates::str::contains(format!(
            "node2_kato: {node2} only in A, 0 only in B"
        )));
}

/// A dump of `n` two-event patterns in one KB; returns the digest it must load to.
fn big_dump(path: &Path, n: usize) -> String {
    let header = DumpHeader::new("kato", vec!["node0_kato".into()]);
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = DumpWriter::new(file, path, &header).unwrap();
    let mut counts = BTreeMap::new();
    for i in 0..n {
        let events = vec![
            vec![format!("s{}", i % 997), format!("t{i}")],
            vec![format!("u{}", i % 13)],
        ];
        let name = pattern_hash(&events);
        let frequency = 1 + (i % 4) as u64;
        counts.insert(name.clone(), frequency);
        let p = PatternEntry {
            kb_id: "node0_kato".into(),
            name,
            events,
            frequency,
            emotives: vec![],
            metadata: BTreeMap::new(),
        };
        w.write(&DumpItem::Pattern(p)).unwrap();
    }
    w.finish().unwrap();
    let mut b = StatsBuilder::new("node0_kato");
    for (name, f) in counts {
        b.add(&name, f).unwrap();
    }
    b.finish(0, None).digest
}

fn marker_done(redis_url: &str) -> u64 {
    let mut con = redis::Client::open(redis_url)
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("HGET")
        .arg("katotune:load:node0_kato")
        .arg("patterns_done")
        .query::<Option<u64>>(&mut con)
        .unwrap()
        .unwrap_or(0)
}

#[test]
fn a_load_killed_mid_way_leaves_a_marker_and_resume_finishes_it() {
    let Some(s) = kb_support::start("a_load_killed_mid_way", "noeviction") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("big.jsonl");
    let n = 60_000;
    let digest = big_dump(&dump, n);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_katotune"))
        .args(["kb", "load"])
        .arg(&dump)
        .args([
            "--into",
            "stores",
            "--batch",
            "500",
            "--redis",
            &s.urls.redis,
            "--clickhouse",
            &s.urls.clickhouse,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while marker_done(&s.urls.redis) < 2000 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the load never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the load ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = marker_done(&s.urls.redis);
    assert!(done < n as u64, "killed before the end ({done} of {n})");

    kt(&s)
        .args(["kb", "status", "stores"])
        .assert()
        .success()
        .stdout(predicates::str::contains("INTERRUPTED LOAD"))
        .stdout(predicates::str::contains("--resume"));
    kt(&s)
        .args(["kb", "load"])
        .arg(&dump)
        .args(["--into", "stores"])
        .assert()
        .code(katotune::exit::KB_REFUSED)
        .stderr(predicates::str::contains("--resume"));
    kt(&s)
        .args(["kb", "load"])
        .arg(&dump)
        .args(["--into", "stores", "--resume"])
        .assert()
        .success()
        .stdout(predicates::str::contains("resumed after"));

    let mut stores = Stores::connect(&s.urls).unwrap();
    let st = stores.stats("node0_kato").unwrap();
    assert_eq!(
        st.digest, digest,
        "the resumed KB is the whole dump, each batch once"
    );
    assert_eq!(st.patterns, n as u64);
    assert_eq!(
        stores.clickhouse.count("node0_kato").unwrap(),
        n as u64,
        "no duplicate rows"
    );
    assert!(st.interrupted_load.is_none());
}

#[test]
fn a_corrupt_or_truncated_dump_is_refused_with_its_line() {
    let Some(s) = kb_support::start("a_corrupt_or_truncated_dump", "noeviction") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    big_dump(&good, 10);
    let text = std::fs::read_to_string(&good).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let cut = dir.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..6].join("\n") + "\n").unwrap();
    kt(&s)
        .args(["kb", "load"])
        .arg(&cut)
        .args(["--into", "stores"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "cut.jsonl: the dump ends after line 6",
        ));
    lines[4] = "{\"type\":\"pattern\",\"kb_id\":";
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    kt(&s)
        .args(["kb", "status", "stores"])
        .assert()
        .success()
        .stdout(predicates::str::contains("INTERRUPTED LOAD"));
    kt(&s)
        .args(["kb", "load"])
        .arg(&bad)
        .args(["--into", "stores"])
        .assert()
        .code(katotune::exit::KB_REFUSED)
        .stderr(predicates::str::contains("--resume").and(predicates::str::contains("--replace")));
    kt(&s)
        .args(["kb", "load"])
        .arg(&bad)
        .args(["--into", "stores", "--replace"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("bad.jsonl:5: not a dump record"));
    kt(&s)
        .args(["kb", "load"])
        .arg(&good)
        .args(["--into", "stores", "--replace"])
        .assert()
        .success();
    let mut stores = Stores::connect(&s.urls).unwrap();
    assert_eq!(stores.stats("node0_kato").unwrap().patterns, 10);
}

#[test]
fn reset_of_an_absent_node_and_a_dump_into_a_missing_folder_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("kb.db");
    let kb_file = format!("stack.kb_file={}", db.display());
    let out = format!("report.output_dir={}", dir.path().display());
    Command::cargo_bin("katotune")
        .unwrap()
        .env("NO_COLOR", "1")
        .args([
            "run",
            "quick",
            "--samples",
            "3",
            "--set",
            "stack.ephemeral=false",
        ])
        .args(["--set", &kb_file, "--set", &out])
        .assert()
        .success();
    Command::cargo_bin("katotune")
        .unwrap()
        .args(["kb", "reset"])
        .arg(&db)
        .args(["--node", "node9"])
        .assert()
        .success()
        .stdout(predicate::str::contains("node9_kato is not in"))
        .stdout(predicate::str::contains("removed").not());
    Command::cargo_bin("katotune")
        .unwrap()
        .args(["kb", "dump"])
        .arg(&db)
        .arg("-o")
        .arg(dir.path().join("no/such/folder/kb.jsonl"))
        .assert()
        .code(katotune::exit::BAD_INPUT)
        .stderr(predicate::str::contains("does not exist"));
}

/// `katotune` with no store URLs from the environment, run in `dir`.
fn kt_in(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("katotune").unwrap();
    cmd.env("NO_COLOR", "1")
        .env_remove("KATOTUNE_REDIS_URL")
        .env_remove("KATOTUNE_CLICKHOUSE_URL")
        .current_dir(dir);
    cmd
}

/// Trains `samples` samples of `quick` into `dir/<db>` (relative, as users write it),
/// recording the run in `dir/<record>`.
fn train_kb_file(dir: &Path, samples: &str, db: &str, record: &str) {
    kt_in(dir)
        .args(["run", "quick", "--samples", samples, "--record", record])
        .args(["--set", "stack.ephemeral=false", "--set"])
        .arg(format!("stack.kb_file={db}"))
        .args(["--set", "report.output_dir=out"])
        .assert()
        .success();
}

#[test]
fn kb_status_takes_the_kb_from_the_record_and_diff_prints_bare_names() {
    let dir = tempfile::tempdir().unwrap();
    train_kb_file(dir.path(), "3", "three.db", "three.json");
    train_kb_file(dir.path(), "4", "four.db", "four.json");
    kt_in(dir.path())
        .args(["kb", "status", "--record", "four.json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("four.db"))
        .stdout(predicate::str::contains("matches the run record"))
        .stderr(predicate::str::contains(
            "the KB of the run record four.json",
        ));
    // The other KB against this record: a mismatch, so the record's KB really was read.
    kt_in(dir.path())
        .args(["kb", "status", "three.db", "--record", "four.json"])
        .assert()
        .code(katotune::exit::KB_MISMATCH);
    // Run from elsewhere, the record's relative KB file is not found: say what to do.
    kt_in(dir.path().parent().unwrap())
        .args(["kb", "status", "--record"])
        .arg(dir.path().join("four.json"))
        .assert()
        .code(katotune::exit::BAD_INPUT)
        .stderr(predicate::str::contains("pass the KB file as TARGET"));
    let out = kt_in(dir.path())
        .args(["kb", "diff", "three.db", "four.db", "--examples", "2"])
        .assert()
        .code(katotune::exit::KB_MISMATCH)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    // Names as `kb dump` writes them and KATO's stores key them: 40 hex digits.
    let example = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("only in B: "))
        .unwrap_or_else(|| panic!("no example name: {text}"));
    assert!(
        example.len() == 40 && example.bytes().all(|b| b.is_ascii_hexdigit()),
        "{text}"
    );
}

#[test]
fn kb_status_names_the_live_process_that_holds_a_kb_file() {
    let dir = tempfile::tempdir().unwrap();
    train_kb_file(dir.path(), "3", "three.db", "three.json");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = std::process::Command::new(assert_cmd::cargo::cargo_bin("katotune"))
        .args(["serve", "--db", "three.db", "--port", &port.to_string()])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 30, "serve never listened");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = |json: bool| {
        let mut cmd = kt_in(dir.path());
        if json {
            cmd.args(["--format", "json"]);
        }
        cmd.args(["kb", "status", "three.db"]);
        let out = cmd.assert().success().get_output().stdout.clone();
        String::from_utf8(out).unwrap()
    };
    let held = status(false);
    let pid = serve.id();
    assert!(
        held.contains(&format!(
            "in use by another katotune process (pid {pid}, command "
        )) && held.contains("serve --db three.db"),
        "{held}"
    );
    let doc: serde_json::Value = serde_json::from_str(&status(true)).unwrap();
    assert!(
        doc["in_use_by"]
            .as_str()
            .is_some_and(|h| h.starts_with(&format!("pid {pid},"))),
        "{doc}"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    serve.wait().unwrap();
    let free = status(false);
    assert!(!free.contains("in use"), "{free}");
    assert!(free.contains("node0_kato"), "{free}");
}
