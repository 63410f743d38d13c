//! The PROXY protocol: how a server behind a load balancer (HAProxy's
//! `send-proxy` / `send-proxy-v2`, AWS's and others' load balancers)
//! learns who the client really is.
//!
//! A proxy that relays a TCP connection opens its own connection to the
//! server, so the server's peer is the proxy. With the PROXY protocol the
//! proxy first sends a header naming the client's address and port (and the
//! address the client connected to); a listener with
//! [`ListenOptions::proxy_protocol`](crate::ListenOptions::proxy_protocol)
//! reads it before the connection is made, so the factory's
//! `build_protocol`, [`Transport::peer_addr`](crate::Transport::peer_addr),
//! the per-peer limit and every log line see the client. Versions 1 (a
//! text line) and 2 (binary) are both taken, told apart by their first
//! bytes.
//!
//! # Who may reach the port: the security rule
//!
//! A PROXY header is believed from whoever sends it: any client that can
//! connect to the port can send one and claim any address, and the port
//! cannot tell. So **a port that takes PROXY headers, `Required` or
//! `Optional`, must be reachable only by the proxies you trust**: bind it
//! to an address only they can reach (loopback, a private interface), or
//! firewall it; for a UNIX socket, give its file a mode only the proxy's
//! user or group may connect under
//! ([`ListenOptions::file_mode`](crate::ListenOptions::file_mode)). That is the specification's rule ("the receiver SHOULD
//! ensure proper access filtering so that only trusted proxies are allowed
//! to use this protocol") and the reason HAProxy's `accept-proxy` is for
//! "trusted sources" only.
//!
//! The two modes differ only for a connection that sends no header:
//!
//! - [`ProxyProtocol::Required`] closes it. Every connection the protocol
//!   sees was named by a header, so a proxy that lost its `send-proxy`
//!   fails at once and loudly, rather than every client appearing to be the
//!   proxy. Use it wherever you can.
//! - [`ProxyProtocol::Optional`] serves it as a direct client, under the
//!   address it really connects from. A direct client that sends no header
//!   can therefore claim nothing but its own address; but one that sends a
//!   header is believed exactly as under `Required`, so `Optional` is no
//!   safer on a port untrusted clients can reach: the rule above holds for
//!   both. It is for a health checker that must connect directly without a
//!   header (HAProxy's own checks can send one: `check-send-proxy`), and it
//!   goes against the specification's advice not to guess whether a header
//!   is present. A connection is direct as soon as its first bytes cannot
//!   begin a header, or when it has sent nothing at all by the header
//!   timeout (a client that waits for the server to speak first is served,
//!   late); bytes that could still be a header are never handed to the
//!   protocol as data.
//!
//! # What the listener does
//!
//! - The header is read before `connection_made` (and before a TLS
//!   handshake, on a TLS listener); bytes that follow it, even in the same
//!   segment, are the protocol's first data.
//! - A header that is malformed, or not whole within
//!   [`ListenOptions::proxy_header_timeout`](crate::ListenOptions::proxy_header_timeout)
//!   (default [`DEFAULT_PROXY_HEADER_TIMEOUT`](crate::DEFAULT_PROXY_HEADER_TIMEOUT),
//!   5 s), or cut short by the peer, closes that connection alone with a
//!   reset, counted in [`ListenerStats::proxy_header_failures`](crate::ListenerStats::proxy_header_failures)
//!   and logged with its [`ProxyHeaderError`]: a warning for the first
//!   failure since the last good header, debug for the rest of a burst.
//!   No protocol is built for it.
//! - A version 2 `LOCAL` header (the proxy's own health check), a version
//!   1 `UNKNOWN`, and version 2 families other than TCP over IPv4 or IPv6
//!   keep the connection's own addresses. Version 2 TLVs are skipped.
//! - [`Transport::local_addr`](crate::Transport::local_addr) stays the
//!   socket's own address (the server's), not the header's destination
//!   (the proxy's frontend), which [`ProxiedAddresses`] has for a caller of
//!   [`parse_header`].
//! - Limits: a connection waiting for its header counts against the
//!   listener's `max_connections` from its accept, as any other; it counts
//!   against `max_connections_per_peer` only once the header names its
//!   client, under the client's address (before that, every connection
//!   would seem to come from the proxy). A client over its limit then is
//!   closed and counted as `refused`.
//! - A graceful stop leaves a connection waiting for its header to finish
//!   it within the grace period: once the header is whole it is made and
//!   at once asked [`Protocol::stopping`](crate::Protocol::stopping), like
//!   the connections made before the stop.
//! - A UNIX listener
//!   ([`Reactor::listen_unix_with`](crate::Reactor::listen_unix_with))
//!   takes headers as a TCP one does (nginx or HAProxy in front of a UNIX
//!   socket). A connection the header names a client for is then an IP
//!   one to everything above: `peer_addr` is the client's address, the
//!   per-peer limit counts that address (not the proxy's user id), and
//!   [`Transport::peer_credentials`](crate::Transport::peer_credentials)
//!   is `None`, since the peer is the client and not the proxy's process.
//!   A `LOCAL` header keeps the UNIX peer, credentials and all. A bad
//!   header's close is a reset there too: the unread header is still
//!   queued when the socket closes.
//! - At most [`MAX_HEADER`] bytes are looked at: [`MAX_V1_HEADER`] for
//!   version 1, 16 + [`MAX_V2_BODY`] for version 2.

