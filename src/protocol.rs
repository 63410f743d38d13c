//! The callbacks a connection's owner implements, and the factories that build them.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::address::Address;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::transport::Transport;

/// The per-connection callbacks, as in Twisted's `IProtocol`.
///
/// For each connection the reactor calls `connection_made` once, then
/// `data_received` for every chunk read, then `connection_lost` exactly once,
/// after which the protocol is dropped. Every callback is handed the
/// connection's [`Transport`], through which it writes, closes, schedules
/// timers and reaches the [`Reactor`].
///
/// On the reactor, callbacks run on the reactor's thread and must not block;
/// on the [`threaded`](crate::threaded) server each connection's callbacks
/// run on that connection's own thread.
///
/// An echo server, and a client that says hello, checks the echo, hangs up
/// and stops the reactor once its connection is gone:
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::{Protocol, Reactor, Reason, Transport};
///
/// /// Sends back whatever arrives.
/// struct Echo;
/// impl Protocol for Echo {
///     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
///         transport.write(data);
///     }
/// }
///
/// /// What the client saw: the echo, and how its connection ended.
/// #[derive(Default)]
/// struct Seen {
///     echo: Vec<u8>,
///     lost: Option<Reason>,
/// }
///
/// /// Says hello, keeps the echo, then hangs up.
/// struct Hello(Rc<RefCell<Seen>>);
/// impl Protocol for Hello {
///     fn connection_made(&mut self, transport: &mut dyn Transport) {
///         transport.write(b"hello");
///     }
///     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
///         self.0.borrow_mut().echo.extend_from_slice(data);
///         if self.0.borrow().echo.len() == 5 {
///             transport.lose_connection();
///         }
///     }
///     fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
///         self.0.borrow_mut().lost = Some(reason.clone());
///         transport.reactor().unwrap().stop();
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let server = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
/// let seen = Rc::new(RefCell::new(Seen::default()));
/// let hello = { let seen = seen.clone(); move || Hello(seen.clone()) };
/// reactor.connect_tcp(server.local_addr(), hello, Duration::from_secs(5));
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case it fails
/// reactor.run()?;
/// assert_eq!(seen.borrow().echo, b"hello");
/// assert_eq!(seen.borrow().lost, Some(Reason::LocalClosed));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Protocol: 'static {
    /// The connection is established; `transport` is ready for writing.
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let _ = transport;
    }

    /// Bytes arrived. TCP keeps no message boundaries: `data` is whatever one
    /// read returned, and is only valid during the call.
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]);

    /// The connection is gone. Called exactly once per made connection.
    /// Writes to `transport` are ignored now, but it still reaches the
    /// reactor (to tell other connections, say).
    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        let _ = (transport, reason);
    }

    /// The connection's idle timeout or deadline
    /// ([`Transport::set_idle_timeout`], [`Transport::set_deadline`]) passed.
    /// The default closes it with `lose_connection`, as Twisted's
    /// `TimeoutMixin.timeoutConnection`; if it is still flushing one more
    /// idle period later (or one second after a deadline), it is aborted.
    /// An override that keeps the connection is asked again after another
    /// idle period.
    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        log::debug!(
            "{}: {} passed; closing",
            transport.peer_addr(),
            match timeout {
                Timeout::Idle => "idle timeout",
                Timeout::Deadline => "deadline",
            }
        );
        transport.lose_connection();
    }

    /// Whether this protocol handles a half-closed connection: if true, the
    /// peer's FIN calls [`read_connection_lost`](Protocol::read_connection_lost)
    /// and the connection stays open for writing. The default, false, keeps
    /// Twisted's behaviour: the peer's FIN ends the connection (after what is
    /// buffered is flushed). Twisted's `IHalfCloseableProtocol`.
    fn allows_half_close(&self) -> bool {
        false
    }

    /// The peer closed its writing side (we read end-of-file) and
    /// [`allows_half_close`](Protocol::allows_half_close) is true: nothing
    /// more will arrive, but we may still write. The connection ends when
    /// the protocol calls `lose_connection` (or `lose_write_connection`).
    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        let _ = transport;
    }

    /// The outgoing buffer passed its high watermark (a peer reading slower
    /// than we write), or that of a connection this one is registered as a
    /// producer for ([`Reactor::register_producer`]). Called once the
    /// callback whose write crossed it has returned. The default stops
    /// reading this connection, so an echo or a proxy holds at most the high
    /// watermark plus one read for a peer that does not read; a producer (a
    /// file sender) simply stops writing while
    /// [`Transport::is_write_buffer_full`] says so. This connection's
    /// `pause_reading` made here is flow control's: the reactor lifts it
    /// itself before `resume_producing`, and it never lifts a pause the
    /// protocol made elsewhere (pausing *another* connection from here, as
    /// a proxy does, is an ordinary pause, undone by `resume_reading`).
    /// Twisted's `IPushProducer.pauseProducing`.
    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        transport.pause_reading();
    }

    /// Every buffer that paused this producer drained below its low
    /// watermark. Reading paused by `pause_producing` has already resumed;
    /// a producer writes its next chunks here. Twisted's `resumeProducing`.
    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        let _ = transport;
    }

    /// A graceful stop began ([`Reactor::stop`], a signal under
    /// [`Reactor::stop_on_signals`]): Twisted's "before shutdown" trigger,
    /// per connection. The default, [`OnStop::Close`], closes the connection
    /// as `lose_connection` does: what is buffered is flushed, then the peer
    /// gets a FIN, unless input it sent was never read, in which case it
    /// gets a reset, so a loss is never passed off as a clean end. A
    /// protocol that should finish its work (echo what is still coming,
    /// answer the request in progress) returns [`OnStop::KeepOpen`]: it goes
    /// on being called as usual and closes the connection itself, within
    /// the grace period ([`Reactor::set_shutdown_grace`]), after which what
    /// is left is closed regardless.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::{OnStop, Protocol, Transport};
    ///
    /// /// Echoes until the peer has been quiet for 200 ms, even while stopping.
    /// struct DrainingEcho;
    /// impl Protocol for DrainingEcho {
    ///     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
    ///         transport.write(data);
    ///     }
    ///     fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
    ///         // The default timeout_connection closes cleanly once quiet.
    ///         transport.set_idle_timeout(Some(Duration::from_millis(200)));
    ///         OnStop::KeepOpen
    ///     }
    /// }
    /// ```
    fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
        let _ = transport;
        OnStop::Close
    }

    /// A timer scheduled with [`Transport::call_later`] fired; `tag` is the
    /// value given when it was scheduled. Twisted's `callLater(d, self.method)`.
    /// Never called after `connection_lost`.
    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        let _ = (transport, tag);
    }
}

