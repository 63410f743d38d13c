//! The event loop: one mio `Poll`, a slab of sources, a timer heap.

use std::io;
use std::mem;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, error, warn};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::tcp::{Conn, Lingering, Listener};
use crate::timer::{TimerHeap, TimerId};
use crate::transport::ConnectionId;
use crate::udp::UdpEndpoint;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("reactor packs a slot key and a generation into a 64-bit mio token");

/// Size of the one read buffer the whole reactor shares.
pub(crate) const READ_BUFFER_SIZE: usize = 64 * 1024;

/// Full reads one connection may do per wake-up before the others get a turn.
pub(crate) const MAX_READS_PER_EVENT: usize = 4;

/// Connections one listener may accept per wake-up before the others get a turn.
pub(crate) const MAX_ACCEPTS_PER_EVENT: usize = 128;

const WAKER_TOKEN: Token = Token(usize::MAX);

/// The token of the signal source ([`Reactor::stop_on_signals`]); slot
/// tokens never reach it (it would need slot key `u32::MAX - 1`).
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

/// How long `stop` waits for buffered bytes to flush by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A callback scheduled with [`Reactor::call_later`].
type TimerCallback = Box<dyn FnOnce(&mut Reactor)>;

/// A callback handed over from another thread with [`ReactorHandle::call_from_thread`].
type RemoteCallback = Box<dyn FnOnce(&mut Reactor) + Send>;

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    Call(TimerCallback),
    Protocol { conn: ConnectionId, tag: u64 },
    ConnectTimeout(ConnectionId),
    RetryAccept(SlotId),
    Datagram { endpoint: SlotId, tag: u64 },
    LingerTimeout(SlotId),
    IdleCheck(ConnectionId),
    Deadline(ConnectionId),
}

/// A slot key with the generation it was filled at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

impl SlotId {
    pub(crate) fn token(self) -> Token {
        Token((self.generation as usize) << 32 | self.key as usize)
    }

    fn from_token(token: Token) -> SlotId {
        SlotId {
            key: (token.0 & 0xffff_ffff) as u32,
            generation: (token.0 >> 32) as u32,
        }
    }
}

impl From<ConnectionId> for SlotId {
    fn from(id: ConnectionId) -> SlotId {
        SlotId {
            key: id.key,
            generation: id.generation,
        }
    }
}

impl From<SlotId> for ConnectionId {
    fn from(id: SlotId) -> ConnectionId {
        ConnectionId {
            key: id.key,
            generation: id.generation,
        }
    }
}

pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) source: Source,
}

pub(crate) enum Source {
    Conn(Conn),
    /// A connection we closed cleanly: its protocol is gone, its writing
    /// side is shut, and what the peer still sends is read and discarded
    /// until its FIN, so closing the descriptor does not reset the peer
    /// and destroy the tail of our last reply.
    Lingering(Lingering),
    Listener(Listener),
    Udp(UdpEndpoint),
}

/// What one readiness event said, copied out of mio's event.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Readiness {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer's FIN or an error came with the event: a short read does not
    /// mean the socket is drained, so read until end-of-file or `WouldBlock`.
    pub(crate) must_drain: bool,
    pub(crate) error: bool,
}

/// The single-threaded event loop that owns every socket and timer.
///
/// Create one, register listeners, connections and timers, then [`run`](Reactor::run)
/// it. Callbacks receive `&mut Reactor` (through [`Transport::reactor`](crate::Transport::reactor)
/// for protocols), so from any callback a program can write to or close any
/// connection, listen, connect, schedule timers and stop.
///
/// See `design.md` for the loop's phases and who owns what during a callback.
pub struct Reactor {
    pub(crate) poll: Poll,
    pub(crate) slots: Slab<Slot>,
    next_generation: u32,
    pub(crate) timers: TimerHeap<TimerAction>,
    /// Shared by every read; taken out of the reactor for the duration of one
    /// `data_received` so the callback can have `&mut Reactor`.
    pub(crate) read_buf: Vec<u8>,
    /// Closes requested during callbacks, applied once the callback returns so
    /// `connection_lost` never runs inside another callback of the same connection.
    pub(crate) closes: Vec<(ConnectionId, crate::Reason)>,
    /// Connections whose buffers crossed their high watermark during the
    /// current callback; told once it returns.
    pub(crate) pauses: Vec<ConnectionId>,
    /// Connections told to `lose_connection` with nothing buffered: closed
    /// once the current callback returns, if nothing was buffered meanwhile.
    pub(crate) empty_closing: Vec<ConnectionId>,
    /// Sources that hit their fairness cap and still have work: served again
    /// after the next (non-blocking) poll.
    pub(crate) again: Vec<SlotId>,
    /// UDP endpoints whose send reported an ICMP refusal during a callback;
    /// their `connection_refused` runs once the callback returns.
    pub(crate) udp_refusals: Vec<SlotId>,
    /// How long a graceful stop waits for buffers to flush.
    shutdown_grace: Duration,
    /// SIGINT and SIGTERM, once `stop_on_signals` was called.
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// When the current turn's poll returned: the time a connection's
    /// activity is stamped with, so the hot path reads no clock.
    pub(crate) turn_now: Instant,
    stopping: bool,
    running: bool,
    remote: Option<Arc<Remote>>,
}

