//! The engine's tests: CPython's own test cases ported (`cf_*`, `observe`), the process and Slurm pools, and the fuzz corpus replayed.
//!
//! One test binary for these files (linking dominates `cargo test` on 2 cores).

#[path = "../common/mod.rs"]
mod common;

mod cf_as_completed;
mod cf_executor;
mod cf_future;
mod cf_init;
mod cf_shutdown;
mod cf_thread_pool;
mod cf_wait;
mod fuzz_corpus;
mod observe;
mod process_pool;
mod slurm;
