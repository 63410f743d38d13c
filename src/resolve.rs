//! Where a client connects to ([`Destination`]: an address, several, or a
//! host name and port), and looking host names up off the loop.
//!
//! `getaddrinfo` blocks, for as long as DNS takes (seconds when a server
//! does not answer), so the reactor never calls it on its own thread: a
//! lookup is a job on a small pool of its own ([`RESOLVER_THREADS`] threads,
//! [`RESOLVER_QUEUE`] more lookups waiting; the machinery of
//! [`Reactor::run_in_thread`], kept apart so that lookups and the user's
//! blocking jobs never wait for each other), and its answer comes back
//! through the reactor's cross-thread queue. What happens then is Happy
//! Eyeballs (`tcp/happy.rs`).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Arc;

use crate::reactor::{PoolError, PoolKind, Reactor};
use crate::transport::ConnectionId;

/// Threads the reactor's resolver pool may use: lookups mostly wait on the
/// network, so a few overlap well, and few enough that a burst of connects
/// to dead names cannot start a thread each.
///
/// ```
/// // Lookups in flight before a connect by name is refused at once
/// // (`RESOLVER_QUEUE` shows the refusal).
/// assert_eq!(reactor::RESOLVER_THREADS + reactor::RESOLVER_QUEUE, 68);
/// ```
pub const RESOLVER_THREADS: usize = 4;

/// Lookups that may wait for a resolver thread. A connect by name beyond
/// `RESOLVER_THREADS + RESOLVER_QUEUE` lookups in flight fails at once with
/// [`Reason::Unresolved`](crate::Reason::Unresolved) ("the resolver is
/// busy"), as [`Reactor::run_in_thread`] refuses a job when its pool is
/// full: waiting would block the loop, and an unbounded queue would hide
/// an overload.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::sync::{mpsc, Arc, Mutex};
/// use std::time::Duration;
/// use reactor::protocols::Discard;
/// use reactor::{client_factory, Reactor, Reason, RESOLVER_QUEUE, RESOLVER_THREADS};
///
/// let mut reactor = Reactor::new()?;
/// // A resolver that answers nothing until `open` is dropped.
/// let (open, gate) = mpsc::channel::<()>();
/// let gate = Arc::new(Mutex::new(gate));
/// reactor.set_resolver(move |_, _| {
///     let _ = gate.lock().unwrap().recv(); // Err once `open` is dropped
///     Err(std::io::Error::other("no such name"))
/// });
/// let failures: Rc<RefCell<Vec<Reason>>> = Rc::default();
/// let timeout = Duration::from_secs(5);
/// for _ in 0..RESOLVER_THREADS + RESOLVER_QUEUE {
///     let kept = failures.clone();
///     let factory = client_factory(|| Discard, move |_, why| kept.borrow_mut().push(why.clone()));
///     reactor.connect_tcp(("db.internal", 5432), factory, timeout);
/// }
/// // One lookup more than the pool holds is refused, before any answer.
/// let kept = failures.clone();
/// let mut open = Some(open);
/// let refused = client_factory(|| Discard, move |reactor, why| {
///     kept.borrow_mut().push(why.clone());
///     open.take(); // let the others through
///     reactor.stop();
/// });
/// reactor.connect_tcp(("db.internal", 5432), refused, timeout);
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
/// reactor.run()?;
/// let first = failures.borrow()[0].clone();
/// assert!(matches!(&first, Reason::Unresolved { why, .. } if why.contains("busy")), "{first}");
/// # Ok::<(), std::io::Error>(())
/// ```
pub const RESOLVER_QUEUE: usize = 64;

