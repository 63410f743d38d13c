//! The `soak` example: a short run passes with a report every interval,
//! and each fault planted with its hidden `--inject` flag turns the verdict
//! to FAIL for that reason alone; every rule of the verdict fails on its
//! own. A verdict that cannot fail would make the soak's PASS worthless.
//!
//! Needs the example binary: `cargo test` builds it; with a target filter,
//! run `cargo build --example soak` first.

#[path = "common/programs.rs"]
mod programs;

// The soak's own rules and patterns, with their unit tests.
#[path = "../examples/soak/pattern.rs"]
#[allow(dead_code)]
mod pattern;
#[path = "../examples/soak/verdict.rs"]
mod verdict;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use programs::{example, read_in_background, Running};
use verdict::{judge, verdict_line, Summary, ECHO_BUFFER_LIMIT, FD_MARGIN, RSS_MARGIN_KIB};

/// The runs take the machine's CPU for seconds each: one at a time, so
/// they do not starve one another's timeouts.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What one soak run printed.
struct Run {
    success: bool,
    stdout: Vec<String>,
    stderr: String,
}

impl Run {
    /// The report lines (`t=...`).
    fn reports(&self) -> Vec<&String> {
        self.stdout.iter().filter(|l| l.starts_with("t=")).collect()
    }

    fn verdict(&self) -> &str {
        self.stdout.last().map_or("", String::as_str)
    }
}

/// Runs the soak for `secs` seconds, a report every second, plus `extra`
/// arguments; it must exit within a minute of its load stopping.
fn soak(secs: u32, extra: &[&str]) -> Run {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(example("soak"))
        .args(["--secs", &secs.to_string(), "--interval", "1"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the soak");
    let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
    let mut child = Running(child);
    let limit = Duration::from_secs(u64::from(secs) + 60);
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("output is UTF-8");
    let stdout = text(stdout.recv_timeout(limit).expect("the soak did not exit"));
    let stderr = text(stderr.recv_timeout(limit).expect("the soak did not exit"));
    let status = child.0.wait().expect("wait for the soak");
    Run {
        success: status.success(),
        stdout: stdout.lines().map(str::to_string).collect(),
        stderr,
    }
}

/// The value of `key=` in a report line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn a_short_soak_passes_with_a_report_every_interval() {
    let run = soak(4, &[]);
    let all = run.stdout.join("\n");
    assert!(
        run.success,
        "exit status; stdout:\n{all}\nstderr:\n{}",
        run.stderr
    );
    let first = &run.stdout[0];
    let addr = first.strip_prefix("listening on ").expect(first);
    assert!(addr.starts_with("127.0.0.1:"), "{first}");
    let reports = run.reports();
    assert!(reports.len() >= 3, "{all}");
    for (i, line) in reports.iter().enumerate() {
        assert_eq!(field(line, "t"), format!("{}s", i + 1), "{line}");
        for key in ["errors", "lost", "corrupt"] {
            assert_eq!(field(line, key), "0", "{line}");
        }
        for key in ["rss_mib", "peak_mib", "fds", "conns", "echoed_mib"] {
            let value: f64 = field(line, key).parse().expect(line);
            assert!(value > 0.0, "{key} in {line}");
        }
    }
    let end = run
        .stdout
        .iter()
        .find(|l| l.starts_with("end: "))
        .expect(&all);
    assert_eq!(field(end, "open"), "0", "{end}");
    assert_eq!(run.verdict(), "verdict: PASS", "{all}");
}

/// Runs the soak with `--inject fault` and checks it fails for one reason,
/// which starts with `reason`.
fn fails_for(fault: &str, reason: &str) {
    let run = soak(2, &["--inject", fault]);
    let all = run.stdout.join("\n");
    assert!(!run.success, "--inject {fault} exited 0:\n{all}");
    let why = run
        .verdict()
        .strip_prefix("verdict: FAIL (")
        .and_then(|w| w.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--inject {fault}: {all}\nstderr:\n{}", run.stderr));
    assert!(
        why.starts_with(reason) && !why.contains("; "),
        "--inject {fault}: failed for {why:?}"
    );
}

#[test]
fn one_corrupted_byte_fails_the_verdict() {
    fails_for("corrupt-byte", "TCP bytes corrupted: 1");
}

#[test]
fn descriptors_held_to_the_end_fail_the_verdict() {
    fails_for("leak-descriptors", "descriptors open: ");
}

#[test]
fn memory_that_keeps_growing_fails_the_verdict() {
    fails_for("grow-memory", "resident memory grew from ");
}

/// A run that broke no rule.
fn clean() -> Summary {
    Summary {
        udp_sent: 10_000,
        fds: Some((12, 12)),
        rss_kib: Some((6_000, 6_500)),
        max_echo_buffered: 128 * 1024,
        ..Summary::default()
    }
}

#[test]
fn every_rule_of_the_verdict_fails_on_its_own() {
    assert_eq!(judge(&clean()), Vec::<String>::new());
    assert_eq!(verdict_line(&[]), "verdict: PASS");
    // Right at each limit still passes.
    let at_limits = Summary {
        udp_lost: 10,
        fds: Some((12, 12 + FD_MARGIN)),
        rss_kib: Some((6_000, 6_000 + RSS_MARGIN_KIB)),
        max_echo_buffered: ECHO_BUFFER_LIMIT,
        ..clean()
    };
    assert_eq!(judge(&at_limits), Vec::<String>::new());
    let broken: Vec<(Summary, &str)> = vec![
        (Summary { lost: 1, ..clean() }, "TCP bytes lost: 1"),
        (
            Summary {
                corrupt: 1,
                ..clean()
            },
            "TCP bytes corrupted: 1",
        ),
        (
            Summary {
                errors: 1,
                ..clean()
            },
            "unexpected errors: 1",
        ),
        (
            Summary {
                udp_bad: 1,
                ..clean()
            },
            "damaged UDP replies: 1",
        ),
        (
            Summary {
                udp_lost: 11,
                ..clean()
            },
            "UDP datagrams lost: 11 of 10000",
        ),
        (
            Summary {
                fds: Some((12, 13 + FD_MARGIN)),
                ..clean()
            },
            "descriptors open: ",
        ),
        (
            Summary {
                fds: None,
                ..clean()
            },
            "descriptors could not be counted",
        ),
        (
            Summary {
                open_at_end: 1,
                ..clean()
            },
            "connections still open",
        ),
        (
            Summary {
                rss_kib: Some((6_000, 6_001 + RSS_MARGIN_KIB)),
                ..clean()
            },
            "resident memory grew",
        ),
        (
            Summary {
                max_echo_buffered: ECHO_BUFFER_LIMIT + 1,
                ..clean()
            },
            "an echo connection held",
        ),
        (
            Summary {
                idle_kinds: vec!["udp"],
                ..clean()
            },
            "loads that did nothing: udp",
        ),
        (
            Summary {
                stuck_kinds: vec!["echo"],
                ..clean()
            },
            "load threads that did not stop: echo",
        ),
    ];
    for (summary, reason) in broken {
        let reasons = judge(&summary);
        assert_eq!(reasons.len(), 1, "{summary:?}: {reasons:?}");
        assert!(reasons[0].starts_with(reason), "{reasons:?} for {reason:?}");
        assert!(verdict_line(&reasons).starts_with("verdict: FAIL ("));
    }
    // A run too short to judge memory growth is not failed for it.
    assert_eq!(
        judge(&Summary {
            rss_kib: None,
            ..clean()
        }),
        Vec::<String>::new()
    );
}
