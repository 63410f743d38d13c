//! The [`ReconnectingClient`] handle: how it is built and configured,
//! started and stopped, and what it tells about itself.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::attempt::Attempt;
use super::backoff::{Backoff, RandomSource, XorShift};
use super::cycle::{self, Shared};
use super::state::State;
use crate::protocol::ClientFactory;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::transport::ConnectionId;

/// A client that connects, and connects again whenever its attempt fails
/// or its connection ends, waiting longer each time (Twisted's
/// `ReconnectingClientFactory`; the [module](super) has the rules). A
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
        let state = State::new(Backoff::default(), Box::new(XorShift::from_time()));
        ReconnectingClient {
            shared: Rc::new(Shared {
                factory: RefCell::new(Box::new(factory)),
                connector: RefCell::new(None),
                give_up: RefCell::new(None),
                state: RefCell::new(state),
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
        cycle::start(&self.shared, reactor, Box::new(connect));
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
        cycle::stop_trying(&self.shared, reactor);
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
        self.shared.state.borrow_mut().reset_delay();
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
        self.shared.state.borrow().is_trying()
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
        self.shared.state.borrow().connection()
    }
}
