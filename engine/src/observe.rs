//! What the engine reports about itself: future ids, observations and the sink they go to.
//!
//! An executor built with a [`Sink`] reports every state change of its futures and every
//! blocking wait a task makes on another future. Without a sink nothing is built or sent:
//! the cost when unused is one `Option` check. A sink must never block (the engine calls
//! it from worker threads, sometimes under a future's lock): the implementation for
//! `crossbeam_channel::Sender` uses `try_send`, so give it an unbounded channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Exception;

/// A future's identity, unique in the process; stable across clones of the handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FutureId(pub u64);

/// Hashes a [`FutureId`] (or a future's `u64` id) with one multiply (Fx-style): ids are
/// unique process-local counters, not attacker input, so SipHash's DoS resistance buys
/// nothing here, and hashing was a large share of `wait`'s cost over many finished
/// futures and of the event bus's cost per event.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    /// Eight bytes a round (names: a pool's, a worker's, hashed for every event a
    /// monitor takes in), the last few with their count.
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by future ids, hashed with [`IdHasher`].
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

impl FutureId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl std::fmt::Display for FutureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// How a future ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It finished with a value.
    Done,
    /// It finished with an exception.
    Exception(Exception),
    /// It was cancelled before it ran.
    Cancelled,
}

/// How a blocking wait on a future ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitOutcome {
    /// The target finished or was cancelled.
    Completed,
    /// The wait's timeout expired first.
    TimedOut,
    /// The waiter was chosen to break a deadlock.
    Interrupted,
    /// The waiter was killed while it waited.
    Killed,
}

/// One thing the engine saw happen.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Observation {
    /// A future was created by `submit` and queued (Python: PENDING).
    Pending {
        /// The future.
        id: FutureId,
        /// The pool's name.
        pool: Arc<str>,
        /// The task's name, as given at submission (or `task-N`).
        name: Arc<str>,
    },
    /// A worker started running the future.
    Running {
        /// The future.
        id: FutureId,
        /// The worker's name (`io-1`).
        worker: Arc<str>,
        /// The worker's process id, for process pools.
        pid: Option<u32>,
    },
    /// The future reached a final state.
    Finished {
        /// The future.
        id: FutureId,
        /// How it ended.
        outcome: Outcome,
    },
    /// A running task began a blocking wait on another future.
    WaitStart {
        /// The waiting task's future.
        waiter: FutureId,
        /// The future it waits on.
        target: FutureId,
        /// The wait's timeout, if any.
        timeout: Option<Duration>,
    },
    /// The wait of `waiter` on `target` ended.
    WaitEnd {
        /// The waiting task's future.
        waiter: FutureId,
        /// The future it waited on.
        target: FutureId,
        /// How the wait ended.
        outcome: WaitOutcome,
    },
    /// A pool started a worker.
    WorkerStarted {
        /// The pool's name.
        pool: Arc<str>,
        /// The worker's name.
        worker: Arc<str>,
        /// Its process id, for process pools.
        pid: Option<u32>,
    },
    /// A worker ended.
    WorkerExited {
        /// The pool's name.
        pool: Arc<str>,
        /// The worker's name.
        worker: Arc<str>,
        /// Its process id, for process pools.
        pid: Option<u32>,
        /// How it ended (`ok`, `exit status 3`, `signal SIGKILL`, `initializer failed`).
        status: String,
    },
    /// What a worker has in use, for pools that know it from elsewhere (a Slurm node:
    /// its allocated CPUs, memory and jobs).
    WorkerLoad {
        /// The pool's name.
        pool: Arc<str>,
        /// The worker (a node).
        worker: Arc<str>,
        /// In words: `2/2 CPUs allocated, 20.1 GiB free, 3 jobs`.
        load: String,
    },
    /// A pool broke: no more work runs on it.
    PoolBroken {
        /// The pool's name.
        pool: Arc<str>,
        /// Why.
        error: String,
    },
    /// A done-callback panicked; the future and the other callbacks were not affected.
    CallbackPanicked {
        /// The future whose callback it was.
        id: FutureId,
        /// The panic's message.
        message: String,
    },
}

/// Where observations go. Implementations must not block.
pub trait Sink: Send + Sync + 'static {
    /// Receives one observation, stamped with the instant it happened.
    fn observe(&self, at: Instant, what: Observation);
}

impl Sink for crossbeam_channel::Sender<(Instant, Observation)> {
    fn observe(&self, at: Instant, what: Observation) {
        // An unbounded channel never refuses; a disconnected one means nobody listens.
        let _ = self.try_send((at, what));
    }
}

/// A shared, optional sink: what executors and futures carry.
pub(crate) type SinkRef = Option<Arc<dyn Sink>>;

/// Sends `what` to `sink` if there is one.
#[inline]
pub(crate) fn emit(sink: &SinkRef, what: impl FnOnce() -> Observation) {
    if let Some(s) = sink {
        s.observe(Instant::now(), what());
    }
}
