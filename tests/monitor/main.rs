//! The monitor's tests: reducer unit tests (`tui_state`), `TestBackend` snapshots (`tui_snapshots`), and the real binary in tmux (`tui_e2e`).
//!
//! One test binary for these files (linking dominates `cargo test` on 2 cores).

#[path = "../common/mod.rs"]
mod common;

mod tui_e2e;
mod tui_snapshots;
mod tui_state;