struct Remote {
    calls: Mutex<Vec<RemoteCallback>>,
    waker: Waker,
}

/// A `Send + Clone` handle for reaching a reactor from other threads
/// (Twisted's `reactor.callFromThread`).
#[derive(Clone)]
pub struct ReactorHandle {
    remote: Arc<Remote>,
}

impl ReactorHandle {
    /// Runs `f` on the reactor thread at its next turn, with the reactor.
    /// Calls run in the order they were made. Calls made after the reactor is
    /// dropped are silently discarded.
    pub fn call_from_thread(&self, f: impl FnOnce(&mut Reactor) + Send + 'static) {
        // A poisoned lock means a thread panicked while pushing; the Vec itself
        // is still valid, so keep going.
        let mut calls = self.remote.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.push(Box::new(f));
        drop(calls);
        if let Err(e) = self.remote.waker.wake() {
            warn!("could not wake the reactor: {e}");
        }
    }

    /// Stops the reactor from another thread.
    pub fn stop(&self) {
        self.call_from_thread(|r| r.stop());
    }
}

impl Reactor {
    /// Creates a reactor with its own epoll instance.
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: Poll::new()?,
            slots: Slab::new(),
            next_generation: 1,
            timers: TimerHeap::new(),
            read_buf: vec![0; READ_BUFFER_SIZE],
            closes: Vec::new(),
            pauses: Vec::new(),
            empty_closing: Vec::new(),
            again: Vec::new(),
            udp_refusals: Vec::new(),
            stopping: false,
            running: false,
            remote: None,
            turn_now: Instant::now(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            signals: None,
        })
    }

    /// A handle other threads can use to call into this reactor.
    pub fn handle(&mut self) -> io::Result<ReactorHandle> {
        if self.remote.is_none() {
            let waker = Waker::new(self.poll.registry(), WAKER_TOKEN)?;
            self.remote = Some(Arc::new(Remote {
                calls: Mutex::new(Vec::new()),
                waker,
            }));
        }
        let remote = self.remote.clone().expect("created just above");
        Ok(ReactorHandle { remote })
    }

    /// Runs the loop until [`stop`](Reactor::stop) is called.
    ///
    /// Each turn: wait for readiness (no longer than the next timer), serve
    /// every ready socket, serve sockets left over by the fairness cap, then
    /// fire the timers that were due when the phase began. When stopped it
    /// closes every connection (each gets `connection_lost` with
    /// [`Reason::ReactorStopped`](crate::Reason::ReactorStopped)), stops every
    /// listener and drops the pending timers without running them.
    ///
    /// Errors only if the poll itself fails, or if called from inside a callback.
    pub fn run(&mut self) -> io::Result<()> {
        if self.running {
            error!("Reactor::run called from inside a callback; ignored");
            return Err(io::Error::other("the reactor is already running"));
        }
        self.running = true;
        // A stop() asked for before run() (from a start hook, say) is honoured:
        // the loop below does not start.
        let result = self.run_loop();
        if result.is_ok() {
            self.drain_gracefully();
        }
        self.shutdown();
        self.running = false;
        self.stopping = false;
        result
    }

    fn run_loop(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut leftovers: Vec<SlotId> = Vec::new();
        while !self.stopping {
            // Closes asked for outside any callback (before `run`, say).
            self.apply_closes();
            mem::swap(&mut leftovers, &mut self.again);
            let timeout = if !leftovers.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.timers
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("poll failed: {e}");
                    return Err(e);
                }
            }
            self.turn_now = Instant::now();
            for event in events.iter() {
                if self.stopping {
                    break;
                }
                let readiness = Readiness {
                    readable: event.is_readable(),
                    writable: event.is_writable(),
                    must_drain: event.is_read_closed() || event.is_error(),
                    error: event.is_error(),
                };
                self.dispatch(event.token(), readiness);
            }
            for id in leftovers.drain(..) {
                if self.stopping {
                    break;
                }
                // The edge that left this work may have carried a FIN that
                // will not be signalled again: read on to EOF or WouldBlock.
                let readiness = Readiness {
                    readable: true,
                    must_drain: true,
                    ..Readiness::default()
                };
                self.dispatch(id.token(), readiness);
            }
            self.fire_due_timers();
        }
        Ok(())
    }

    /// Asks the loop to stop: no further data, datagram or timer callbacks
    /// run after the current one returns, and `run` returns once everything
    /// is closed. Called before `run`, it makes `run` close up at once.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// How long `stop` lets connections flush what they buffered before it
    /// closes them regardless (default [`DEFAULT_SHUTDOWN_GRACE`]; zero
    /// closes at once).
    pub fn set_shutdown_grace(&mut self, grace: Duration) {
        self.shutdown_grace = grace;
    }

    /// Makes SIGINT and SIGTERM stop the reactor gracefully, as the seeds'
    /// servers catch `KeyboardInterrupt`; a second signal exits the process
    /// at once with status 1. Replaces those signals' default action for the
    /// whole process, so call it from applications, not libraries.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use std::sync::atomic::AtomicBool;
        if self.signals.is_some() {
            return Ok(());
        }
        let again = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so the first signal finds the flag false and
            // only sets it; the second finds it set and exits.
            signal_hook::flag::register_conditional_shutdown(signal, 1, again.clone())?;
            signal_hook::flag::register(signal, again.clone())?;
        }
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    fn signalled(&mut self) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        if let Some(signal) = signals.pending().next() {
            let name = match signal {
                signal_hook::consts::SIGINT => "SIGINT",
                _ => "SIGTERM",
            };
            warn!(
                "{name} received: stopping, flushing for at most {:?} (again to exit now)",
                self.shutdown_grace
            );
            self.stop();
        }
    }

    /// The graceful part of a stop: every connection is closed as by
    /// `lose_connection` (with `ReactorStopped` as its reason), and the loop
    /// serves only their flushing, and the peers' FINs, until all are done
    /// or the grace period ends. No protocol, timer or datagram callback
    /// runs meanwhile.
    fn drain_gracefully(&mut self) {
        // Connections already closed and lingering delivered their data;
        // waiting for their peers' FINs would only delay the stop.
        for id in self.slot_ids(|s| matches!(s, Source::Lingering(_))) {
            self.end_linger(id, "reactor stopping");
        }
        self.close_listening_sockets();
        for id in self.slot_ids(|s| matches!(s, Source::Conn(_))) {
            self.close_for_stop(id.into());
        }
        self.apply_closes();
        let deadline = Instant::now() + self.shutdown_grace;
        let mut events = Events::with_capacity(256);
        while self
            .slots
            .iter()
            .any(|(_, s)| matches!(s.source, Source::Conn(_) | Source::Lingering(_)))
        {
            let now = Instant::now();
            if now >= deadline {
                debug!("shutdown grace of {:?} over", self.shutdown_grace);
                break;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(deadline - now)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("poll failed while stopping: {e}");
                    break;
                }
            }
            self.turn_now = Instant::now();
            for event in events.iter() {
                let readiness = Readiness {
                    readable: event.is_readable(),
                    writable: event.is_writable(),
                    must_drain: event.is_read_closed() || event.is_error(),
                    error: event.is_error(),
                };
                self.dispatch(event.token(), readiness);
            }
        }
    }

    /// Whether [`stop`](Reactor::stop) has been called during this run.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Calls `f` with the reactor once `delay` has passed. Timers with equal
    /// deadlines fire in the order they were scheduled; a timer scheduled
    /// while timers fire waits for the next turn, so a zero-delay chain never
    /// starves I/O.
    pub fn call_later(
        &mut self,
        delay: Duration,
        f: impl FnOnce(&mut Reactor) + 'static,
    ) -> TimerId {
        self.schedule(delay, TimerAction::Call(Box::new(f)))
    }

    /// Cancels a pending timer; returns whether it was still pending.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        self.timers.cancel(timer).is_some()
    }

    /// Number of timers still pending.
    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    pub(crate) fn schedule(&mut self, delay: Duration, action: TimerAction) -> TimerId {
        self.timers.insert(Instant::now() + delay, action)
    }

    /// Reserves the generation for a slot about to be filled.
    pub(crate) fn next_generation(&mut self) -> u32 {
        let g = self.next_generation;
        // Generation 0 is never handed out, so a zeroed id is never live.
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        g
    }

    fn dispatch(&mut self, token: Token, readiness: Readiness) {
        if token == WAKER_TOKEN {
            if !self.stopping {
                self.run_remote_calls();
            }
            return;
        }
        if token == SIGNAL_TOKEN {
            self.signalled();
            return;
        }
        let id = SlotId::from_token(token);
        match self.slots.get(id.key as usize) {
            Some(slot) if slot.generation == id.generation => match slot.source {
                Source::Conn(_) => self.conn_ready(id.into(), readiness),
                Source::Lingering(_) => self.linger_ready(id),
                // Stopping: no new connections, no datagram callbacks.
                Source::Listener(_) | Source::Udp(_) if self.stopping => {}
                Source::Listener(_) => self.accept_ready(id),
                Source::Udp(_) => self.udp_ready(
                    id,
                    readiness.writable,
                    readiness.readable || readiness.error,
                ),
            },
            // A late event for a slot that was closed (and maybe reused)
            // during this turn.
            _ => {}
        }
        self.apply_closes();
    }

    fn run_remote_calls(&mut self) {
        let Some(remote) = self.remote.clone() else {
            return;
        };
        let calls = mem::take(&mut *remote.calls.lock().unwrap_or_else(|p| p.into_inner()));
        for call in calls {
            if let Err(why) = crate::panic::catch(|| call(self)) {
                error!("a call_from_thread callback panicked: {why}");
            }
            self.apply_closes();
        }
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        let before = self.timers.next_seq();
        while !self.stopping {
            let Some((_, action)) = self.timers.pop_due(now, before) else {
                break;
            };
            match action {
                TimerAction::Call(f) => {
                    if let Err(why) = crate::panic::catch(|| f(self)) {
                        error!("a timer callback panicked: {why}");
                    }
                }
                TimerAction::Protocol { conn, tag } => self.protocol_timer(conn, tag),
                TimerAction::ConnectTimeout(conn) => self.connect_timed_out(conn),
                TimerAction::RetryAccept(listener) => self.retry_accept(listener),
                TimerAction::Datagram { endpoint, tag } => self.datagram_timer(endpoint, tag),
                TimerAction::LingerTimeout(id) => self.end_linger(id, "timed out"),
                TimerAction::IdleCheck(conn) => self.idle_check(conn),
                TimerAction::Deadline(conn) => self.deadline_passed(conn),
            }
            self.apply_closes();
        }
    }

    pub(crate) fn slot_mut(&mut self, id: SlotId) -> Option<&mut Source> {
        match self.slots.get_mut(id.key as usize) {
            Some(slot) if slot.generation == id.generation => Some(&mut slot.source),
            _ => None,
        }
    }

    /// The ids of the slots whose source `pick` selects (for stopping, which
    /// closes sources while going through them).
    fn slot_ids(&self, pick: impl Fn(&Source) -> bool) -> Vec<SlotId> {
        self.slots
            .iter()
            .filter(|(_, slot)| pick(&slot.source))
            .map(|(key, slot)| SlotId {
                key: key as u32,
                generation: slot.generation,
            })
            .collect()
    }

    /// Closes what is still open when the loop ends.
    fn shutdown(&mut self) {
        // connection_lost may open new connections; give those a few rounds
        // to be closed too, then stop following.
        for _round in 0..3 {
            let ids = self.slot_ids(|s| matches!(s, Source::Conn(_)));
            if ids.is_empty() {
                break;
            }
            for id in ids {
                self.close_on_stop(id.into());
            }
            self.apply_closes();
        }
        for id in self.slot_ids(|_| true) {
            self.remove_listener(id);
            self.remove_udp(id);
            self.end_linger(id, "reactor stopped");
        }
        let left = self.slots.len();
        if left > 0 {
            warn!("{left} connections opened during shutdown were dropped without callbacks");
            self.slots.clear();
        }
        self.timers.clear();
        self.again.clear();
        debug!("reactor stopped");
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        if let Some(remote) = &self.remote {
            remote
                .calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
    }
}

/// The interest a connection needs: always readable, writable only while
/// bytes wait in its buffer.
pub(crate) fn interest(want_write: bool) -> Interest {
    if want_write {
        Interest::READABLE | Interest::WRITABLE
    } else {
        Interest::READABLE
    }
}
