//! End-to-end benchmark (issue 15): the whole program, as a user runs it — `futuretop run
//! FILE --headless --events LOG` or `futuretop validate FILE`, YAML loading included —
//! beside CPython doing the same work, and beside controls of its own (a flat file against
//! a dependent one).
//!
//! Each workload runs once per round, ours and Python's (or the control) next to each
//! other, for `E2E_ROUNDS` rounds (default 3); the medians of the wall times and of the
//! paired ratios are printed, with each side's peak resident memory (the child's `VmHWM`,
//! sampled every 2 ms until it exits). Python's side is skipped, with a line, when
//! `python3` is missing. Files go to a temporary directory, the event log to `/dev/shm`
//! when it exists.
//!
//! Then what attached clients cost a run ([`attached`], issue 19), and, once each: a
//! 1,000,000-item map (`{ range: }`) run headless with the log, its
//! log replayed headless (`futuretop replay LOG --headless`), and the same log taken into
//! the monitor's state in this process (time, this process's peak memory, and frames and
//! keys on a 160x45 `TestBackend` with the million rows); with `E2E_10M=1`, a
//! 10,000,000-item map too (about 45 s more, a 3.3 GB log).
//!
//! Run: `cargo bench --bench e2e` (about three minutes); `E2E_ONLY=attached` runs only
//! the attached clients' part.

#![allow(clippy::cast_precision_loss, clippy::unwrap_used)] // figures for people; a bench that cannot start fails

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futuretop::tui::app::Action;

const EXE: &str = env!("CARGO_BIN_EXE_futuretop");

/// One run of a child: its wall time and peak resident memory.
struct Measure {
    secs: f64,
    peak_mb: f64,
}

