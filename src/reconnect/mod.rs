//! Clients that reconnect, with an exponential back-off: Twisted's
//! `ReconnectingClientFactory`.
//!
//! | module | job |
//! |---|---|
//! | here | `ReconnectingClient`: wraps a user's `ClientFactory`, connects, retries on the reactor's timers, `stop_trying` |
//! | `backoff` | `Backoff` and its one pure function (`next_delay`); the random source of its jitter |
//!
//! A [`ReconnectingClient`] wraps any [`ClientFactory`]. Each attempt gets
//! a factory of its own ([`Attempt`]) that passes every hook on to the
//! user's factory and, once the attempt failed or its connection ended,
//! schedules the next one with [`Reactor::call_later`]. The rules are
//! Twisted's:
//!
//! - After a failed attempt *or a lost connection*, whatever the reason,
//!   the client retries after [`Backoff::next_delay`] (about e, e², e³, …
//!   seconds), unless [`stop_trying`](ReconnectingClient::stop_trying) was
//!   called or [`max_retries`](Backoff::max_retries) consecutive retries
//!   failed: then it gives up, and the give-up hook
//!   ([`on_give_up`](ReconnectingClient::on_give_up)) runs once.
//! - The delay and the retry count go back to the start once a connection
//!   is made: **automatically, when the connection's protocol is told
//!   `connection_made`** (after a TLS handshake, for TLS). Twisted leaves
//!   that to the user (`resetDelay`, which its documentation calls from
//!   `buildProtocol`); here every protocol is wrapped so it cannot be
//!   forgotten. A client that should count a connection as good only
//!   later (after a login, say) turns that off
//!   ([`reset_on_connect(false)`](ReconnectingClient::reset_on_connect))
//!   and calls [`reset_delay`](ReconnectingClient::reset_delay) itself.
//! - `stop_trying` cancels a pending retry and aborts an attempt under
//!   way (its factory hears `client_connection_failed` with
//!   [`Reason::Aborted`]); a connection already made stays open, and is
//!   not replaced when it ends.
//! - A reactor that is stopping makes no new attempts.
//! - The user's factory hears `start_factory` once, before the first
//!   attempt, and `stop_factory` once, when the client is done for good
//!   (Twisted calls them around every attempt).
//!
//! Where to connect is the user's closure ([`connect_with`](ReconnectingClient::connect_with)),
//! given the reactor and the attempt's factory: `connect_tcp` to an
//! address, `connect_tls`, or any other way of connecting there is.

mod backoff;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};

pub use self::backoff::{
    Backoff, RandomSource, XorShift, JITTER_CUT, TWISTED_FACTOR, TWISTED_JITTER,
};
use crate::protocol::{ClientFactory, Factory, OnStop, Protocol, Timeout};
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::timer::TimerId;
use crate::transport::{ConnectionId, Transport};

/// How an attempt is made: the reactor and the attempt's factory in, the
/// connection's id out.
type Connector = Box<dyn FnMut(&mut Reactor, Attempt) -> ConnectionId>;

/// What runs when the client gives up.
type GiveUp = Box<dyn FnMut(&mut Reactor, &Reason)>;

/// A client that connects, and connects again whenever its attempt fails
/// or its connection ends, waiting longer each time (Twisted's
/// `ReconnectingClientFactory`; the [module](self) has the rules). A
/// handle: clones reach the same client, which lives as long as the
/// reactor holds one of its attempts or retries.
///
/// ```
/// use std::cell::RefCell;
/// use std::net::TcpListener;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::reconnect::{Backoff, ReconnectingClient};
/// use reactor::{client_factory, Protocol, Reactor, Transport};
///
/// struct Quiet;
/// impl Protocol for Quiet {
///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
/// }
///
/// // Nothing listens here: every attempt is refused.
/// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
/// let failures = Rc::new(RefCell::new(0));
/// let counted = failures.clone();
/// let factory = client_factory(|| Quiet, move |_, _| *counted.borrow_mut() += 1);
///
/// let mut reactor = Reactor::new()?;
/// let client = ReconnectingClient::new(factory)
///     .with_backoff(Backoff {
///         initial_delay: Duration::from_millis(1), // then 2.7 ms, 7.4 ms
///         max_retries: Some(2),
///         ..Backoff::default()
///     })
///     .on_give_up(|reactor, reason| {
///         eprintln!("giving up: {reason}");
///         reactor.stop();
///     });
/// client.connect_tcp(&mut reactor, closed, Duration::from_secs(5));
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
/// reactor.run()?;
/// assert_eq!(*failures.borrow(), 3); // the first attempt and two retries
/// assert!(!client.is_trying());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct ReconnectingClient {
    shared: Rc<Shared>,
}

