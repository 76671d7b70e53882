//! The parent ↔ worker-process protocol: versioned, length-prefixed JSON frames over the worker's stdin and stdout.
//!
//! A frame is a 4-byte little-endian length, then that many bytes of one JSON [`ToWorker`]
//! or [`ToParent`] message. The worker's first frame is [`ToParent::Hello`] with
//! [`PROTOCOL_VERSION`]; the parent refuses a worker that speaks another version.
//!
//! Why JSON: arguments and results are `serde_json::Value`s already (they come from YAML
//! and go to the event log), so JSON needs no second data model, and a frame can be read
//! by a person when something goes wrong. Measured on this 2-core machine, encoding plus
//! decoding a typical call frame costs well under a microsecond, against roughly 20–40 µs
//! for the pipe round trip itself (two writes, two reads, two wake-ups), so a binary
//! encoding would not change the per-task cost measurably (see `docs/performance.md`).
//!
//! Public only as far as its fuzzer and the program's control socket need (the messages,
//! and the framing, with a limit of the caller's): a program uses the process pool, not
//! the protocol.
//!
//! Frames larger than [`MAX_FRAME`] are refused: a corrupt length can never make the
//! reader allocate without bound. A decoder error fails the pool cleanly, never panics.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol version; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 4;

/// The largest frame accepted (256 MiB).
pub const MAX_FRAME: u32 = 256 * 1024 * 1024;

/// One call to run: a registered callable's name and its arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallMsg {
    /// The parent's id for this call (the future's id).
    pub id: u64,
    /// The callable's registered name.
    pub name: String,
    /// Its arguments, as the JSON text they came in: decoded by the worker straight into
    /// the callable's own types (a built-in's), or into a `Value` for a registered one.
    pub args: Box<serde_json::value::RawValue>,
    /// The task's name: the prefix of the futures the call submits (`<task>/<call>`).
    /// Optional on the wire (an older parent sends none), so the version is unchanged.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task: String,
}

/// One item's arguments in a [`ToWorker::Chunk`], as the JSON text they came in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawArgs(pub Box<serde_json::value::RawValue>);

impl PartialEq for RawArgs {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

/// [`ToWorker::Run`] as the parent writes it: the same frame, borrowing each call's name
/// and arguments instead of copying them.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename = "run")]
pub(crate) struct RunRef<'a> {
    /// The calls.
    pub calls: Vec<CallRef<'a>>,
    /// See [`ToWorker::Run`].
    #[serde(skip_serializing_if = "is_false")]
    pub ahead: bool,
}

/// [`ToWorker::Chunk`] as the parent writes it, borrowing the items' arguments.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename = "chunk")]
pub(crate) struct ChunkRef<'a> {
    /// See [`ToWorker::Chunk`].
    pub id: u64,
    /// See [`ToWorker::Chunk`].
    pub name: &'a str,
    /// See [`ToWorker::Chunk`].
    #[serde(skip_serializing_if = "str::is_empty")]
    pub task: &'a str,
    /// See [`ToWorker::Chunk`]: the list, encoded.
    pub items: &'a serde_json::value::RawValue,
    /// See [`ToWorker::Run`].
    #[serde(skip_serializing_if = "is_false")]
    pub ahead: bool,
}

/// A [`CallMsg`] that borrows its fields.
#[derive(Debug, Serialize)]
pub(crate) struct CallRef<'a> {
    /// See [`CallMsg::id`].
    pub id: u64,
    /// See [`CallMsg::name`].
    pub name: &'a str,
    /// See [`CallMsg::args`].
    pub args: &'a Value,
    /// See [`CallMsg::task`].
    #[serde(skip_serializing_if = "str::is_empty")]
    pub task: &'a str,
}

/// One call's end in a [`ToParent::Results`] frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallResult {
    /// The call's id.
    pub id: u64,
    /// Its value or error.
    pub result: Result<Value, WireError>,
}

impl PartialEq for CallMsg {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.name == other.name && self.args.get() == other.args.get() && self.task == other.task
    }
}

/// A [`ToParent::Finished`] frame written from a borrowed result (no copy of the value).
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename = "finished")]
pub(crate) struct FinishedRef<'a> {
    /// The call's id.
    pub id: u64,
    /// Its value or error.
    pub result: &'a Result<Value, WireError>,
}

/// A [`ToParent::Results`] frame written from borrowed results.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename = "results")]
pub(crate) struct ResultsRef<'a> {
    /// The results.
    pub results: &'a [CallResult],
}

