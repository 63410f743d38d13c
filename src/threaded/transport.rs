//! The blocking [`Transport`]: what a protocol writes through on its
//! connection's own thread. Writes go straight to the socket and return
//! once the kernel has every byte, so nothing is ever buffered here.

use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use log::debug;

use super::stream::BlockingStream;
use crate::address::Address;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::rules::{deadline_after, idle_check, timer_deadline, DEADLINE_GRACE, MAX_IOVECS};
use crate::timer::{TimerHeap, TimerId};
use crate::transport::{ConnectionId, Transport};

/// Where a connection stands, as its protocol has left it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    /// `lose_connection` was called: the connection closes with
    /// `LocalClosed` once the current callback returns. Writes made until
    /// then still go out (writes are synchronous, so there is no buffer to
    /// flush first).
    Closing,
    /// Closed with this reason; writes are ignored.
    Closed(Reason),
}

/// What one of the connection's timers does when it comes due.
pub(crate) enum Due {
    /// The protocol's own timer: `timer_fired(tag)`.
    Protocol(u64),
    /// Time to see whether the idle timeout has passed.
    IdleCheck,
    /// The deadline set with `set_deadline` (or its grace period) passed.
    Deadline,
}

/// One connection's end on its own thread.
pub(crate) struct BlockingTransport {
    /// `None` once aborted: the descriptor is closed so the peer gets its
    /// reset at once.
    stream: Option<BlockingStream>,
    peer: Address,
    /// A UNIX peer's, read when it was accepted.
    credentials: Option<crate::PeerCredentials>,
    id: ConnectionId,
    state: State,
    /// `lose_write_connection` sent our FIN.
    write_shut: bool,
    /// The peer's FIN came and the protocol keeps the connection half-open.
    pub(crate) read_closed: bool,
    pub(crate) reading_paused: bool,
    pub(crate) timers: TimerHeap<Due>,
    /// The idle timeout and the timer that checks it.
    idle: Option<(Duration, TimerId)>,
    deadline: Option<TimerId>,
    /// `timeout_connection(Deadline)` ran for the current deadline.
    deadline_told: bool,
    /// When something was last read or written, while an idle timeout is set.
    last_activity: Instant,
    /// SO_RCVTIMEO as last set, to set it only when it changes.
    read_timeout: Option<Duration>,
}

impl BlockingTransport {
    pub(crate) fn new(
        stream: BlockingStream,
        peer: Address,
        credentials: Option<crate::PeerCredentials>,
        id: ConnectionId,
    ) -> Self {
        BlockingTransport {
            stream: Some(stream),
            peer,
            credentials,
            id,
            state: State::Open,
            write_shut: false,
            read_closed: false,
            reading_paused: false,
            timers: TimerHeap::new(),
            idle: None,
            deadline: None,
            deadline_told: false,
            last_activity: Instant::now(),
            read_timeout: None,
        }
    }

    /// Whether the connection is open: no close asked for or found.
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether our FIN went out (`lose_write_connection`).
    pub(crate) fn is_write_shut(&self) -> bool {
        self.write_shut
    }

    /// Why the connection must end now, if it must.
    pub(crate) fn close_request(&self) -> Option<Reason> {
        match &self.state {
            State::Open => None,
            State::Closing => Some(Reason::LocalClosed),
            State::Closed(reason) => Some(reason.clone()),
        }
    }

    /// Closes with `reason` unless a close with a reason of its own
    /// (an abort, an error) came first.
    pub(crate) fn fail(&mut self, reason: Reason) {
        if !matches!(self.state, State::Closed(_)) {
            self.state = State::Closed(reason);
        }
    }

    /// The socket, until it is closed by an abort.
    /// The socket's pending error (SO_ERROR), if any: a reset that came
    /// while the connection was not reading.
    pub(crate) fn take_socket_error(&self) -> Option<io::Error> {
        match self.stream()?.take_error() {
            Ok(error) => error,
            Err(e) => Some(e),
        }
    }

    pub(crate) fn stream(&self) -> Option<&BlockingStream> {
        self.stream.as_ref()
    }

    /// Takes the socket out, to close it.
    pub(crate) fn take_stream(&mut self) -> Option<BlockingStream> {
        self.stream.take()
    }