/// The child's peak resident memory so far (`VmHWM`), in MB.
fn hwm(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `cmd` to its end; fails the bench if it fails.
fn measure(cmd: &mut Command) -> Measure {
    let start = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let mut peak = 0.0f64;
    let status = loop {
        if let Some(h) = hwm(pid) {
            peak = peak.max(h);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let secs = start.elapsed().as_secs_f64();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(status.code().is_some_and(|c| c <= 1), "{cmd:?} failed: {status}\n{err}");
    Measure { secs, peak_mb: peak }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[(v.len() - 1) / 4], v[(3 * (v.len() - 1)) / 4])
}

/// `futuretop run FILE --headless --events LOG`.
fn run(file: &Path, log: &Path) -> Command {
    let mut c = Command::new(EXE);
    c.arg("run").arg(file).arg("--headless").arg("--events").arg(log);
    c
}

fn validate(file: &Path) -> Command {
    let mut c = Command::new(EXE);
    c.arg("validate").arg(file);
    c
}

fn python(script: &Path) -> Command {
    let mut c = Command::new("python3");
    c.arg(script);
    c
}

/// Writes the task files and Python scripts; returns them by name.
fn files(dir: &Path, n: usize) -> impl Fn(&str) -> PathBuf + '_ {
    let bases: Vec<String> = (0..n).map(|i| (i % 1000).to_string()).collect();
    let bases = bases.join(", ");
    let map = |pool: &str, extra: &str| {
        format!(
            "pools:\n  thread: {{ kind: thread, max_workers: 2 }}\n  process: {{ kind: process, max_workers: 2 }}\n\
             tasks:\n  - {{ name: p, pool: {pool}, call: pow, args: {{ exp: 2 }}, map: {{ base: [{bases}] }}{extra} }}\n"
        )
    };
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write("thread.yaml", map("thread", ""));
    // The same map behind a sleep, so that clients attach before it starts (issue 19).
    write(
        "gated.yaml",
        map("thread", ", depends_on: [gate]").replace(
            "tasks:\n",
            &format!("tasks:\n  - {{ name: gate, pool: thread, call: sleep, args: {{ secs: {GATE_SECS} }} }}\n"),
        ),
    );
    write("process.yaml", map("process", ""));
    write("process100.yaml", map("process", ", chunksize: 100"));
    let py = |pool: &str, chunk: usize| {
        format!(
            "import concurrent.futures as cf\n\
             if __name__ == '__main__':\n\
             \x20   bases = [i % 1000 for i in range({n})]\n\
             \x20   with cf.{pool}(max_workers=2) as ex:\n\
             \x20       results = list(ex.map(pow, bases, [2] * len(bases){}))\n\
             \x20   assert len(results) == {n}\n",
            if chunk > 1 { format!(", chunksize={chunk}") } else { String::new() }
        )
    };
    write("thread.py", py("ThreadPoolExecutor", 1));
    write("process.py", py("ProcessPoolExecutor", 1));
    write("process100.py", py("ProcessPoolExecutor", 100));
    // 5,000 x 5,000: a map that depends on a map.
    let zeros = vec!["0"; 5000].join(", ");
    write(
        "map-on-map.yaml",
        format!(
            "pools:\n  io: {{ kind: thread, max_workers: 2 }}\ntasks:\n\
             \x20 - {{ name: a, call: sleep, map: {{ secs: [{zeros}] }} }}\n\
             \x20 - {{ name: b, call: sleep, map: {{ secs: [{zeros}] }}, depends_on: [a] }}\n"
        ),
    );
    // 100,000 tasks, flat and in a depends_on chain.
    let mut flat = String::from("pools:\n  io: { kind: thread, max_workers: 2 }\ntasks:\n");
    let mut chain = flat.clone();
    for i in 0..n {
        flat.push_str(&format!("  - {{ name: t{i}, call: sleep, args: {{ secs: 0 }} }}\n"));
        let dep = if i > 0 { format!(", depends_on: [t{}]", i - 1) } else { String::new() };
        chain.push_str(&format!("  - {{ name: t{i}, call: sleep, args: {{ secs: 0 }}{dep} }}\n"));
    }
    write("flat.yaml", flat);
    write("chain.yaml", chain);
    move |name: &str| dir.join(name)
}

/// How to start one side of a comparison.
type Side<'a> = Box<dyn Fn() -> Command + 'a>;
/// What is measured, our command, and the other side with its name (Python's, or a
/// control of ours), if there is one.
type Pair<'a> = (&'static str, Side<'a>, Option<(&'static str, Side<'a>)>);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` / `--list`: nothing to run.
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("E2E_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3).max(1);
    let n = 100_000;
    let dir = std::env::temp_dir().join(format!("futuretop-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shm = Path::new("/dev/shm");
    let log = if shm.is_dir() {
        shm.join(format!("futuretop-e2e-{}.jsonl", std::process::id()))
    } else {
        dir.join("events.jsonl")
    };
    let file = files(&dir, n);
    if std::env::var("E2E_ONLY").is_ok_and(|o| o == "attached") {
        attached(&dir, &file("gated.yaml"), &log, rounds);
        let _ = std::fs::remove_file(&log);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let python3 = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    if !python3 {
        println!("python3 is not installed: Python's side is skipped");
    }
    let pairs: Vec<Pair<'_>> = vec![
        (
            "100k pow map, 2-worker thread pool, run --headless --events",
            Box::new(|| run(&file("thread.yaml"), &log)),
            python3.then(|| ("Python map", Box::new(|| python(&file("thread.py"))) as Side<'_>)),
        ),
        (
            "100k pow map, 2-worker process pool, chunksize 1",
            Box::new(|| run(&file("process.yaml"), &log)),
            python3.then(|| ("Python map", Box::new(|| python(&file("process.py"))) as Side<'_>)),
        ),
        (
            "100k pow map, 2-worker process pool, chunksize 100",
            Box::new(|| run(&file("process100.yaml"), &log)),
            python3.then(|| ("Python map", Box::new(|| python(&file("process100.py"))) as Side<'_>)),
        ),
        (
            "5k-item map depends_on a 5k-item map of sleep 0: run",
            Box::new(|| run(&file("map-on-map.yaml"), &log)),
            None,
        ),
        ("validate, a 100k-item map (one task)", Box::new(|| validate(&file("thread.yaml"))), None),
        (
            "validate, a depends_on chain of 100k tasks",
            Box::new(|| validate(&file("chain.yaml"))),
            Some(("a flat file of 100k tasks", Box::new(|| validate(&file("flat.yaml"))) as Side<'_>)),
        ),
    ];
    println!("== futuretop end to end, {rounds} rounds, each pair run next to each other (medians)");
    for (what, ours, other) in &pairs {
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for round in 0..rounds {
            // Which side goes first alternates, so that neither always runs on a warmer machine.
            if round % 2 == 1 {
                if let Some((_, o)) = other {
                    theirs.push(measure(&mut o()));
                }
            }
            mine.push(measure(&mut ours()));
            if round % 2 == 0 {
                if let Some((_, o)) = other {
                    theirs.push(measure(&mut o()));
                }
            }
        }
        let secs = |m: &[Measure]| median(m.iter().map(|x| x.secs).collect());
        let peak = |m: &[Measure]| m.iter().map(|x| x.peak_mb).fold(0.0, f64::max);
        println!("{what}");
        println!("  futuretop        {:>8.3} s   peak {:>7.1} MB", secs(&mine), peak(&mine));
        if let Some((name, _)) = other {
            let ratios: Vec<f64> = theirs.iter().zip(&mine).map(|(t, m)| t.secs / m.secs).collect();
            let (q1, q3) = quartiles(ratios.clone());
            println!("  {name:<16} {:>8.3} s   peak {:>7.1} MB", secs(&theirs), peak(&theirs));
            println!("  {name} / futuretop: {:.2}x (paired, quartiles {q1:.2}-{q3:.2})", median(ratios));
        }
    }
    attached(&dir, &file("gated.yaml"), &log, rounds);
    big(&dir, &log);
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&dir);
}

/// How long the first task of the run that clients attach to sleeps: they start as soon
/// as `--detach` returns, and have attached and settled when the map starts.
const GATE_SECS: f64 = 1.5;

/// Issue 19: what attached clients cost the run they follow. The 100k map runs detached
/// (`run --detach --events LOG`) behind a sleep of [`GATE_SECS`] (`gated.yaml`), with no
/// client, 1 and 10 `attach --headless` clients, and (when `tmux` is here) 1 and 10
/// monitors (`attach ID` in windows of a tmux server of the bench's own, 160x45), started
/// as soon as `--detach` returns: the run's own length is from the sleep's `done` to its
/// `run_finished`, and a round in which a monitor had not attached by then (its `client`
/// event) is counted as late. The kinds go one after the other in each round (the order
/// shuffled), and each is compared with the round's run without clients; a second run
/// without clients, compared the same way, shows how far the VM moves them by itself.
fn attached(dir: &Path, file: &Path, log: &Path, rounds: usize) {
    use std::os::unix::fs::PermissionsExt;
    let rt = dir.join("runtime");
    std::fs::create_dir_all(&rt).unwrap();
    std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
    let ft = |args: &[&std::ffi::OsStr]| {
        let mut c = Command::new(EXE);
        c.args(args).env("XDG_RUNTIME_DIR", &rt).stdin(Stdio::null()).stderr(Stdio::null());
        c
    };
    let socket = format!("futuretop-e2e-{}", std::process::id());
    let tmux = |args: &[&str]| Command::new("tmux").arg("-L").arg(&socket).args(args).output();
    // A server of our own, with a window that stays (the monitors' windows come and go).
    let monitors = tmux(&["-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", "160", "-y", "45", "sleep 100000"])
        .is_ok_and(|o| o.status.success());
    if !monitors {
        println!("tmux is not installed: the monitors' cost is not measured");
    }
    let late = std::cell::Cell::new(0usize);
    let once = |headless: usize, tui: usize| -> f64 {
        let out = ft(&["run".as_ref(), file.as_os_str(), "--detach".as_ref(), "--events".as_ref(), log.as_os_str()])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let id = said.split_whitespace().nth(2).unwrap().to_owned();
        let mut followers: Vec<std::process::Child> = (0..headless)
            .map(|_| {
                ft(&["attach".as_ref(), id.as_ref(), "--headless".as_ref()]).stdout(Stdio::null()).spawn().unwrap()
            })
            .collect();
        let attach = format!("env XDG_RUNTIME_DIR={} {EXE} attach {id}", rt.display());
        for _ in 0..tui {
            assert!(tmux(&["new-window", "-d", "-t", "b:", &attach]).unwrap().status.success());
        }
        assert!(ft(&["wait".as_ref(), id.as_ref()]).status().unwrap().code() == Some(0));
        for f in &mut followers {
            let _ = f.wait();
        }
        if tui > 0 {
            // The monitors wait for `q` once the run has ended: their windows go.
            let _ = tmux(&["kill-window", "-a", "-t", "b:0"]);
        }
        let text = std::fs::read_to_string(log).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        // The lines before the map's: the gate's end, and the monitors that attached before it.
        let mut attached = 0;
        let mut gate = None;
        for line in text.lines().take(100) {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            match (e["event"].as_str(), e["task"].as_str(), e["action"].as_str()) {
                (Some("client"), _, Some("attached")) => attached += 1,
                (Some("done"), Some("gate"), _) => {
                    gate = e["t"].as_f64();
                    break;
                }
                _ => {}
            }
        }
        if attached < tui {
            late.set(late.get() + 1);
        }
        last["t"].as_f64().unwrap() - gate.expect("the gate's done within the log's first lines")
    };
    let mut kinds: Vec<(&str, usize, usize)> =
        // "no client, again": the same run as the first, the noise floor of the others.
        vec![("no client", 0, 0), ("no client, again", 0, 0), ("1 attach --headless", 1, 0), ("10 attach --headless", 10, 0)];
    if monitors {
        kinds.extend([("1 monitor", 0, 1), ("10 monitors", 0, 10)]);
    }
    let mut t: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..rounds {
        for which in shuffled(kinds.len(), &mut seed) {
            t[which].push(once(kinds[which].1, kinds[which].2));
            // The last run's clients gone, its log's pages written.
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    if std::env::var_os("E2E_VERBOSE").is_some() {
        for (k, times) in kinds.iter().zip(&t) {
            println!("  {:<22}{times:.3?}", k.0);
        }
    }
    if monitors {
        let _ = tmux(&["kill-server"]);
    }
    println!(
        "a detached 100k pow map (thread pool), its own length with clients attached before it started{}",
        match late.get() {
            0 => String::new(),
            n => format!(" ({n} rounds with monitors still attaching when it started)"),
        }
    );
    println!("  {:<22}{:>8.3} s", kinds[0].0, median(t[0].clone()));
    for (i, (name, _, _)) in kinds.iter().enumerate().skip(1) {
        let ratios: Vec<f64> = t[i].iter().zip(&t[0]).map(|(c, none)| c / none).collect();
        let (q1, q3) = quartiles(ratios.clone());
        println!(
            "  {name:<22}{:>8.3} s   {:+.0}% (paired, quartiles {:+.0}% to {:+.0}%)",
            median(t[i].clone()),
            (median(ratios) - 1.0) * 100.0,
            (q1 - 1.0) * 100.0,
            (q3 - 1.0) * 100.0
        );
    }
}

/// `0..n` in a new order each call (xorshift from `seed`): a fixed rotation would always
/// run a kind right after the same other one, and carry that one's after-effects into it.
fn shuffled(n: usize, seed: &mut u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        order.swap(i, usize::try_from(*seed % (i as u64 + 1)).unwrap_or(0));
    }
    order
}

/// This process's peak resident memory so far, in MB.
fn own_hwm() -> f64 {
    hwm(std::process::id()).unwrap_or(0.0)
}

/// A million futures (and ten million with `E2E_10M=1`): the run, its replay, the monitor.
fn big(dir: &Path, log: &Path) {
    let map = |n: usize| {
        let file = dir.join(format!("range{n}.yaml"));
        std::fs::write(
            &file,
            format!(
                "pools:\n  cpu: {{ kind: thread, max_workers: 2 }}\n\
                 tasks:\n  - {{ name: p, pool: cpu, call: pow, args: {{ exp: 2 }}, map: {{ base: {{ range: {n} }} }} }}\n"
            ),
        )
        .unwrap();
        file
    };
    if std::env::var_os("E2E_10M").is_some() {
        let m = measure(&mut run(&map(10_000_000), log));
        println!("10,000,000-item pow map, thread pool, run --headless --events (once)");
        println!("  futuretop        {:>8.3} s   peak {:>7.1} MB", m.secs, m.peak_mb);
    }
    let m = measure(&mut run(&map(1_000_000), log));
    println!("1,000,000-item pow map, thread pool, run --headless --events (once)");
    println!("  futuretop        {:>8.3} s   peak {:>7.1} MB", m.secs, m.peak_mb);
    let mut replay = Command::new(EXE);
    replay.arg("replay").arg(log).arg("--headless");
    let m = measure(&mut replay);
    println!("its log replayed: replay --headless (once)");
    println!("  futuretop        {:>8.3} s   peak {:>7.1} MB", m.secs, m.peak_mb);
    // The monitor's state with the million futures, in this process.
    let before = own_hwm();
    let start = Instant::now();
    let mut app = futuretop::tui::app::App::new();
    for e in futuretop::events::LogReader::open(log).unwrap() {
        app.apply_event(&e.unwrap());
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "the monitor takes the log in: {took:.3} s, {} rows, peak {:.1} MB (this process: {before:.1} MB before)",
        app.model.rows.len(),
        own_hwm()
    );
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 45)).unwrap();
    let mut frame = |app: &mut futuretop::tui::app::App| {
        let t = Instant::now();
        app.prepare();
        term.draw(|f| {
            let g = futuretop::tui::ui::draw(f, app, futuretop::tui::ui::Theme::default());
            let _ = g;
        })
        .unwrap();
        t.elapsed().as_secs_f64() * 1e3
    };
    let first = frame(&mut app);
    let mut keys = Vec::new();
    for action in [Action::Bottom, Action::Top, Action::Page(1), Action::Page(1), Action::Move(1), Action::Bottom] {
        let t = Instant::now();
        let _ = app.apply(action);
        let key = t.elapsed().as_secs_f64() * 1e3;
        keys.push(key + frame(&mut app));
    }
    println!(
        "  first frame {first:.2} ms; key to frame (End, Home, PgDn, PgDn, Down, End): {}",
        keys.iter().map(|k| format!("{k:.2}")).collect::<Vec<_>>().join(", ")
    );
    drop(app);
    // Issue 19: `attach` to a run of 1,000,000 finished futures, as `attach` does it: a
    // reader follows the log into a channel of 4,096, the monitor takes in what comes
    // within a frame (33 ms), then draws; until the log is read whole.
    let start = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded(4096);
    let path = log.to_owned();
    let reader = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        let follow = futuretop::session::Follow::new(file, Box::new(|| false));
        for e in futuretop::events::LogReader::from_reader(path, follow).flatten() {
            if tx.send(std::sync::Arc::new(e)).is_err() {
                break;
            }
        }
    });
    let mut app = futuretop::tui::app::App::new();
    app.attachment = futuretop::tui::app::Attachment::Following;
    let mut first = None;
    while let Ok(e) = rx.recv() {
        app.apply_event(&e);
        app.drain(&rx, Duration::from_millis(33));
        frame(&mut app);
        first.get_or_insert_with(|| start.elapsed().as_secs_f64() * 1e3);
    }
    let _ = reader.join();
    println!(
        "an attached monitor on that log: first screen after {:.1} ms, all {} rows taken in after {:.3} s",
        first.unwrap_or(0.0),
        app.model.rows.len(),
        start.elapsed().as_secs_f64()
    );
}