/// An error as it crosses the pipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// `TaskError`, `TimeoutError`, `Killed`, ...
    pub kind: crate::error::ErrorKind,
    /// The message.
    pub message: String,
}

/// Parent → worker.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToWorker {
    /// Run the initializer, if any, then these calls in order (one for `submit`, a chunk for `map`).
    Run {
        /// The calls.
        calls: Vec<CallMsg>,
        /// Sent ahead of the end of the calls before them: the parent holds them pending
        /// until the worker says [`ToParent::Started`] (since version 4; a call sent to an
        /// idle worker is marked running when sent, and gets no `started`).
        #[serde(default, skip_serializing_if = "is_false")]
        ahead: bool,
    },
    /// Run one callable on each of several items' arguments, in order, as one call
    /// (a chunk of `map(..., chunksize=n)`, Python's `_process_chunk`): one
    /// [`ToParent::Finished`] answers it, with the list of the results, or the first
    /// item's error, which ends the chunk there (since version 3).
    Chunk {
        /// The parent's id for the chunk (its future's id).
        id: u64,
        /// The callable's registered name.
        name: String,
        /// As [`CallMsg::task`].
        #[serde(default, skip_serializing_if = "String::is_empty")]
        task: String,
        /// Each item's arguments, as JSON text.
        items: Vec<RawArgs>,
        /// As [`ToWorker::Run`]'s.
        #[serde(default, skip_serializing_if = "is_false")]
        ahead: bool,
    },
    /// Do not run this call, sent earlier, if it has not started (since version 4): the
    /// worker answers [`ToParent::Skipped`] if it dropped it, and nothing if it had
    /// started it (its [`ToParent::Started`] came first). Read while a call runs.
    Skip {
        /// The call's id.
        id: u64,
    },
    /// Kill this call if it is the one running (since version 4): the worker kills its
    /// commands' process groups and itself, and the parent sees its end. A call that has
    /// ended is left alone: with calls sent ahead, the parent's "running" may be a call
    /// behind, and a signal from the parent would kill the one after it.
    Kill {
        /// The call's id.
        id: u64,
    },
    /// The answer to a [`ToParent::Request`].
    Reply {
        /// The request's number.
        req: u64,
        /// The answer, or the error the worker's task should raise.
        result: Result<Value, WireError>,
    },
    /// Exit cleanly.
    Exit,
}

/// Worker → parent.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToParent {
    /// The first frame.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// The worker's process id.
        pid: u32,
    },
    /// The initializer failed: the pool is broken.
    InitFailed {
        /// Why.
        error: WireError,
    },
    /// A call started: sent before each call, in the frame of the results before it
    /// (since version 4). Until then a call sent ahead of others is still pending in the
    /// parent, where it can be cancelled ([`ToWorker::Skip`]).
    Started {
        /// The call's id.
        id: u64,
    },
    /// A call sent earlier was dropped on [`ToWorker::Skip`] before it started: it never
    /// runs in this worker (since version 4).
    Skipped {
        /// The call's id.
        id: u64,
    },
    /// A call ended.
    Finished {
        /// The call's id.
        id: u64,
        /// Its value or error.
        result: Result<Value, WireError>,
    },
    /// Several calls ended (a `map` chunk's, in order): one frame for all (since version 2).
    Results {
        /// Each call's id and value or error.
        results: Vec<CallResult>,
    },
    /// A task asks the parent for something (wait on another future, submit a call).
    Request {
        /// The call making the request.
        id: u64,
        /// A number the reply carries.
        req: u64,
        /// What it asks.
        body: Value,
    },
    /// A command the task started has its own process group: kill it with the worker.
    Group {
        /// The call.
        id: u64,
        /// The process group id.
        pgid: i32,
    },
    /// A line of a command's output.
    Output {
        /// The call.
        id: u64,
        /// `stdout` or `stderr`.
        stream: crate::status::Stream,
        /// The line.
        line: String,
        /// Not 0: lines the command printed here that are not sent (too many a second),
        /// and `line` says so in words. Optional on the wire (a worker before it sends
        /// none), so the version is unchanged.
        #[serde(default, skip_serializing_if = "is_zero")]
        dropped: u64,
    },
}

