//! `spin(secs)`: burns one core for `secs`; returns the iterations done.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use futuretop_engine::Exception;

/// `spin(secs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spin {
    /// Seconds.
    pub secs: f64,
}

impl Callable for Spin {
    const NAME: &'static str = "spin";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        p.required_seconds("secs").map(|secs| Self { secs })
    }

    fn run(&self, _: &RunCx<'_>) -> Result<Value, Exception> {
        spin(super::secs(self.secs)).map(Value::from)
    }
}

fn spin(d: Duration) -> Result<u64, Exception> {
    let start = Instant::now();
    let mut iterations: u64 = 0;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while start.elapsed() < d {
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        iterations += 10_000;
        futuretop_engine::checkpoint()?;
    }
    std::hint::black_box(x);
    Ok(iterations)
}