/// What a connection does when a graceful stop begins ([`Protocol::stopping`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// Flush and close now (the default).
    Close,
    /// Stay open: the protocol finishes its work and closes the connection
    /// itself, within the grace period.
    KeepOpen,
}

/// Which limit [`Protocol::timeout_connection`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// Nothing was read or written for the whole idle timeout.
    Idle,
    /// The connection's deadline passed, busy or not.
    Deadline,
}

/// Builds a [`Protocol`] for each accepted (or connected) socket, as Twisted's `Factory`.
///
/// A closure returning a protocol is a factory: `|| Echo`. State that every
/// protocol should reach (a chat room's members) lives in the factory, which
/// hands each protocol a shared handle to it (`Rc<RefCell<…>>`).
///
/// A factory of its own numbers the visitors:
///
/// ```
/// use std::io::Read;
/// use std::net::{SocketAddr, TcpStream};
/// use reactor::{Factory, Protocol, Reactor, Transport};
///
/// /// Tells the visitor its number and hangs up.
/// struct Greeter(u32);
/// impl Protocol for Greeter {
///     fn connection_made(&mut self, transport: &mut dyn Transport) {
///         transport.write(format!("you are visitor {}\n", self.0).as_bytes());
///         transport.lose_connection();
///     }
///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
/// }
///
/// /// Builds a `Greeter` for each connection, counting them.
/// struct Visitors {
///     seen: u32,
/// }
/// impl Factory for Visitors {
///     fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
///         self.seen += 1;
///         log::info!("visitor {} is {peer}", self.seen);
///         Box::new(Greeter(self.seen))
///     }
/// }
///
/// let mut reactor = Reactor::new()?;
/// let listener = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), Visitors { seen: 0 })?;
/// let addr = listener.local_addr();
/// let handle = reactor.handle()?;
/// let clients = std::thread::spawn(move || {
///     let visit = || {
///         let mut greeting = String::new();
///         TcpStream::connect(addr)?.read_to_string(&mut greeting)?;
///         Ok::<_, std::io::Error>(greeting)
///     };
///     let greetings = (visit(), visit());
///     handle.stop();
///     greetings
/// });
/// reactor.run()?;
/// let (first, second) = clients.join().unwrap();
/// assert_eq!(first?, "you are visitor 1\n");
/// assert_eq!(second?, "you are visitor 2\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Factory: 'static {
    /// Builds the protocol for a new connection from `peer`, an IP peer.
    /// (For a peer of another kind, a UNIX socket's, the default
    /// [`build_protocol_for`](Factory::build_protocol_for) passes the
    /// unspecified address `0.0.0.0:0`: the protocol learns the real one
    /// from [`Transport::peer_addr`](crate::Transport::peer_addr).)
    fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol>;

    /// Builds the protocol for a new connection from `peer`, of any kind:
    /// what the reactor and the threaded model call. The default calls
    /// [`build_protocol`](Factory::build_protocol) with the IP address, or
    /// `0.0.0.0:0` for a UNIX peer; a factory that tells UNIX peers apart
    /// overrides this one.
    fn build_protocol_for(&mut self, peer: &Address) -> Box<dyn Protocol> {
        self.build_protocol(
            peer.socket_addr()
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        )
    }

    /// Called before the first connection is built: when it starts listening,
    /// or when a client factory starts connecting.
    fn start_factory(&mut self) {}

    /// Called when the factory's listener stops (for a [`SharedFactory`],
    /// its last listener).
    fn stop_factory(&mut self) {}
}

