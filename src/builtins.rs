//! The built-in callables a YAML task may name: one file each (its YAML name, its arguments read and checked with positions, which pool kinds may run it, and what it does), registered in one list below.
//!
//! To add one: write `builtins/NAME.rs` with a type that implements [`Callable`], and add
//! its line (`module::Type`) to the `builtins!` list at the end of this file. Nothing else names built-ins:
//! validation, the runner, process workers and the docs' list of names all go through
//! [`Builtin`]. Built-ins that need the run (`wait_on`, `submit`) reach it through
//! [`TaskEnv`]; the others are plain functions of their arguments, so a process worker
//! can run them too. Long-running ones poll [`checkpoint`](futuretop_engine::checkpoint),
//! so that `kill` stops them.

use std::time::Duration;

use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::pools::PoolKind;
use crate::schema::{self, Args, Report};
use futuretop_engine::{Exception, Future};

/// A built-in callable: its name, how its arguments are read, and what it does.
pub trait Callable:
    Sized + Clone + PartialEq + std::fmt::Debug + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static
{
    /// Its name in task files (`call: NAME`).
    const NAME: &'static str;

    /// Reads its arguments (reporting what is wrong, with positions), and checks that the
    /// pool it runs in may run it.
    fn parse(p: &mut Parse<'_, '_>) -> Option<Self>;

    /// Runs it.
    fn run(&self, cx: &RunCx<'_>) -> Result<Value, Exception>;

    /// Marks the plan tasks it waits on (their futures are kept for it after they end).
    fn awaited(&self, _mark: &mut dyn FnMut(usize)) {}
}

/// What a built-in runs with.
pub struct RunCx<'a> {
    /// The task's name (the prefix of the futures it submits: `<task>/<call>`).
    pub task: &'a str,
    /// The run, for the built-ins that wait on its futures or submit to its pools.
    pub env: Option<&'a dyn TaskEnv>,
    /// True in a process worker (or a Slurm job): `exit` and `crash` end the process.
    pub in_worker: bool,
}

/// What a built-in needs from the run it is part of. In a thread worker this is the
/// runner itself; in a process worker, a proxy that asks the parent over the pipe.
pub trait TaskEnv {
    /// Waits on plan task `task`'s future, like `result(timeout)`.
    fn wait_on(&self, task: usize, timeout: Option<f64>) -> Result<Value, Exception>;
    /// Submits `call` to pool `pool` under `name` and waits on it, like `result(timeout)`.
    fn submit_and_wait(
        &self,
        pool: usize,
        name: String,
        call: Builtin,
        timeout: Option<f64>,
    ) -> Result<Value, Exception>;
}

/// Seconds as a `Duration` (saturating).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
}

/// Waits on `f` as a task does: the value, or its error re-raised (Python's
/// `f.result(timeout)` inside a task).
pub(crate) fn wait_result(f: &Future<Value>, t: Option<f64>) -> Result<Value, Exception> {
    f.result(t.map(secs)).map_err(Exception::from)
}

/// What a built-in's arguments are checked against: the task file's other tasks and
/// pools, and where errors go.
pub trait Scope: Report {
    /// The plan task named `name` (one future), or `None` after reporting why not at `path`.
    fn task(&mut self, name: &str, path: &str) -> Option<usize>;
    /// The pool named by `v`, or `None` after reporting why not at `path`.
    fn pool(&mut self, v: &Yaml, path: &str) -> Option<usize>;
    /// Pool `pool`'s name.
    fn pool_name(&self, pool: usize) -> &str;
    /// Pool `pool`'s kind.
    fn pool_kind(&self, pool: usize) -> PoolKind;
}

/// One call's arguments being read: the values by name, the scope they are checked
/// against, and the pool the call runs in.
pub struct Parse<'a, 'v> {
    scope: &'a mut dyn Scope,
    args: Args<'a, 'v>,
    pool: usize,
    /// Set when the call cannot run at all: its arguments are not checked further.
    refused: bool,
}

