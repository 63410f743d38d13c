//! Binding and registering listeners (`listen_tcp`, and `add_listener`
//! for every kind of listening socket), and looking a registered one up.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use log::{debug, error};
use mio::net::TcpListener;
use mio::Interest;
use socket2::{Domain, Socket, Type};

use super::listener::{ListenOptions, Listener, ListenerHandle, ListenerStats, ListenerTls};
use super::stream::ListeningSocket;
use crate::address::Address;
use crate::protocol::Factory;
use crate::reactor::{key_u32, Reactor, Slot, SlotId, Source};

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
        #[cfg_attr(not(feature = "tls"), allow(unused_mut))]
        let mut listener = Listener::new(Some(socket), factory, local.clone(), options);
        #[cfg(feature = "tls")]
        {
            listener.tls = tls.map(Box::new);
        }
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Listener(listener),
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

    /// The options of listener `id`, while it exists.
    pub(super) fn listener_options(&mut self, id: SlotId) -> Option<ListenOptions> {
        match self.slot_mut(id) {
            Some(Source::Listener(l)) => Some(*l.options),
            _ => None,
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
