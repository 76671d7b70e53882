//! The fuzzers' seed corpora and every input they ever found a fault with, replayed on
//! each `cargo test` (the fuzzers themselves need a nightly toolchain; see
//! docs/reliability.md): the task-file loader, the process-pool protocol decoder and the
//! event-log reader (with the models replay feeds) must answer each with a value or a
//! clean error, never a panic or a hang.
//!
//! `fuzz/corpus/<target>/` holds the seeds (the bundled scenarios, the example file, the
//! bad-input fixtures, one frame of each protocol message, the logs of the bundled
//! scenarios, cut, damaged and newer ones); `fuzz/regressions/<target>/`
//! holds what fuzzing found, kept after the fix.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futuretop_engine::executor::protocol::{read_frame, ToParent, ToWorker};

/// Far more than any input needs in a debug build; a hang fails the test here.
const PER_INPUT: Duration = Duration::from_secs(20);

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir).join(target)).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".keep"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_task_file_input_gives_a_plan_or_placed_errors() {
    let files = inputs("task_file");
    assert!(files.len() >= 30, "the seed corpus is missing: {} files", files.len());
    for path in files {
        let bytes = std::fs::read(&path).expect("read a corpus file");
        let Ok(text) = std::str::from_utf8(&bytes) else { continue };
        let start = Instant::now();
        match futuretop::config::load_str_offline("fuzz.yaml", "fuzz", text) {
            Ok(plan) => assert!((0..plan.len()).all(|i| !plan.name_of(i).is_empty()), "{}", path.display()),
            Err(errors) => {
                let shown = errors.to_string();
                assert!(shown.starts_with("fuzz.yaml:"), "{}: an error without its place: {shown}", path.display());
            }
        }
        assert!(start.elapsed() < PER_INPUT, "{} took {:?}", path.display(), start.elapsed());
    }
}

#[test]
fn every_protocol_input_decodes_or_fails_cleanly() {
    let files = inputs("protocol");
    assert!(files.len() >= 6, "the seed corpus is missing: {} files", files.len());
    let mut decoded = 0;
    for path in files {
        let bytes = std::fs::read(&path).expect("read a corpus file");
        let mut from_worker = bytes.as_slice();
        while let Ok(Some(_)) = read_frame::<ToParent>(&mut from_worker) {
            decoded += 1;
        }
        let mut from_parent = bytes.as_slice();
        while let Ok(Some(_)) = read_frame::<ToWorker>(&mut from_parent) {
            decoded += 1;
        }
    }
    // The seeds hold one frame of each message: they must decode.
    assert!(decoded >= 13, "only {decoded} frames of the seeds decoded");
}

#[test]
fn every_event_log_input_replays_or_fails_cleanly() {
    use futuretop::model::{Keep, RunModel};
    let files = inputs("event_log");
    assert!(files.len() >= 10, "the seed corpus is missing: {} files", files.len());
    let (mut events, mut finished) = (0, 0);
    for path in files {
        let bytes = std::fs::read(&path).expect("read a corpus file");
        let start = Instant::now();
        let mut monitor = RunModel::new(Keep::All);
        let mut headless = RunModel::new(Keep::Unfinished);
        for event in futuretop::events::LogReader::from_reader(&path, std::io::Cursor::new(bytes)).flatten() {
            events += 1;
            finished += usize::from(matches!(event.kind, futuretop::events::EventKind::RunFinished { .. }));
            monitor.apply(&event);
            headless.apply(&event);
        }
        assert!(!monitor.summary(0).is_empty() && !headless.summary(0).is_empty());
        for row in &monitor.rows {
            let _ = row.timeline();
        }
        assert!(start.elapsed() < PER_INPUT, "{} took {:?}", path.display(), start.elapsed());
    }
    // The seeds are mostly whole logs of real runs: they must read.
    assert!(events >= 250 && finished >= 6, "only {events} events and {finished} run_finished read");
}

#[test]
fn every_client_input_decodes_or_fails_cleanly() {
    use futuretop::attach::{read_frame, ToClient, ToRun};
    let files = inputs("client");
    assert!(files.len() >= 4, "the seed corpus is missing: {} files", files.len());
    let (mut requests, mut answers) = (0, 0);
    for path in files {
        let bytes = std::fs::read(&path).expect("read a corpus file");
        let mut from_client = bytes.as_slice();
        while let Ok(Some(_)) = read_frame::<ToRun>(&mut from_client) {
            requests += 1;
        }
        let mut from_run = bytes.as_slice();
        while let Ok(Some(_)) = read_frame::<ToClient>(&mut from_run) {
            answers += 1;
        }
    }
    // The seeds hold one frame of each message: they must decode.
    assert!(requests >= 8 && answers >= 2, "only {requests} requests and {answers} answers decoded");
}
