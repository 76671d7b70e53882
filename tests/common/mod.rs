//! Helpers shared by the integration tests, in one place: each test binary includes this
//! module and uses what it needs.
#![allow(dead_code)]

pub mod cf;
pub mod procs;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh, empty directory for one test's files, under cargo's temporary directory for
/// tests; `tag` says whose it is.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "t-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// Whether a system component a test needs is installed (`program` answers `args`).
pub fn installed(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether test `test`, which needs `component`, can run. Where the component is missing,
/// the test fails if the environment variable `required_by` is `1` (`.ci/run` installs the
/// component and sets it); otherwise the test is skipped with a one-line message, written
/// straight to the terminal (past the test harness's capture of `eprintln!`).
#[track_caller]
pub fn can_run(test: &str, component: &str, here: bool, required_by: &str) -> bool {
    use std::io::Write;
    if here {
        return true;
    }
    let required = std::env::var(required_by).is_ok_and(|v| v == "1");
    assert!(!required, "{required_by}=1 but {component} is not installed");
    let _ =
        writeln!(std::io::stderr(), "skipped {test}: {component} is not installed (set {required_by}=1 to require it)");
    false
}
