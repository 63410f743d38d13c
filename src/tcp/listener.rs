//! A listener: what its slot keeps, and the public types around it: its
//! options (`ListenOptions`), counts (`ListenerStats`) and handle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::peer::PeerKey;
use super::stream::ListeningSocket;
use crate::address::Address;
use crate::protocol::Factory;
use crate::proxy::ProxyProtocol;
use crate::reactor::{Reactor, SlotId};
use crate::rules::DEFAULT_WRITE_BUFFER_LIMIT;

/// A listening socket and what it needs to accept: its factory, options
/// and counts.
pub(crate) struct Listener {
    /// `None` once the reactor is stopping: the port is closed at once, so
    /// new clients are refused rather than queued for a server that exits.
    pub(super) socket: Option<ListeningSocket>,
    pub(super) factory: Box<dyn Factory>,
    /// Boxed: a UNIX name is larger than an IP address, and a slot is as
    /// large as its largest source.
    pub(super) addr: Box<Address>,
    /// `accept` is failing for want of resources; warned once.
    pub(super) backing_off: bool,
    /// A retry timer is pending, so new edges must not schedule another.
    pub(super) retry_scheduled: bool,
    /// Boxed, as `tls`: read once per accept, and the options would make
    /// every connection's slot larger.
    pub(super) options: Box<ListenOptions>,
    pub(super) stats: ListenerStats,
    /// Open connections per peer (IP address, or user id for UNIX
    /// connections), kept only with a per-peer limit.
    pub(super) per_peer: HashMap<PeerKey, usize>,
    /// A limit refused a connection since the last warning was logged.
    pub(super) warned_full: bool,
    /// A PROXY header failed since the last good one, and was warned of.
    pub(super) warned_header: bool,
    /// Every accepted connection speaks TLS in this role (boxed: a slot is
    /// as large as its largest source).
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Box<crate::tls::TlsRole>>,
}

