//! Listening sockets: binding, accepting, and the per-listener limits.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use log::{debug, error, warn};
use mio::net::TcpListener;
use mio::Interest;
use socket2::{Domain, Socket, Type};

use super::admission::Admission;
use super::lent::TlsHost;
use super::peer::{Peer, PeerKey};
use super::state::ConnState;
use super::stream::{ListeningSocket, Stream};
use crate::address::Address;
use crate::protocol::{Factory, Protocol};
use crate::proxy::ProxyProtocol;
use crate::reactor::{key_u32, Reactor, Slot, SlotId, Source, TimerAction, MAX_ACCEPTS_PER_EVENT};
use crate::rules::{
    concerns_only_this_connection, log_refusal, ACCEPT_RETRY, DEFAULT_WRITE_BUFFER_LIMIT,
};

/// A listening socket and what it needs to accept: its factory, options
/// and counts.
pub(crate) struct Listener {
    /// `None` once the reactor is stopping: the port is closed at once, so
    /// new clients are refused rather than queued for a server that exits.
    socket: Option<ListeningSocket>,
    pub(super) factory: Box<dyn Factory>,
    /// Boxed: a UNIX name is larger than an IP address, and a slot is as
    /// large as its largest source.
    pub(super) addr: Box<Address>,
    /// `accept` is failing for want of resources; warned once.
    backing_off: bool,
    /// A retry timer is pending, so new edges must not schedule another.
    retry_scheduled: bool,
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
    tls: Option<Box<crate::tls::TlsRole>>,
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
    id: SlotId,
    /// The bound IP address; `None` for a UNIX listener (whose name,
    /// which may hold a path, would cost the handle its `Copy`:
    /// [`Reactor::listener_address`] has it).
    addr: Option<SocketAddr>,
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

impl Reactor {
    /// Listens on `addr` (port 0 picks a free port) with default
    /// [`ListenOptions`], building a protocol from `factory` for every
    /// accepted connection. Calls the factory's `start_factory` first.
    pub fn listen_tcp(
        &mut self,
        addr: SocketAddr,
        factory: impl Factory,
    ) -> io::Result<ListenerHandle> {
        self.listen_tcp_with(addr, factory, ListenOptions::default())
    }

    /// [`listen_tcp`](Reactor::listen_tcp) with explicit socket options.
    pub fn listen_tcp_with(
        &mut self,
        addr: SocketAddr,
        factory: impl Factory,
        options: ListenOptions,
    ) -> io::Result<ListenerHandle> {
        self.listen(addr, Box::new(factory), options, None)
    }

    /// Binds and registers a TCP listener; `tls` makes it a TLS one.
    pub(crate) fn listen(
        &mut self,
        addr: SocketAddr,
        factory: Box<dyn Factory>,
        options: ListenOptions,
        tls: Option<ListenerTls>,
    ) -> io::Result<ListenerHandle> {
        self.refuse_while_stopping()?;
        if self.memory.is_some() {
            // A reactor in memory records the listen: no socket.
            #[cfg(feature = "tls")]
            let tls = tls.is_some();
            #[cfg(not(feature = "tls"))]
            let tls = false;
            return self.listen_in_memory(addr, factory, options, tls);
        }
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if options.reuse_address {
            socket.set_reuse_address(true)?;
        }
        if options.reuse_port {
            socket.set_reuse_port(true)?;
        }
        if let (SocketAddr::V6(_), Some(only)) = (addr, options.only_v6) {
            socket.set_only_v6(only)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(options.backlog)?;
        let socket = ListeningSocket::Tcp(TcpListener::from_std(socket.into()));
        self.add_listener(socket, factory, options, tls)
    }

    /// Registers a bound, listening socket and starts its factory.
    pub(crate) fn add_listener(
        &mut self,
        mut socket: ListeningSocket,
        mut factory: Box<dyn Factory>,
        options: ListenOptions,
        #[cfg(feature = "tls")] tls: Option<ListenerTls>,
        #[cfg(not(feature = "tls"))] _tls: Option<ListenerTls>,
    ) -> io::Result<ListenerHandle> {
        let local = socket.local_addr()?;
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = SlotId {
            key: key_u32(entry.key())?,
            generation,
        };
        self.poll
            .registry()
            .register(&mut socket, id.token(), Interest::READABLE)?;
        if let Err(why) = crate::panic::catch(|| factory.start_factory()) {
            error!("start_factory of the listener on {local} panicked: {why}");
        }
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Listener(Listener {
                socket: Some(socket),
                factory,
                addr: Box::new(local.clone()),
                backing_off: false,
                retry_scheduled: false,
                options: Box::new(options),
                stats: ListenerStats::default(),
                per_peer: HashMap::new(),
                warned_full: false,
                warned_header: false,
                #[cfg(feature = "tls")]
                tls: tls.map(Box::new),
            }),
        });
        debug!("listening on {local}");
        Ok(ListenerHandle {
            id,
            addr: local.socket_addr(),
        })
    }