/// What every clone of a client and every one of its attempts share.
/// Three cells, never borrowed across a call into user code but the
/// factory's (whose hooks can only reach the other two).
struct Shared {
    factory: RefCell<Box<dyn ClientFactory>>,
    connector: RefCell<Option<Connector>>,
    give_up: RefCell<Option<GiveUp>>,
    state: RefCell<State>,
}

struct State {
    backoff: Backoff,
    random: Box<dyn RandomSource>,
    reset_on_connect: bool,
    /// Twisted's `delay`: what the last retry waited, or the initial delay.
    delay: Duration,
    /// Twisted's `retries`: retries since the last connection was made.
    retries: u32,
    /// Twisted's `continueTrying`: whether an ending attempt or connection
    /// is followed by another attempt. Orthogonal to `in_flight`, except
    /// that no retry is pending once it is false.
    trying: bool,
    in_flight: InFlight,
    life: Life,
}

/// What the client has under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Nothing,
    /// An attempt: `None` while `connect_with`'s closure runs.
    Attempt(Option<ConnectionId>),
    /// A connection, made.
    Connection(ConnectionId),
    /// A retry, waiting for its timer.
    Retry(TimerId),
}

/// The user's factory's life: `start_factory` before the first attempt,
/// `stop_factory` once no more will be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Unstarted,
    Running,
    Done,
}

impl ReconnectingClient {
    /// Wraps `factory`, with Twisted's [`Backoff::default`] and jitter
    /// drawn from an [`XorShift`] seeded from the clock. Nothing happens
    /// until [`connect_with`](Self::connect_with) or
    /// [`connect_tcp`](Self::connect_tcp).
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::protocols::Discard;
    /// use reactor::reconnect::ReconnectingClient;
    ///
    /// let client = ReconnectingClient::new(|| Discard);
    /// assert!(client.is_trying()); // once started
    /// assert_eq!(client.retries(), 0);
    /// assert_eq!(client.delay(), Duration::from_secs(1)); // Twisted's initial delay
    /// assert_eq!(client.connection(), None);
    /// ```
    pub fn new(factory: impl ClientFactory) -> ReconnectingClient {
        let backoff = Backoff::default();
        ReconnectingClient {
            shared: Rc::new(Shared {
                factory: RefCell::new(Box::new(factory)),
                connector: RefCell::new(None),
                give_up: RefCell::new(None),
                state: RefCell::new(State {
                    backoff,
                    random: Box::new(XorShift::from_time()),
                    reset_on_connect: true,
                    delay: backoff.initial_delay,
                    retries: 0,
                    trying: true,
                    in_flight: InFlight::Nothing,
                    life: Life::Unstarted,
                }),
            }),
        }
    }