    /// Reads into `buf`, waiting at most `timeout` (forever if `None`).
    pub(crate) fn read(&mut self, buf: &mut [u8], timeout: Option<Duration>) -> io::Result<usize> {
        let Some(stream) = &self.stream else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if timeout != self.read_timeout {
            stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        let n = io::Read::read(&mut &*stream, buf)?;
        if n > 0 && self.idle.is_some() {
            self.last_activity = Instant::now();
        }
        Ok(n)
    }

    /// An idle check came due at `now`: schedules the next one and says
    /// whether the connection has been quiet for the whole timeout.
    pub(crate) fn idle_check_due(&mut self, now: Instant) -> bool {
        let Some((timeout, _)) = self.idle else {
            return false;
        };
        let (due, next) = idle_check(self.last_activity, timeout, now);
        self.idle = self
            .schedule(now, next, Due::IdleCheck)
            .map(|timer| (timeout, timer));
        due
    }

    /// Schedules `due` for `delay` after `now`; a delay past what an
    /// `Instant` can hold means never, and nothing is scheduled.
    fn schedule(&mut self, now: Instant, delay: Duration, due: Due) -> Option<TimerId> {
        deadline_after(now, delay).map(|at| self.timers.insert(at, due))
    }

    /// The deadline timer fired: true if the protocol was told of this
    /// deadline already (this is its grace timer, and the connection is to
    /// be aborted), false if it is to be told now.
    pub(crate) fn deadline_fired(&mut self) -> bool {
        self.deadline = None;
        std::mem::replace(&mut self.deadline_told, true)
    }

    /// After the protocol was told of its deadline, as in the reactor: a
    /// deadline it set meanwhile stands; otherwise, if it kept the
    /// connection, the connection is aborted after the grace period.
    pub(crate) fn after_deadline_hook(&mut self) {
        if self.deadline.is_none() && self.is_open() {
            self.deadline = self.schedule(Instant::now(), DEADLINE_GRACE, Due::Deadline);
        }
    }

    /// Whether `write` may send: open (or closing within this callback),
    /// and our writing side not shut.
    fn writable(&self) -> bool {
        matches!(self.state, State::Open | State::Closing) && !self.write_shut
    }

    fn write_chunks(&mut self, chunks: &[&[u8]]) {
        if !self.writable() {
            debug!("write to closed connection {} ignored", self.id);
            return;
        }
        let Some(stream) = &self.stream else {
            return;
        };
        match write_all_vectored(stream, chunks) {
            Ok(()) => {
                if self.idle.is_some() {
                    self.last_activity = Instant::now();
                }
            }
            // SO_SNDTIMEO (the idle timeout) passed with no progress.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                debug!(
                    "write to {} made no progress for the idle timeout; aborting",
                    self.id
                );
                self.fail(Reason::Aborted);
            }
            Err(e) => {
                debug!("write to {} failed: {e}", self.id);
                self.fail(Reason::from(e));
            }
        }
    }
}

