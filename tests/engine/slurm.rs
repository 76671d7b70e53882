#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

//! The Slurm pool against a real one-node Slurm cluster on this machine (issue 7).
//!
//! `.ci/run` starts the cluster with `scripts/slurm-up.sh` and sets
//! `FUTURETOP_SLURM_TESTS=1`, which makes these tests required. Without it (a developer
//! machine without Slurm) they say so and skip. The scenarios share one cluster, so they
//! run in one test, in order; the time-limit job runs beside them (Slurm checks limits
//! only every half minute or so), and stopping the controller comes last.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futuretop::builtins::{self, Builtin};
use futuretop::config::CommandPlan;
use futuretop::tasks::BUILTIN_CALL;
use futuretop::tasks::COMMAND_CALL;
use futuretop_engine::Exception;
use futuretop_engine::FutureError;
use futuretop_engine::FutureState;
use futuretop_engine::ProcessCall;
use futuretop_engine::SlurmPool;
use serde_json::{json, Value};

fn cluster_up() -> bool {
    Command::new("sinfo").arg("-h").output().is_ok_and(|o| o.status.success())
}

fn pool(dir: &std::path::Path) -> SlurmPool {
    SlurmPool::builder()
        .program(env!("CARGO_BIN_EXE_futuretop"))
        .dir(dir)
        .poll_interval(Duration::from_millis(200))
        .build()
        .expect("the Slurm pool starts")
}

fn builtin(b: &Builtin) -> ProcessCall {
    ProcessCall::new(BUILTIN_CALL, serde_json::to_value(b).unwrap())
}

fn command(argv: &[&str]) -> ProcessCall {
    let c =
        CommandPlan { argv: argv.iter().map(|s| (*s).to_owned()).collect(), env: Vec::new(), cwd: None, timeout: None };
    ProcessCall::new(COMMAND_CALL, serde_json::to_value(c).unwrap())
}

#[track_caller]
fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `NAME STATE` for every job Slurm lists.
fn squeue_jobs() -> String {
    String::from_utf8_lossy(&Command::new("squeue").args(["-h", "-o", "%j %T"]).output().unwrap().stdout).into_owned()
}

/// Cancels this test's jobs when dropped, so that a failed assertion does not leave
/// pools waiting on ten-minute jobs (dropping a pool waits for its jobs, as Python's
/// `with` block does).
struct CancelJobsOnDrop;

impl Drop for CancelJobsOnDrop {
    fn drop(&mut self) {
        for name in ["too-long", "prime", "filler", "queued", "orphan"] {
            let _ = Command::new("scancel").args(["--name", name]).status();
        }
    }
}

