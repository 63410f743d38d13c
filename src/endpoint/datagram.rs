//! Datagram endpoints: where a UDP server binds and where a UDP client
//! sends, written as strings with the stream endpoints' syntax, and
//! [`Reactor::listen_datagram_on`].
//!
//! Twisted has no UDP endpoint strings; these are this crate's own, in the
//! same grammar as `tcp:`. They are types of their own, not variants of
//! [`ServerEndpoint`](super::ServerEndpoint) and
//! [`ClientEndpoint`](super::ClientEndpoint): a stream listener never has
//! to refuse a `udp:` endpoint when it runs, nor a datagram one a `unix:`
//! stream; the parser refuses the wrong kind, naming the kinds it takes.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::parse::{ip_text, quote, EndpointError, Grammar, Parameters};
use super::server::bind_addr;
use crate::reactor::Reactor;
use crate::udp::{DatagramProtocol, UdpHandle};

/// Where a datagram server binds, parsed from a string.
///
/// | form | binds |
/// |---|---|
/// | `udp:PORT[:interface=ADDR]` | UDP `PORT` (0: any free port) on `ADDR` (default `0.0.0.0`, every IPv4 interface, as `tcp:`) |
///
/// The syntax is [`ServerEndpoint`](super::ServerEndpoint)'s: the port can
/// be named (`udp:port=7000`), `\` escapes (an IPv6 interface is
/// `interface=\:\:1`), the type is case-insensitive, and `Display` writes
/// the endpoint back so that it round-trips. There is no `backlog`: a UDP
/// socket has no listen queue. A `udp:` endpoint always binds a new
/// socket; it does not look among inherited ones (socket activation hands
/// over stream sockets here).
///
/// ```
/// use reactor::endpoint::DatagramServerEndpoint;
///
/// let endpoint: DatagramServerEndpoint = "udp:7000:interface=127.0.0.1".parse()?;
/// assert_eq!(
///     endpoint,
///     DatagramServerEndpoint::Udp { port: 7000, interface: Some([127, 0, 0, 1].into()) }
/// );
/// assert_eq!(endpoint.to_string(), "udp:7000:interface=127.0.0.1");
/// assert_eq!(endpoint.bind_addr(), std::net::SocketAddr::from(([127, 0, 0, 1], 7000)));
///
/// // A stream endpoint is not a datagram one: the parser says which are.
/// let err = "tcp:7000".parse::<DatagramServerEndpoint>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"unknown endpoint type "tcp" in "tcp:7000" (datagram servers are udp:)"#
/// );
/// # Ok::<(), reactor::endpoint::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramServerEndpoint {
    /// `udp:PORT[:interface=ADDR]`.
    Udp {
        /// The port; 0 picks a free one.
        port: u16,
        /// The address to bind; `None` is `0.0.0.0`.
        interface: Option<IpAddr>,
    },
}

/// Where a datagram client sends, parsed from a string.
///
/// | form | sends to |
/// |---|---|
/// | `udp:host=HOST:port=PORT` | UDP `PORT` on `HOST` (an IP address or a host name) |
///
/// The parameters may also be given by position, `udp:HOST:PORT`, as
/// `tcp:` allows. The crate does not look a host name up itself: a
/// program resolves [`host`](Self::host) as it sees fit (the examples, once,
/// before their reactor runs).
///
/// ```
/// use reactor::endpoint::DatagramClientEndpoint;
///
/// let endpoint: DatagramClientEndpoint = r"udp:\:\:1:21567".parse()?;
/// assert_eq!(
///     endpoint,
///     DatagramClientEndpoint::Udp { host: "::1".into(), port: 21567 }
/// );
/// assert_eq!(endpoint.to_string(), r"udp:host=\:\:1:port=21567");
/// assert_eq!((endpoint.host(), endpoint.port()), ("::1", 21567));
/// # Ok::<(), reactor::endpoint::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatagramClientEndpoint {
    /// `udp:host=HOST:port=PORT`.
    Udp {
        /// An IP address or a host name.
        host: String,
        /// The port, 1 to 65535.
        port: u16,
    },
}

const DATAGRAM_SERVERS: &[Grammar] = &[Grammar {
    kind: "udp",
    positional: &["port"],
    names: &["port", "interface"],
    usage: "udp takes PORT:interface=ADDR",
}];

const DATAGRAM_SERVER_TYPES: &str = "datagram servers are udp:";