mod header;

use std::fmt;
use std::str::FromStr;

pub use self::header::{
    parse_header, ProxiedAddresses, ProxyHeader, ProxyHeaderError, MAX_HEADER, MAX_V1_HEADER,
    MAX_V2_BODY,
};

/// Whether a listener's connections must start with a PROXY header (see
/// the [module](self) for the rule on who may reach such a port).
///
/// ```
/// use std::io::{ErrorKind, Read, Write};
/// use std::net::TcpStream;
/// use std::time::Duration;
/// use reactor::protocols::Echo;
/// use reactor::{ListenOptions, ProxyProtocol, ReactorPool};
///
/// let required: ProxyProtocol = "required".parse().unwrap(); // as a `--proxy` flag says it
/// assert_eq!(required, ProxyProtocol::Required);
/// let options = ListenOptions { proxy_protocol: Some(required), ..ListenOptions::default() };
///
/// // Loopback only: just this process may claim addresses here.
/// let pool = ReactorPool::new(1)?;
/// let addr = pool.listen_tcp_with("127.0.0.1:0".parse().unwrap(), options, |_| || Echo)?;
///
/// // As a proxy: the header, then the client's bytes; only those reach the protocol.
/// let mut proxy = TcpStream::connect(addr)?;
/// proxy.write_all(b"PROXY TCP4 192.0.2.7 192.0.2.1 56324 443\r\nping")?;
/// let mut echo = [0; 4];
/// proxy.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"ping");
///
/// // Without a header: closed, with a reset, and nothing echoed.
/// let mut direct = TcpStream::connect(addr)?;
/// direct.set_read_timeout(Some(Duration::from_secs(10)))?;
/// direct.write_all(b"ping")?;
/// let closed = direct.read(&mut echo).map_err(|e| e.kind());
/// assert!(matches!(closed, Ok(0) | Err(ErrorKind::ConnectionReset)), "{closed:?}");
/// pool.stop();
/// pool.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyProtocol {
    /// Every connection must start with a header; one that does not is
    /// closed.
    Required,
    /// A connection that starts with something that cannot be a header, or
    /// sends nothing until the header timeout, is served as a direct client
    /// under its own address.
    Optional,
}

impl FromStr for ProxyProtocol {
    type Err = String;

    /// `required` or `optional`, as a command line says it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "required" => Ok(ProxyProtocol::Required),
            "optional" => Ok(ProxyProtocol::Optional),
            _ => Err(format!("{s:?} is neither `required` nor `optional`")),
        }
    }
}

impl fmt::Display for ProxyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProxyProtocol::Required => "required",
            ProxyProtocol::Optional => "optional",
        })
    }
}