    /// Retries on this schedule instead; the current delay starts over
    /// from its initial delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::protocols::Discard;
    /// use reactor::reconnect::{Backoff, ReconnectingClient};
    ///
    /// let client = ReconnectingClient::new(|| Discard).with_backoff(Backoff {
    ///     initial_delay: Duration::from_millis(100),
    ///     max_retries: Some(5),
    ///     ..Backoff::default()
    /// });
    /// assert_eq!(client.delay(), Duration::from_millis(100));
    /// ```
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        {
            let mut state = self.shared.state.borrow_mut();
            state.backoff = backoff;
            state.delay = backoff.initial_delay;
        }
        self
    }

    /// Draws the jitter from `random` ([`XorShift::seeded`] makes a
    /// client's delays reproducible).
    ///
    /// ```
    /// use std::net::TcpListener;
    /// use std::time::Duration;
    /// use reactor::protocols::Discard;
    /// use reactor::reconnect::{Backoff, RandomSource, ReconnectingClient, XorShift};
    /// use reactor::Reactor;
    ///
    /// // Nothing listens here: every attempt is refused.
    /// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let backoff = Backoff {
    ///     initial_delay: Duration::from_millis(1),
    ///     max_retries: Some(1), // one retry, then give up
    ///     ..Backoff::default()
    /// };
    /// let mut reactor = Reactor::new()?;
    /// let client = ReconnectingClient::new(|| Discard)
    ///     .with_backoff(backoff)
    ///     .with_random(XorShift::seeded(7))
    ///     .on_give_up(|reactor, _| reactor.stop());
    /// client.connect_tcp(&mut reactor, closed, Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// // The retry waited what the seed's first draw decides.
    /// let normal = XorShift::seeded(7).standard_normal();
    /// assert_eq!(client.delay(), backoff.next_delay(backoff.initial_delay, normal));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_random(self, random: impl RandomSource + 'static) -> Self {
        self.shared.state.borrow_mut().random = Box::new(random);
        self
    }

    /// Runs `hook` once when the client gives up after
    /// [`max_retries`](Backoff::max_retries), with the last attempt's
    /// failure (after the user's factory heard it). By default, a warning
    /// is logged.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::net::TcpListener;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::protocols::Discard;
    /// use reactor::reconnect::{Backoff, ReconnectingClient};
    /// use reactor::{Reactor, Reason};
    ///
    /// // Nothing listens here: every attempt is refused.
    /// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let last: Rc<RefCell<Option<Reason>>> = Rc::default();
    /// let kept = last.clone();
    /// let mut reactor = Reactor::new()?;
    /// let client = ReconnectingClient::new(|| Discard)
    ///     .with_backoff(Backoff { max_retries: Some(0), ..Backoff::default() }) // no retry
    ///     .on_give_up(move |reactor, reason| {
    ///         *kept.borrow_mut() = Some(reason.clone());
    ///         reactor.stop();
    ///     });
    /// client.connect_tcp(&mut reactor, closed, Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// let reason = last.borrow().clone().expect("the client gave up");
    /// println!("gave up: {reason}"); // connection refused
    /// assert!(!client.is_trying());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn on_give_up(self, hook: impl FnMut(&mut Reactor, &Reason) + 'static) -> Self {
        *self.shared.give_up.borrow_mut() = Some(Box::new(hook));
        self
    }

    /// Whether a connection being made resets the delay and the retry
    /// count (the default, true); with false, only
    /// [`reset_delay`](Self::reset_delay) does.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::reconnect::{Backoff, ReconnectingClient};
    /// use reactor::{Protocol, Reactor, Transport};
    ///
    /// /// A server that hangs up at once.
    /// struct HangUp;
    /// impl Protocol for HangUp {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         t.lose_connection();
    ///     }
    ///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    /// }
    ///
    /// /// A client that counts its connections.
    /// struct Count(Rc<Cell<u32>>);
    /// impl Protocol for Count {
    ///     fn connection_made(&mut self, _: &mut dyn Transport) {
    ///         self.0.set(self.0.get() + 1);
    ///     }
    ///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let server = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || HangUp)?;
    /// let made = Rc::new(Cell::new(0));
    /// let counted = made.clone();
    /// let client = ReconnectingClient::new(move || Count(counted.clone()))
    ///     .with_backoff(Backoff {
    ///         initial_delay: Duration::from_millis(1),
    ///         max_retries: Some(1),
    ///         ..Backoff::default()
    ///     })
    ///     // A connection that ends at once is no good: it does not reset.
    ///     .reset_on_connect(false)
    ///     .on_give_up(|reactor, _| reactor.stop());
    /// client.connect_tcp(&mut reactor, server.local_addr(), Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// // Two connections lost in a row counted as two retries: one too many.
    /// assert_eq!(made.get(), 2);
    /// assert_eq!(client.retries(), 2);
    /// assert!(!client.is_trying());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reset_on_connect(self, reset: bool) -> Self {
        self.shared.state.borrow_mut().reset_on_connect = reset;
        self
    }

    /// Starts connecting: `connect` makes each attempt, given the reactor
    /// and the attempt's factory to connect with, and returns the id that
    /// the reactor's connect returned. The first attempt is made now; a
    /// client already started is left as it is.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use reactor::reconnect::ReconnectingClient;
    /// # use reactor::{protocols::Discard, Reactor};
    /// # let mut reactor = Reactor::new()?;
    /// let addr: std::net::SocketAddr = "127.0.0.1:8000".parse().unwrap();
    /// let client = ReconnectingClient::new(|| Discard);
    /// client.connect_with(&mut reactor, move |reactor, attempt| {
    ///     reactor.connect_tcp(addr, attempt, Duration::from_secs(5))
    /// });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_with(
        &self,
        reactor: &mut Reactor,
        connect: impl FnMut(&mut Reactor, Attempt) -> ConnectionId + 'static,
    ) {
        {
            let mut state = self.shared.state.borrow_mut();
            if state.life != Life::Unstarted {
                warn!("a reconnecting client was asked to connect twice; the second is ignored");
                return;
            }
            state.life = Life::Running;
        }
        *self.shared.connector.borrow_mut() = Some(Box::new(connect));
        let started = crate::panic::catch(|| self.shared.factory.borrow_mut().start_factory());
        if let Err(why) = started {
            log::error!("start_factory panicked: {why}");
        }
        attempt(&self.shared, reactor);
    }

    /// Starts connecting to `addr` over TCP, each attempt bounded by
    /// `timeout` ([`connect_with`](Self::connect_with) with
    /// [`Reactor::connect_tcp`]).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::reconnect::ReconnectingClient;
    /// use reactor::{Protocol, Reactor, Transport};
    ///
    /// /// Says hello, keeps the echo, stops the reactor.
    /// struct Hello(Rc<RefCell<Vec<u8>>>);
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         t.write(b"hello");
    ///     }
    ///     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
    ///         self.0.borrow_mut().extend_from_slice(data);
    ///         t.reactor().unwrap().stop();
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let server = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
    /// let echo = Rc::new(RefCell::new(Vec::new()));
    /// let kept = echo.clone();
    /// let client = ReconnectingClient::new(move || Hello(kept.clone()));
    /// client.connect_tcp(&mut reactor, server.local_addr(), Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// assert_eq!(*echo.borrow(), b"hello");
    /// assert_eq!(client.retries(), 0);
    /// // The reactor's stop closed the connection; a stopping reactor makes
    /// // no new attempt, so the client is done.
    /// assert!(!client.is_trying());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_tcp(&self, reactor: &mut Reactor, addr: SocketAddr, timeout: Duration) {
        self.connect_with(reactor, move |reactor, attempt| {
            reactor.connect_tcp(addr, attempt, timeout)
        });
    }

    /// Stops reconnecting (Twisted's `stopTrying`): a pending retry is
    /// cancelled, and an attempt under way is aborted (its factory hears
    /// `client_connection_failed` with [`Reason::Aborted`]). A connection
    /// that is made stays open; when it ends, no other is made. The give-up
    /// hook does not run: this is not giving up.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::net::TcpListener;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::protocols::Discard;
    /// use reactor::reconnect::ReconnectingClient;
    /// use reactor::{client_factory, Reactor, Reason};
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?; // never accepts
    /// let failures = Rc::new(RefCell::new(Vec::new()));
    /// let kept = failures.clone();
    /// let factory = client_factory(
    ///     || Discard,
    ///     move |reactor, reason| {
    ///         kept.borrow_mut().push(reason.clone());
    ///         reactor.stop();
    ///     },
    /// );
    /// let mut reactor = Reactor::new()?;
    /// let client = ReconnectingClient::new(factory);
    /// client.connect_tcp(&mut reactor, listener.local_addr()?, Duration::from_secs(5));
    /// client.stop_trying(&mut reactor); // the attempt under way is aborted
    /// assert!(!client.is_trying());
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// assert_eq!(*failures.borrow(), [Reason::Aborted]); // and not retried
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_trying(&self, reactor: &mut Reactor) {
        let in_flight = {
            let mut state = self.shared.state.borrow_mut();
            state.trying = false;
            state.in_flight
        };
        match in_flight {
            InFlight::Retry(timer) => {
                self.shared.state.borrow_mut().in_flight = InFlight::Nothing;
                reactor.cancel(timer);
                finish(&self.shared);
            }
            InFlight::Attempt(Some(id)) => reactor.lose_connection(id),
            // Aborted once `connect_with`'s closure returns its id.
            InFlight::Attempt(None) => {}
            // It lives on; its end is not followed by another attempt.
            InFlight::Connection(_) => {}
            InFlight::Nothing => finish(&self.shared),
        }
    }

    /// Puts the delay and the retry count back to the start (Twisted's
    /// `resetDelay`), as a connection being made does unless
    /// [`reset_on_connect(false)`](Self::reset_on_connect).
    ///
    /// ```
    /// use std::net::TcpListener;
    /// use std::time::Duration;
    /// use reactor::protocols::Discard;
    /// use reactor::reconnect::{Backoff, ReconnectingClient};
    /// use reactor::Reactor;
    ///
    /// // Nothing listens here: every attempt is refused.
    /// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    /// let backoff = Backoff {
    ///     initial_delay: Duration::from_millis(1),
    ///     max_retries: Some(1),
    ///     ..Backoff::default()
    /// };
    /// let mut reactor = Reactor::new()?;
    /// let client = ReconnectingClient::new(|| Discard)
    ///     .with_backoff(backoff)
    ///     .on_give_up(|reactor, _| reactor.stop());
    /// client.connect_tcp(&mut reactor, closed, Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// assert_eq!(client.retries(), 2);
    /// assert!(client.delay() > backoff.initial_delay);
    /// client.reset_delay();
    /// assert_eq!((client.retries(), client.delay()), (0, backoff.initial_delay));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reset_delay(&self) {
        let mut state = self.shared.state.borrow_mut();
        state.delay = state.backoff.initial_delay;
        state.retries = 0;
    }

    /// Whether the client will try again when its attempt fails or its
    /// connection ends: false after `stop_trying`, or once it gave up.
    ///
    /// ```
    /// # use reactor::{protocols::Discard, reconnect::ReconnectingClient, Reactor};
    /// # let mut reactor = Reactor::new()?;
    /// let client = ReconnectingClient::new(|| Discard);
    /// assert!(client.is_trying());
    /// client.stop_trying(&mut reactor);
    /// assert!(!client.is_trying());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_trying(&self) -> bool {
        self.shared.state.borrow().trying
    }

    /// Retries since a connection was last made (Twisted's `retries`);
    /// [`reset_delay`](Self::reset_delay) shows it counting.
    ///
    /// ```
    /// # use reactor::{protocols::Discard, reconnect::ReconnectingClient};
    /// assert_eq!(ReconnectingClient::new(|| Discard).retries(), 0);
    /// ```
    pub fn retries(&self) -> u32 {
        self.shared.state.borrow().retries
    }

    /// What the last retry waited, or the initial delay if none has since
    /// a connection was made (Twisted's `delay`);
    /// [`with_random`](Self::with_random) shows it after a retry.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use reactor::{protocols::Discard, reconnect::ReconnectingClient};
    /// assert_eq!(ReconnectingClient::new(|| Discard).delay(), Duration::from_secs(1));
    /// ```
    pub fn delay(&self) -> Duration {
        self.shared.state.borrow().delay
    }

    /// The connection, while one is made.
    ///
    /// ```
    /// use std::cell::{Cell, OnceCell};
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::reconnect::ReconnectingClient;
    /// use reactor::{Protocol, Reactor, Transport};
    ///
    /// /// Once connected, notes whether the client names this connection.
    /// struct Check(Rc<OnceCell<ReconnectingClient>>, Rc<Cell<bool>>);
    /// impl Protocol for Check {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         let client = self.0.get().expect("set before the reactor runs");
    ///         self.1.set(client.connection() == Some(t.id()));
    ///         t.reactor().unwrap().stop();
    ///     }
    ///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let server = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
    /// let (slot, named) = (Rc::new(OnceCell::new()), Rc::new(Cell::new(false)));
    /// let (s, n) = (slot.clone(), named.clone());
    /// let client = ReconnectingClient::new(move || Check(s.clone(), n.clone()));
    /// let _ = slot.set(client.clone());
    /// assert_eq!(client.connection(), None); // not started
    /// client.connect_tcp(&mut reactor, server.local_addr(), Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// assert!(named.get());
    /// assert_eq!(client.connection(), None); // closed by the reactor's stop
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connection(&self) -> Option<ConnectionId> {
        match self.shared.state.borrow().in_flight {
            InFlight::Connection(id) => Some(id),
            _ => None,
        }
    }
}

