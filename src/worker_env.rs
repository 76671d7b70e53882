//! What futuretop sets in its workers' environment for its own sake (the allocator's settings), and keeps out of a command's.

use futuretop_engine::ProcessPoolBuilder;

/// Environment a worker is started with for its own sake, unless the user set the same
/// variable; only with the `mimalloc` feature (the workers of a program built without it
/// may not use mimalloc at all). Never passed on to a command: see [`command_env`].
///
/// - `MIMALLOC_ARENA_RESERVE=4M`: a worker is small, and mimalloc's default 1 GiB arena
///   reservation cost its start-up 0.2-0.4 ms (a third of it).
/// - `MIMALLOC_ALLOW_THP=0`: mimalloc asks for transparent huge pages on its arena, so a
///   worker's first allocation faulted in a 2 MiB page and zeroed it: about 0.2 ms of the
///   1.3-1.6 ms its start took. mimalloc then turns THP off for the whole process
///   (`PR_SET_THP_DISABLE`, which commands would inherit), so the worker turns it back on
///   once started ([`restore_thp`]); the parent adds it only when THP is on for itself.
pub const WORKER_ONLY_ENV: &[(&str, &str)] =
    if cfg!(feature = "mimalloc") { &[("MIMALLOC_ARENA_RESERVE", "4M"), (THP_ENV, "0")] } else { &[] };

/// mimalloc's switch for transparent huge pages (see [`WORKER_ONLY_ENV`]).
const THP_ENV: &str = "MIMALLOC_ALLOW_THP";

/// The variables of [`WORKER_ONLY_ENV`] to give a worker started from this process: those
/// the user has not set, and `MIMALLOC_ALLOW_THP` only while THP is on here (else the
/// worker inherits it off and must leave it so).
pub fn worker_only_env() -> impl Iterator<Item = (&'static str, &'static str)> {
    WORKER_ONLY_ENV.iter().copied().filter(|&(name, _)| {
        std::env::var_os(name).is_none() && (name != THP_ENV || nix::sys::prctl::get_thp_disable() == Ok(false))
    })
}

/// Call first thing in a process-pool worker. Turns transparent huge pages back on in a worker whose parent had mimalloc turn them off
/// for its start-up ([`WORKER_ONLY_ENV`]), so that the processes it starts get the
/// system's default. mimalloc, already initialised, keeps not asking for them (where THP
/// is `always` rather than `madvise`, a later fault in an untouched 2 MiB range of the
/// worker's arena may still get a huge page, as in any process there).
pub fn restore_thp() {
    if added_by_parent().iter().any(|n| n == THP_ENV) {
        let _ = nix::sys::prctl::set_thp_disable(false);
    }
}

/// Names the variables of [`WORKER_ONLY_ENV`] that the parent added (comma-separated).
pub const ADDED_ENV: &str = "FUTURETOP_ADDED_ENV";

/// The variables [`ADDED_ENV`] names in this process's environment (none outside a worker).
fn added_by_parent() -> Vec<String> {
    let added = std::env::var_os(ADDED_ENV).unwrap_or_default();
    added.to_string_lossy().split(',').filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// Leaves out of a command's environment what futuretop added to this process's for
/// itself: the variables named by [`ADDED_ENV`], that list, and the parent's pid.
pub fn command_env(cmd: &mut std::process::Command) {
    for name in added_by_parent() {
        cmd.env_remove(name);
    }
    cmd.env_remove(ADDED_ENV);
    cmd.env_remove(futuretop_engine::executor::worker::PARENT_ENV);
}

/// `builder` with [`WORKER_ONLY_ENV`]'s variables for every worker (those this process
/// should add: see [`worker_only_env`]), and [`ADDED_ENV`] naming them.
pub fn for_workers(mut builder: ProcessPoolBuilder) -> ProcessPoolBuilder {
    let mut added = Vec::new();
    for (name, value) in worker_only_env() {
        builder = builder.worker_env(name, value);
        added.push(name);
    }
    if !added.is_empty() {
        builder = builder.worker_env(ADDED_ENV, added.join(","));
    }
    builder
}