const DATAGRAM_CLIENTS: &[Grammar] = &[Grammar {
    kind: "udp",
    positional: &["host", "port"],
    names: &["host", "port"],
    usage: "udp takes host=HOST:port=PORT",
}];

const DATAGRAM_CLIENT_TYPES: &str = "datagram clients are udp:";

impl FromStr for DatagramServerEndpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let params = Parameters::parse(input, DATAGRAM_SERVERS, DATAGRAM_SERVER_TYPES)?;
        // `udp` is the only grammar: `parse` refused every other type.
        Ok(DatagramServerEndpoint::Udp {
            port: params.listen_port()?,
            interface: params.interface()?,
        })
    }
}

impl fmt::Display for DatagramServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramServerEndpoint::Udp { port, interface } => {
                write!(f, "udp:{port}")?;
                if let Some(ip) = interface {
                    write!(f, ":interface={}", quote(&ip_text(ip), false))?;
                }
                Ok(())
            }
        }
    }
}

impl DatagramServerEndpoint {
    /// The address a socket for this endpoint binds: the interface (default
    /// `0.0.0.0`) and the port.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use reactor::endpoint::DatagramServerEndpoint;
    ///
    /// let endpoint: DatagramServerEndpoint = "udp:7000:interface=127.0.0.1".parse().unwrap();
    /// assert_eq!(endpoint.bind_addr(), "127.0.0.1:7000".parse::<SocketAddr>().unwrap());
    /// let every: DatagramServerEndpoint = "udp:7000".parse().unwrap();
    /// assert_eq!(every.bind_addr(), "0.0.0.0:7000".parse::<SocketAddr>().unwrap());
    /// ```
    pub fn bind_addr(&self) -> SocketAddr {
        match self {
            DatagramServerEndpoint::Udp { port, interface } => bind_addr(*port, *interface),
        }
    }
}

impl FromStr for DatagramClientEndpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let params = Parameters::parse(input, DATAGRAM_CLIENTS, DATAGRAM_CLIENT_TYPES)?;
        Ok(DatagramClientEndpoint::Udp {
            host: params.host()?,
            port: params.connect_port()?,
        })
    }
}

impl fmt::Display for DatagramClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatagramClientEndpoint::Udp { host, port } => {
                write!(f, "udp:host={}:port={port}", quote(host, false))
            }
        }
    }
}

impl DatagramClientEndpoint {
    /// The host to send to, as written: an IP address or a host name.
    ///
    /// ```
    /// use reactor::endpoint::DatagramClientEndpoint;
    ///
    /// let endpoint: DatagramClientEndpoint = "udp:host=localhost:port=7000".parse().unwrap();
    /// assert_eq!(endpoint.host(), "localhost"); // not looked up
    /// let v6: DatagramClientEndpoint = r"udp:host=\:\:1:port=7000".parse().unwrap();
    /// assert_eq!(v6.host(), "::1");
    /// ```
    pub fn host(&self) -> &str {
        match self {
            DatagramClientEndpoint::Udp { host, .. } => host,
        }
    }

    /// The port to send to, 1 to 65535.
    ///
    /// ```
    /// use reactor::endpoint::DatagramClientEndpoint;
    ///
    /// let endpoint: DatagramClientEndpoint = "udp:host=127.0.0.1:port=7000".parse().unwrap();
    /// assert_eq!(endpoint.port(), 7000);
    /// assert!("udp:host=127.0.0.1:port=0".parse::<DatagramClientEndpoint>().is_err());
    /// ```
    pub fn port(&self) -> u16 {
        match self {
            DatagramClientEndpoint::Udp { port, .. } => *port,
        }
    }
}

impl Reactor {
    /// Binds `endpoint` and runs `protocol` on it, as
    /// [`listen_udp`](Reactor::listen_udp) does with its address.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use reactor::{DatagramProtocol, DatagramTransport, Reactor};
    ///
    /// struct Echo;
    /// impl DatagramProtocol for Echo {
    ///     fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
    ///         t.write_to(data, from);
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let endpoint = "udp:0:interface=127.0.0.1".parse().expect("a valid endpoint");
    /// let udp = reactor.listen_datagram_on(&endpoint, Echo)?;
    /// assert_eq!(udp.local_addr().ip(), std::net::Ipv4Addr::LOCALHOST);
    /// assert_ne!(udp.local_addr().port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_datagram_on(
        &mut self,
        endpoint: &DatagramServerEndpoint,
        protocol: impl DatagramProtocol,
    ) -> io::Result<UdpHandle> {
        self.listen_udp(endpoint.bind_addr(), protocol)
    }
}