/// Makes one attempt with the user's connector.
fn attempt(shared: &Rc<Shared>, reactor: &mut Reactor) {
    {
        let mut state = shared.state.borrow_mut();
        if !state.trying || reactor.is_stopping() {
            state.trying = false;
            drop(state);
            finish(shared);
            return;
        }
        state.in_flight = InFlight::Attempt(None);
    }
    let Some(mut connect) = shared.connector.borrow_mut().take() else {
        // Only while the connector itself runs, which makes no attempt.
        shared.state.borrow_mut().in_flight = InFlight::Nothing;
        return;
    };
    let attempt = Attempt {
        shared: Rc::clone(shared),
    };
    let id = crate::panic::catch(|| connect(reactor, attempt));
    *shared.connector.borrow_mut() = Some(connect);
    let Ok(id) = id else {
        log::error!("a reconnecting client's connect closure panicked; it stops trying");
        let mut state = shared.state.borrow_mut();
        state.trying = false;
        state.in_flight = InFlight::Nothing;
        drop(state);
        finish(shared);
        return;
    };
    let trying = {
        let mut state = shared.state.borrow_mut();
        if state.in_flight == InFlight::Attempt(None) {
            state.in_flight = InFlight::Attempt(Some(id));
        }
        state.trying
    };
    if !trying {
        // `stop_trying` ran while the connect was being started.
        reactor.lose_connection(id);
    }
}

