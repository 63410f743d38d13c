//! Tests that need a network of their own: the test binary runs one of its
//! tests again inside a new network namespace (`unshare -n`), after shell
//! commands that shape that network (a slow qdisc, a small MTU), and skips
//! with a printed reason where the host does not allow it.
//!
//! Included with `#[path = "common/netns.rs"] mod netns;` next to
//! `mod common;`.
#![allow(dead_code)]

use std::process::Command;

/// Seconds the run inside the namespace may take before it is killed.
const INSIDE_LIMIT_SECS: u32 = 120;

/// Set in the environment of the run inside the namespace.
const NETNS_ENV: &str = "REACTOR_TEST_IN_NETNS";

/// Runs test `name` of this binary again inside a new network namespace,
/// after the `setup` shell commands. Returns false, having printed why, when
/// this host does not let us make one (no privilege, no `unshare`/`ip`/`tc`).
pub fn run_in_private_network(name: &str, setup: &str) -> bool {
    let probe = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && tc qdisc show dev lo",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!(
                "skipped {name}: cannot make a network namespace here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return false;
        }
        Err(e) => {
            eprintln!("skipped {name}: cannot run unshare: {e}");
            return false;
        }
    }
    let exe = std::env::current_exe().unwrap();
    // Bounded in time: a test that hangs inside fails here instead.
    let script = format!(
        "set -e; ip link set lo up; {setup}; \
         exec timeout -k 5 {INSIDE_LIMIT_SECS} \"$0\" --exact {name} --include-ignored --nocapture"
    );
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .arg(&exe)
        .env(NETNS_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} failed inside its network namespace:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Whether this process is the run inside the namespace (the test does its
/// work only then; outside, it is run by its launcher test).
pub fn inside_private_network() -> bool {
    std::env::var_os(NETNS_ENV).is_some()
}
