//! `fetch_url(url, timeout)`: HTTP GET; returns the bytes received.

use std::io::Read;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use crate::schema::describe;
use futuretop_engine::Exception;

/// `fetch_url(url, timeout)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchUrl {
    /// The URL.
    pub url: String,
    /// Seconds for the whole request.
    pub timeout: f64,
}

impl Callable for FetchUrl {
    const NAME: &'static str = "fetch_url";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        let url = p.required("url").and_then(|(v, path)| match v.as_str() {
            Some(u) if u.starts_with("http://") => Some(u.to_owned()),
            Some(u) if u.starts_with("https://") => {
                p.error(&path, format!("'{u}': this build fetches http:// URLs only (no TLS)"));
                None
            }
            _ => {
                p.error(&path, format!("expected an http:// URL, found {}", describe(v)));
                None
            }
        });
        let timeout = p.seconds_or("timeout", 60.0);
        Some(Self { url: url?, timeout: timeout? })
    }

    fn run(&self, _: &RunCx<'_>) -> Result<Value, Exception> {
        fetch_url(&self.url, super::secs(self.timeout)).map(Value::from)
    }
}

fn fetch_url(url: &str, timeout: Duration) -> Result<u64, Exception> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).build().into();
    let mut response = agent.get(url).call().map_err(|e| Exception::task(format!("{url}: {e}")))?;
    let mut reader = response.body_mut().as_reader();
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        futuretop_engine::checkpoint()?;
        match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n as u64,
            Err(e) => return Err(Exception::task(format!("{url}: {e}"))),
        }
    }
}