/// An attempt or connection ended: the next attempt is scheduled, or the
/// client gives up or is done.
fn ended(shared: &Rc<Shared>, reactor: &mut Reactor, reason: &Reason, made: bool) {
    let mut state = shared.state.borrow_mut();
    state.in_flight = InFlight::Nothing;
    if !state.trying || reactor.is_stopping() {
        state.trying = false;
        drop(state);
        finish(shared);
        return;
    }
    state.retries += 1;
    if state
        .backoff
        .max_retries
        .is_some_and(|max| state.retries > max)
    {
        let attempts = state.retries;
        state.trying = false;
        drop(state);
        let hook = shared.give_up.borrow_mut().take();
        match hook {
            Some(mut hook) => {
                if let Err(why) = crate::panic::catch(|| hook(reactor, reason)) {
                    log::error!("a reconnecting client's give-up hook panicked: {why}");
                }
            }
            None => warn!("giving up after {attempts} attempts in a row: {reason}"),
        }
        finish(shared);
        return;
    }
    let normal = state.random.standard_normal();
    state.delay = state.backoff.next_delay(state.delay, normal);
    let delay = state.delay;
    let what = if made {
        "connection lost"
    } else {
        "cannot connect"
    };
    info!("{what} ({reason}); retrying in {delay:.1?}");
    let next = Rc::clone(shared);
    drop(state);
    let timer = reactor.call_later(delay, move |reactor| attempt(&next, reactor));
    shared.state.borrow_mut().in_flight = InFlight::Retry(timer);
}