/// A function from a host name and port to the addresses to try, in the
/// order given (Happy Eyeballs interleaves the families from there).
pub(crate) type Resolver = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// Where [`Reactor::connect_tcp`] (and `connect_tls`) connects: one
/// address, several (tried by Happy Eyeballs, as the addresses of a name
/// are), or a host name and port, looked up off the loop.
///
/// Anything that names a destination converts into one: a [`SocketAddr`],
/// an `(ip, port)` pair, a `(host, port)` pair, a `"host:port"` string
/// (`"[::1]:80"` for an IPv6 literal), or a list of addresses. A host that
/// is an IP literal is an address and never reaches the resolver. A string
/// that is not `HOST:PORT` converts too, and the connect fails with
/// [`Reason::Unresolved`](crate::Reason::Unresolved) saying why; parse it
/// with [`str::parse`] to get the error at once instead.
///
/// ```
/// use std::net::SocketAddr;
/// use reactor::Destination;
///
/// let addr: SocketAddr = "127.0.0.1:8000".parse().unwrap();
/// assert_eq!(Destination::from(addr), Destination::from("127.0.0.1:8000"));
/// assert_eq!(Destination::from(("127.0.0.1", 8000)).addresses(), Some(&[addr][..]));
/// assert_eq!(Destination::from("localhost:8000").host(), Some("localhost"));
/// assert_eq!(Destination::from("localhost:8000").port(), 8000);
/// assert!("localhost".parse::<Destination>().is_err()); // no port
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination(pub(crate) Target);

/// What a [`Destination`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Addresses to try (one, for a plain connect).
    Addrs(Vec<SocketAddr>),
    /// A name to look up.
    Host { host: String, port: u16 },
    /// Text that is not `HOST:PORT`: the connect fails, saying why.
    Malformed { text: String, why: &'static str },
}

impl Destination {
    /// One address.
    ///
    /// ```
    /// let to = reactor::Destination::addr("[::1]:80".parse().unwrap());
    /// assert_eq!(to.port(), 80);
    /// ```
    pub fn addr(addr: SocketAddr) -> Destination {
        Destination(Target::Addrs(vec![addr]))
    }

    /// Several addresses, tried as a host name's would be: families
    /// interleaved, attempts staggered, the first to connect wins (see
    /// [`Reactor::connect_tcp`]). Useful when the addresses come from
    /// somewhere other than the system's resolver.
    ///
    /// ```
    /// let to = reactor::Destination::addrs(["[::1]:80".parse().unwrap(), "127.0.0.1:80".parse().unwrap()]);
    /// assert_eq!(to.addresses().map(<[_]>::len), Some(2));
    /// ```
    pub fn addrs(addrs: impl IntoIterator<Item = SocketAddr>) -> Destination {
        Destination(Target::Addrs(addrs.into_iter().collect()))
    }

    /// A host name (or IP literal) and port.
    ///
    /// ```
    /// use reactor::Destination;
    /// assert_eq!(Destination::name("localhost", 80).host(), Some("localhost"));
    /// // A literal is an address: no lookup.
    /// assert_eq!(Destination::name("::1", 80).host(), None);
    /// ```
    pub fn name(host: impl Into<String>, port: u16) -> Destination {
        let host = host.into();
        match host.parse::<IpAddr>() {
            Ok(ip) => Destination::addr(SocketAddr::new(ip, port)),
            Err(_) => Destination(Target::Host { host, port }),
        }
    }

    /// The host name to look up, if this is one (not an address).
    ///
    /// ```
    /// assert_eq!(reactor::Destination::from("example.com:443").host(), Some("example.com"));
    /// ```
    pub fn host(&self) -> Option<&str> {
        match &self.0 {
            Target::Host { host, .. } => Some(host),
            _ => None,
        }
    }

    /// The addresses to try, if this is not a name to look up.
    ///
    /// ```
    /// let to = reactor::Destination::from("127.0.0.1:80");
    /// assert_eq!(to.addresses(), Some(&["127.0.0.1:80".parse().unwrap()][..]));
    /// ```
    pub fn addresses(&self) -> Option<&[SocketAddr]> {
        match &self.0 {
            Target::Addrs(addrs) => Some(addrs),
            _ => None,
        }
    }

    /// The port (of the first address, for several; 0 for a malformed
    /// string).
    ///
    /// ```
    /// assert_eq!(reactor::Destination::from(("localhost", 8080)).port(), 8080);
    /// ```
    pub fn port(&self) -> u16 {
        match &self.0 {
            Target::Addrs(addrs) => addrs.first().map_or(0, SocketAddr::port),
            Target::Host { port, .. } => *port,
            Target::Malformed { .. } => 0,
        }
    }
}

