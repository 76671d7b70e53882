//! A subscriber that falls behind holds the run back: the runner hands its pools nothing
//! more while the slowest subscriber has [`SUBSCRIBER_BACKLOG`] events still to take, so a
//! slow reader costs time, not memory; and nothing is lost once it reads on.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use futuretop::events::{EventKind, SUBSCRIBER_BACKLOG};
use futuretop::runner::{start, RunOptions, BUS_BACKLOG};

/// Upper bound for anything that should happen soon; a passing test never waits this long.
const DEADLINE: Duration = Duration::from_mins(1);

#[test]
fn a_subscriber_that_falls_behind_holds_the_pools_back_and_loses_nothing() {
    let n = 200_000;
    let yaml = format!(
        "pools:\n  t: {{ kind: thread, max_workers: 2 }}\n\
         tasks:\n  - {{ name: p, pool: t, call: pow, args: {{ exp: 2 }}, map: {{ base: {{ range: {n} }} }} }}\n"
    );
    let plan = futuretop::config::load_str_offline("t.yaml", "t", &yaml).expect("a valid file");
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = start(plan, &RunOptions::default(), vec![tx]).expect("the run starts");
    // Not reading: the backlog fills up to the bound, then stops growing (the run has
    // 600,000 events and more to give).
    let deadline = Instant::now() + DEADLINE;
    while rx.len() < SUBSCRIBER_BACKLOG {
        assert!(Instant::now() < deadline, "the backlog never reached {SUBSCRIBER_BACKLOG}: {}", rx.len());
        std::thread::sleep(Duration::from_millis(5));
    }
    let (mut held, mut since) = (rx.len(), Instant::now());
    while since.elapsed() < Duration::from_millis(300) {
        assert!(Instant::now() < deadline, "the backlog kept growing: {}", rx.len());
        std::thread::sleep(Duration::from_millis(10));
        if rx.len() != held {
            (held, since) = (rx.len(), Instant::now());
        }
    }
    // What is past the bound: what already waited for the bus when the runner stopped
    // (up to BUS_BACKLOG messages: a slow bus, on a busy machine), the futures already
    // handed to the pools (a window of 72), and the bus's look at the backlog once every
    // 256 messages. Without the bound it holds all 600,000.
    let bound = SUBSCRIBER_BACKLOG + BUS_BACKLOG + 2_000;
    assert!(held < bound, "a subscriber that does not read holds {held} events (bound {bound})");
    // Reading on: the run goes on to its end, every future done once.
    let mut done = 0;
    loop {
        let e = rx.recv_timeout(DEADLINE).expect("the run goes on once the subscriber reads");
        match &e.kind {
            EventKind::Done { .. } => done += 1,
            EventKind::RunFinished { counts, exit_code } => {
                assert_eq!(
                    (counts.done, counts.exception + counts.cancelled + counts.unfinished, *exit_code),
                    (n, 0, 0)
                );
                break;
            }
            _ => {}
        }
    }
    assert_eq!(done, n);
    handle.join();
}
