//! `sleep(secs)`: returns `null` after sleeping; a kill wakes it at once.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use futuretop_engine::Exception;

/// `sleep(secs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sleep {
    /// Seconds.
    pub secs: f64,
}

impl Callable for Sleep {
    const NAME: &'static str = "sleep";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        p.required_seconds("secs").map(|secs| Self { secs })
    }

    fn run(&self, _: &RunCx<'_>) -> Result<Value, Exception> {
        sleep(super::secs(self.secs)).map(|()| Value::Null)
    }
}

/// Sleeps, waking early (with `Killed`) if the task is killed.
fn sleep(d: Duration) -> Result<(), Exception> {
    let end = Instant::now() + d;
    loop {
        futuretop_engine::checkpoint()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}
