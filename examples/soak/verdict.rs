//! The verdict: the rules a run must pass, as a pure function of its
//! figures, so each rule can be shown to fail (tests/soak.rs includes this
//! file).

use reactor::DEFAULT_HIGH_WATERMARK;

/// Descriptors the process may hold once the load has stopped beyond those
/// it held before it started (a listener retrying, a socket the standard
/// library keeps): anything more is a leak.
pub const FD_MARGIN: usize = 8;

/// How far resident memory at the last report may exceed what it was at
/// the end of the first full interval. Buffers and allocator arenas are at
/// their working size by then: in a 5-minute run the whole process held
/// 6-8 MiB throughout, swinging by 2 MiB as deaf members' buffers filled
/// and were dropped. A leak of 1 KiB per churned connection exceeds this
/// within 45 s at the soak's 200 connections a second.
pub const RSS_MARGIN_KIB: u64 = 8 * 1024;

/// Fraction of UDP datagrams that may go unanswered: none should on
/// loopback at the soak's modest rate, but the kernel may drop a few when
/// the machine is starved of CPU.
pub const UDP_LOSS_LIMIT: f64 = 0.001;

/// Most bytes one echo connection may hold buffered: the server stops
/// reading a connection once its output reaches the high watermark, so it
/// holds that plus at most one read (64 KiB); twice that, for room.
pub const ECHO_BUFFER_LIMIT: u64 = 2 * (DEFAULT_HIGH_WATERMARK as u64 + 64 * 1024);

/// The figures of one run that the rules judge.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// TCP bytes sent and never returned, or never relayed.
    pub lost: u64,
    /// TCP bytes returned or relayed wrong, out of order or in surplus.
    pub corrupt: u64,
    /// Unexpected events (each was logged).
    pub errors: u64,
    /// UDP datagrams sent.
    pub udp_sent: u64,
    /// UDP datagrams with no reply in time.
    pub udp_lost: u64,
    /// UDP replies that came back damaged or unasked for.
    pub udp_bad: u64,
    /// Descriptors before the load and after it stopped; `None` where they
    /// cannot be counted.
    pub fds: Option<(usize, usize)>,
    /// Connections the server still held after the load stopped.
    pub open_at_end: u64,
    /// Resident KiB at the end of the first full interval and at the last
    /// report; `None` for a run too short to tell (fewer than two reports).
    pub rss_kib: Option<(u64, u64)>,
    /// The most one echo connection held buffered.
    pub max_echo_buffered: u64,
    /// Kinds of load that did no work at all.
    pub idle_kinds: Vec<&'static str>,
    /// Kinds of load whose threads did not stop in time.
    pub stuck_kinds: Vec<&'static str>,
}

/// Every rule the run broke; empty for a pass.
pub fn judge(s: &Summary) -> Vec<String> {
    let mut reasons = Vec::new();
    if s.lost > 0 {
        reasons.push(format!("TCP bytes lost: {}", s.lost));
    }
    if s.corrupt > 0 {
        reasons.push(format!("TCP bytes corrupted: {}", s.corrupt));
    }
    if s.errors > 0 {
        reasons.push(format!("unexpected errors: {}", s.errors));
    }
    if s.udp_bad > 0 {
        reasons.push(format!("damaged UDP replies: {}", s.udp_bad));
    }
    if s.udp_lost as f64 > s.udp_sent as f64 * UDP_LOSS_LIMIT {
        reasons.push(format!(
            "UDP datagrams lost: {} of {} (over {}%)",
            s.udp_lost,
            s.udp_sent,
            UDP_LOSS_LIMIT * 100.0
        ));
    }
    match s.fds {
        Some((start, end)) if end > start + FD_MARGIN => reasons.push(format!(
            "descriptors open: {end} at the end, {start} at the start (margin {FD_MARGIN})"
        )),
        Some(_) => {}
        None => reasons.push("descriptors could not be counted (no /proc/self/fd)".into()),
    }
    if s.open_at_end > 0 {
        reasons.push(format!(
            "connections still open on the server after the load stopped: {}",
            s.open_at_end
        ));
    }
    if let Some((first, last)) = s.rss_kib {
        if last > first + RSS_MARGIN_KIB {
            reasons.push(format!(
                "resident memory grew from {first} KiB to {last} KiB (margin {RSS_MARGIN_KIB} KiB)"
            ));
        }
    }
    if s.max_echo_buffered > ECHO_BUFFER_LIMIT {
        reasons.push(format!(
            "an echo connection held {} bytes buffered (limit {ECHO_BUFFER_LIMIT})",
            s.max_echo_buffered
        ));
    }
    if !s.idle_kinds.is_empty() {
        reasons.push(format!(
            "loads that did nothing: {}",
            s.idle_kinds.join(", ")
        ));
    }
    if !s.stuck_kinds.is_empty() {
        let kinds = s.stuck_kinds.join(", ");
        reasons.push(format!("load threads that did not stop: {kinds}"));
    }
    reasons
}

/// The last line of the output.
pub fn verdict_line(reasons: &[String]) -> String {
    if reasons.is_empty() {
        "verdict: PASS".into()
    } else {
        format!("verdict: FAIL ({})", reasons.join("; "))
    }
}
