//! The event loop: one mio `Poll`, a slab of sources, a timer heap.
//!
//! | module | job |
//! |---|---|
//! | here | the `Reactor`, its sources and slots, timers, `ReactorHandle` |
//! | `turn` | one turn of the loop: poll, I/O, leftovers, timers; the time budget |
//! | `stop` | `run`, `stop`, the graceful drain, shutdown hooks, signals |
//! | `pool` | `run_in_thread`: blocking work on a bounded pool of threads |
//! | `sources` | `add_source`: any mio source with a callback |
//! | `timers` | the clock (`now`, real or manual), one-shot timers: schedule, cancel, reset, delay |
//! | `looping` | repeating calls (`call_every`) that skip, and count, missed ticks |

mod looping;
mod pool;
mod sources;
mod stop;
mod timers;
mod turn;

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::warn;
use mio::{Interest, Poll, Token, Waker};
use slab::Slab;

use crate::tcp::{Conn, FailedConnect, Lingering, Listener, QueuedClose, Stage};
use crate::timer::TimerHeap;
use crate::transport::ConnectionId;
use crate::udp::UdpEndpoint;

pub use self::looping::{LoopingCall, Tick};
pub(crate) use self::pool::PoolKind;
pub use self::pool::{JobPanicked, PoolError, DEFAULT_POOL_QUEUE, DEFAULT_POOL_THREADS};
pub use self::sources::{SourceEvent, SourceId};
pub(crate) use self::stop::StopPhase;
pub(crate) use self::timers::TimeSource;
pub(crate) use self::turn::Budget;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("reactor packs a slot key and a generation into a 64-bit mio token");

/// Size of the one read buffer the whole reactor shares.
pub(crate) const READ_BUFFER_SIZE: usize = 64 * 1024;

/// Full reads one connection may do per wake-up before the others get a turn.
pub(crate) const MAX_READS_PER_EVENT: usize = 4;

/// The most a connection served from the leftover queue reads at once (a
/// quarter of the shared buffer): see `Reactor::read`.
pub(crate) const LEFTOVER_READ_SIZE: usize = 16 * 1024;

/// Connections one listener may accept per wake-up before the others get a turn.
pub(crate) const MAX_ACCEPTS_PER_EVENT: usize = 128;

const WAKER_TOKEN: Token = Token(usize::MAX);

/// The token of the signal source ([`Reactor::stop_on_signals`]); slot
/// tokens never reach it (it would need slot key `u32::MAX - 1`).
const SIGNAL_TOKEN: Token = Token(usize::MAX - 1);

/// How long `stop` waits for connections to finish by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A callback scheduled with [`Reactor::call_later`].
type TimerCallback = Box<dyn FnOnce(&mut Reactor)>;

/// A callback handed over from another thread with [`ReactorHandle::call_from_thread`].
type RemoteCallback = Box<dyn FnOnce(&mut Reactor) + Send>;

/// What a timer does when it fires.
pub(crate) enum TimerAction {
    Call(TimerCallback),
    Looping(Box<self::looping::Looping>),
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
    /// It waits in the leftover queue, which will serve it: its own events
    /// meanwhile are redundant (a leftover reads to `WouldBlock` and flushes).
    pub(crate) queued: bool,
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
    /// A user's source ([`Reactor::add_source`]).
    Custom(sources::Watched),
    /// A connection made in memory by a
    /// [`MemoryReactor`](crate::testing::MemoryReactor): no socket, never
    /// polled; the reactor's methods reach it in the arms they take when an
    /// id names no TCP connection.
    Memory(Box<crate::testing::memory::MemoryConn>),
}

/// What one readiness event said, copied out of mio's event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer's FIN (or a hang-up) came with the event.
    pub(crate) read_closed: bool,
    pub(crate) error: bool,
    /// Served from the leftover queue, not from an event: its edge is gone,
    /// so it reads to `WouldBlock` and tries a pending flush.
    pub(crate) leftover: bool,
}

impl Readiness {
    /// How a leftover is served.
    pub(crate) const LEFTOVER: Readiness = Readiness {
        readable: true,
        writable: true,
        read_closed: false,
        error: false,
        leftover: true,
    };

    /// Whether a short read does not mean the socket is drained: the peer's
    /// FIN, an error, or a lost edge must be picked up by reading on until
    /// end-of-file or `WouldBlock`.
    pub(crate) fn must_drain(self) -> bool {
        self.read_closed || self.error || self.leftover
    }

    fn of(event: &mio::event::Event) -> Readiness {
        Readiness {
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            error: event.is_error(),
            leftover: false,
        }
    }
}

