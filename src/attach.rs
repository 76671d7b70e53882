//! The control socket of a detached run: its wire format, the server in the run that checks each client's credentials, and the client that `attach` steers the run with.
//!
//! An attached monitor reads the run's events from its event log (from the start, then as
//! it grows: a slow reader never slows the run); what it asks of the run goes through
//! the socket `ID.sock` in the state directory. A frame is a 4-byte little-endian length,
//! then that many bytes (at most [`MAX_FRAME`]) of one JSON message. The client speaks
//! first ([`ToRun::Hello`] with [`PROTOCOL_VERSION`]); the run answers
//! [`ToClient::Welcome`], or [`ToClient::Refused`] and closes. A client whose peer
//! credentials (`SO_PEERCRED`) name another user than the run's is refused before it can
//! say anything, and the refusal is logged (a `client` event); a client that sends
//! garbage is dropped without touching the run.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use crate::control::Control;
use crate::events::ClientAction;
use futuretop_engine::executor::protocol;
use futuretop_engine::FutureId;

/// The client protocol's version; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side accepts (64 KiB: a request names a future, a pool or a task).
pub const MAX_FRAME: u32 = 64 * 1024;

/// Client → run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToRun {
    /// The first frame: the client's protocol version.
    Hello {
        /// [`PROTOCOL_VERSION`].
        version: u32,
    },
    /// Cancel a pending future (`c`).
    Cancel {
        /// The future's id, as the event log gives it.
        id: u64,
    },
    /// Kill a running future (`x`).
    Kill {
        /// The future's id.
        id: u64,
    },
    /// Cancel every pending future of a pool (`C`).
    CancelPool {
        /// The pool.
        pool: String,
    },
    /// Cancel the items of a `map:` not yet handed to its pool.
    CancelUnsubmitted {
        /// The task.
        task: String,
    },
    /// Break a deadlocked wait (`b`).
    Break {
        /// The waiting future's id.
        id: u64,
    },
    /// Resubmit a failed, cancelled or killed task (`r`).
    Resubmit {
        /// The task.
        task: String,
    },
    /// Stop the run, as Ctrl-C stops a run in the foreground.
    Stop,
}

/// Run → client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToClient {
    /// The client may go on.
    Welcome {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// The run's id.
        run: String,
    },
    /// The client is refused; the run closes the connection.
    Refused {
        /// Why.
        reason: String,
    },
}

impl ToRun {
    /// What the runner is asked, and how the `client` event names it.
    fn control(&self) -> Option<(Control, ClientAction, Option<String>)> {
        Some(match self {
            Self::Hello { .. } => return None,
            Self::Cancel { id } => (Control::Cancel(FutureId(*id)), ClientAction::Cancel, Some(format!("#{id}"))),
            Self::Kill { id } => (Control::Kill(FutureId(*id)), ClientAction::Kill, Some(format!("#{id}"))),
            Self::CancelPool { pool } => {
                (Control::CancelPool(pool.clone()), ClientAction::CancelPool, Some(pool.clone()))
            }
            Self::CancelUnsubmitted { task } => {
                (Control::CancelUnsubmitted(task.clone()), ClientAction::CancelUnsubmitted, Some(task.clone()))
            }
            Self::Break { id } => (Control::BreakWait(FutureId(*id)), ClientAction::Break, Some(format!("#{id}"))),
            Self::Resubmit { task } => (Control::Resubmit(task.clone()), ClientAction::Resubmit, Some(task.clone())),
            Self::Stop => (Control::Interrupt, ClientAction::Stop, None),
        })
    }

    /// The request for a monitor's `control`, if a client may ask it.
    pub fn from_control(c: &Control) -> Option<Self> {
        Some(match c {
            Control::Cancel(id) => Self::Cancel { id: id.0 },
            Control::Kill(id) => Self::Kill { id: id.0 },
            Control::CancelPool(pool) => Self::CancelPool { pool: pool.clone() },
            Control::CancelUnsubmitted(task) => Self::CancelUnsubmitted { task: task.clone() },
            Control::BreakWait(id) => Self::Break { id: id.0 },
            Control::Resubmit(task) => Self::Resubmit { task: task.clone() },
            Control::Interrupt => Self::Stop,
            Control::DeadlockFail | Control::Client { .. } => return None,
        })
    }
}

/// Writes one frame (the process pool's framing, with this protocol's limit).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    protocol::write_frame_within(w, msg, MAX_FRAME)
}

/// Reads one frame; `Ok(None)` at a clean end of the stream (between frames). A frame
/// over [`MAX_FRAME`], cut short or not a message of this protocol is an error.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> std::io::Result<Option<T>> {
    protocol::read_frame_within(r, MAX_FRAME)
}

