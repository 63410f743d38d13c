//! The `compare` example end to end, in its short smoke mode: it starts the
//! three echo servers and the load as child processes, its CSV must hold
//! one sane row per model and connection count, and its SVG chart must say
//! on its own what was measured (axis labels at every decade of the data,
//! the run's parameters, memory per connection, the spread over rounds).
//!
//! `cargo test` builds the examples first; with a target filter
//! (`cargo test --test compare`) build them with
//! `cargo build --workspace --examples`.

#[path = "../../tests/common/programs.rs"]
mod programs;

use std::collections::HashMap;
use std::process::Command;

use programs::example;

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

/// Runs `cmd` to completion (stdin empty), failing after 120 s and
/// killing it then. (`programs::run_to_end` allows 10 s, less than a smoke
/// run of several rounds takes.)
fn run_with_limit(mut cmd: Command) -> programs::Output {
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("compare starts");
    // Killed if the wait below times out; forgotten once reaped, when its
    // pid may already name another process.
    let mut cleanup = KillOnDrop(vec![child.id()]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("compare finished in time")
        .expect("compare's output");
    cleanup.0.clear();
    programs::Output {
        status: out.status,
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

#[test]
fn compare_smoke_run_writes_one_sane_row_per_model_and_count() {
    let csv = TempFile::new("smoke.csv");
    let svg = TempFile::new("smoke.svg");
    let out = compare(&[
        "--secs",
        "1",
        "--conns",
        "1,100",
        "--rounds",
        "2",
        "--size",
        "100",
        "--load-procs",
        "2",
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
        .flat_map(|m| [(m.to_string(), 1), (m.to_string(), 100)])
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
        assert_eq!(num("rounds"), 2.0, "{r:?}");
        assert_eq!(num("size"), 100.0, "{r:?}");
        // Each figure's median lies within its range over the rounds.
        for key in [
            "msgs_per_s",
            "p50_us",
            "p99_us",
            "cpu_s_per_million_msgs",
            "loaded_rss_kb",
            "mem_per_conn_bytes",
        ] {
            let (min, median, max) = (
                num(&format!("{key}_min")),
                num(key),
                num(&format!("{key}_max")),
            );
            assert!(min <= median && median <= max, "{key}: {r:?}");
        }
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
    assert!(svg_text.starts_with("<svg"), "{svg_text}");
    check_chart(&svg_text, &rows);
}

/// The text of every `<text>` element of `svg`, unescaped.
fn svg_texts(svg: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        let after = &rest[start..];
        let open_end = after.find('>').expect("a closed <text> tag");
        let close = after.find("</text>").expect("a </text>");
        texts.push(
            after[open_end + 1..close]
                .trim()
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        );
        rest = &after[close..];
    }
    texts
}

/// The decades from the one at or below `lo` to the one at or above `hi`
/// (at least two), as powers of ten.
fn decades(lo: f64, hi: f64) -> Vec<i32> {
    let first = lo.log10().floor() as i32;
    let last = (hi.log10().ceil() as i32).max(first + 1);
    (first..=last).collect()
}

/// 10^`e` as the chart writes a decade: "100", "1", "0.1".
fn decade(e: i32) -> String {
    if e >= 0 {
        format!("{}", 10u64.pow(e as u32))
    } else {
        format!("{:.*}", (-e) as usize, 10f64.powi(e))
    }
}

/// A decade of microseconds as the chart writes it: "10 µs", "1 ms", "1 s".
fn decade_us(e: i32) -> String {
    match e {
        ..=2 => format!("{} µs", decade(e)),
        3..=5 => format!("{} ms", decade(e - 3)),
        _ => format!("{} s", decade(e - 6)),
    }
}

/// The chart read as a user would: the CSV's figures in `rows` say which
/// decades its axes must label and how wide the spread it reports is.
fn check_chart(svg: &str, rows: &[HashMap<&str, &str>]) {
    let texts = svg_texts(svg);
    let has = |label: &str| texts.iter().filter(|t| *t == label).count();
    let mentions = |part: &str| texts.iter().any(|t| t.contains(part));
    let all = texts.join("\n");
    let num = |r: &HashMap<&str, &str>, key: &str| -> f64 { r[key].parse().unwrap() };
    // The smallest and largest of `min_key`/`max_key` over the rows,
    // positive values only (a log axis), scaled by `scale`.
    let span = |min_key: &str, max_key: &str, scale: f64| -> (f64, f64) {
        let values: Vec<f64> = rows
            .iter()
            .flat_map(|r| [num(r, min_key), num(r, max_key)])
            .filter(|&v| v > 0.0)
            .map(|v| v * scale)
            .collect();
        assert!(!values.is_empty(), "no positive {min_key}");
        (
            values.iter().copied().fold(f64::MAX, f64::min),
            values.iter().copied().fold(0.0, f64::max),
        )
    };

    // Connections, the x axis of all four panels: every decade of 1..100.
    for e in decades(1.0, 100.0) {
        assert!(
            has(&decade(e)) >= 4,
            "x label {:?} on every panel; texts:\n{all}",
            decade(e)
        );
    }
    // The log y axes: p99 latency, memory in total and per connection.
    let (lo, hi) = span("p99_us_min", "p99_us_max", 1.0);
    for e in decades(lo, hi) {
        assert_eq!(
            has(&decade_us(e)),
            1,
            "p99 label {:?}:\n{all}",
            decade_us(e)
        );
    }
    let (lo, hi) = span("loaded_rss_kb_min", "loaded_rss_kb_max", 1.0 / 1024.0);
    for e in decades(lo, hi) {
        let label = format!("{} MiB", decade(e));
        assert_eq!(has(&label), 1, "memory label {label:?}:\n{all}");
    }
    assert!(mentions("Server memory per connection"), "{all}");
    let (lo, hi) = span(
        "mem_per_conn_bytes_min",
        "mem_per_conn_bytes_max",
        1.0 / 1024.0,
    );
    for e in decades(lo, hi) {
        let label = format!("{} KiB", decade(e));
        assert_eq!(has(&label), 1, "per-connection label {label:?}:\n{all}");
    }

    // The run's parameters, as given on the command line and found here.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for part in [
        "100-byte messages".to_string(),
        "1 s per measurement".to_string(),
        "2 rounds".to_string(),
        "up to 2 echo_load processes".to_string(),
        format!("{cpus} CPUs"),
        "loopback (127.0.0.1)".to_string(),
    ] {
        assert!(
            mentions(&part),
            "parameter {part:?} not on the chart:\n{all}"
        );
    }
    for model in ["reactor", "threads", "tokio"] {
        assert!(
            texts.iter().any(|t| t.starts_with(&format!("{model} ("))),
            "{model} in the legend:\n{all}"
        );
    }

    // The spread: said in words, and the widest throughput spread printed
    // is the CSV's.
    assert!(
        mentions("the median of 2 rounds") && mentions("smallest to largest round"),
        "{all}"
    );
    let widest = rows
        .iter()
        .map(|r| {
            (num(r, "msgs_per_s_max") - num(r, "msgs_per_s_min")) / num(r, "msgs_per_s") * 100.0
        })
        .fold(0.0, f64::max);
    let printed: f64 = texts
        .iter()
        .find_map(|t| {
            t.strip_prefix("Widest spread over the 2 rounds, (max - min) / median: throughput ")
        })
        .and_then(|rest| rest.split('%').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no throughput spread on the chart:\n{all}"));
    assert!(
        (printed - widest).abs() < 0.2,
        "chart says {printed}%, the CSV {widest}%"
    );
    // A shaded band per panel and model whose rounds differed anywhere.
    let mut bands = 0;
    for key in [
        "msgs_per_s",
        "p99_us",
        "loaded_rss_kb",
        "mem_per_conn_bytes",
    ] {
        for model in ["reactor", "threads", "tokio"] {
            let differs = rows.iter().any(|r| {
                r["model"] == model && num(r, &format!("{key}_max")) > num(r, &format!("{key}_min"))
            });
            bands += usize::from(differs);
        }
    }
    assert!(bands > 0, "no spread at all: {rows:?}");
    assert_eq!(
        svg.matches("<polygon").count(),
        bands,
        "one band per spread"
    );
}

#[test]
fn compare_says_when_a_count_cannot_be_reached() {
    let csv = TempFile::new("limit.csv");
    // A hard limit of 300 descriptors, which compare cannot raise.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -n 300 && exec \"$0\" \"$@\""])
        .arg(example("compare"))
        .args(["--models", "reactor", "--secs", "1", "--conns", "1,1000"])
        .args(["--rounds", "1"])
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