/// Why a string is not a [`Destination`] (`HOST:PORT`).
///
/// ```
/// let err = "localhost".parse::<reactor::Destination>().unwrap_err();
/// assert_eq!(err.to_string(), r#"not HOST:PORT: "localhost" (no port)"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDestination {
    text: String,
    why: &'static str,
}

impl fmt::Display for BadDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not HOST:PORT: {:?} ({})", self.text, self.why)
    }
}

impl std::error::Error for BadDestination {}

impl FromStr for Destination {
    type Err = BadDestination;

    /// `HOST:PORT`, where HOST is a name, an IPv4 address, or an IPv6
    /// address in brackets (`[::1]:80`).
    fn from_str(text: &str) -> Result<Destination, BadDestination> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Destination::addr(addr));
        }
        let bad = |why| BadDestination {
            text: text.to_owned(),
            why,
        };
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Destination::name(host, port))
    }
}

impl From<&str> for Destination {
    /// Parses `HOST:PORT`; text that is not one makes a destination whose
    /// connect fails with [`Reason::Unresolved`](crate::Reason::Unresolved)
    /// saying why.
    fn from(text: &str) -> Destination {
        text.parse().unwrap_or_else(|e: BadDestination| {
            Destination(Target::Malformed {
                text: e.text,
                why: e.why,
            })
        })
    }
}

impl From<String> for Destination {
    fn from(text: String) -> Destination {
        Destination::from(text.as_str())
    }
}

impl From<&String> for Destination {
    fn from(text: &String) -> Destination {
        Destination::from(text.as_str())
    }
}

impl From<SocketAddr> for Destination {
    fn from(addr: SocketAddr) -> Destination {
        Destination::addr(addr)
    }
}

impl From<SocketAddrV4> for Destination {
    fn from(addr: SocketAddrV4) -> Destination {
        Destination::addr(addr.into())
    }
}

impl From<SocketAddrV6> for Destination {
    fn from(addr: SocketAddrV6) -> Destination {
        Destination::addr(addr.into())
    }
}

impl From<(IpAddr, u16)> for Destination {
    fn from((ip, port): (IpAddr, u16)) -> Destination {
        Destination::addr(SocketAddr::new(ip, port))
    }
}

impl From<(Ipv4Addr, u16)> for Destination {
    fn from((ip, port): (Ipv4Addr, u16)) -> Destination {
        Destination::addr(SocketAddr::new(ip.into(), port))
    }
}

impl From<(Ipv6Addr, u16)> for Destination {
    fn from((ip, port): (Ipv6Addr, u16)) -> Destination {
        Destination::addr(SocketAddr::new(ip.into(), port))
    }
}

impl From<(&str, u16)> for Destination {
    fn from((host, port): (&str, u16)) -> Destination {
        Destination::name(host, port)
    }
}

impl From<(String, u16)> for Destination {
    fn from((host, port): (String, u16)) -> Destination {
        Destination::name(host, port)
    }
}

impl From<Vec<SocketAddr>> for Destination {
    fn from(addrs: Vec<SocketAddr>) -> Destination {
        Destination(Target::Addrs(addrs))
    }
}

impl From<&[SocketAddr]> for Destination {
    fn from(addrs: &[SocketAddr]) -> Destination {
        Destination(Target::Addrs(addrs.to_vec()))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Target::Addrs(addrs) if addrs.len() == 1 => write!(f, "{}", addrs[0]),
            Target::Addrs(addrs) => {
                f.write_str("[")?;
                for (i, addr) in addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{addr}")?;
                }
                f.write_str("]")
            }
            Target::Host { host, port } => write!(f, "{host}:{port}"),
            Target::Malformed { text, .. } => f.write_str(text),
        }
    }
}

/// Looks `host` up with the system's resolver (`getaddrinfo`, as
/// [`ToSocketAddrs`] does), blocking until it answers: what the reactor's
/// resolver threads run unless [`Reactor::set_resolver`] says otherwise.
/// Never call it on the reactor's thread.
///
/// ```
/// let addrs = reactor::resolve_blocking("127.0.0.1", 80)?;
/// assert_eq!(addrs, [std::net::SocketAddr::from(([127, 0, 0, 1], 80))]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn resolve_blocking(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    Ok((host, port).to_socket_addrs()?.collect())
}