    /// Where a listener listens, while it does: an IP address and port,
    /// or a UNIX socket's name (`unix:/run/app.sock`, `unix:@name`).
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let listener = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
    /// let address = reactor.listener_address(&listener).unwrap();
    /// assert_eq!(address, listener.local_addr()); // the real port
    /// reactor.stop_listening(&listener);
    /// assert_eq!(reactor.listener_address(&listener), None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listener_address(&self, listener: &ListenerHandle) -> Option<Address> {
        match self.slots.get(listener.id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Listener(l),
                ..
            }) if *generation == listener.id.generation => Some((*l.addr).clone()),
            _ => None,
        }
    }

    /// What a listener has accepted and refused, while it listens.
    pub fn listener_stats(&self, listener: &ListenerHandle) -> Option<ListenerStats> {
        match self.slots.get(listener.id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Listener(l),
                ..
            }) if *generation == listener.id.generation => Some(l.stats),
            _ => None,
        }
    }

    /// Stops accepting on a listener and calls its factory's `stop_factory`.
    /// Connections it accepted stay open. Returns false if it had stopped already.
    pub fn stop_listening(&mut self, listener: &ListenerHandle) -> bool {
        self.remove_listener(listener.id)
    }

    pub(crate) fn remove_listener(&mut self, id: SlotId) -> bool {
        if !matches!(self.slot_mut(id), Some(Source::Listener(_))) {
            return false;
        }
        if let Source::Listener(mut listener) = self.slots.remove(id.key as usize).source {
            debug!("stopped listening on {}", listener.addr);
            if let Some(socket) = &mut listener.socket {
                // A socket handed to another process (crate::restart) stays
                // open there, and epoll forgets a descriptor only once every
                // copy is closed: without this, its events would go on
                // waking this loop.
                let _ = self.poll.registry().deregister(socket);
            }
            if let Err(why) = crate::panic::catch(|| listener.factory.stop_factory()) {
                error!("stop_factory panicked: {why}");
            }
            crate::panic::drop_caught(listener.factory, "a factory");
        }
        true
    }

    pub(crate) fn retry_accept(&mut self, id: SlotId) {
        if let Some(Source::Listener(listener)) = self.slot_mut(id) {
            listener.retry_scheduled = false;
            self.accept_ready(id);
        }
    }

    pub(crate) fn accept_ready(&mut self, id: SlotId) {
        if self.accept_burst(id) {
            self.defer(id, crate::reactor::Readiness::LEFTOVER);
        }
    }

    /// Accepts up to [`MAX_ACCEPTS_PER_EVENT`] connections; returns whether
    /// it stopped at that cap (more may wait) rather than at an empty queue,
    /// an error, or a closed listener.
    fn accept_burst(&mut self, id: SlotId) -> bool {
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let Some(Source::Listener(listener)) = self.slot_mut(id) else {
                return false;
            };
            let Some(socket) = &listener.socket else {
                return false;
            };
            match socket.accept() {
                Ok((stream, peer)) => {
                    if listener.backing_off {
                        listener.backing_off = false;
                        warn!("accepting on {} again", listener.addr);
                    }
                    // Behind a PROXY header, the peer is the proxy: the
                    // client is counted once the header names it.
                    let proxied = listener.options.proxy_protocol.is_some();
                    if let Err(why) = listener.admit(&peer, !proxied) {
                        // Accepted and closed at once: the client learns at
                        // once, rather than waiting in the backlog.
                        drop(stream);
                        listener.stats.refused += 1;
                        log_refusal(&mut listener.warned_full, &peer, why, &listener.addr);
                        continue;
                    }
                    let options = *listener.options;
                    let admission = Admission {
                        listener: id,
                        per_peer: !proxied,
                    };
                    if proxied {
                        self.await_proxy_header(stream, peer, admission, options);
                        continue;
                    }
                    match self.build_accepted(id, &peer) {
                        Some((protocol, tls)) => {
                            self.add_connection(stream, peer, protocol, admission, options, tls)
                        }
                        None => {
                            drop(stream);
                            self.release_admission(Some(admission), &peer);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if concerns_only_this_connection(&e) => {
                    debug!("accept on {} skipped a connection: {e}", listener.addr);
                }
                Err(e) => {
                    // Out of descriptors or memory: the pending connection stays
                    // in the backlog. Polling again would spin, so wait a little.
                    if !listener.backing_off {
                        listener.backing_off = true;
                        warn!(
                            "accept on {} failed: {e}; retrying every {} ms",
                            listener.addr,
                            ACCEPT_RETRY.as_millis()
                        );
                    }
                    if !listener.retry_scheduled {
                        listener.retry_scheduled = true;
                        self.schedule(ACCEPT_RETRY, TimerAction::RetryAccept(id));
                    }
                    return false;
                }
            }
        }
        true
    }

    fn add_connection(
        &mut self,
        stream: Stream,
        peer: Peer,
        protocol: Box<dyn Protocol>,
        admission: Admission,
        options: ListenOptions,
        tls: TlsHost,
    ) {
        let Some(id) = self.insert_accepted(stream, peer, ConnState::OPEN, admission) else {
            crate::panic::drop_caught(protocol, "a protocol");
            return;
        };
        self.start_accepted(id, protocol, tls, options);
    }

    /// The options of listener `id`, while it exists.
    pub(super) fn listener_options(&mut self, id: SlotId) -> Option<ListenOptions> {
        match self.slot_mut(id) {
            Some(Source::Listener(l)) => Some(*l.options),
            _ => None,
        }
    }

    /// The TLS layer for a connection `listener` accepted from `peer`, if it
    /// is a TLS listener.
    pub(super) fn tls_for_accepted(
        &mut self,
        listener: SlotId,
        peer: &Peer,
    ) -> Result<TlsHost, ()> {
        #[cfg(feature = "tls")]
        if let Some(Source::Listener(Listener {
            tls: Some(role),
            options,
            ..
        })) = self.slot_mut(listener)
        {
            return match crate::tls::TlsProtocol::unattached((**role).clone(), false) {
                Ok(mut layer) => {
                    layer.set_handshake_timeout(options.tls_handshake_timeout);
                    Ok(TlsHost::with_layer(layer))
                }
                Err(e) => {
                    error!("{peer}: cannot start TLS: {e}; connection dropped");
                    Err(())
                }
            };
        }
        let _ = (listener, peer);
        Ok(TlsHost::plain())
    }

    /// A listener without a socket, for a reactor in memory: it builds
    /// protocols for the connections its test makes
    /// ([`accept_in_memory`](Self::accept_in_memory)) under the same
    /// limits, and stops as any other.
    fn listen_in_memory(
        &mut self,
        addr: SocketAddr,
        mut factory: Box<dyn Factory>,
        options: ListenOptions,
        tls: bool,
    ) -> io::Result<ListenerHandle> {
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = SlotId {
            key: key_u32(entry.key())?,
            generation,
        };
        if let Err(why) = crate::panic::catch(|| factory.start_factory()) {
            error!("start_factory of the listener on {addr} panicked: {why}");
        }
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Listener(Listener {
                socket: None,
                factory,
                addr: Box::new(Address::Ip(addr)),
                backing_off: false,
                retry_scheduled: false,
                options: Box::new(options),
                stats: ListenerStats::default(),
                per_peer: HashMap::new(),
                warned_full: false,
                warned_header: false,
                // A memory connection carries plaintext: the TLS role is
                // only recorded.
                #[cfg(feature = "tls")]
                tls: None,
            }),
        });
        let handle = ListenerHandle {
            id,
            addr: Some(addr),
        };
        self.record_listen(handle, options, tls);
        Ok(handle)
    }

    /// The protocol for a connection from `peer` that a test makes on
    /// listener `id` in memory, and the options it starts with; an error if
    /// the listener is gone, a limit refuses the peer (counted, as an
    /// accept would be), or `build_protocol` panicked.
    pub(crate) fn accept_in_memory(
        &mut self,
        id: SlotId,
        peer: SocketAddr,
    ) -> io::Result<(Box<dyn Protocol>, ListenOptions)> {
        let Some(Source::Listener(listener)) = self.slot_mut(id) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not listening"));
        };
        let peer = Peer::Ip(peer);
        if let Err(why) = listener.admit(&peer, true) {
            listener.stats.refused += 1;
            log_refusal(&mut listener.warned_full, &peer, why, &listener.addr);
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, why));
        }
        let factory = &mut listener.factory;
        match crate::panic::catch(|| factory.build_protocol_for(&peer.address())) {
            Ok(protocol) => Ok((protocol, *listener.options)),
            Err(why) => {
                error!("{peer}: build_protocol panicked: {why}; connection dropped");
                listener.release(&peer, true);
                Err(io::Error::other(why))
            }
        }
    }

    /// Closes every listening socket for a stop (their factories stop
    /// later, after the connections they built), each once it has accepted
    /// what waits in its queue: those connections join the stop like every
    /// open one (see [`accept_queued`](Self::accept_queued)).
    pub(crate) fn close_listening_sockets(&mut self) {
        for id in self.slot_ids(|s| matches!(s, Source::Listener(_))) {
            self.accept_queued(id);
            let socket = match self.slot_mut(id) {
                Some(Source::Listener(listener)) => listener.socket.take(),
                _ => None,
            };
            if let Some(mut socket) = socket {
                // As in `remove_listener`: a copy may live on elsewhere.
                let _ = self.poll.registry().deregister(&mut socket);
            }
        }
    }

    /// Accepts every connection waiting in listener `id`'s queue. Their
    /// handshakes are complete and their clients may have sent a request:
    /// closing the socket would reset them, SO_REUSEPORT or not (Linux
    /// hands them to another socket of the group only with the sysctl
    /// `net.ipv4.tcp_migrate_req`). Bounded by what the queue can hold
    /// (`backlog + 1`), so clients that keep coming cannot hold a stop up;
    /// a client whose handshake completes after the last `accept` and
    /// before the close is still reset, as with any server that closes.
    fn accept_queued(&mut self, id: SlotId) {
        let Some(Source::Listener(listener)) = self.slot_mut(id) else {
            return;
        };
        let holds = usize::try_from(listener.options.backlog).unwrap_or(0) + 1;
        for _ in 0..holds.div_ceil(MAX_ACCEPTS_PER_EVENT) {
            if !self.accept_burst(id) {
                return;
            }
        }
    }

    /// The descriptor of `listener`'s socket, while it listens: what
    /// [`crate::restart`] hands to a new process.
    pub(crate) fn listening_fd(&self, listener: &ListenerHandle) -> Option<RawFd> {
        match self.slots.get(listener.id.key as usize) {
            Some(Slot {
                generation,
                source: Source::Listener(l),
                ..
            }) if *generation == listener.id.generation => match l.socket.as_ref()? {
                ListeningSocket::Tcp(socket) => Some(socket.as_raw_fd()),
                ListeningSocket::Unix { socket, .. } => Some(socket.as_raw_fd()),
            },
            _ => None,
        }
    }

    /// Leaves `listener`'s socket file in place when it closes: the socket
    /// was handed to another process ([`crate::restart`]), which serves it.
    pub(crate) fn keep_socket_file(&mut self, listener: &ListenerHandle) {
        if let Some(Source::Listener(l)) = self.slot_mut(listener.id) {
            if let Some(ListeningSocket::Unix { _file, .. }) = l.socket.as_mut() {
                if let Some(file) = _file.take() {
                    file.keep();
                }
            }
        }
    }
}