/// Every field of every message, read in one pass and then sorted into [`ToWorker`] or
/// [`ToParent`] by its `op`. (serde's derived decoding of an internally tagged enum
/// first copies the whole frame into a generic tree to find the tag, then decodes that
/// tree: for a `map` chunk of 100 calls, or a result a call, that doubled the
/// decoder's work.) The wire format is the tagged one all the same.
#[derive(Deserialize)]
struct Flat {
    op: String,
    version: Option<u32>,
    pid: Option<u32>,
    error: Option<WireError>,
    id: Option<u64>,
    result: Option<Result<Value, WireError>>,
    req: Option<u64>,
    body: Option<Value>,
    pgid: Option<i32>,
    stream: Option<crate::status::Stream>,
    line: Option<String>,
    dropped: Option<u64>,
    calls: Option<Vec<CallMsg>>,
    results: Option<Vec<CallResult>>,
    name: Option<String>,
    task: Option<String>,
    items: Option<Vec<RawArgs>>,
    ahead: Option<bool>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
const fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
const fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `Some(v)` or the error serde gives a missing field.
fn need<T, E: serde::de::Error>(v: Option<T>, field: &'static str) -> Result<T, E> {
    v.ok_or_else(|| E::missing_field(field))
}

impl<'de> Deserialize<'de> for ToWorker {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = Flat::deserialize(d)?;
        match f.op.as_str() {
            "run" => Ok(Self::Run { calls: need(f.calls, "calls")?, ahead: f.ahead.unwrap_or(false) }),
            "chunk" => Ok(Self::Chunk {
                id: need(f.id, "id")?,
                name: need(f.name, "name")?,
                task: f.task.unwrap_or_default(),
                items: need(f.items, "items")?,
                ahead: f.ahead.unwrap_or(false),
            }),
            "skip" => Ok(Self::Skip { id: need(f.id, "id")? }),
            "kill" => Ok(Self::Kill { id: need(f.id, "id")? }),
            "reply" => Ok(Self::Reply { req: need(f.req, "req")?, result: need(f.result, "result")? }),
            "exit" => Ok(Self::Exit),
            other => Err(serde::de::Error::unknown_variant(other, &["run", "chunk", "skip", "kill", "reply", "exit"])),
        }
    }
}

impl<'de> Deserialize<'de> for ToParent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = Flat::deserialize(d)?;
        match f.op.as_str() {
            "hello" => Ok(Self::Hello { version: need(f.version, "version")?, pid: need(f.pid, "pid")? }),
            "init_failed" => Ok(Self::InitFailed { error: need(f.error, "error")? }),
            "started" => Ok(Self::Started { id: need(f.id, "id")? }),
            "skipped" => Ok(Self::Skipped { id: need(f.id, "id")? }),
            "finished" => Ok(Self::Finished { id: need(f.id, "id")?, result: need(f.result, "result")? }),
            "results" => Ok(Self::Results { results: need(f.results, "results")? }),
            "request" => {
                Ok(Self::Request { id: need(f.id, "id")?, req: need(f.req, "req")?, body: need(f.body, "body")? })
            }
            "group" => Ok(Self::Group { id: need(f.id, "id")?, pgid: need(f.pgid, "pgid")? }),
            "output" => Ok(Self::Output {
                id: need(f.id, "id")?,
                stream: need(f.stream, "stream")?,
                line: need(f.line, "line")?,
                dropped: f.dropped.unwrap_or(0),
            }),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["hello", "init_failed", "started", "skipped", "finished", "results", "request", "group", "output"],
            )),
        }
    }
}

/// Writes one frame and flushes it.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    write_frame_within(w, msg, MAX_FRAME)
}

/// [`write_frame`] with another limit than [`MAX_FRAME`] (a protocol of smaller messages:
/// the program's control socket).
pub fn write_frame_within<T: Serialize>(w: &mut impl Write, msg: &T, max: u32) -> io::Result<()> {
    queue_frame_within(w, msg, max)?;
    w.flush()
}

/// Writes one frame into `w` without flushing: with a buffered writer, it leaves with the
/// next flush (several frames in one write).
pub(crate) fn queue_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    queue_frame_within(w, msg, MAX_FRAME)
}

fn queue_frame_within<T: Serialize>(w: &mut impl Write, msg: &T, max: u32) -> io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(body.len()).ok().filter(|&l| l <= max).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {} bytes is over the limit", body.len()))
    })?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&body);
    w.write_all(&buf)
}

/// Reads one frame; `Ok(None)` at a clean end of stream (between frames).
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<Option<T>> {
    read_frame_within(r, MAX_FRAME)
}

