//! The process tree from /proc, for the tests that check nothing is left behind.

// Each test file includes this module and uses a part of it.
#![allow(dead_code)]

/// True while `pid` is a live process (a zombie, or no such process, counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // "pid (comm) S ...": the state follows the last ')'.
        s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|st| st != "Z" && st != "X")
    })
}

/// Live processes whose command line (arguments joined by spaces) satisfies `pred`.
pub fn processes_where(pred: impl Fn(&str) -> bool) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| pred(String::from_utf8_lossy(&c).replace('\0', " ").trim_end()))
                && alive(pid)
        })
        .collect()
}

/// Live processes whose command line is `cmd` exactly.
pub fn processes_exact(cmd: &str) -> Vec<u32> {
    processes_where(|c| c == cmd)
}

/// Live process-pool workers started by process `parent` (their `FUTURETOP_PARENT_PID`).
pub fn workers_of(parent: u32) -> Vec<u32> {
    let me = format!("FUTURETOP_PARENT_PID={parent}");
    processes_where(|c| c.contains("__futuretop_worker"))
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == me.as_bytes()))
        })
        .collect()
}

/// `(ppid, start time)` of a live process, from /proc; `None` if it is gone or a zombie.
pub fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ... starttime(22nd field) ..."; comm may hold anything.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
        .unwrap_or_default()
}

/// Every live descendant of `root`: `(pid, start time, command line)`.
pub fn descendants(root: u32) -> Vec<(u32, u64, String)> {
    let procs: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(ppid, start)| (pid, ppid, start)))
        .collect();
    let mut found: Vec<(u32, u64, String)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &procs {
            if ppid == parent && !found.iter().any(|f| f.0 == pid) {
                found.push((pid, start, cmdline(pid)));
                frontier.push(pid);
            }
        }
    }
    found
}
