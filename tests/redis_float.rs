//! `katotune::kb::redis_float` against a real `redis-server` (Debian package
//! `redis-server`): random `HINCRBYFLOAT` sequences must leave the same text.
//!
//! Outside CI the test skips, saying why, when `redis-server` is not installed; with
//! `CI` set it fails instead.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use katotune::kb::redis_float::{hincrbyfloat, python_float_repr};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A redis-server on a free loopback port, killed on drop.
struct Redis {
    child: Child,
    port: u16,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis() -> Option<Redis> {
    let port = TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let spawned = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but redis-server cannot start ({error}); install the Debian package redis-server"
            );
            eprintln!(
                "skipping: redis-server cannot start ({error}); apt-get install redis-server"
            );
            return None;
        }
    };
    let redis = Redis { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(redis)
}

/// A minimal RESP client: enough for HINCRBYFLOAT replies (bulk strings and errors).
struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(port: u16) -> Self {
        let writer = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let reader = BufReader::new(writer.try_clone().expect("clone"));
        Self { writer, reader }
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).expect("write");
    }

    /// The next reply: `Ok(text)` for a bulk string, `Err(message)` for an error.
    fn reply(&mut self) -> Result<String, String> {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read");
        let line = line.trim_end();
        match line.split_at(1) {
            ("$", len) => {
                let len: usize = len.parse().expect("bulk length");
                let mut buf = vec![0u8; len + 2];
                std::io::Read::read_exact(&mut self.reader, &mut buf).expect("bulk");
                buf.truncate(len);
                Ok(String::from_utf8(buf).expect("utf-8"))
            }
            ("-", message) => Err(message.to_owned()),
            _ => panic!("unexpected reply {line:?}"),
        }
    }
}

/// Increments shaped like averaged emotives: short decimals, thirds, big and tiny values.
fn increment(rng: &mut StdRng) -> f64 {
    match rng.random_range(0..6) {
        0 => f64::from(rng.random_range(-100i32..100)) / 10.0,
        1 => f64::from(rng.random_range(-1000i32..1000)) / 3.0,
        2 => rng.random_range(-1.0..1.0),
        3 => rng.random_range(-1e12..1e12),
        4 => rng.random_range(-1e-6..1e-6),
        _ => (0.1 * f64::from(rng.random_range(0i32..10)) + 1.0) / 2.0,
    }
}

#[test]
fn random_increment_sequences_leave_the_text_redis_leaves() {
    let Some(redis) = start_redis() else { return };
    let mut conn = Conn::open(redis.port);
    let mut rng = StdRng::seed_from_u64(20_261_130);
    let mut compared = 0;
    for seq in 0..300 {
        let key = format!("affinity:{seq}");
        let steps: Vec<String> = (0..rng.random_range(1..25))
            .map(|_| python_float_repr(increment(&mut rng)))
            .collect();
        for by in &steps {
            conn.send(&["HINCRBYFLOAT", &key, "joy", by]);
        }
        let mut ours: Option<String> = None;
        for by in &steps {
            let theirs = conn.reply().expect("redis accepts the increment");
            let mine = hincrbyfloat(ours.as_deref(), by).expect("we accept the increment");
            assert_eq!(
                mine, theirs,
                "sequence {seq} ({key}), after adding {by} to {ours:?}"
            );
            ours = Some(mine);
            compared += 1;
        }
    }
    assert!(compared > 300);
}

#[test]
fn stored_text_that_redis_refuses_is_refused_here_too() {
    let Some(redis) = start_redis() else { return };
    let mut conn = Conn::open(redis.port);
    conn.send(&["HSET", "h", "f", "abc"]);
    let mut line = String::new();
    conn.reader.read_line(&mut line).expect("hset reply");
    conn.send(&["HINCRBYFLOAT", "h", "f", "1"]);
    assert!(conn.reply().is_err());
    assert!(hincrbyfloat(Some("abc"), "1").is_err());
    conn.send(&["HINCRBYFLOAT", "h", "g", "inf"]);
    assert!(conn.reply().is_err());
    assert!(hincrbyfloat(None, "inf").is_err());
}