/// [`read_frame`] with another limit than [`MAX_FRAME`].
pub fn read_frame_within<T: for<'de> Deserialize<'de>>(r: &mut impl Read, max: u32) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended inside a frame header"))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_le_bytes(len);
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a frame of {len} bytes is over the limit")));
    }
    // Grown as bytes arrive: a corrupt length on a short stream allocates nothing big.
    let mut body = Vec::with_capacity((len as usize).min(64 * 1024));
    r.take(u64::from(len)).read_to_end(&mut body)?;
    if body.len() < len as usize {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended inside a frame"));
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("an undecodable frame: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string(json.to_owned()).unwrap()
    }

    #[test]
    fn frames_round_trip_and_garbage_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        let msg = ToWorker::Run {
            calls: vec![CallMsg { id: 7, name: "pow".into(), args: raw(r#"{"base":2}"#), task: "t".into() }],
            ahead: false,
        };
        write_frame(&mut buf, &msg).unwrap();
        write_frame(&mut buf, &ToWorker::Exit).unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame::<ToWorker>(&mut r).unwrap(), Some(msg));
        assert_eq!(read_frame::<ToWorker>(&mut r).unwrap(), Some(ToWorker::Exit));
        assert_eq!(read_frame::<ToWorker>(&mut r).unwrap(), None);
        // A huge length, a truncated body, and a body that is not a message.
        assert!(read_frame::<ToWorker>(&mut [0xff, 0xff, 0xff, 0xff].as_slice()).is_err());
        assert!(read_frame::<ToWorker>(&mut [10, 0, 0, 0, b'{'].as_slice()).is_err());
        assert!(read_frame::<ToWorker>(&mut [2, 0, 0, 0, b'{', b'}'].as_slice()).is_err());
        assert!(read_frame::<ToWorker>(&mut [1, 0].as_slice()).is_err());
    }

    #[test]
    fn every_message_reads_back_as_written_and_a_missing_field_is_named() {
        let err = WireError { kind: crate::error::ErrorKind::TaskError, message: "boom".into() };
        let to_parent = [
            ToParent::Hello { version: PROTOCOL_VERSION, pid: 42 },
            ToParent::InitFailed { error: err.clone() },
            ToParent::Started { id: 1 },
            ToParent::Skipped { id: 12 },
            ToParent::Finished { id: 2, result: Ok(serde_json::json!({"a": [1, "x"]})) },
            ToParent::Finished { id: 3, result: Err(err.clone()) },
            ToParent::Results {
                results: vec![
                    CallResult { id: 10, result: Ok(Value::from(1024)) },
                    CallResult { id: 11, result: Err(err.clone()) },
                ],
            },
            ToParent::Request { id: 4, req: 5, body: serde_json::json!({"op": "wait_on", "task": "t"}) },
            ToParent::Group { id: 6, pgid: 7 },
            ToParent::Output { id: 8, stream: crate::status::Stream::Stderr, line: "a line".into(), dropped: 0 },
            ToParent::Output { id: 8, stream: crate::status::Stream::Stdout, line: "[9 lines]".into(), dropped: 9 },
        ];
        for msg in to_parent {
            let mut buf = Vec::new();
            write_frame(&mut buf, &msg).unwrap();
            assert_eq!(read_frame::<ToParent>(&mut buf.as_slice()).unwrap(), Some(msg));
        }
        let to_worker = [
            ToWorker::Reply { req: 9, result: Err(err) },
            ToWorker::Reply { req: 10, result: Ok(Value::Null) },
            ToWorker::Skip { id: 13 },
            ToWorker::Kill { id: 14 },
        ];
        for msg in to_worker {
            let mut buf = Vec::new();
            write_frame(&mut buf, &msg).unwrap();
            assert_eq!(read_frame::<ToWorker>(&mut buf.as_slice()).unwrap(), Some(msg));
        }
        let e = serde_json::from_str::<ToParent>(r#"{"op":"finished","id":1}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `result`"), "{e}");
        let e = serde_json::from_str::<ToWorker>(r#"{"op":"dance"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant `dance`"), "{e}");
    }

    #[test]
    fn a_borrowed_run_frame_reads_as_the_owned_one() {
        let args = serde_json::json!({"Pow": {"base": 2, "exp": 10}});
        let mut buf = Vec::new();
        let calls = vec![
            CallRef { id: 1, name: "f", args: &args, task: "t" },
            CallRef { id: 2, name: "g", args: &args, task: "" },
        ];
        write_frame(&mut buf, &RunRef { calls, ahead: true }).unwrap();
        let expected = ToWorker::Run {
            calls: vec![
                CallMsg { id: 1, name: "f".into(), args: raw(&args.to_string()), task: "t".into() },
                CallMsg { id: 2, name: "g".into(), args: raw(&args.to_string()), task: String::new() },
            ],
            ahead: true,
        };
        assert_eq!(read_frame::<ToWorker>(&mut buf.as_slice()).unwrap(), Some(expected));
    }
}