/// The client will make no more attempts and has nothing under way: the
/// user's factory hears `stop_factory`, once.
fn finish(shared: &Shared) {
    {
        let mut state = shared.state.borrow_mut();
        if state.life != Life::Running || state.in_flight != InFlight::Nothing {
            return;
        }
        state.life = Life::Done;
    }
    let stopped = crate::panic::catch(|| shared.factory.borrow_mut().stop_factory());
    if let Err(why) = stopped {
        log::error!("stop_factory panicked: {why}");
    }
}

/// The factory of one attempt of a [`ReconnectingClient`]: what its
/// connector hands the reactor's connect. Every hook goes to the user's
/// factory; the protocol it builds is wrapped to tell the client when the
/// connection is made.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::protocols::Echo;
/// use reactor::reconnect::{Attempt, ReconnectingClient};
/// use reactor::{Protocol, Reactor, Transport};
///
/// /// Stops the reactor once connected.
/// struct Connected(Rc<Cell<bool>>);
/// impl Protocol for Connected {
///     fn connection_made(&mut self, t: &mut dyn Transport) {
///         self.0.set(true);
///         t.reactor().unwrap().stop();
///     }
///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
/// }
///
/// // An abstract UNIX name: no file to create or clean up.
/// let name = format!("@reactor-doc-attempt-{}", std::process::id());
/// let mut reactor = Reactor::new()?;
/// reactor.listen_unix(&name, || Echo)?;
/// let connected = Rc::new(Cell::new(false));
/// let kept = connected.clone();
/// let client = ReconnectingClient::new(move || Connected(kept.clone()));
/// // Each attempt's factory goes to whatever connects: here, over UNIX.
/// client.connect_with(&mut reactor, move |reactor, attempt: Attempt| {
///     reactor.connect_unix(&name, attempt, Duration::from_secs(5))
/// });
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
/// reactor.run()?;
/// assert!(connected.get());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Attempt {
    shared: Rc<Shared>,
}

