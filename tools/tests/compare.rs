//! The `compare` example end to end, in its short smoke mode: it starts the
//! three echo servers and the load as child processes, and its CSV must
//! hold one sane row per model and connection count.
//!
//! `cargo test` builds the examples first; with a target filter
//! (`cargo test --test compare`) build them with
//! `cargo build --workspace --examples`.

#[path = "../../tests/common/programs.rs"]
mod programs;

use std::collections::HashMap;
use std::process::Command;

use programs::{example, run_to_end};

/// A file in the system's temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str) -> Self {
        TempFile(std::env::temp_dir().join(format!("compare-test-{}-{name}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs compare with `args`; it must finish well within the test's bound.
fn compare(args: &[&str]) -> programs::Output {
    let mut cmd = Command::new(example("compare"));
    cmd.args(args).env("RUST_LOG", "off");
    run_with_limit(cmd)
}

/// Runs `cmd` to completion on a thread, failing after 120 s.
fn run_with_limit(mut cmd: Command) -> programs::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run_to_end(&mut cmd, b""));
    });
    rx.recv_timeout(std::time::Duration::from_secs(120))
        .expect("compare finished in time")
}

#[test]
fn compare_smoke_run_writes_one_sane_row_per_model_and_count() {
    let csv = TempFile::new("smoke.csv");
    let svg = TempFile::new("smoke.svg");
    let out = compare(&[
        "--secs",
        "1",
        "--conns",
        "1,10",
        "--csv",
        csv.0.to_str().unwrap(),
        "--svg",
        svg.0.to_str().unwrap(),
    ]);
    out.assert_success();
    let text = std::fs::read_to_string(&csv.0).expect("the CSV was written");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let rows: Vec<HashMap<&str, &str>> = lines
        .map(|line| header.iter().copied().zip(line.split(',')).collect())
        .collect();
    let mut seen: Vec<(String, u32)> = rows
        .iter()
        .map(|r| (r["model"].to_string(), r["conns"].parse().unwrap()))
        .collect();
    seen.sort();
    let expected: Vec<(String, u32)> = ["reactor", "threads", "tokio"]
        .iter()
        .flat_map(|m| [(m.to_string(), 1), (m.to_string(), 10)])
        .collect();
    assert_eq!(seen, expected, "CSV:\n{text}");
    for r in &rows {
        let num = |key: &str| -> f64 {
            r[key]
                .parse()
                .unwrap_or_else(|_| panic!("{key} is {:?} in {r:?}", r[key]))
        };
        let conns = num("conns");
        assert!(num("msgs") > 100.0, "{r:?}");
        assert!(num("msgs_per_s") > 100.0, "{r:?}");
        assert!(
            num("p50_us") > 0.0 && num("p50_us") <= num("p99_us"),
            "{r:?}"
        );
        assert_eq!(num("errors"), 0.0, "{r:?}");
        assert_eq!(num("connected"), conns, "{r:?}");
        let cpu = num("cpu_s_per_million_msgs");
        assert!(cpu.is_finite() && cpu > 0.0 && cpu < 1000.0, "{r:?}");
        assert!(num("peak_rss_kb") >= num("idle_rss_kb"), "{r:?}");
        assert!(num("idle_rss_kb") > 100.0, "{r:?}");
        assert!(num("mem_per_conn_bytes") >= 0.0, "{r:?}");
        let threads = num("threads");
        match r["model"] {
            // One thread per connection, the accept thread and main.
            "threads" => assert!(threads >= conns + 1.0, "{r:?}"),
            _ => assert_eq!(threads, 1.0, "{r:?}"),
        }
    }
    // The table: a line per row, aligned under its header.
    let table: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("model"))
        .take(7)
        .collect();
    assert_eq!(table.len(), 7, "stdout:\n{}", out.stdout);
    let width = table[0].len();
    assert!(
        table.iter().all(|l| l.len() == width),
        "ragged:\n{}",
        out.stdout
    );
    let svg_text = std::fs::read_to_string(&svg.0).expect("the SVG was written");
    assert!(svg_text.starts_with("<svg") && svg_text.contains("threads"));
}

#[test]
fn compare_says_when_a_count_cannot_be_reached() {
    let csv = TempFile::new("limit.csv");
    // A hard limit of 300 descriptors, which compare cannot raise.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 300 && exec \"$0\" \"$@\""])
        .arg(example("compare"))
        .args(["--models", "reactor", "--secs", "1", "--conns", "1,1000"])
        .arg("--csv")
        .arg(&csv.0)
        .env("RUST_LOG", "off");
    let out = run_with_limit(cmd);
    out.assert_success();
    assert!(
        out.stdout
            .contains("1000 connections cannot be reached: the open-file limit is 300"),
        "stdout:\n{}",
        out.stdout
    );
    let text = std::fs::read_to_string(&csv.0).unwrap();
    assert_eq!(
        text.lines().count(),
        2,
        "header and the one reachable row:\n{text}"
    );
}

/// The children of `parent` (from /proc/PID/stat), with their names.
fn children_of(parent: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            found.push((pid, stat[open + 1..close].to_string()));
        }
    }
    found
}

/// Whether `pid` is still a running process (neither gone nor a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|close| stat[close + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// Sends `signal` (a name such as "TERM") to `pid` with kill(1).
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// Processes killed (SIGKILL) when dropped, if still running: whatever the
/// test's outcome, none of them outlives it.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if running(pid) {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

/// Polls `done` every 10 ms for at most `limit`: for process state only
/// /proc can report.
fn poll_until(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn compare_killed_by_sigterm_takes_its_servers_and_load_with_it() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::Duration;

    let mut compare = Command::new(example("compare"))
        .args(["--models", "reactor", "--conns", "1", "--secs", "600"])
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("compare starts");
    let pid = compare.id();
    let mut cleanup = KillOnDrop(vec![pid]);
    // The server and the load running: a measurement under way.
    let mut kids = Vec::new();
    let started = poll_until(Duration::from_secs(30), || {
        kids = children_of(pid);
        let names: Vec<&str> = kids.iter().map(|(_, n)| n.as_str()).collect();
        names.contains(&"echo_server") && names.contains(&"echo_load")
    });
    cleanup.0.extend(kids.iter().map(|&(pid, _)| pid));
    assert!(started, "compare's children did not start: {kids:?}");
    signal(pid, "TERM");
    let mut status = None;
    assert!(
        poll_until(Duration::from_secs(10), || {
            status = compare.try_wait().expect("waiting for compare");
            status.is_some()
        }),
        "compare did not exit after SIGTERM"
    );
    let status = status.unwrap();
    let left = || -> Vec<&(u32, String)> { kids.iter().filter(|(p, _)| running(*p)).collect() };
    assert!(
        poll_until(Duration::from_secs(10), || left().is_empty()),
        "still running after compare exited ({status}): {:?}",
        left()
    );
    assert_eq!(
        (status.code(), status.signal()),
        (Some(128 + 15), None),
        "compare's exit status: {status}"
    );
}