/// The resolver a reactor starts with.
pub(crate) fn system_resolver() -> Resolver {
    Arc::new(resolve_blocking)
}

impl Reactor {
    /// Looks host names up with `resolver` instead of the system's
    /// ([`resolve_blocking`]), as Twisted's `installNameResolver`: to
    /// override names (a test's, a service directory's), or use another
    /// DNS client. It runs on the reactor's resolver threads, so it may
    /// block; it returns the addresses in the order to prefer (Happy
    /// Eyeballs tries the first one's family first, then alternates).
    /// Lookups already under way finish with the resolver they started with.
    ///
    /// ```
    /// use std::io;
    /// use std::net::{SocketAddr, TcpListener};
    /// use std::time::Duration;
    /// use reactor::{client_factory, Protocol, Reactor, Transport};
    ///
    /// struct Hello;
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         t.lose_connection();
    ///         if let Some(reactor) = t.reactor() {
    ///             reactor.stop();
    ///         }
    ///     }
    ///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    /// }
    ///
    /// let server = TcpListener::bind("127.0.0.1:0")?;
    /// let port = server.local_addr()?.port();
    /// let mut reactor = Reactor::new()?;
    /// reactor.set_resolver(|host: &str, port: u16| match host {
    ///     "db.internal" => Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]),
    ///     _ => reactor::resolve_blocking(host, port),
    /// });
    /// reactor.connect_tcp(("db.internal", port), client_factory(|| Hello, |r, why| {
    ///     eprintln!("{why}");
    ///     r.stop();
    /// }), Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// assert!(server.accept().is_ok());
    /// # Ok::<(), io::Error>(())
    /// ```
    pub fn set_resolver(
        &mut self,
        resolver: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) {
        self.resolver = Arc::new(resolver);
    }

    /// Starts looking `host` up for dial `dial`; the answer reaches
    /// [`resolved`](Reactor::resolved) on the reactor thread. Refused when
    /// the resolver pool is full.
    pub(crate) fn resolve(
        &mut self,
        dial: ConnectionId,
        host: String,
        port: u16,
    ) -> Result<(), PoolError> {
        let resolver = Arc::clone(&self.resolver);
        self.submit(
            PoolKind::Resolver,
            move || resolver(&host, port),
            move |reactor, result| {
                let result = result.unwrap_or_else(|panicked| Err(io::Error::other(panicked)));
                reactor.resolved(dial, result);
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_parse_into_addresses_names_or_errors() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!("127.0.0.1:80".parse(), Ok(Destination::addr(v4)));
        assert_eq!("[::1]:80".parse(), Ok(Destination::addr(v6)));
        // As std's ToSocketAddrs reads it: the last colon splits off the port.
        assert_eq!("::1:80".parse(), Ok(Destination::addr(v6)));
        assert_eq!(
            "localhost:80".parse(),
            Ok(Destination(Target::Host {
                host: "localhost".into(),
                port: 80
            }))
        );
        assert_eq!(
            "[localhost]:80".parse::<Destination>().unwrap().host(),
            Some("localhost")
        );
        for (text, why) in [
            ("localhost", "no port"),
            ("localhost:http", "the port is not a number from 0 to 65535"),
            (
                "localhost:65536",
                "the port is not a number from 0 to 65535",
            ),
            (":80", "no host"),
        ] {
            let err = text.parse::<Destination>().unwrap_err();
            assert_eq!(err.why, why, "{text}");
            assert_eq!(
                Destination::from(text),
                Destination(Target::Malformed {
                    text: text.into(),
                    why
                })
            );
        }
    }

    #[test]
    fn pairs_and_lists_convert() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(
            Destination::from((Ipv4Addr::LOCALHOST, 80)),
            Destination::addr(v4)
        );
        assert_eq!(Destination::from(("127.0.0.1", 80)), Destination::addr(v4));
        assert_eq!(
            Destination::from(vec![v4, v4]).to_string(),
            "[127.0.0.1:80, 127.0.0.1:80]"
        );
        assert_eq!(
            Destination::from(("localhost".to_string(), 80)).to_string(),
            "localhost:80"
        );
    }
}
