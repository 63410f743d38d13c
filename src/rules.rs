//! The numbers and rules the reactor and the threaded model share: one
//! definition each, so the two models cannot drift apart.

use std::io;
use std::time::{Duration, Instant};

use log::Level;

/// Default high watermark of a connection's outgoing buffer: crossing it
/// pauses the protocol's producing (and, by default, reading).
pub const DEFAULT_HIGH_WATERMARK: usize = 64 * 1024;

/// Default low watermark: draining below it resumes producing.
pub const DEFAULT_LOW_WATERMARK: usize = 16 * 1024;

/// Default hard cap on a connection's buffered output. A write that would
/// take the buffer past it aborts the connection with
/// [`Reason::BufferOverflow`](crate::Reason::BufferOverflow): a peer that
/// does not read cannot grow the server without bound, whoever writes to it.
pub const DEFAULT_WRITE_BUFFER_LIMIT: usize = 16 << 20;

/// How long a listener waits before accepting again after `accept` failed
/// for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM).
pub(crate) const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// How long a cleanly closed connection may linger, discarding what the peer
/// still sends, before its descriptor is closed regardless.
pub(crate) const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// The most a lingering connection discards before it is closed regardless.
pub(crate) const LINGER_DISCARD_LIMIT: usize = 16 << 20;

/// How long a connection still open after its deadline's hook ran, or still
/// flushing after it, has before it is aborted.
pub(crate) const DEADLINE_GRACE: Duration = Duration::from_secs(1);

/// Most chunks one vectored write of the threaded model hands the kernel;
/// the rest follow in the next write. (The reactor copies a callback's
/// writes into one buffer and writes that once.)
pub(crate) const MAX_IOVECS: usize = 16;

/// Whether an `accept` error concerns only the connection being accepted
/// (it was aborted or reset while queued, a firewall refused it, a signal
/// interrupted the call): the listener goes on with the next one. Anything
/// else (out of descriptors or memory) concerns the listener.
pub(crate) fn concerns_only_this_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::PermissionDenied
    )
}

/// What an idle check finds: quiet for the whole `timeout` since
/// `last_activity`, or not yet. Either way, the next check is due after the
/// returned delay (one more timeout if it was due, the remainder if not).
pub(crate) fn idle_check(
    last_activity: Instant,
    timeout: Duration,
    now: Instant,
) -> (bool, Duration) {
    let quiet = now.saturating_duration_since(last_activity);
    if quiet >= timeout {
        (true, timeout)
    } else {
        (false, timeout - quiet)
    }
}

/// `now + delay`, or `None` when that is past what an `Instant` can hold:
/// a deadline that overflows means never.
pub(crate) fn deadline_after(now: Instant, delay: Duration) -> Option<Instant> {
    now.checked_add(delay)
}

/// How far ahead a timer whose deadline overflows is put: never, for any
/// process that runs today.
pub(crate) const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A timer's deadline `delay` after `now`: one past what the clock can hold
/// (`Duration::MAX`) is put [`NEVER`] ahead, which is never.
pub(crate) fn timer_deadline(now: Instant, delay: Duration) -> Instant {
    deadline_after(now, delay)
        .or_else(|| deadline_after(now, NEVER))
        .unwrap_or(now)
}

/// How loudly to log a connection refused for being over a listener's
/// limit: a warning for the first of a burst, debug for the rest. `warned`
/// is the listener's flag, set here; the listener clears it whenever it
/// admits a connection again, which ends the burst.
pub(crate) fn refusal_level(warned: &mut bool) -> Level {
    if std::mem::replace(warned, true) {
        Level::Debug
    } else {
        Level::Warn
    }
}

/// Logs that `peer` was refused for being over `limit` (say, "the
/// listener's connection limit") on the listener bound to `listener`, at
/// the level [`refusal_level`] gives.
pub(crate) fn log_refusal(
    warned: &mut bool,
    peer: &dyn std::fmt::Display,
    limit: &str,
    listener: &dyn std::fmt::Display,
) {
    match refusal_level(warned) {
        Level::Warn => log::warn!(
            "{peer}: over {limit} on {listener}; closed at once (further refusals logged at debug)"
        ),
        _ => log::debug!("{peer}: over {limit} on {listener}; closed"),
    }
}

/// How long a TLS handshake may take before the connection is aborted, so
/// half-finished handshakes cannot hold connection slots.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection to a PROXY protocol listener may take to send its
/// whole header before it is closed
/// ([`ListenOptions::proxy_header_timeout`](crate::ListenOptions::proxy_header_timeout)):
/// the specification asks for at least 3 s, to cover a TCP retransmit; a
/// proxy sends the header with its first segment, so only a peer that is
/// not a proxy, or a broken one, ever waits this long.
///
/// ```
/// use std::time::Duration;
/// use reactor::{ListenOptions, DEFAULT_PROXY_HEADER_TIMEOUT};
///
/// assert_eq!(ListenOptions::default().proxy_header_timeout, DEFAULT_PROXY_HEADER_TIMEOUT);
/// assert!(DEFAULT_PROXY_HEADER_TIMEOUT >= Duration::from_secs(3)); // as the specification asks
/// ```
pub const DEFAULT_PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_check_reschedules_for_the_remainder_or_a_full_period() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(10);
        assert_eq!(
            idle_check(t0, timeout, t0 + Duration::from_secs(4)),
            (false, Duration::from_secs(6))
        );
        assert_eq!(idle_check(t0, timeout, t0 + timeout), (true, timeout));
        // A stamp from the future (a later turn's time) is not quiet at all.
        assert_eq!(idle_check(t0 + timeout, timeout, t0), (false, timeout));
    }

    #[test]
    fn only_the_first_refusal_of_a_burst_is_a_warning() {
        let mut warned = false;
        assert_eq!(refusal_level(&mut warned), Level::Warn);
        assert_eq!(refusal_level(&mut warned), Level::Debug);
        assert_eq!(refusal_level(&mut warned), Level::Debug);
        // An admitted connection ends the burst.
        warned = false;
        assert_eq!(refusal_level(&mut warned), Level::Warn);
    }

    #[test]
    fn an_overflowing_deadline_is_never() {
        assert_eq!(deadline_after(Instant::now(), Duration::MAX), None);
    }
}