impl Listener {
    /// A listener that has accepted nothing yet, on `socket` (`None` for a
    /// reactor in memory), in plaintext: a TLS listener sets `tls` after.
    pub(super) fn new(
        socket: Option<ListeningSocket>,
        factory: Box<dyn Factory>,
        addr: Address,
        options: ListenOptions,
    ) -> Listener {
        Listener {
            socket,
            factory,
            addr: Box::new(addr),
            backing_off: false,
            retry_scheduled: false,
            options: Box::new(options),
            stats: ListenerStats::default(),
            per_peer: HashMap::new(),
            warned_full: false,
            warned_header: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// What makes a listener a TLS one: the role each accepted connection
/// plays (uninhabited without the `tls` feature).
#[cfg(feature = "tls")]
pub(crate) type ListenerTls = crate::tls::TlsRole;
/// What makes a listener a TLS one (uninhabited without the `tls` feature).
#[cfg(not(feature = "tls"))]
pub(crate) type ListenerTls = std::convert::Infallible;

/// Socket settings for [`Reactor::listen_tcp_with`] and
/// [`Reactor::listen_unix_with`]: each applies to both kinds of listener,
/// except where it says which (as `only_v6` is for IPv6 only).
#[derive(Debug, Clone, Copy)]
pub struct ListenOptions {
    /// Pending connections the kernel queues before `accept` (default 1024).
    pub backlog: i32,
    /// SO_REUSEADDR, so a restarted server can bind while old connections
    /// linger in TIME_WAIT (default on). TCP only.
    pub reuse_address: bool,
    /// SO_REUSEPORT (default off): other sockets of the same user that set
    /// it too may bind the same address, and Linux spreads new connections
    /// among them by a hash of each connection's addresses and ports.
    /// [`ReactorPool`](crate::ReactorPool) sets it for its one listener
    /// per reactor; see there for what the spreading does and does not do.
    /// The flip side: a second copy of the server, started by mistake on
    /// the same port, gets no "address in use" but a share of the clients.
    pub reuse_port: bool,
    /// For IPv6 addresses: accept IPv6 only (`Some(true)`), IPv4 too
    /// (`Some(false)`), or the system default (`None`).
    pub only_v6: Option<bool>,
    /// Most connections open at once from this listener (default: no
    /// limit). Over it, a new connection is accepted and closed at once,
    /// logged and counted ([`Reactor::listener_stats`]).
    pub max_connections: Option<usize>,
    /// Most connections open at once from one peer (default: no limit), as
    /// Twisted's `LimitConnectionsByPeer`; over it, the same. A TCP peer is
    /// an IP address; a UNIX peer is a user id (SO_PEERCRED), since every
    /// UNIX client is on this host and most have no name of their own.
    pub max_connections_per_peer: Option<usize>,
    /// The idle timeout every accepted connection starts with (default:
    /// none); see [`Transport::set_idle_timeout`](crate::Transport::set_idle_timeout).
    pub idle_timeout: Option<Duration>,
    /// The cap on each accepted connection's buffered output (default
    /// [`DEFAULT_WRITE_BUFFER_LIMIT`], 16 MiB); see
    /// [`Transport::set_write_buffer_limit`](crate::Transport::set_write_buffer_limit).
    pub write_buffer_limit: usize,
    /// For [`Reactor::listen_tls_with`]: how long each connection's TLS
    /// handshake may take before it is aborted (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::tls::DEFAULT_HANDSHAKE_TIMEOUT),
    /// 10 s), so half-finished handshakes cannot hold connection slots.
    pub tls_handshake_timeout: Duration,
    /// Read a PROXY protocol header (v1 or v2, as HAProxy's `send-proxy`
    /// and `send-proxy-v2` send) before each connection is made, so the
    /// factory, `peer_addr` and the per-peer limit see the client the
    /// proxy relays (default: `None`, no header); on TCP and UNIX
    /// listeners alike. Only for a port (or socket file) that nothing but
    /// trusted proxies can reach: see [`crate::proxy`].
    pub proxy_protocol: Option<ProxyProtocol>,
    /// With `proxy_protocol`: how long a connection may take to send its
    /// whole header before it is closed (default
    /// [`DEFAULT_PROXY_HEADER_TIMEOUT`](crate::DEFAULT_PROXY_HEADER_TIMEOUT),
    /// 5 s); an `Optional` listener serves a connection that has sent
    /// nothing by then as a direct client.
    pub proxy_header_timeout: Duration,
    /// For UNIX listeners on a path: the socket file's permission bits
    /// (`0o660`: owner and group may connect), set before the socket
    /// listens, so no client connects while it has another mode. `None`
    /// (the default): what `bind` gives, `0o777` less the process's umask.
    pub file_mode: Option<u32>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            only_v6: None,
            max_connections: None,
            max_connections_per_peer: None,
            idle_timeout: None,
            write_buffer_limit: DEFAULT_WRITE_BUFFER_LIMIT,
            tls_handshake_timeout: crate::rules::DEFAULT_HANDSHAKE_TIMEOUT,
            proxy_protocol: None,
            proxy_header_timeout: crate::rules::DEFAULT_PROXY_HEADER_TIMEOUT,
            file_mode: None,
        }
    }
}

/// What a listener has done so far ([`Reactor::listener_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Connections it accepted that are still open.
    pub open: usize,
    /// Connections closed at once for being over a limit.
    pub refused: u64,
    /// Connections closed for their PROXY header: malformed, missing, cut
    /// short or late ([`ListenOptions::proxy_protocol`]).
    pub proxy_header_failures: u64,
}

/// A listening socket: where it is bound, and how to stop it.
#[derive(Debug, Clone, Copy)]
pub struct ListenerHandle {
    pub(super) id: SlotId,
    /// The bound IP address; `None` for a UNIX listener (whose name,
    /// which may hold a path, would cost the handle its `Copy`:
    /// [`Reactor::listener_address`] has it).
    pub(super) addr: Option<SocketAddr>,
}

impl ListenerHandle {
    /// The bound IP address, with the real port when port 0 was asked for.
    /// A UNIX listener has none: this is then the unspecified `0.0.0.0:0`,
    /// and [`Reactor::listener_address`] says where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Stops listening (see [`Reactor::stop_listening`]).
    pub fn stop(&self, reactor: &mut Reactor) -> bool {
        reactor.stop_listening(self)
    }

    /// The listener's slot.
    pub(crate) fn slot(&self) -> SlotId {
        self.id
    }
}
