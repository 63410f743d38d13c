//! The figures the server and the load threads add to as they go, read by
//! the reporter every interval: lock-free counters, one set per process.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The kinds of load, each of which must have done some work by the end
/// (a soak whose load silently did nothing would pass for the wrong reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Connect, one message, its echo, close.
    Churn,
    /// Held open for the whole run, then checked alive.
    Idle,
    /// Sends a lot, reads it back slowly.
    SlowReader,
    /// Writes to the echo and never reads.
    NonReader,
    /// Ping-pong on long-lived connections.
    Echo,
    /// A broadcast member that reads everything the others say.
    Member,
    /// A broadcast member that never reads.
    Deaf,
    /// UDP datagrams to the UDP echo.
    Udp,
}

impl Kind {
    /// Every kind, in the order reports list them.
    pub const ALL: [Kind; 8] = [
        Kind::Churn,
        Kind::Idle,
        Kind::SlowReader,
        Kind::NonReader,
        Kind::Echo,
        Kind::Member,
        Kind::Deaf,
        Kind::Udp,
    ];

    /// How the reports and the verdict name it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Churn => "churn",
            Kind::Idle => "idle",
            Kind::SlowReader => "slow-reader",
            Kind::NonReader => "non-reader",
            Kind::Echo => "echo",
            Kind::Member => "broadcast member",
            Kind::Deaf => "deaf broadcast member",
            Kind::Udp => "udp",
        }
    }
}

/// Every figure of a run. Load threads count what they checked; the
/// server's protocols count connections and how they ended.
#[derive(Default)]
pub struct Counters {
    /// Units of work done per [`Kind`] (connections, messages, datagrams).
    work: [AtomicU64; Kind::ALL.len()],
    /// TCP bytes that came back from an echo and were checked.
    pub echoed: AtomicU64,
    /// Broadcast bytes received by members and checked.
    pub relayed: AtomicU64,
    /// TCP bytes sent that never came back (echo) or never arrived
    /// (broadcast lines missing from a sender's sequence).
    pub lost: AtomicU64,
    /// TCP bytes that came back different, out of order or in surplus.
    pub corrupt: AtomicU64,
    /// Anything that should not have happened: each is logged on stderr.
    pub errors: AtomicU64,
    /// UDP datagrams sent.
    pub udp_sent: AtomicU64,
    /// UDP datagrams with no reply in time.
    pub udp_lost: AtomicU64,
    /// UDP replies that came back damaged or unasked for.
    pub udp_bad: AtomicU64,
    /// Non-reader connections whose writes the server pushed back on (a
    /// write timed out): the flow control at work.
    pub pushed_back: AtomicU64,
    /// Deaf members that found themselves cut off (their write failed).
    pub deaf_cut: AtomicU64,
    /// Server: TCP connections made.
    pub served: AtomicU64,
    /// Server: TCP connections that ended.
    pub ended: AtomicU64,
    /// Server: broadcast members aborted by the reactor's write-buffer cap
    /// (`Reason::BufferOverflow`).
    pub cap_cuts: AtomicU64,
    /// Server: the most bytes one echo connection ever held buffered.
    pub max_echo_buffered: AtomicU64,
}

impl Counters {
    /// Counts one unit of work of `kind`.
    pub fn worked(&self, kind: Kind) {
        self.work[kind as usize].fetch_add(1, Relaxed);
    }

    /// Units of work `kind` has done.
    pub fn work(&self, kind: Kind) -> u64 {
        self.work[kind as usize].load(Relaxed)
    }

    /// Counts and logs something that should not have happened.
    pub fn error(&self, what: impl Display) {
        self.errors.fetch_add(1, Relaxed);
        log::warn!("{what}");
    }

    /// Adds `n` to one of the counters.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Reads one of the counters.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    /// Connections the server still holds open.
    pub fn open(&self) -> u64 {
        let ended = Self::get(&self.ended);
        Self::get(&self.served).saturating_sub(ended)
    }
}
