//! Run control: what steers a run once it started (the monitor's keys, signals, the deadlock policy).

use futuretop_engine::FutureId;

/// What to do when a deadlock is detected (`--on-deadlock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDeadlock {
    /// Report it and keep waiting, as Python would.
    #[default]
    Warn,
    /// Report it and end the run with exit code 3.
    Fail,
    /// Report it and break it: the waiter whose wait began last gets a `DeadlockError`.
    Break,
}

/// A request to the runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Cancel a pending future (Python's `cancel()`: pending only).
    Cancel(FutureId),
    /// Kill a running future (an extension).
    Kill(FutureId),
    /// Cancel every pending future of a pool (`shutdown(cancel_futures=True)` for that pool's queue).
    CancelPool(String),
    /// Cancel the items of `map:` task NAME not yet handed to their pool (see bounded
    /// submission in `docs/design.md`), as `cancel()` on each: they end `cancelled`, and
    /// what depends on them is cancelled in turn.
    CancelUnsubmitted(String),
    /// Break a deadlock: interrupt this future's wait with a `DeadlockError`.
    BreakWait(FutureId),
    /// Run plan future NAME (a task, or an item `m[3]`) again, that ended failed,
    /// cancelled or killed: a new attempt; the dependents it had cancelled wait for it
    /// again (`r`).
    Resubmit(String),
    /// A deadlock was detected under `--on-deadlock fail`: end the run with code 3.
    DeadlockFail,
    /// Ctrl-C or a termination signal: stop everything, exit 130.
    Interrupt,
    /// A client of a detached run's control socket attached, left, was refused, or asks
    /// for what follows: the runner logs it (a `client` event).
    Client {
        /// Who: its pid and uid.
        client: String,
        /// What.
        action: crate::events::ClientAction,
        /// The future (`#id`), pool or task it names, or why it was refused.
        target: Option<String>,
    },
}
