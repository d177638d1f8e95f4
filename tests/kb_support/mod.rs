//! Real stores for the KB tests: a `redis-server` (Debian's package) and the ClickHouse
//! engine behind its HTTP interface (`../shared/tools/chdb-http/clickhouse-http.py` run by
//! the chdb-core venv's python: env `KATOTUNE_CHDB_PYTHON`, default
//! `/tmp/chvenv/bin/python`), each on a free loopback port, with KATO's table from
//! `templates/kato/init.sql`. Without them a test skips saying why, and fails under CI.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use katotune::kb::stores::StoreUrls;

/// A running server, killed on drop.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Redis and ClickHouse for one test; dropped with it.
pub struct TestStores {
    pub urls: StoreUrls,
    pub redis_port: u16,
    _dir: tempfile::TempDir,
    pub redis: Server,
    pub clickhouse: Server,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `../shared/tools/chdb-http/clickhouse-http.py` beside the checkout (env
/// `KATOTUNE_CHDB_HTTP` overrides).
fn chdb_script() -> PathBuf {
    if let Ok(p) = std::env::var("KATOTUNE_CHDB_HTTP") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for up in [root.join("../shared"), root.join("../../shared")] {
        let p = up.join("tools/chdb-http/clickhouse-http.py");
        if p.exists() {
            return p;
        }
    }
    root.join("../shared/tools/chdb-http/clickhouse-http.py")
}

fn chdb_python() -> PathBuf {
    std::env::var("KATOTUNE_CHDB_PYTHON")
        .unwrap_or_else(|_| "/tmp/chvenv/bin/python".into())
        .into()
}

fn missing(test: &str, what: &str) -> Option<TestStores> {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {what}; CI must provide it (.ci/run installs it)");
    }
    eprintln!("skipping {test}: {what}");
    None
}

fn wait_port(port: u16, child: &mut Child, what: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port} within 60 s");
}

/// Starts both stores; `policy` is Redis's `maxmemory-policy`.
pub fn start(test: &str, policy: &str) -> Option<TestStores> {
    let script = chdb_script();
    let python = chdb_python();
    if which("redis-server").is_none() {
        return missing(
            test,
            "redis-server is not installed (apt-get install redis-server)",
        );
    }
    if !python.exists() || !script.exists() {
        return missing(
            test,
            &format!(
                "no ClickHouse engine: {} or {} is missing (see ../shared/tools/chdb-http/README.md)",
                python.display(),
                script.display()
            ),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let redis_port = free_port();
    let mut redis = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &redis_port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            policy,
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let ch_port = free_port();
    let init = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/kato/init.sql");
    let mut ch = Command::new(&python)
        .arg(&script)
        .args(["--host", "127.0.0.1", "--port", &ch_port.to_string()])
        .arg("--data-dir")
        .arg(dir.path().join("ch"))
        .arg("--init-sql")
        .arg(init)
        .env("CLICKHOUSE_DB", "kato")
        .stdout(Stdio::null())
        .spawn()
        .expect("start clickhouse-http.py");
    wait_port(redis_port, &mut redis, "redis-server");
    wait_port(ch_port, &mut ch, "clickhouse-http.py");
    Some(TestStores {
        urls: StoreUrls {
            redis: format!("redis://127.0.0.1:{redis_port}"),
            clickhouse: format!("http://127.0.0.1:{ch_port}"),
            service_name: "kato".into(),
        },
        redis_port,
        _dir: dir,
        redis: Server(redis),
        clickhouse: Server(ch),
    })
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| p.exists())
    })
}
