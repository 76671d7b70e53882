//! `submit(call, args, pool, timeout)`: submits a built-in call to a pool and waits on it; needs a pool whose tasks can reach the run's futures.

use serde_yaml::Value as Yaml;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Builtin, Callable, Parse, RunCx};
use crate::schema::{describe, join};
use futuretop_engine::Exception;

/// `submit(call, args, pool, timeout)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submit {
    /// The inner call.
    pub call: Box<Builtin>,
    /// Its callable's name (the inner future is named `<task>/<call_name>`).
    pub call_name: String,
    /// The pool it goes to (index into the plan's pools).
    pub pool: usize,
    /// Seconds, or forever.
    pub timeout: Option<f64>,
}

impl Callable for Submit {
    const NAME: &'static str = "submit";

    fn parse(p: &mut Parse<'_, '_>) -> Option<Self> {
        if !p.needs_waits() {
            return None;
        }
        let mut ok = true;
        let pool = match p.get("pool") {
            None => Some(p.own_pool()),
            Some((v, path)) => p.pool(v, &path),
        };
        let timeout = p.optional_seconds("timeout", &mut ok);
        let inner_args: Vec<(&str, &Yaml, String)> = match p.get("args") {
            None | Some((Yaml::Null, _)) => Vec::new(),
            Some((Yaml::Mapping(m), path)) => {
                m.iter().filter_map(|(k, v)| k.as_str().map(|k| (k, v, join(&path, k)))).collect()
            }
            Some((v, path)) => {
                p.error(&path, format!("expected a mapping of the inner call's arguments, found {}", describe(v)));
                ok = false;
                Vec::new()
            }
        };
        let inner = p.required("call").and_then(|(v, path)| match v.as_str() {
            Some(c) if c == Self::NAME => {
                p.error(&path, "submit cannot submit another submit; name the callable to run".into());
                None
            }
            Some(c) => {
                let target = pool.unwrap_or_else(|| p.own_pool());
                p.inner(c, &path, &inner_args, target).map(|b| (b, c.to_owned()))
            }
            None => {
                p.error(&path, format!("expected the name of a built-in callable, found {}", describe(v)));
                None
            }
        });
        match (inner, pool) {
            (Some((call, call_name)), Some(pool)) if ok => {
                Some(Self { call: Box::new(call), call_name, pool, timeout })
            }
            _ => None,
        }
    }

    fn run(&self, cx: &RunCx<'_>) -> Result<Value, Exception> {
        let env = cx.env.ok_or_else(|| Exception::task("submit needs the run's pools"))?;
        env.submit_and_wait(self.pool, format!("{}/{}", cx.task, self.call_name), (*self.call).clone(), self.timeout)
    }

    fn awaited(&self, mark: &mut dyn FnMut(usize)) {
        self.call.awaited(mark);
    }
}