impl<F, P> Factory for F
where
    F: FnMut() -> P + 'static,
    P: Protocol,
{
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(self())
    }
}

/// A factory for outgoing connections, as Twisted's `ClientFactory`.
///
/// The hooks get the reactor so that, as in the Twisted examples, losing the
/// only connection can stop it. A closure is a client factory too, whose
/// refusal is only logged; [`client_factory`] adds a closure for the
/// failure; a factory of its own hears everything:
///
/// ```
/// use std::cell::RefCell;
/// use std::io::ErrorKind;
/// use std::net::{SocketAddr, TcpListener};
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::{ClientFactory, Factory, Protocol, Reactor, Reason, Transport};
///
/// struct Client;
/// impl Protocol for Client {
///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
/// }
///
/// /// Stops the reactor when the connection fails or ends, keeping why it failed.
/// struct OneShot {
///     failed: Rc<RefCell<Option<Reason>>>,
/// }
/// impl Factory for OneShot {
///     fn build_protocol(&mut self, _: SocketAddr) -> Box<dyn Protocol> {
///         Box::new(Client)
///     }
/// }
/// impl ClientFactory for OneShot {
///     fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
///         log::warn!("cannot connect: {reason}");
///         *self.failed.borrow_mut() = Some(reason.clone());
///         reactor.stop();
///     }
///     fn client_connection_lost(&mut self, reactor: &mut Reactor, _: &Reason) {
///         reactor.stop();
///     }
/// }
///
/// // A port nothing listens on: bound, then closed again.
/// let closed = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
/// let failed = Rc::new(RefCell::new(None));
/// let mut reactor = Reactor::new()?;
/// reactor.connect_tcp(closed, OneShot { failed: failed.clone() }, Duration::from_secs(5));
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case it is not heard
/// reactor.run()?; // the refusal stops it
/// let kind = failed.borrow().as_ref().and_then(Reason::error_kind);
/// assert_eq!(kind, Some(ErrorKind::ConnectionRefused));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ClientFactory: Factory {
    /// The connection attempt has begun.
    fn started_connecting(&mut self, reactor: &mut Reactor) {
        let _ = reactor;
    }

    /// The attempt failed: refused, unreachable ([`Reason::Error`]),
    /// [`Reason::TimedOut`], or a failed TLS handshake ([`Reason::Tls`]).
    /// No protocol was built.
    ///
    /// The default logs a warning, so a failure nobody handles is never
    /// silent (a closure factory `|| MyProtocol` cannot handle it: give
    /// [`connect_tcp`](Reactor::connect_tcp) a [`client_factory`] to stop
    /// the reactor or retry).
    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let _ = reactor;
        log::warn!("a client connection failed: {reason}");
    }

    /// A connection made from this factory ended, after its protocol's
    /// `connection_lost`.
    fn client_connection_lost(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let _ = (reactor, reason);
    }
}

