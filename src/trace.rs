//! `futuretop export --chrome-trace RUN.jsonl`: a recorded run in the Trace Event Format that Perfetto and chrome://tracing open (a track per worker, tasks as slices, waits as flows, deadlocks and kills as instants).

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{json, Value};

use crate::events::{Event, EventKind};

/// Microseconds, the format's unit, from run seconds.
fn us(t: f64) -> f64 {
    (t * 1e6).round()
}

/// A future that ran: its track and when it started.
#[derive(Clone, Copy)]
struct Ran {
    pid: usize,
    tid: usize,
    start: f64,
}

/// Writes the trace as it reads the events (memory: a little for each future that ran).
struct Writer<'a, W: Write> {
    out: &'a mut W,
    first: bool,
    written: usize,
    pools: HashMap<String, usize>,
    workers: HashMap<(usize, String), usize>,
    running: HashMap<u64, (Ran, String)>,
    tracks: HashMap<u64, (usize, usize)>,
    waits: HashMap<(u64, u64), (u64, f64, String)>,
    flows: u64,
    last_t: f64,
}

impl<W: Write> Writer<'_, W> {
    fn emit(&mut self, v: &Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        self.written += 1;
        serde_json::to_writer(&mut *self.out, v).map_err(io::Error::other)
    }

    /// The track of `worker` in `pool`, named in the trace the first time it is seen.
    fn track(&mut self, pool: &str, worker: &str) -> io::Result<(usize, usize)> {
        let next = self.pools.len() + 1;
        let pid = *self.pools.entry(pool.to_owned()).or_insert(next);
        if pid == next {
            self.emit(&json!({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": format!("pool {pool}")}}))?;
        }
        let next = self.workers.len() + 1;
        let tid = *self.workers.entry((pid, worker.to_owned())).or_insert(next);
        if tid == next {
            self.emit(&json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": worker}}))?;
        }
        Ok((pid, tid))
    }

    fn end(&mut self, id: u64, t: f64, state: &str, error: Option<String>) -> io::Result<()> {
        let Some((ran, name)) = self.running.remove(&id) else { return Ok(()) };
        let mut args = json!({"id": id, "state": state});
        if let Some(e) = error {
            args["error"] = Value::String(e);
        }
        self.emit(&json!({
            "ph": "X", "cat": "task", "name": name, "pid": ran.pid, "tid": ran.tid,
            "ts": us(ran.start), "dur": us(t) - us(ran.start), "args": args,
        }))
    }

    fn take(&mut self, e: &Event) -> io::Result<()> {
        self.last_t = self.last_t.max(e.t);
        match &e.kind {
            EventKind::Running { task, id, pool, worker, .. } => {
                let (pid, tid) = self.track(pool, worker)?;
                self.tracks.insert(*id, (pid, tid));
                self.running.insert(*id, (Ran { pid, tid, start: e.t }, task.to_string()));
            }
            EventKind::Done { id, .. } => self.end(*id, e.t, "done", None)?,
            EventKind::Exception { id, error, .. } => {
                if error.kind == futuretop_engine::ErrorKind::Killed {
                    if let Some(&(pid, tid)) = self.tracks.get(id) {
                        let v = json!({"ph": "i", "s": "t", "cat": "kill", "name": "killed", "pid": pid, "tid": tid, "ts": us(e.t), "args": {"id": id, "why": error.message}});
                        self.emit(&v)?;
                    }
                }
                self.end(*id, e.t, "failed", Some(format!("{}: {}", error.kind, error.message)))?;
            }
            EventKind::Cancelled { id, reason, .. } => {
                self.end(*id, e.t, "cancelled", reason.as_ref().map(ToString::to_string))?;
            }
            EventKind::Wait { id, on_id, on, .. } => {
                if let Some(&(pid, tid)) = self.tracks.get(id) {
                    self.flows += 1;
                    let flow = self.flows;
                    self.emit(&json!({"ph": "s", "cat": "wait", "name": "waits on", "id": flow, "pid": pid, "tid": tid, "ts": us(e.t)}))?;
                    self.waits.insert((*id, *on_id), (flow, e.t, on.to_string()));
                }
            }
            EventKind::WaitEnd { id, on_id, outcome, .. } => {
                if let (Some((flow, start, on)), Some(&(pid, tid))) =
                    (self.waits.remove(&(*id, *on_id)), self.tracks.get(id))
                {
                    // The wait as a slice inside its task's, and the arrow to what it waited on.
                    self.emit(&json!({
                        "ph": "X", "cat": "wait", "name": format!("waits on {on}"), "pid": pid, "tid": tid,
                        "ts": us(start), "dur": us(e.t) - us(start), "args": {"outcome": outcome},
                    }))?;
                    let target = self.tracks.get(on_id).copied().unwrap_or((pid, tid));
                    self.emit(&json!({"ph": "f", "bp": "e", "cat": "wait", "name": "waits on", "id": flow, "pid": target.0, "tid": target.1, "ts": us(e.t)}))?;
                }
            }
            EventKind::Retry { task, id, attempt, attempts, delay } => {
                // On the failed attempt's track, where it ended; else the run's.
                let (scope, (pid, tid)) = self.tracks.get(id).map_or(("g", (0, 0)), |&t| ("t", t));
                let name = format!("retry {task}: attempt {}/{attempts} in {delay:.1}s", attempt.saturating_add(1));
                self.emit(&json!({"ph": "i", "s": scope, "cat": "retry", "name": name, "pid": pid, "tid": tid, "ts": us(e.t), "args": {"id": id, "attempt": attempt, "attempts": attempts, "delay": delay}}))?;
            }
            EventKind::Resubmit { task, attempt, revived, .. } => {
                let name = format!("resubmit {task}: attempt {attempt}");
                self.emit(&json!({"ph": "i", "s": "g", "cat": "retry", "name": name, "pid": 0, "tid": 0, "ts": us(e.t), "args": {"attempt": attempt, "revived": revived.len()}}))?;
            }
            EventKind::Deadlock { tasks, message, .. } => {
                let cycle = tasks.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(" → ");
                self.emit(&json!({"ph": "i", "s": "g", "cat": "deadlock", "name": format!("deadlock {cycle}"), "pid": 0, "tid": 0, "ts": us(e.t), "args": {"message": message}}))?;
            }
            EventKind::DeadlockResolved { tasks, how } => {
                self.emit(&json!({"ph": "i", "s": "g", "cat": "deadlock", "name": format!("deadlock resolved ({how})"), "pid": 0, "tid": 0, "ts": us(e.t), "args": {"tasks": tasks}}))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Writes the run of `events` to `out` as a Chrome trace (a JSON object with
/// `traceEvents`); returns how many trace events it wrote. Futures still running when the
/// log ends are slices up to its last event, marked `unfinished`.
pub fn chrome_trace(events: impl IntoIterator<Item = Event>, out: &mut impl Write) -> io::Result<usize> {
    out.write_all(b"{\"traceEvents\":[\n")?;
    let mut w = Writer {
        out,
        first: true,
        written: 0,
        pools: HashMap::new(),
        workers: HashMap::new(),
        running: HashMap::new(),
        tracks: HashMap::new(),
        waits: HashMap::new(),
        flows: 0,
        last_t: 0.0,
    };
    w.emit(&json!({"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "run"}}))?;
    for e in events {
        w.take(&e)?;
    }
    let mut open: Vec<u64> = w.running.keys().copied().collect();
    open.sort_unstable();
    let end = w.last_t;
    for id in open {
        w.end(id, end, "unfinished", None)?;
    }
    let written = w.written;
    out.write_all(b"\n],\"displayTimeUnit\":\"ms\"}\n")?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ErrorInfo;

    fn ev(seq: u64, t: f64, kind: EventKind) -> Event {
        Event { seq, t, kind }
    }

    /// The format's required fields: every event has `ph`, `name`, `pid`, `tid` and `ts`
    /// (metadata excepted for `ts`), a complete slice its `dur`, a flow its `id`.
    pub(crate) fn check(trace: &Value) -> Vec<&Value> {
        let events = trace["traceEvents"].as_array().expect("traceEvents");
        for e in events {
            let ph = e["ph"].as_str().expect("ph");
            assert!(e["name"].is_string() && e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
            if ph != "M" {
                assert!(e["ts"].is_number(), "{e}");
            }
            match ph {
                "X" => assert!(e["dur"].as_f64().is_some_and(|d| d >= 0.0), "{e}"),
                "s" | "f" => assert!(e["id"].is_u64(), "{e}"),
                "i" => assert!(matches!(e["s"].as_str(), Some("g" | "p" | "t")), "{e}"),
                "M" => assert!(e["args"]["name"].is_string(), "{e}"),
                other => panic!("unexpected phase {other}: {e}"),
            }
        }
        events.iter().collect()
    }

    #[test]
    fn workers_are_tracks_tasks_slices_waits_flows_and_kills_instants() {
        let running = |seq, t, task: &str, id, worker: &str| {
            ev(
                seq,
                t,
                EventKind::Running { task: task.into(), id, pool: "io".into(), worker: worker.into(), pid: None },
            )
        };
        let events = vec![
            running(1, 0.0, "a", 1, "io-1"),
            running(2, 0.0, "b", 2, "io-2"),
            ev(3, 0.5, EventKind::Wait { task: "a".into(), on: "b".into(), id: 1, on_id: 2, timeout: None }),
            ev(4, 1.0, EventKind::Done { task: "b".into(), id: 2, pool: "io".into(), result: Value::Null }),
            ev(
                5,
                1.0,
                EventKind::WaitEnd {
                    task: "a".into(),
                    on: "b".into(),
                    id: 1,
                    on_id: 2,
                    outcome: futuretop_engine::WaitOutcome::Completed,
                },
            ),
            running(6, 1.5, "c", 3, "io-2"),
            ev(
                7,
                2.0,
                EventKind::Exception {
                    task: "c".into(),
                    id: 3,
                    pool: "io".into(),
                    error: ErrorInfo {
                        kind: futuretop_engine::ErrorKind::Killed,
                        message: "while running on a thread worker".into(),
                    },
                },
            ),
            ev(8, 2.5, EventKind::Done { task: "a".into(), id: 1, pool: "io".into(), result: Value::Null }),
            running(9, 2.6, "d", 4, "io-1"),
            ev(10, 2.7, EventKind::Retry { task: "c".into(), id: 3, attempt: 1, attempts: 2, delay: 0.5 }),
        ];
        let mut out = Vec::new();
        let written = chrome_trace(events, &mut out).unwrap();
        let trace: Value = serde_json::from_slice(&out).expect("valid JSON");
        let all = check(&trace);
        assert_eq!(all.len(), written);
        let named = |ph: &str, name: &str| all.iter().filter(|e| e["ph"] == ph && e["name"] == name).count();
        assert_eq!(named("M", "thread_name"), 2, "one track a worker");
        let slice_a = all.iter().find(|e| e["ph"] == "X" && e["name"] == "a").unwrap();
        assert_eq!(
            (slice_a["ts"].as_f64(), slice_a["dur"].as_f64(), slice_a["tid"].as_u64()),
            (Some(0.0), Some(2.5e6), Some(1))
        );
        let c = all.iter().find(|e| e["ph"] == "X" && e["name"] == "c").unwrap();
        assert_eq!(c["tid"], 2, "c ran on io-2, b's worker");
        assert_eq!(c["args"]["state"], "failed");
        assert_eq!(named("X", "waits on b"), 1);
        let (s, f) = (all.iter().find(|e| e["ph"] == "s").unwrap(), all.iter().find(|e| e["ph"] == "f").unwrap());
        assert_eq!(
            (s["id"].clone(), s["tid"].clone(), f["tid"].clone()),
            (f["id"].clone(), 1.into(), 2.into()),
            "a's track to b's"
        );
        assert_eq!(named("i", "killed"), 1);
        let retry = all.iter().find(|e| e["ph"] == "i" && e["cat"] == "retry").expect("the retry as an instant");
        assert_eq!((retry["name"].as_str(), retry["tid"].as_u64()), (Some("retry c: attempt 2/2 in 0.5s"), Some(2)));
        let d = all.iter().find(|e| e["ph"] == "X" && e["name"] == "d").unwrap();
        assert_eq!(d["args"]["state"], "unfinished", "still running at the end: a slice to the last event");
    }
}