impl<'v> Parse<'_, 'v> {
    /// Argument `name` and its path, if given.
    pub fn get(&mut self, name: &'static str) -> Option<(&'v Yaml, String)> {
        self.args.get(name)
    }

    /// Argument `name` and its path; reported if missing.
    pub fn required(&mut self, name: &'static str) -> Option<(&'v Yaml, String)> {
        self.args.required(self.scope, name)
    }

    /// Required argument `name`, in seconds (0 or more).
    pub fn required_seconds(&mut self, name: &'static str) -> Option<f64> {
        let (v, path) = self.required(name)?;
        schema::seconds(self.scope, &path, name, v, true)
    }

    /// Required argument `name`, a whole number from `min` to `max`.
    pub fn required_int(&mut self, name: &'static str, min: i64, max: i64) -> Option<i64> {
        let (v, path) = self.required(name)?;
        schema::int(self.scope, v, &path, name, min, max)
    }

    /// `v` at `path`, a whole number from `min` to `max`.
    pub fn int(&mut self, v: &Yaml, path: &str, what: &str, min: i64, max: i64) -> Option<i64> {
        schema::int(self.scope, v, path, what, min, max)
    }

    /// Optional argument `name` in seconds, more than 0; `default` when not given.
    pub fn seconds_or(&mut self, name: &'static str, default: f64) -> Option<f64> {
        match self.get(name) {
            None => Some(default),
            Some((v, path)) => schema::seconds(self.scope, &path, name, v, false),
        }
    }

    /// Optional argument `name` in seconds (0 or more; `null` is none); clears `ok` if
    /// it is given and wrong.
    pub fn optional_seconds(&mut self, name: &'static str, ok: &mut bool) -> Option<f64> {
        self.args.optional_seconds(self.scope, name, ok)
    }

    /// The path of argument `name` (or of the call, if it is not given).
    pub fn path_of(&mut self, name: &'static str) -> String {
        self.get(name).map_or_else(|| self.args.call_path().to_owned(), |(_, p)| p)
    }

    /// Reports `message` about the value at `path`.
    pub fn error(&mut self, path: &str, message: String) {
        self.scope.at_value(path, message);
    }

    /// The plan task named `name`, resolved (or reported at `path`).
    pub fn task(&mut self, name: &str, path: &str) -> Option<usize> {
        self.scope.task(name, path)
    }

    /// The pool named by `v`, resolved (or reported at `path`).
    pub fn pool(&mut self, v: &Yaml, path: &str) -> Option<usize> {
        self.scope.pool(v, path)
    }

    /// The pool the call runs in.
    pub fn own_pool(&self) -> usize {
        self.pool
    }

    /// Reads the inner call `call` of arguments `items`, named at `path`, to run in `pool`.
    pub fn inner(&mut self, call: &str, path: &str, items: &[(&str, &Yaml, String)], pool: usize) -> Option<Builtin> {
        parse(self.scope, call, path, items, pool)
    }

    /// For a built-in that ends the worker process it runs in: false (and reported) when
    /// the pool's workers are not processes of their own.
    pub fn needs_own_process(&mut self) -> bool {
        let kind = self.scope.pool_kind(self.pool);
        if kind.own_processes() {
            return true;
        }
        let message = format!(
            "'{}' ends the worker process it runs in, so it needs a process (or slurm) pool; pool '{}' is a {kind} pool",
            self.args.call(),
            self.scope.pool_name(self.pool),
        );
        self.scope.at_value(self.args.call_path(), message);
        false
    }

    /// For a built-in that waits on the run's futures: false (and reported) when the
    /// pool's tasks cannot reach them; its arguments are then not read.
    pub fn needs_waits(&mut self) -> bool {
        let kind = self.scope.pool_kind(self.pool);
        if kind.reaches_run() {
            return true;
        }
        let message = format!(
            "'{}' waits on the run's other futures, which a Slurm job on another machine cannot reach; pool '{}' is a {kind} pool",
            self.args.call(),
            self.scope.pool_name(self.pool),
        );
        self.scope.at_value(self.args.call_path(), message);
        self.refused = true;
        false
    }
}

/// Reads built-in `call`, named at `call_path`, with arguments `items` (`(name, value,
/// path)`), to run in pool `pool`: every problem is reported to `scope`.
pub fn parse(
    scope: &mut dyn Scope,
    call: &str,
    call_path: &str,
    items: &[(&str, &Yaml, String)],
    pool: usize,
) -> Option<Builtin> {
    let mut p = Parse { scope, args: Args::new(items, call, call_path), pool, refused: false };
    let Some(builtin) = Builtin::parse_named(call, &mut p) else {
        let hint = schema::hint(call, BUILTIN_NAMES.iter().copied());
        p.scope
            .at_value(call_path, format!("unknown callable '{call}' (callables: {}){hint}", BUILTIN_NAMES.join(", ")));
        return None;
    };
    let Parse { scope, args, refused, .. } = p;
    if !refused {
        args.finish(scope);
    }
    builtin
}

/// Registers the built-ins: declares each one's module, the enum of their calls (serialised as `{"Pow": {"base": 2,
/// "exp": 10}}` to a worker), the list of their names, and the dispatch to each.
macro_rules! builtins {
    ($($module:ident :: $variant:ident),* $(,)?) => {
        $(
            mod $module;
            pub use $module::$variant;
        )*

        /// A built-in call with its checked arguments.
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub enum Builtin {
            $(
                #[doc = concat!("`", stringify!($variant), "`: see [`", stringify!($variant), "`].")]
                $variant($variant),
            )*
        }

        /// The names of the built-in callables, as task files write them.
        pub const BUILTIN_NAMES: &[&str] = &[$(<$variant as Callable>::NAME),*];

        impl Builtin {
            /// Runs it.
            pub fn run(&self, cx: &RunCx<'_>) -> Result<Value, Exception> {
                match self {
                    $(Self::$variant(b) => b.run(cx),)*
                }
            }

            /// Marks the plan tasks it waits on.
            pub fn awaited(&self, mark: &mut dyn FnMut(usize)) {
                match self {
                    $(Self::$variant(b) => b.awaited(mark),)*
                }
            }

            /// `None` if no built-in is named `name`; else what reading it gave.
            fn parse_named(name: &str, p: &mut Parse<'_, '_>) -> Option<Option<Self>> {
                $(
                    if name == <$variant as Callable>::NAME {
                        return Some(<$variant as Callable>::parse(p).map(Self::$variant));
                    }
                )*
                None
            }
        }
    };
}

builtins! {
    sleep::Sleep,
    spin::Spin,
    pow::Pow,
    is_prime::IsPrime,
    fetch_url::FetchUrl,
    wait_on::WaitOn,
    submit::Submit,
    fail::Fail,
    exit::Exit,
    crash::Crash,
}
