//! The bundled scenarios (`assets/`, embedded in the binary) and the local HTTP server the `urls` demo needs.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

/// The default demo: `config.example.yaml`, which documents every key.
pub const DEFAULT_DEMO: &str = include_str!("../config.example.yaml");

/// A bundled scenario.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name (`futuretop demo NAME`).
    pub name: &'static str,
    /// One line on what it shows.
    pub about: &'static str,
    /// The task file.
    pub yaml: &'static str,
}

/// Every bundled scenario.
pub const SCENARIOS: &[Scenario] = &[
    Scenario { name: "example", about: "the default demo: every feature in ten seconds", yaml: DEFAULT_DEMO },
    Scenario {
        name: "deadlock-cycle",
        about: "two futures wait on each other (the Python docs' first deadlock)",
        yaml: include_str!("../assets/deadlock-cycle.yaml"),
    },
    Scenario {
        name: "deadlock-starvation",
        about: "a one-worker pool whose task waits on a task it submitted to that pool",
        yaml: include_str!("../assets/deadlock-starvation.yaml"),
    },
    Scenario {
        name: "primes",
        about: "the ProcessPoolExecutor example: is_prime over six large numbers",
        yaml: include_str!("../assets/primes.yaml"),
    },
    Scenario {
        name: "urls",
        about: "the ThreadPoolExecutor example, against a local HTTP server",
        yaml: include_str!("../assets/urls.yaml"),
    },
    Scenario {
        name: "slurm",
        about: "a batch on a Slurm cluster (scripts/slurm-up.sh starts one here)",
        yaml: include_str!("../assets/slurm.yaml"),
    },
    Scenario {
        name: "flaky",
        about: "tasks that fail now and then: retries, a timeout, a stall and the critical path",
        yaml: include_str!("../assets/flaky.yaml"),
    },
    Scenario {
        name: "batch",
        about: "a nightly batch: failures, dependencies, a command, a crashing worker",
        yaml: include_str!("../assets/batch.yaml"),
    },
];

/// The scenario called `name`.
pub fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name || s.name.strip_suffix(".yaml") == Some(name))
}

/// Starts a small HTTP server on 127.0.0.1 (a free port) that answers every GET with a
/// page whose size depends on the path; returns its `host:port`. It serves until the
/// process exits.
pub fn start_local_http() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::Builder::new().name("demo-http".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = std::thread::Builder::new().name("demo-http-conn".into()).spawn(move || serve(stream));
        }
    })?;
    Ok(addr)
}

fn serve(mut stream: TcpStream) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let size = 1000 + path.len() * 7919 % 50_000;
    let body = "x".repeat(size);
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