impl Factory for Attempt {
    fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
        let inner = self.shared.factory.borrow_mut().build_protocol(peer);
        Box::new(Tracked {
            inner,
            shared: Rc::clone(&self.shared),
        })
    }
}

impl ClientFactory for Attempt {
    fn started_connecting(&mut self, reactor: &mut Reactor) {
        self.shared.factory.borrow_mut().started_connecting(reactor);
    }

    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let heard = crate::panic::catch(|| {
            let mut factory = self.shared.factory.borrow_mut();
            factory.client_connection_failed(reactor, reason);
        });
        if let Err(why) = heard {
            log::error!("client_connection_failed panicked: {why}");
        }
        // Whatever the user's hook did, the client goes on.
        ended(&self.shared, reactor, reason, false);
    }

    fn client_connection_lost(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let heard = crate::panic::catch(|| {
            let mut factory = self.shared.factory.borrow_mut();
            factory.client_connection_lost(reactor, reason);
        });
        if let Err(why) = heard {
            log::error!("client_connection_lost panicked: {why}");
        }
        ended(&self.shared, reactor, reason, true);
    }
}

/// The user's protocol, which tells the client when its connection is
/// made (and so resets the delay) before it hears `connection_made`.
struct Tracked {
    inner: Box<dyn Protocol>,
    shared: Rc<Shared>,
}

impl Protocol for Tracked {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        {
            let mut state = self.shared.state.borrow_mut();
            state.in_flight = InFlight::Connection(transport.id());
            if state.reset_on_connect {
                state.delay = state.backoff.initial_delay;
                state.retries = 0;
            }
        }
        self.inner.connection_made(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        self.inner.data_received(transport, data);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        self.inner.connection_lost(transport, reason);
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        self.inner.timeout_connection(transport, timeout);
    }

    fn allows_half_close(&self) -> bool {
        self.inner.allows_half_close()
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        self.inner.read_connection_lost(transport);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        self.inner.pause_producing(transport);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.inner.resume_producing(transport);
    }

    fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
        self.inner.stopping(transport)
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        self.inner.timer_fired(transport, tag);
    }
}
