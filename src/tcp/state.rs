//! A connection's state, as values that cannot contradict each other.
//!
//! One [`ConnState`] says where the connection is in its life; the only
//! other state a connection keeps is orthogonal to it: why reading is
//! paused ([`ReadPause`]), where it stands with its producers ([`Flow`]),
//! and its deadline ([`Deadline`]).

use crate::timer::TimerId;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// Accepted by a PROXY protocol listener, whose header has not come in
    /// full: no protocol yet, nothing is written, and what came waits in
    /// the socket (peeked, not read) until the whole header is there.
    AwaitingProxyHeader,
    /// A non-blocking connect is under way: no protocol yet, writes wait in
    /// the buffer, nothing is read.
    Connecting,
    /// Made: `connection_made` ran (or runs now). Each direction is open or
    /// closed on its own (half-close).
    Open { read: ReadSide, write: WriteSide },
    /// Flushing what is buffered, then closing as `Ending` says; nothing
    /// more is read.
    Flushing(Ending),
    /// A close is queued; it is applied once the current callback returns.
    Closed,
}

/// The reading direction of an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadSide {
    Reading,
    /// The peer's FIN came and the protocol, which allows half-close, was
    /// told (`read_connection_lost`): nothing more is read, writes go on.
    Finished,
}

/// The writing direction of an open connection (see `lose_write_connection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteSide {
    Open,
    /// Our FIN goes out once the buffer drains; writes are refused.
    ShutWhenFlushed,
    /// Our FIN went out.
    Shut,
}

/// How a flushing connection ends once its buffer is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// `lose_connection`: a clean close (`LocalClosed`) that lingers for the
    /// peer's FIN.
    Local,
    /// The peer's FIN came while replies were buffered: `PeerClosed`.
    Peer,
    /// The reactor stops: `ReactorStopped`, lingering; input found unread
    /// resets the connection rather than vanishing.
    Stop,
}

impl ConnState {
    /// The state a connection starts in once made.
    pub(crate) const OPEN: ConnState = ConnState::Open {
        read: ReadSide::Reading,
        write: WriteSide::Open,
    };

    /// Whether the protocol is given data in this state (pauses aside).
    pub(crate) fn reads(self) -> bool {
        matches!(
            self,
            ConnState::Open {
                read: ReadSide::Reading,
                ..
            }
        )
    }

    /// Whether `write` is accepted: anything not closed whose writing side
    /// is still open. Writes after `lose_connection` in the same callback
    /// are still sent, as in Twisted.
    pub(crate) fn accepts_writes(self) -> bool {
        match self {
            ConnState::Connecting | ConnState::Flushing(_) => true,
            ConnState::Open { write, .. } => write == WriteSide::Open,
            ConnState::AwaitingProxyHeader | ConnState::Closed => false,
        }
    }

    /// Open in both directions' sense that matters to a user: made and not
    /// closing ([`Reactor::is_connected`](crate::Reactor::is_connected)).
    pub(crate) fn is_open(self) -> bool {
        matches!(self, ConnState::Open { .. })
    }
}

/// Why reading is paused. The reasons are independent (every combination
/// is meaningful), and reading goes on only when none holds, so a
/// `resume_producing` cannot undo the protocol's own `pause_reading`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReadPause {
    /// The protocol called `pause_reading` outside flow control.
    pub(crate) by_user: bool,
    /// `pause_reading` ran inside `pause_producing`: the protocol's default
    /// answer to its own buffer, or a consumer's, crossing a watermark.
    pub(crate) by_flow: bool,
}

impl ReadPause {
    pub(crate) fn any(self) -> bool {
        self.by_user || self.by_flow
    }
}

/// A connection as a producer: whether its own buffer is over its
/// watermark, how many consumers (itself included) hold it paused, and what
/// its protocol was last told. The protocol is told `pause_producing` when
/// `holds` becomes non-zero and `resume_producing` when it returns to zero,
/// after the callback that caused the change (Twisted's producer membrane:
/// one pause however many consumers are full).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flow {
    /// The buffer reached the high watermark and has not drained below the
    /// low one since.
    pub(crate) full: bool,
    /// Full consumers this connection produces for, itself included.
    pub(crate) holds: u32,
    /// `pause_producing` is the last thing the protocol was told.
    pub(crate) told_paused: bool,
}

impl Flow {
    /// Whether the protocol must be told something: `Some(true)` to pause,
    /// `Some(false)` to resume.
    pub(crate) fn owed(self) -> Option<bool> {
        let paused = self.holds > 0;
        (paused != self.told_paused).then_some(paused)
    }
}

/// A connection's deadline ([`Transport::set_deadline`](crate::Transport::set_deadline)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Deadline {
    #[default]
    None,
    /// Set; `timeout_connection(Deadline)` runs when the timer fires.
    Pending(TimerId),
    /// The hook ran and kept the connection: it is aborted when this grace
    /// timer fires, unless the hook set a new deadline.
    Grace(TimerId),
}

impl Deadline {
    pub(crate) fn timer(self) -> Option<TimerId> {
        match self {
            Deadline::None => None,
            Deadline::Pending(t) | Deadline::Grace(t) => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_follow_the_writing_side() {
        assert!(ConnState::Connecting.accepts_writes());
        assert!(ConnState::OPEN.accepts_writes());
        assert!(ConnState::Flushing(Ending::Local).accepts_writes());
        let shut = ConnState::Open {
            read: ReadSide::Reading,
            write: WriteSide::ShutWhenFlushed,
        };
        assert!(!shut.accepts_writes());
        assert!(shut.reads());
        assert!(!ConnState::Closed.accepts_writes());
        assert!(!ConnState::Connecting.reads());
        assert!(!ConnState::AwaitingProxyHeader.reads());
        assert!(!ConnState::AwaitingProxyHeader.accepts_writes());
        assert!(!ConnState::AwaitingProxyHeader.is_open());
    }

    #[test]
    fn the_membrane_tells_once_per_change() {
        let mut flow = Flow::default();
        assert_eq!(flow.owed(), None);
        flow.holds = 2;
        assert_eq!(flow.owed(), Some(true));
        flow.told_paused = true;
        flow.holds = 1;
        assert_eq!(flow.owed(), None);
        flow.holds = 0;
        assert_eq!(flow.owed(), Some(false));
    }
}
