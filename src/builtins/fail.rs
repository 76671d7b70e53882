//! `fail(message)`: raises `TaskError(message)`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Callable, Parse, RunCx};
use crate::schema::{describe, scalar_string};
use futuretop_engine::Exception;

/// `fail(message)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fail {
    /// The message.
    pub message: String,
}

impl Callable for Fail {
    const NAME: &'static str = "fail";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        match p.get("message") {
            None => Some(Self { message: "fail() was called".to_owned() }),
            Some((v, path)) => {
                if let Some(message) = scalar_string(v) {
                    Some(Self { message })
                } else {
                    p.error(&path, format!("expected a message string, found {}", describe(v)));
                    None
                }
            }
        }
    }

    fn run(&self, _: &RunCx<'_>) -> Result<Value, Exception> {
        Err(Exception::task(self.message.clone()))
    }
}
