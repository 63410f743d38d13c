//! Capturing the warnings a test binary logs, to check that a failure is
//! logged (once, and saying what).

use std::sync::Mutex;

/// Every warning logged in this test binary since `capture_warnings`.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            WARNINGS.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per test binary: later calls keep
/// the first).
pub fn capture_warnings() {
    static CAPTURE: Capture = Capture;
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Warn);
}

/// The warnings captured so far.
pub fn warnings() -> Vec<String> {
    WARNINGS.lock().unwrap().clone()
}
