//! The reactor's [`Transport`]: a view of one connection while its protocol runs.

use std::io;
use std::time::Duration;

use super::peer::Peer;
use crate::address::Address;
use crate::reactor::{Reactor, TimerAction};
use crate::timer::TimerId;
use crate::transport::{ConnectionId, Transport};

/// What a protocol's callbacks write through. Every call goes straight to
/// the reactor, by the connection's id.
pub(crate) struct ConnTransport<'r> {
    reactor: &'r mut Reactor,
    id: ConnectionId,
    /// The connection's peer, copied out of its slot for the callback: the
    /// slot is gone by `connection_lost`.
    peer: &'r Peer,
    /// Writes go to the socket as they are (the writer is the connection's
    /// TLS layer), rather than through the layer if it has one.
    raw: bool,
}

impl<'r> ConnTransport<'r> {
    /// The transport below a TLS layer: its writes are ciphertext.
    #[cfg(feature = "tls")]
    pub(crate) fn raw(reactor: &'r mut Reactor, id: ConnectionId, peer: &'r Peer) -> Self {
        ConnTransport::with_route(reactor, id, peer, true)
    }

    /// The transport for connection `id`; `raw` for its TLS layer (see
    /// [`raw`](Self::raw)), else for its own protocol.
    pub(crate) fn with_route(
        reactor: &'r mut Reactor,
        id: ConnectionId,
        peer: &'r Peer,
        raw: bool,
    ) -> Self {
        ConnTransport {
            reactor,
            id,
            peer,
            raw,
        }
    }
}

impl Transport for ConnTransport<'_> {
    fn write(&mut self, data: &[u8]) {
        self.write_vectored(&[data]);
    }

    fn write_vectored(&mut self, chunks: &[&[u8]]) {
        if self.raw {
            self.reactor.write_vectored_raw(self.id, chunks);
        } else {
            self.reactor.write_vectored_to(self.id, chunks);
        }
    }

    fn lose_connection(&mut self) {
        if self.raw {
            self.reactor.lose_connection_raw(self.id);
        } else {
            self.reactor.lose_connection(self.id);
        }
    }

    fn abort_connection(&mut self) {
        self.reactor.abort_connection(self.id);
    }

    fn lose_write_connection(&mut self) {
        if self.raw {
            self.reactor.lose_write_connection_raw(self.id);
        } else {
            self.reactor.lose_write_connection(self.id);
        }
    }

    fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.reactor.set_idle_timeout(self.id, timeout);
    }

    fn set_deadline(&mut self, after: Option<Duration>) {
        self.reactor.set_deadline(self.id, after);
    }

    fn peer_addr(&self) -> Address {
        self.peer.address()
    }

    fn local_addr(&self) -> io::Result<Address> {
        match self.reactor.conn(self.id) {
            Some(conn) => conn.stream.local_addr(),
            None => self.reactor.memory_local_addr(self.id).map(Address::Ip),
        }
    }

    fn peer_credentials(&self) -> Option<crate::PeerCredentials> {
        self.peer.credentials()
    }

    fn id(&self) -> ConnectionId {
        self.id
    }

    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.reactor.set_nodelay(self.id, nodelay)
    }

    fn buffered(&self) -> usize {
        self.reactor.buffered(self.id)
    }

    fn is_closing(&self) -> bool {
        !self.reactor.is_connected(self.id)
    }

    fn set_write_watermarks(&mut self, low: usize, high: usize) {
        self.reactor.set_write_watermarks(self.id, low, high);
    }

    fn set_write_buffer_limit(&mut self, bytes: usize) {
        self.reactor.set_write_buffer_limit(self.id, bytes);
    }

    fn is_write_buffer_full(&self) -> bool {
        self.reactor.is_write_buffer_full(self.id)
    }

    fn pause_reading(&mut self) {
        self.reactor.pause_reading(self.id);
    }

    fn resume_reading(&mut self) {
        self.reactor.resume_reading(self.id);
    }

    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.reactor
            .schedule(delay, TimerAction::Protocol { conn: self.id, tag })
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.reactor.cancel(timer)
    }

    fn reset_timer(&mut self, timer: TimerId, delay: Duration) -> bool {
        self.reactor.reset_timer(timer, delay)
    }

    fn delay_timer(&mut self, timer: TimerId, by: Duration) -> bool {
        self.reactor.delay_timer(timer, by)
    }

    fn is_timer_active(&self, timer: TimerId) -> bool {
        self.reactor.is_timer_active(timer)
    }

    fn reactor(&mut self) -> Option<&mut Reactor> {
        Some(self.reactor)
    }

    #[cfg(feature = "tls")]
    fn start_tls(&mut self, role: crate::tls::TlsRole) -> io::Result<()> {
        self.reactor.start_tls(self.id, role)
    }
}
