//! The reactor's hosting of the TLS layer: a connection's layer lives
//! beside its protocol, is lent the protocol for each callback, and takes
//! what other connections write to it (`write_to`) as plaintext, encrypted
//! with the rest once the callback returns.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use log::debug;

use super::lent::TlsHost;
use super::listener::ListenOptions;
use super::peer::Peer;
use super::state::ConnState;
use super::stream::Stream;
use super::transport::ConnTransport;
use crate::protocol::{ClientFactory, Factory};
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::resolve::Destination;
use crate::tcp::ListenerHandle;
use crate::tls::{ClientConfig, ServerConfig, TlsProtocol, TlsRole};
use crate::transport::ConnectionId;

impl Reactor {
    /// Listens for TLS connections on `addr`, with default [`ListenOptions`]:
    /// every accepted connection completes a handshake under `config`
    /// before `factory`'s protocol is made (see the [`tls`](crate::tls)
    /// module). A handshake that fails or takes longer than
    /// [`ListenOptions::tls_handshake_timeout`] ends that connection only.
    pub fn listen_tls(
        &mut self,
        addr: SocketAddr,
        config: Arc<ServerConfig>,
        factory: impl Factory,
    ) -> io::Result<ListenerHandle> {
        self.listen_tls_with(addr, config, factory, ListenOptions::default())
    }

    /// [`listen_tls`](Reactor::listen_tls) with explicit options.
    pub fn listen_tls_with(
        &mut self,
        addr: SocketAddr,
        config: Arc<ServerConfig>,
        factory: impl Factory,
        options: ListenOptions,
    ) -> io::Result<ListenerHandle> {
        self.listen(
            addr,
            Box::new(factory),
            options,
            Some(TlsRole::Server(config)),
        )
    }

    /// Connects to `to` over TLS, checking that the server's certificate
    /// is valid for `server_name` (a host name or an IP address, also sent
    /// as SNI). `to` is an address, a host name and port, or several
    /// addresses, as for [`connect_tcp`](Reactor::connect_tcp) (a name is
    /// looked up off the loop, then Happy Eyeballs). `timeout` bounds the
    /// TCP connect (lookup included) and then, again, the handshake. The factory's protocol is made once the handshake
    /// completes; a handshake that fails reaches `client_connection_failed`
    /// with [`Reason::Tls`], as a refused connect does with its error.
    ///
    /// An invalid `server_name` fails the same way, at the next turn.
    ///
    /// One exception, from TLS 1.3 itself: a server that requires a client
    /// certificate and refuses this client's (or its lack of one) says so
    /// only after the client's side of the handshake is complete, so under
    /// TLS 1.3 the protocol is made, then loses the connection with
    /// `Reason::Tls("the peer ended the session: … CertificateRequired")`;
    /// under TLS 1.2 the factory hears `client_connection_failed`.
    pub fn connect_tls(
        &mut self,
        to: impl Into<Destination>,
        server_name: &str,
        config: Arc<ClientConfig>,
        factory: impl ClientFactory,
        timeout: Duration,
    ) -> ConnectionId {
        let layer = TlsRole::client(config, server_name)
            .and_then(|role| TlsProtocol::unattached(role, false));
        match layer {
            Ok(mut layer) => {
                layer.set_handshake_timeout(timeout);
                let tls = TlsHost::with_layer(layer);
                self.connect(to.into(), Box::new(factory), timeout, tls)
            }
            Err(e) => self.connect_failing(Box::new(factory), Reason::Tls(e.to_string())),
        }
    }

    /// Upgrades connection `id`, plain so far, to TLS (see
    /// [`Transport::start_tls`]).
    pub(crate) fn start_tls(&mut self, id: ConnectionId, role: TlsRole) -> io::Result<()> {
        let Some(conn) = self.conn_mut(id) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        if conn.tls.is_tls() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the connection is already TLS",
            ));
        }
        if !conn.state.accepts_writes() {
            return Err(io::ErrorKind::NotConnected.into());
        }
        let layer = TlsProtocol::unattached(role, true)?;
        conn.tls = TlsHost::with_layer(layer);
        no_delay(&conn.stream, &conn.peer);
        debug!("{}: starting TLS on {id}", conn.peer);
        // The handshake starts once the callback returns, after what it
        // wrote in plaintext before this call.
        self.tls_dirty.push(id);
        Ok(())
    }

    /// `write_to` a TLS connection: plaintext for its layer, under the same
    /// cap and watermarks as bytes for the socket.
    pub(crate) fn write_plain_to(&mut self, id: ConnectionId, chunks: &[&[u8]]) {
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        let inbox: usize = self
            .tls_inbox
            .iter()
            .filter(|(to, _)| *to == id)
            .map(|(_, b)| b.len())
            .sum();
        let Some(now_full) = self.admit_write(id, total, inbox) else {
            return;
        };
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match conn.tls.layer_mut() {
            Some(layer) => layer.write_plain(chunks),
            None => self.tls_inbox.push((id, chunks.concat())),
        }
        self.tls_dirty.push(id);
        if now_full {
            self.set_full(id, true);
        }
    }

    /// Encrypts what was written to TLS connections outside their own
    /// callbacks (and starts upgrades): the records join the socket's
    /// writes, flushed right after.
    pub(crate) fn flush_tls_layers(&mut self) {
        while let Some(id) = self.tls_dirty.pop() {
            let Some(conn) = self.conn_mut(id) else {
                continue;
            };
            if conn.state == ConnState::Closed {
                continue;
            }
            let peer = conn.peer.clone();
            let Some(mut layer) = conn.tls.take_layer() else {
                continue;
            };
            layer.start(&mut ConnTransport::raw(self, id, &peer));
            if let Some(conn) = self.conn_mut(id) {
                conn.tls.put_layer(layer);
            }
        }
    }

    /// `lose_connection` (`write_only`: `lose_write_connection`) from
    /// outside a TLS connection's own callbacks: once its handshake is done,
    /// its layer says close_notify after what was written, then closes.
    /// False if the socket should just be closed (a plain connection, a
    /// handshake still running, or the layer lent to a callback).
    pub(crate) fn close_through_layer(&mut self, id: ConnectionId, write_only: bool) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        if !conn.state.accepts_writes() {
            return false;
        }
        let asked = conn
            .tls
            .layer_mut()
            .is_some_and(|layer| layer.ask_close(write_only));
        if asked {
            self.tls_dirty.push(id);
        }
        asked
    }
}

/// Turns Nagle's algorithm off on a TLS connection. The reactor already
/// sends what a callback wrote in one `write`, so Nagle saves nothing; but
/// with it, a reply written while the session tickets sent after the
/// handshake are still unacknowledged waits for the client's delayed ACK
/// (the tokio-rustls baseline without it took 48 ms per first exchange
/// where the client's request left before the tickets arrived).
pub(crate) fn no_delay(stream: &Stream, peer: &Peer) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!("{peer}: cannot set TCP_NODELAY: {e}");
    }
}
