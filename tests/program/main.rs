//! The program's tests: the real binary run on task files, its event log, its errors, its processes.
//!
//! One test binary for these files (linking dominates `cargo test` on 2 cores).

#[path = "../common/mod.rs"]
mod common;

mod backpressure;
mod cli;
mod command_orphans;
mod config_errors;
mod deadlock_e2e;
mod deadlock_props;
mod detach;
mod event_log;
mod process_orphans;
mod python_compare;
mod retries;
mod timeouts;