/// Who is at the other end of `stream`: its pid and uid, as the kernel says.
fn peer(stream: &UnixStream) -> std::io::Result<(i32, u32)> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(std::io::Error::from)?;
    Ok((cred.pid(), cred.uid()))
}

/// How long a refused client's hello is waited for before the refusal is sent anyway.
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves the control socket at `path` for run `run` until the process ends: each
/// client of this user may steer the run through `control`; every client, refusal and
/// request is logged as a `client` event (through the same channel, so in order).
pub fn serve(path: &Path, run: String, control: Sender<Control>) -> std::io::Result<()> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    // Only the owner may connect (the directory is the owner's alone already).
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::thread::Builder::new().name("futuretop-control".into()).spawn(move || {
        for stream in listener.incoming().filter_map(Result::ok) {
            let (run, control) = (run.clone(), control.clone());
            let _ = std::thread::Builder::new()
                .name("futuretop-client".into())
                .spawn(move || client(stream, &run, &control));
        }
    })?;
    Ok(())
}

/// One client's connection, to its end.
fn client(mut stream: UnixStream, run: &str, control: &Sender<Control>) {
    let me = nix::unistd::geteuid().as_raw();
    let note = |who: &str, action: ClientAction, target: Option<String>| {
        let _ = control.send(Control::Client { client: who.to_owned(), action, target });
    };
    let Ok((pid, uid)) = peer(&stream) else { return };
    let who = format!("pid {pid} uid {uid}");
    if uid != me {
        note(&who, ClientAction::Refused, Some(format!("uid {uid} is not the run's owner (uid {me})")));
        // The refusal answers the client's hello, read first (length-limited, and not
        // waited for long): closed before the client had written it, the connection
        // would fail its write with a broken pipe instead of telling it why (CI saw it).
        let _ = stream.set_read_timeout(Some(REFUSAL_WAIT));
        let _ = read_frame::<ToRun>(&mut stream);
        let _ = write_frame(&mut stream, &ToClient::Refused { reason: "this run belongs to another user".into() });
        return;
    }
    // A client that says nothing sensible within a while is dropped.
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    match read_frame::<ToRun>(&mut stream) {
        Ok(Some(ToRun::Hello { version })) if version == PROTOCOL_VERSION => {}
        Ok(Some(ToRun::Hello { version })) => {
            let reason = format!("protocol version {version}; this run speaks {PROTOCOL_VERSION}");
            let _ = write_frame(&mut stream, &ToClient::Refused { reason });
            return;
        }
        _ => return,
    }
    if write_frame(&mut stream, &ToClient::Welcome { version: PROTOCOL_VERSION, run: run.to_owned() }).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(None);
    note(&who, ClientAction::Attached, None);
    // To the end, or to garbage: the client goes, the run does not notice.
    while let Ok(Some(request)) = read_frame::<ToRun>(&mut stream) {
        if let Some((c, action, target)) = request.control() {
            note(&who, action, target);
            let _ = control.send(c);
        }
    }
    note(&who, ClientAction::Detached, None);
}

/// A client's connection to a run's control socket.
pub struct Client {
    stream: UnixStream,
}

impl Client {
    /// Connects to the socket at `path` and says hello.
    pub fn connect(path: &Path) -> Result<Self, String> {
        let mut stream =
            UnixStream::connect(path).map_err(|e| format!("cannot reach the run at {}: {e}", path.display()))?;
        // The run at the other end must be this user's too.
        let me = nix::unistd::geteuid().as_raw();
        match peer(&stream) {
            Ok((_, uid)) if uid == me => {}
            Ok((_, uid)) => return Err(format!("the socket at {} belongs to uid {uid}, not to you", path.display())),
            Err(e) => return Err(format!("cannot check the socket at {}: {e}", path.display())),
        }
        write_frame(&mut stream, &ToRun::Hello { version: PROTOCOL_VERSION }).map_err(|e| e.to_string())?;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        match read_frame::<ToClient>(&mut stream) {
            Ok(Some(ToClient::Welcome { .. })) => {
                let _ = stream.set_read_timeout(None);
                Ok(Self { stream })
            }
            Ok(Some(ToClient::Refused { reason })) => {
                Err(format!("the run refused: {}", crate::text::visible(&reason)))
            }
            Ok(None) => Err("the run closed the connection".into()),
            Err(e) => Err(format!("the run's answer: {e}")),
        }
    }

    /// Asks the run for `request`.
    pub fn send(&mut self, request: &ToRun) -> std::io::Result<()> {
        write_frame(&mut self.stream, request)
    }
}
