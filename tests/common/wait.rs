//! Waiting for state that only the kernel or another thread can report
//! (a close the server has processed, a thread leaving /proc, a file on
//! disk): the condition is checked every millisecond, with a deadline.

use std::thread;
use std::time::{Duration, Instant};

/// How long a condition may take before the test fails.
const LIMIT: Duration = Duration::from_secs(10);

/// Waits until `condition` holds; fails the test, naming `what`, after ten
/// seconds.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}