impl<F, P> ClientFactory for F
where
    F: FnMut() -> P + 'static,
    P: Protocol,
{
}

/// A client factory from two closures: `build` makes the protocol once
/// connected, `failed` hears a failed attempt (to report it and stop the
/// reactor, or to try again later). What a closure factory cannot do.
///
/// ```
/// use std::time::Duration;
/// use reactor::{client_factory, Protocol, Reactor, Transport};
///
/// struct Hello;
/// impl Protocol for Hello {
///     fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
/// }
///
/// // Nothing listens on this port: the attempt is refused.
/// let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
/// let mut reactor = Reactor::new()?;
/// let factory = client_factory(
///     || Hello,
///     move |reactor, reason| {
///         eprintln!("cannot connect to {closed}: {reason}");
///         reactor.stop();
///     },
/// );
/// reactor.connect_tcp(closed, factory, Duration::from_secs(5));
/// reactor.run()?; // returns: the failure stopped it
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn client_factory<P, B, E>(build: B, failed: E) -> ClientFn<B, E>
where
    P: Protocol,
    B: FnMut() -> P + 'static,
    E: FnMut(&mut Reactor, &Reason) + 'static,
{
    ClientFn { build, failed }
}

/// The factory [`client_factory`] makes.
pub struct ClientFn<B, E> {
    build: B,
    failed: E,
}

impl<P, B, E> Factory for ClientFn<B, E>
where
    P: Protocol,
    B: FnMut() -> P + 'static,
    E: FnMut(&mut Reactor, &Reason) + 'static,
{
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new((self.build)())
    }
}

impl<P, B, E> ClientFactory for ClientFn<B, E>
where
    P: Protocol,
    B: FnMut() -> P + 'static,
    E: FnMut(&mut Reactor, &Reason) + 'static,
{
    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        (self.failed)(reactor, reason);
    }
}

/// One factory serving several listeners: `start_factory` runs when the first
/// of them starts and `stop_factory` when the last one stops (Twisted's
/// `doStart`/`doStop` counting). Clone it to hand it to another listener.
pub struct SharedFactory<F> {
    inner: Rc<SharedInner<F>>,
}

struct SharedInner<F> {
    listeners: std::cell::Cell<usize>,
    factory: RefCell<F>,
}

impl<F: Factory> SharedFactory<F> {
    /// Wraps `factory` for sharing.
    pub fn new(factory: F) -> Self {
        SharedFactory {
            inner: Rc::new(SharedInner {
                listeners: std::cell::Cell::new(0),
                factory: RefCell::new(factory),
            }),
        }
    }

    /// Runs `f` with the wrapped factory, to read or change its state.
    pub fn with<R>(&self, f: impl FnOnce(&mut F) -> R) -> R {
        f(&mut self.inner.factory.borrow_mut())
    }
}

impl<F> Clone for SharedFactory<F> {
    fn clone(&self) -> Self {
        SharedFactory {
            inner: Rc::clone(&self.inner),
        }
    }
}

impl<F: Factory> Factory for SharedFactory<F> {
    fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
        self.inner.factory.borrow_mut().build_protocol(peer)
    }

    fn build_protocol_for(&mut self, peer: &Address) -> Box<dyn Protocol> {
        self.inner.factory.borrow_mut().build_protocol_for(peer)
    }

    fn start_factory(&mut self) {
        let n = self.inner.listeners.get();
        self.inner.listeners.set(n + 1);
        if n == 0 {
            self.inner.factory.borrow_mut().start_factory();
        }
    }

    fn stop_factory(&mut self) {
        let n = self.inner.listeners.get();
        if n == 0 {
            return;
        }
        self.inner.listeners.set(n - 1);
        if n == 1 {
            self.inner.factory.borrow_mut().stop_factory();
        }
    }
}
