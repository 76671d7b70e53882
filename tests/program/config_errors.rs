//! Bad task files, through the real binary: each kind of bad input has a fixture in
//! `tests/fixtures/bad/` (hostile ones too big to keep are generated here), and for each
//! one `futuretop validate FILE` and `futuretop run FILE --headless --events LOG` must
//!
//! - exit with code 2 (DESIGN §4: usage or config error),
//! - print every problem as `FILE:LINE:COL: message`, at the exact line and column, with
//!   what was wrong and what was expected (DESIGN §3),
//! - finish fast (hostile input included: an alias bomb, 100,000 nested brackets, a
//!   binary file), never panic, and
//! - start nothing: validation happens before anything runs, so the event log is never
//!   even created.

// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use crate::common::scratch;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The most one refusal may take, however hostile the input (the binary is a debug build).
const FAST: Duration = Duration::from_secs(2);

/// One expected diagnostic: line, column, and fragments its message must contain.
struct Expect {
    line: usize,
    col: usize,
    says: &'static [&'static str],
}

const fn at(line: usize, col: usize, says: &'static [&'static str]) -> Expect {
    Expect { line, col, says }
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary in the crate's directory (so relative paths print as given).
fn futuretop(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_futuretop"))
        .args(args)
        .current_dir(manifest_dir())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (out, started.elapsed())
}

/// Checks one refusal: exit 2, nothing on stdout, no panic, fast, and exactly the expected
/// diagnostics in order, each `file:line:col: message`.
#[track_caller]
fn assert_refused(what: &str, file: &str, out: &Output, took: Duration, expected: &[Expect]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{what}: exit code; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{what}: a panic:\n{stderr}");
    assert!(took < FAST, "{what}: took {took:?}");
    assert!(stdout.trim().is_empty(), "{what}: something on stdout:\n{stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), expected.len(), "{what}: {} diagnostics expected, got:\n{stderr}", expected.len());
    for (line, e) in lines.iter().zip(expected) {
        let prefix = format!("{file}:{}:{}: ", e.line, e.col);
        assert!(line.starts_with(&prefix), "{what}: expected a line starting with {prefix:?}, got {line:?}");
        for s in e.says {
            assert!(line.contains(s), "{what}: {line:?} should say {s:?}");
        }
    }
}

/// `validate FILE` and `run FILE --headless --events LOG` both refuse `file` the same way,
/// and the run never creates its event log.
#[track_caller]
fn check(file: &str, expected: &[Expect]) {
    let (out, took) = futuretop(&["validate", file]);
    assert_refused(&format!("validate {file}"), file, &out, took, expected);
    let dir = scratch("run");
    let log = dir.join("events.jsonl");
    let (out, took) = futuretop(&["run", file, "--headless", "--events", log.to_str().unwrap()]);
    assert_refused(&format!("run {file}"), file, &out, took, expected);
    assert!(!log.exists(), "run {file}: the event log was created, so something started");
    let _ = std::fs::remove_dir_all(dir);
}

fn fixture(name: &str) -> String {
    let path = format!("tests/fixtures/bad/{name}");
    assert!(manifest_dir().join(&path).exists(), "missing fixture {path}");
    path
}

#[test]
fn yaml_syntax_error_names_the_problem_and_the_construct_it_is_in() {
    check(
        &fixture("yaml_syntax.yaml"),
        &[at(
            4,
            6,
            &["not valid YAML", "did not find expected ',' or '}'", "flow mapping that starts at line 3, column 7"],
        )],
    );
}

#[test]
fn unknown_top_level_key_lists_the_keys_and_suggests_one() {
    check(
        &fixture("unknown_top_key.yaml"),
        &[at(
            3,
            1,
            &[
                "unknown key 'pool' in the task file",
                "(expected one of: name, pools, tasks, stall_after)",
                "did you mean 'pools'?",
            ],
        )],
    );
}

#[test]
fn unknown_pool_key_suggests_max_workers() {
    check(
        &fixture("unknown_pool_key.yaml"),
        &[at(
            2,
            23,
            &[
                "unknown key 'max_worker' in pool 'io'",
                "expected one of: kind, max_workers",
                "did you mean 'max_workers'?",
            ],
        )],
    );
}

#[test]
fn wrong_type_says_what_was_found_and_what_was_expected() {
    check(
        &fixture("wrong_type.yaml"),
        &[at(4, 18, &["expected a whole number greater than 0 for max_workers", "found the string 'four'"])],
    );
}

#[test]
fn unknown_pool_lists_the_pools() {
    check(&fixture("unknown_pool.yaml"), &[at(6, 11, &["unknown pool 'gpu' (pools: io, cpu)"])]);
}

#[test]
fn unknown_task_in_depends_on_lists_the_tasks_and_suggests_one() {
    check(
        &fixture("unknown_depends_on.yaml"),
        &[at(8, 25, &["unknown task 'biuld' (tasks: build, test)", "did you mean 'build'?"])],
    );
}

#[test]
fn unknown_task_in_wait_on_lists_the_tasks_and_suggests_one() {
    check(
        &fixture("unknown_wait_on.yaml"),
        &[at(7, 19, &["unknown task 'frist' (tasks: first, waiter)", "did you mean 'first'?"])],
    );
}

#[test]
fn unknown_callable_lists_the_callables_and_suggests_one() {
    check(
        &fixture("unknown_callable.yaml"),
        &[at(3, 11, &["unknown callable 'slep'", "(callables: sleep, spin, pow, is_prime", "did you mean 'sleep'?"])],
    );
}

#[test]
fn bad_argument_value_is_refused_at_the_value() {
    check(
        &fixture("bad_argument.yaml"),
        &[at(4, 19, &["expected a number of seconds for secs", "found the string 'a while'"])],
    );
}

#[test]
fn unknown_argument_lists_the_arguments_and_suggests_one() {
    check(
        &fixture("unknown_argument.yaml"),
        &[at(6, 7, &["unknown argument 'timout' for fetch_url (arguments: url, timeout)", "did you mean 'timeout'?"])],
    );
}

#[test]
fn missing_argument_is_named() {
    check(&fixture("missing_argument.yaml"), &[at(3, 11, &["is_prime needs the argument 'n'"])]);
}

#[test]
fn pow_whose_result_would_be_too_long_is_refused_at_the_exponent() {
    check(
        &fixture("pow_too_large.yaml"),
        &[at(9, 45, &["9223372036854775807 ** 100000 would have about 1896489 digits", "at most 100000 digits"])],
    );
}

#[test]
fn number_beyond_64_bits_is_refused_at_the_number() {
    check(
        &fixture("number_too_large.yaml"),
        &[at(2, 36, &["the number 100000000000000000000000 is too large", "fits in 64 bits"])],
    );
}

#[test]
fn duplicate_task_name_points_at_the_second_and_names_the_first() {
    check(&fixture("duplicate_task.yaml"), &[at(8, 11, &["duplicate task name 'nap' (first defined at line 2)"])]);
}

#[test]
fn duplicate_key_points_at_the_repeated_key() {
    check(&fixture("duplicate_key.yaml"), &[at(5, 5, &["duplicate key 'args'", "each key may appear once"])]);
}

#[test]
fn depends_on_cycle_is_spelled_out() {
    check(&fixture("depends_on_cycle.yaml"), &[at(5, 5, &["depends_on cycle: a -> c -> b -> a"])]);
}

#[test]
fn bad_retry_keys_are_refused_at_their_values() {
    check(
        &fixture("bad_retries.yaml"),
        &[
            at(2, 32, &["retries must be between 0 and 100 (got -1)"]),
            at(7, 14, &["retries must be between 0 and 100 (got 101)"]),
            at(8, 59, &["backoff must be from 1 to 100 (got 0.5)"]),
            at(9, 38, &["retry_delay has no effect: task 'c' has no retries (add `retries: N`)"]),
            at(10, 63, &["expected a number of seconds for retry_delay, found the string 'soon'"]),
        ],
    );
}

#[test]
fn max_workers_zero_is_refused() {
    check(&fixture("max_workers_zero.yaml"), &[at(2, 36, &["max_workers must be greater than 0 (got 0)"])]);
}

#[test]
fn empty_file_and_comments_only_say_what_was_expected() {
    let says: &[&str] = &["the file is empty", "expected a mapping with `pools:` and `tasks:`"];
    check(&fixture("empty.yaml"), &[at(1, 1, says)]);
    check(&fixture("comments_only.yaml"), &[at(1, 1, says)]);
}

#[test]
fn two_documents_point_at_the_second() {
    check(
        &fixture("two_documents.yaml"),
        &[at(5, 1, &["a second YAML document starts here", "expected one task file"])],
    );
}

#[test]
fn missing_file_is_a_config_error() {
    check("tests/fixtures/bad/no-such-file.yaml", &[at(1, 1, &["cannot read the file: no such file"])]);
}

#[test]
fn directory_is_refused() {
    check("tests/fixtures/bad", &[at(1, 1, &["is a directory", "expected a YAML task file"])]);
}

#[test]
fn binary_file_is_refused() {
    check(
        &fixture("binary.png"),
        &[at(1, 1, &["not a text file: invalid UTF-8 at byte 0", "expected a YAML task file"])],
    );
    // Valid UTF-8 with a NUL in it is not text either; the position is the NUL's.
    check(&fixture("control_character.yaml"), &[at(5, 3, &["not a text file: a control character (U+0000)"])]);
}

#[test]
fn alias_bomb_is_refused_fast_at_the_first_alias() {
    check(&fixture("alias_bomb.yaml"), &[at(2, 8, &["aliases", "expand to too many values", "billion laughs"])]);
}

#[test]
fn hundred_thousand_nested_brackets_are_refused_fast_without_overflow() {
    let dir = scratch("nested");
    let cases = [
        // Bare brackets; the 65th opens one level too many.
        ("brackets.yaml", "[".repeat(100_000) + &"]".repeat(100_000), 1, 65),
        // Unclosed, under a key (libyaml alone takes seconds on this: quadratic).
        ("unclosed.yaml", format!("tasks: {}", "[".repeat(100_000)), 1, 72),
        // Flow mappings.
        ("mappings.yaml", "{a: ".repeat(100_000), 1, 4 * 64 + 1),
        // Block sequences, no brackets at all.
        ("dashes.yaml", "- ".repeat(100_000) + "x", 1, 2 * 64 + 1),
    ];
    for (name, text, line, col) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let file = path.to_str().unwrap();
        check(file, &[at(line, col, &["nested more than 64 levels deep", "expected a few levels"])]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exit_and_crash_need_a_process_pool() {
    check(
        &fixture("exit_in_thread_pool.yaml"),
        &[
            at(6, 11, &["'exit' ends the worker process it runs in", "needs a process", "pool 'io' is a thread pool"]),
            at(
                10,
                11,
                &["'crash' ends the worker process it runs in", "needs a process", "pool 'io' is a thread pool"],
            ),
        ],
    );
}

#[test]
fn a_file_with_several_problems_reports_all_of_them_in_file_order() {
    check(
        &fixture("several_problems.yaml"),
        &[
            at(3, 23, &["unknown key 'max_worker' in pool 'io'", "did you mean 'max_workers'?"]),
            at(4, 38, &["max_workers must be greater than 0 (got 0)"]),
            at(5, 1, &["unknown key 'colour' in the task file"]),
            at(8, 11, &["unknown pool 'gpu' (pools: io, cpu)"]),
            at(9, 11, &["unknown callable 'slep'", "did you mean 'sleep'?"]),
            at(13, 11, &["pow needs the argument 'exp'"]),
            at(15, 5, &["depends_on cycle: b -> c -> b"]),
            at(21, 11, &["duplicate task name 'b' (first defined at line 11)"]),
            at(25, 5, &["this task has no `name:`"]),
        ],
    );
}

#[test]
fn every_bad_fixture_is_checked_by_a_test() {
    // A fixture added without a test here would check nothing.
    let source = include_str!("config_errors.rs");
    for entry in std::fs::read_dir(manifest_dir().join("tests/fixtures/bad")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(source.contains(&format!("fixture(\"{name}\")")), "fixture {name} has no test");
    }
}

/// Issue 16: what would certainly fail at run time is refused at validation, with its
/// position: a duration no clock can add, an environment variable name that is empty or
/// holds `=`, NUL bytes in a command, its environment or its directory, and a pool of
/// absurd size (a documented limit).
#[test]
fn what_would_certainly_fail_later_is_refused_at_validation() {
    let dir = scratch("later");
    let path = dir.join("later.yaml");
    std::fs::write(
        &path,
        "pools:\n\
         \x20 io: { kind: thread, max_workers: 1000000 }\n\
         \x20 cpu: { kind: process, max_workers: 100000 }\n\
         tasks:\n\
         \x20 - { name: a, pool: io, call: sleep, args: { secs: 1e300 } }\n\
         \x20 - { name: b, pool: io, command: [\"true\"], env: { \"A=B\": x } }\n\
         \x20 - { name: c, pool: io, command: [\"true\"], env: { \"\": x } }\n\
         \x20 - { name: d, pool: io, command: [\"tr\\0ue\"] }\n\
         \x20 - { name: e, pool: io, command: [\"true\"], env: { A: \"x\\0y\" } }\n\
         \x20 - { name: f, pool: io, command: [\"true\"], cwd: \"/tm\\0p\" }\n\
         \x20 - { name: g, pool: io, command: [\"true\"], timeout: 1e12 }\n",
    )
    .unwrap();
    let file = path.to_str().unwrap();
    check(
        file,
        &[
            at(2, 36, &["max_workers must be at most 4096 for a thread pool (got 1000000)"]),
            at(3, 38, &["max_workers must be at most 1024 for a process pool (got 100000)"]),
            at(5, 53, &["secs must be at most 1000000000 seconds", "(got 1e300)"]),
            at(6, 52, &["environment variable name \"A=B\" is empty or holds '='"]),
            at(7, 52, &["environment variable name \"\" is empty"]),
            at(8, 36, &["a NUL byte in a command's argument"]),
            at(9, 55, &["a NUL byte in the value of A"]),
            at(10, 50, &["a NUL byte in the directory's path"]),
            at(11, 54, &["timeout must be at most 1000000000 seconds"]),
        ],
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// 3,000 problems print the first 100 and how many more there are (they printed 428 KB).
#[test]
fn a_file_with_thousands_of_problems_shows_the_first_hundred() {
    let dir = scratch("thousands");
    let path = dir.join("many.yaml");
    let mut yaml = String::from("tasks:\n");
    for i in 0..3000 {
        yaml.push_str(&format!("  - {{ name: t{i}, pool: nowhere, call: sleep, args: {{ secs: 0 }} }}\n"));
    }
    std::fs::write(&path, yaml).unwrap();
    let (out, _) = futuretop(&["validate", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().filter(|l| l.contains("unknown pool 'nowhere'")).count(), 100, "{stderr}");
    assert!(stderr.trim_end().ends_with("... and 2900 more problems"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_tab_after_a_colon_does_not_lose_the_positions_after_it() {
    // `name:<TAB>a` is valid YAML; every error below it was reported at 1:1 or at the
    // task before.
    check(
        &fixture("tabs_after_colons.yaml"),
        &[at(9, 11, &["unknown pool 'gpu' (pools: io)"]), at(11, 19, &["secs must be 0 or more"])],
    );
}

#[test]
fn an_item_of_a_long_map_list_is_placed_at_its_own_column() {
    // 300 whole numbers: the list is read by the guard pass, not by serde_yaml, and an
    // item's error is still placed at the item.
    check(
        &fixture("long_map_column.yaml"),
        &[at(4, 769, &["secs must be 0 or more seconds (got -1)"]), at(5, 65, &["unknown task 'nope'"])],
    );
}