/// Writes every byte of `chunks`, in order, as vectored writes of up to
/// [`MAX_IOVECS`] chunks; blocks until the kernel has taken them all.
fn write_all_vectored(mut stream: impl Write, chunks: &[&[u8]]) -> io::Result<()> {
    // The next byte to write is chunks[index][offset..].
    let mut index = 0;
    let mut offset = 0;
    while index < chunks.len() {
        if offset == chunks[index].len() {
            index += 1;
            offset = 0;
            continue;
        }
        let result = if index + 1 == chunks.len() {
            stream.write(&chunks[index][offset..])
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            slices[0] = IoSlice::new(&chunks[index][offset..]);
            let mut n = 1;
            for chunk in &chunks[index + 1..] {
                if n == MAX_IOVECS {
                    break;
                }
                slices[n] = IoSlice::new(chunk);
                n += 1;
            }
            stream.write_vectored(&slices[..n])
        };
        let mut written = match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while written > 0 {
            let left = chunks[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

impl Transport for BlockingTransport {
    /// Blocks until the kernel has taken every byte.
    fn write(&mut self, data: &[u8]) {
        self.write_chunks(&[data]);
    }

    fn write_vectored(&mut self, chunks: &[&[u8]]) {
        self.write_chunks(chunks);
    }

    fn lose_connection(&mut self) {
        if self.state == State::Open {
            self.state = State::Closing;
        }
    }

    fn abort_connection(&mut self) {
        self.fail(Reason::Aborted);
    }

    fn lose_write_connection(&mut self) {
        if self.state != State::Open || self.write_shut {
            return;
        }
        self.write_shut = true;
        let shut = match &self.stream {
            Some(stream) => stream.shutdown(Shutdown::Write),
            None => Ok(()),
        };
        if let Err(e) = shut {
            self.fail(Reason::from(e));
        } else if self.read_closed {
            // Both sides are shut: the connection is done.
            self.fail(Reason::PeerClosed);
        }
    }

    fn peer_addr(&self) -> Address {
        self.peer.clone()
    }

    fn local_addr(&self) -> io::Result<Address> {
        match &self.stream {
            Some(stream) if !matches!(self.state, State::Closed(_)) => stream.local_addr(),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn peer_credentials(&self) -> Option<crate::PeerCredentials> {
        self.credentials
    }

    fn id(&self) -> ConnectionId {
        self.id
    }

    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        match &self.stream {
            Some(stream) => stream.set_nodelay(nodelay),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Always 0: a write returns only once the kernel has every byte.
    fn buffered(&self) -> usize {
        0
    }

    fn is_closing(&self) -> bool {
        self.state != State::Open
    }

    /// Also bounds a blocked write: one that makes no progress for
    /// `timeout` aborts the connection (SO_SNDTIMEO), where the reactor
    /// would call `timeout_connection` and abort one period later.
    fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        if let Some((_, timer)) = self.idle.take() {
            self.timers.cancel(timer);
        }
        let now = Instant::now();
        self.last_activity = now;
        if let Some(timeout) = timeout {
            // A timeout too long to schedule never passes.
            self.idle = self
                .schedule(now, timeout, Due::IdleCheck)
                .map(|timer| (timeout, timer));
        }
        if let Some(stream) = &self.stream {
            // A zero timeout would mean "none" to set_write_timeout's caller
            // and is refused by it; one never fires as a write stall anyway.
            let stall = timeout.filter(|t| !t.is_zero());
            if let Err(e) = stream.set_write_timeout(stall) {
                self.fail(Reason::from(e));
            }
        }
    }

    /// Checked between reads and callbacks: a write blocked on a peer that
    /// does not read is not interrupted by it (an idle timeout is).
    fn set_deadline(&mut self, after: Option<Duration>) {
        self.deadline_told = false;
        if let Some(timer) = self.deadline.take() {
            self.timers.cancel(timer);
        }
        if let Some(after) = after {
            // A deadline too far to schedule never passes.
            self.deadline = self.schedule(Instant::now(), after, Due::Deadline);
        }
    }

    /// Ignored: writes block instead of buffering, so no mark is ever
    /// crossed and `pause_producing` is never called.
    fn set_write_watermarks(&mut self, low: usize, high: usize) {
        let _ = (low, high);
    }

    /// Ignored: a write blocks until the kernel takes it, so nothing is
    /// buffered here (a peer that does not read is bounded by the idle
    /// timeout's SO_SNDTIMEO instead).
    fn set_write_buffer_limit(&mut self, bytes: usize) {
        let _ = bytes;
    }

    /// Always false: nothing is ever buffered.
    fn is_write_buffer_full(&self) -> bool {
        false
    }

    /// The connection's thread stops reading (timers still fire) until
    /// `resume_reading`, which only this connection's own callbacks can
    /// call: a timer, say.
    fn pause_reading(&mut self) {
        self.reading_paused = true;
    }

    fn resume_reading(&mut self) {
        self.reading_paused = false;
    }

    /// Fires on this connection's thread: its blocking read waits no
    /// longer than the earliest timer.
    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.timers
            .insert(timer_deadline(Instant::now(), delay), Due::Protocol(tag))
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.timers.cancel(timer).is_some()
    }

    fn reset_timer(&mut self, timer: TimerId, delay: Duration) -> bool {
        self.timers
            .reschedule(timer, timer_deadline(Instant::now(), delay))
    }

    fn delay_timer(&mut self, timer: TimerId, by: Duration) -> bool {
        match self.timers.deadline(timer) {
            Some(due) => self.timers.reschedule(timer, timer_deadline(due, by)),
            None => false,
        }
    }

    fn is_timer_active(&self, timer: TimerId) -> bool {
        self.timers.is_active(timer)
    }

    /// Always `None`: there is no reactor. A protocol that needs one (to
    /// write to other connections, connect, or stop) runs on the reactor only.
    fn reactor(&mut self) -> Option<&mut Reactor> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most 7 bytes per call, from one or several slices: a
    /// blocking socket interrupted by a signal, or one with a send timeout,
    /// returns such partial counts.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(7 - n);
                self.0.extend_from_slice(&buf[..take]);
                n += take;
                if n == 7 {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_writes_resume_exactly_where_a_partial_write_stopped() {
        // More chunks than one vectored write takes, empty ones among them,
        // of lengths that partial writes of 7 cut everywhere.
        let chunks: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; usize::from(i % 5) * 3]).collect();
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let mut out = Trickle(Vec::new());
        write_all_vectored(&mut out, &slices).unwrap();
        assert_eq!(out.0, chunks.concat());
    }

    #[test]
    fn a_writer_that_takes_nothing_is_an_error_not_a_spin() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = write_all_vectored(Full, &[b"abc"]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WriteZero);
    }
}
