//! A tiny stand-in service for the docker backend tests: std only, small enough to
//! build statically in a second and run from a `FROM scratch` image.
//!
//! - no arguments: listen on `0.0.0.0:$PORT` (default 8000) and answer every
//!   request with `200 ok`, printing one log line per request;
//! - `SLEEPER_EXIT=N`: print a few log lines (and `$SLEEPER_TOKEN`) and exit with
//!   code N instead;
//! - `health`: probe `127.0.0.1:$PORT` once and exit 0 when it answers 200
//!   (the image's HEALTHCHECK).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;

fn port() -> u16 {
    std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8000)
}

fn probe() -> ExitCode {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port())) else {
        return ExitCode::FAILURE;
    };
    let _ = stream.write_all(b"GET /health HTTP/1.0\r\n\r\n");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    if answer.starts_with("HTTP/1.0 200") {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn serve() -> ExitCode {
    let listener = match TcpListener::bind(("0.0.0.0", port())) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("sleeper: cannot listen on port {}: {err}", port());
            return ExitCode::FAILURE;
        }
    };
    println!("sleeper: listening on port {}", port());
    for mut stream in listener.incoming().flatten() {
        let mut request = [0u8; 1024];
        let read = stream.read(&mut request).unwrap_or(0);
        let line = String::from_utf8_lossy(&request[..read]);
        println!("sleeper: {}", line.lines().next().unwrap_or(""));
        let _ = stream.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok");
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("health") {
        return probe();
    }
    if let Some(code) = std::env::var("SLEEPER_EXIT")
        .ok()
        .and_then(|c| c.parse::<u8>().ok())
    {
        for step in 1..=3 {
            println!("sleeper: starting step {step}");
        }
        if let Ok(token) = std::env::var("SLEEPER_TOKEN") {
            // Lets the tests check that secret values are masked in error logs.
            println!("sleeper: token is {token}");
        }
        eprintln!("sleeper: giving up with exit code {code}");
        return ExitCode::from(code);
    }
    serve()
}