/// A directory the cluster's node shares with this process (the system's temporary
/// directory, which the one-node cluster of `scripts/slurm-up.sh` can read).
fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("futuretop-slurm-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Kill of a running job: scancel, and the future ends Killed; the first one is stopped
/// for its time limit instead (a task's `timeout:`): scancel, and `TimeoutError`.
fn kill_fillers(fillers: &[futuretop_engine::Future<serde_json::Value>]) {
    for (k, f) in fillers.iter().enumerate() {
        // The node has room for the fillers once the time-limit job is gone; kill each
        // as it runs.
        wait_until("the filler to run", Duration::from_mins(3), || f.running() || f.done());
        if k == 0 {
            assert!(f.time_out(Duration::from_secs(7)), "a running job can be timed out");
            match f.result(Some(Duration::from_mins(1))) {
                Err(FutureError::Failed(Exception::Timeout(t))) => {
                    assert_eq!(t.limit, Some(Duration::from_secs(7)));
                }
                other => panic!("expected TimeoutError, got {other:?}"),
            }
            continue;
        }
        assert!(f.kill(), "a running job can be killed");
        match f.result(Some(Duration::from_mins(1))) {
            Err(FutureError::Failed(Exception::Killed(m))) => assert!(m.contains("cancelled on request"), "{m}"),
            other => panic!("expected Killed, got {other:?}"),
        }
    }
}

#[test]
fn slurm_pool_against_a_real_cluster() {
    let required = std::env::var("FUTURETOP_SLURM_TESTS").is_ok_and(|v| v == "1");
    if !cluster_up() {
        assert!(!required, "FUTURETOP_SLURM_TESTS=1 but no Slurm cluster answers (run scripts/slurm-up.sh)");
        eprintln!("skipped: no Slurm cluster here (scripts/slurm-up.sh starts one)");
        return;
    }
    let dir = tempdir("main");

    // A job that outlives its time limit, beside the rest.
    let limited = SlurmPool::builder()
        .program(env!("CARGO_BIN_EXE_futuretop"))
        .dir(&dir)
        .time_limit_secs(2)
        .poll_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let too_long =
        limited.submit_named(Some("too-long"), builtin(&Builtin::Sleep(builtins::Sleep { secs: 600.0 }))).unwrap();

    let p = pool(&dir);
    let _cancel_jobs_on_drop = CancelJobsOnDrop;
    // 1. A batch runs to completion with the right results (Python: True, True, False).
    let ns = [112_272_535_095_293_u64, 112_582_705_942_171, 1_099_726_899_285_419];
    let primes: Vec<_> = ns
        .iter()
        .map(|&n| p.submit_named(Some("prime"), builtin(&Builtin::IsPrime(builtins::IsPrime { n }))).unwrap())
        .collect();
    let got: Vec<Value> = primes.iter().map(|f| f.result(Some(Duration::from_mins(2))).unwrap()).collect();
    assert_eq!(got, vec![json!(true), json!(true), json!(false)]);
    let echo = p.submit(command(&["sh", "-c", "echo hello from job $SLURM_JOB_ID"])).unwrap();
    let out = echo.result(Some(Duration::from_mins(2))).unwrap();
    assert!(out.as_str().unwrap_or("").starts_with("hello from job "), "{out}");

    // 2. A failing job ends in exception with its exit code.
    let fails = p.submit(command(&["sh", "-c", "echo 'bad input' >&2; exit 4"])).unwrap();
    match fails.result(Some(Duration::from_mins(2))) {
        Err(FutureError::Failed(Exception::CommandFailed(m))) => {
            assert!(m.contains("exited with status 4") && m.contains("bad input"), "{m}");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }

    // 3. Cancel of a queued job: fill the node (one CPU is taken by the time-limit job),
    //    queue one more, cancel it: it leaves Slurm's queue and ends cancelled.
    let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let fillers: Vec<_> = (0..cpus)
        // One per CPU.
        .map(|_| p.submit_named(Some("filler"), builtin(&Builtin::Sleep(builtins::Sleep { secs: 600.0 }))).unwrap())
        .collect();
    wait_until("a filler to run", Duration::from_mins(1), || fillers.iter().any(futuretop_engine::Future::running));
    // Submitted together, the fillers went as one job array: ARRAY_0, ARRAY_1, ...
    let ids = String::from_utf8_lossy(
        &Command::new("squeue").args(["-h", "-r", "-n", "filler", "-o", "%i"]).output().unwrap().stdout,
    )
    .into_owned();
    let arrays: std::collections::HashSet<&str> = ids.lines().filter_map(|l| l.split('_').next()).collect();
    assert_eq!(ids.lines().count(), cpus, "{ids}");
    assert_eq!(arrays.len(), 1, "one sbatch for the fillers: {ids}");
    let queued = p.submit_named(Some("queued"), builtin(&Builtin::Sleep(builtins::Sleep { secs: 1.0 }))).unwrap();
    wait_until("the extra job to be queued in Slurm", Duration::from_secs(30), || {
        squeue_jobs().lines().any(|l| l == "queued PENDING")
    });
    assert_eq!(queued.state(), FutureState::Pending, "Slurm queues it: the future is pending");
    assert!(queued.cancel());
    assert!(matches!(queued.result(Some(Duration::ZERO)), Err(FutureError::Cancelled(_))));
    wait_until("scancel to take it out of Slurm's queue", Duration::from_secs(30), || {
        !squeue_jobs().lines().any(|l| l == "queued PENDING")
    });

    // 4. Kill and time-out of running jobs.
    kill_fillers(&fillers);

    // 5. The job that exceeds its time limit says so.
    match too_long.result(Some(Duration::from_mins(4))) {
        Err(FutureError::Failed(Exception::CommandFailed(m))) => assert!(m.contains("time limit"), "{m}"),
        other => panic!("expected a time-limit failure, got {other:?}"),
    }
    drop(limited);

    // 6. The controller stopped mid-run: a clear error, not a hang. Then bring it back.
    let p2 = SlurmPool::builder()
        .program(env!("CARGO_BIN_EXE_futuretop"))
        .dir(&dir)
        .poll_interval(Duration::from_millis(200))
        .controller_grace(Duration::from_secs(3))
        .build()
        .unwrap();
    let _cancel_orphan_on_drop = CancelJobsOnDrop;
    let orphan = p2.submit_named(Some("orphan"), builtin(&Builtin::Sleep(builtins::Sleep { secs: 600.0 }))).unwrap();
    wait_until("the job to run", Duration::from_mins(1), || orphan.running());
    let _ = Command::new("pkill").args(["-x", "slurmctld"]).status();
    let outcome = orphan.result(Some(Duration::from_secs(90)));
    // Let the old controller finish exiting before starting a new one.
    wait_until("slurmctld to exit", Duration::from_secs(30), || {
        !Command::new("pgrep").args(["-x", "slurmctld"]).status().is_ok_and(|s| s.success())
    });
    let up = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/slurm-up.sh")).status();
    match outcome {
        Err(FutureError::Failed(Exception::Broken(b))) => {
            assert!(b.reason.contains("controller stopped answering"), "{}", b.reason);
            // A broken Slurm pool is not a broken process pool.
            assert_eq!(b.type_name(), "BrokenSlurmPool");
        }
        other => panic!("expected a broken pool, got {other:?}"),
    }
    assert!(up.is_ok_and(|s| s.success()), "the cluster comes back");
    // The job outlived its controller; it is of no use now.
    let _ = Command::new("scancel").args(["--name", "orphan"]).status();
    drop(p2);
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}
