//! What the OS says of a child process: its output streams, exit status and signals, as the engine reports them.

/// Which stream a line of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// `exited with status 3` or `was killed by signal SIGKILL`.
pub fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        format!("was killed by signal {}", signal_name(sig))
    } else {
        format!("ended with {status}")
    }
}

/// `SIGKILL` for 9, and so on.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig).map_or_else(|_| format!("{sig}"), |s| s.as_str().to_owned())
}
