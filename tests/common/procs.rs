//! The process tree from /proc, for the tests that check nothing is left behind.

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