/// The single-threaded event loop that owns every socket and timer.
///
/// Create one, register listeners, connections and timers, then [`run`](Reactor::run)
/// it. Callbacks receive `&mut Reactor` (through [`Transport::reactor`](crate::Transport::reactor)
/// for protocols), so from any callback a program can write to or close any
/// connection, listen, connect, schedule timers and stop. [`run`](Reactor::run)
/// describes one turn of the loop and what a stop does; the
/// [crate-level tour](crate#a-guided-tour) shows each part at work.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::Reactor;
///
/// /// Counts to three, 10 ms apart, then stops the reactor.
/// fn tick(reactor: &mut Reactor, count: Rc<Cell<u32>>) {
///     count.set(count.get() + 1);
///     if count.get() == 3 {
///         reactor.stop();
///     } else {
///         reactor.call_later(Duration::from_millis(10), move |r| tick(r, count));
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let count = Rc::new(Cell::new(0));
/// let ticks = count.clone();
/// reactor.call_later(Duration::ZERO, move |r| tick(r, ticks));
/// reactor.run()?; // returns once `stop` is called and the stop is done
/// assert_eq!(count.get(), 3);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Reactor {
    pub(crate) poll: Poll,
    pub(crate) slots: Slab<Slot>,
    next_generation: u32,
    pub(crate) timers: TimerHeap<TimerAction>,
    /// Shared by every read; taken out of the reactor for the duration of one
    /// `data_received` so the callback can have `&mut Reactor`.
    pub(crate) read_buf: Vec<u8>,
    /// What the current callback wrote to the connection it serves.
    pub(crate) stage: Stage,
    /// Connections whose buffer went from empty to holding bytes, or that
    /// wait for a flush to close or shut: settled once the callback returns.
    pub(crate) dirty: Vec<ConnectionId>,
    /// TLS connections holding plaintext to encrypt (written to from other
    /// callbacks) or an upgrade to start: done once the callback returns.
    #[cfg(feature = "tls")]
    pub(crate) tls_dirty: Vec<ConnectionId>,
    /// Plaintext written to a TLS connection whose layer was lent to a
    /// callback at the time; handed to the layer when it comes back.
    #[cfg(feature = "tls")]
    pub(crate) tls_inbox: Vec<(ConnectionId, Vec<u8>)>,
    /// Closes requested during callbacks, applied once the callback returns so
    /// `connection_lost` never runs inside another callback of the same connection.
    pub(crate) closes: Vec<QueuedClose>,
    /// Producers whose holds changed during the current callback; told
    /// (`pause_producing`/`resume_producing`) once it returns.
    pub(crate) flow_changed: Vec<ConnectionId>,
    /// The connection whose `pause_producing` is running: its own
    /// `pause_reading` in it is flow control's (another connection's is
    /// that connection's protocol's own, as anywhere else).
    pub(crate) in_flow_callback: Option<ConnectionId>,
    /// Connects that failed before they had a socket; reported next turn.
    pub(crate) failed_connects: Vec<FailedConnect>,
    /// Sources with work left (the fairness cap, the turn's time budget, a
    /// resumed read): served after the next (non-blocking) poll, in order.
    pub(crate) again: VecDeque<(SlotId, Readiness)>,
    /// Scratch list of a turn's events the budget left unserved (kept to
    /// reuse its allocation).
    deferred_events: Vec<(Token, Readiness)>,
    pub(crate) budget: Budget,
    /// UDP endpoints whose send reported an ICMP refusal during a callback;
    /// their `connection_refused` runs once the callback returns.
    pub(crate) udp_refusals: Vec<SlotId>,
    /// The receive slots and send arrays the UDP endpoints share.
    pub(crate) udp_io: crate::udp::BatchIo,
    /// How long a graceful stop waits for connections to finish.
    shutdown_grace: Duration,
    /// Run when a graceful stop begins ([`Reactor::add_shutdown_hook`]).
    shutdown_hooks: Vec<TimerCallback>,
    /// SIGINT and SIGTERM, once `stop_on_signals` was called.
    signals: Option<signal_hook_mio::v1_0::Signals>,
    /// When the current turn's poll returned: the time a connection's
    /// activity is stamped with, so the hot path reads no clock.
    pub(crate) turn_now: Instant,
    stop: StopPhase,
    /// `run` is under way (a second `run` from a callback is refused).
    running: bool,
    remote: Option<Arc<Remote>>,
    /// The threads of `run_in_thread` and the jobs in flight.
    pool: pool::Pool,
    /// The threads that look host names up, and the lookups in flight.
    resolver_pool: pool::Pool,
    /// What looks host names up ([`Reactor::set_resolver`]).
    pub(crate) resolver: crate::resolve::Resolver,
    /// Happy Eyeballs' delay between connection attempts
    /// ([`Reactor::set_connection_attempt_delay`]).
    pub(crate) attempt_delay: Duration,
    /// What [`now`](Reactor::now) reads: the real clock, or a test's manual one.
    pub(crate) time: TimeSource,
    /// Set on a reactor in memory ([`testing::MemoryReactor`](crate::testing::MemoryReactor)):
    /// its connections' records and what it was asked of the network, which
    /// it records instead of doing.
    pub(crate) memory: Option<Box<crate::testing::memory::Memory>>,
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
    /// Calls run in the order they were made: while the reactor runs
    /// (during a graceful stop's drain too), or, if made while it does not,
    /// when the next [`run`](Reactor::run) starts. Calls made after the
    /// reactor is dropped are discarded.
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
            stage: Stage::default(),
            dirty: Vec::new(),
            #[cfg(feature = "tls")]
            tls_dirty: Vec::new(),
            #[cfg(feature = "tls")]
            tls_inbox: Vec::new(),
            closes: Vec::new(),
            flow_changed: Vec::new(),
            in_flow_callback: None,
            failed_connects: Vec::new(),
            again: VecDeque::new(),
            deferred_events: Vec::new(),
            budget: Budget::default(),
            udp_refusals: Vec::new(),
            udp_io: crate::udp::BatchIo::default(),
            stop: StopPhase::NotAsked,
            running: false,
            remote: None,
            pool: pool::Pool::default(),
            resolver_pool: pool::Pool::new(
                crate::resolve::RESOLVER_THREADS,
                crate::resolve::RESOLVER_QUEUE,
            ),
            resolver: crate::resolve::system_resolver(),
            attempt_delay: crate::tcp::CONNECTION_ATTEMPT_DELAY,
            turn_now: Instant::now(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            shutdown_hooks: Vec::new(),
            signals: None,
            time: TimeSource::Real,
            memory: None,
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

    /// Reserves the generation for a slot about to be filled.
    pub(crate) fn next_generation(&mut self) -> u32 {
        let g = self.next_generation;
        // Generation 0 is never handed out, so a zeroed id is never live.
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        g
    }

    pub(crate) fn slot_mut(&mut self, id: SlotId) -> Option<&mut Source> {
        match self.slots.get_mut(id.key as usize) {
            Some(slot) if slot.generation == id.generation => Some(&mut slot.source),
            _ => None,
        }
    }

    /// Queues source `id` to be served again after the next poll (the
    /// fairness cap, the turn's budget, a resumed read). Once queued, its
    /// events are redundant until it is served.
    pub(crate) fn defer(&mut self, id: SlotId, readiness: Readiness) {
        if let Some(entry) = self.leftover(id, readiness) {
            self.again.push_back(entry);
        }
    }

    /// [`defer`](Self::defer) to the head of the queue.
    pub(crate) fn defer_to_front(&mut self, id: SlotId, readiness: Readiness) {
        if let Some(entry) = self.leftover(id, readiness) {
            self.again.push_front(entry);
        }
    }

    /// Marks source `id` queued and says how it will be served, or `None`
    /// if it is gone or queued already.
    fn leftover(&mut self, id: SlotId, readiness: Readiness) -> Option<(SlotId, Readiness)> {
        match self.slots.get_mut(id.key as usize) {
            Some(slot) if slot.generation == id.generation && !slot.queued => {
                slot.queued = true;
                let readiness = Readiness {
                    read_closed: readiness.read_closed,
                    error: readiness.error,
                    ..Readiness::LEFTOVER
                };
                Some((id, readiness))
            }
            _ => None,
        }
    }

    /// The ids of the slots whose source `pick` selects (for stopping, which
    /// closes sources while going through them).
    pub(crate) fn slot_ids(&self, pick: impl Fn(&Source) -> bool) -> Vec<SlotId> {
        self.slots
            .iter()
            .filter(|(_, slot)| pick(&slot.source))
            .map(|(key, slot)| SlotId {
                key: key as u32,
                generation: slot.generation,
            })
            .collect()
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

/// A slab key as the 32 bits a token and a `ConnectionId` hold.
pub(crate) fn key_u32(key: usize) -> io::Result<u32> {
    u32::try_from(key).map_err(|_| io::Error::other("too many sources in one reactor"))
}
