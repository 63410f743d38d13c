//! Building TLS-wrapped protocols from any factory.

use std::net::SocketAddr;
use std::time::Duration;

use log::error;

use super::{TlsProtocol, TlsRole, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::address::Address;
use crate::protocol::{Factory, Protocol};
use crate::transport::Transport;

/// A factory whose protocols are wrapped in TLS: for the
/// [`threaded`](crate::threaded) model, or any host that takes a
/// [`Factory`]. (On the reactor, [`Reactor::listen_tls`](crate::Reactor::listen_tls)
/// does this and more.)
///
/// ```no_run
/// use std::sync::Arc;
/// use reactor::tls::{TlsFactory, TlsRole};
/// # struct Echo;
/// # impl reactor::Protocol for Echo {
/// #     fn data_received(&mut self, t: &mut dyn reactor::Transport, d: &[u8]) { t.write(d) }
/// # }
/// let config = Arc::new(reactor::tls::server_config("cert.pem", "key.pem")?);
/// let factory = TlsFactory::new(TlsRole::server(config), || Echo);
/// let server = reactor::threaded::listen_tcp("127.0.0.1:0".parse().unwrap(), factory)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct TlsFactory<F> {
    role: TlsRole,
    factory: F,
    handshake_timeout: Duration,
}

impl<F: Factory> TlsFactory<F> {
    /// Wraps every protocol `factory` builds in TLS, playing `role`.
    pub fn new(role: TlsRole, factory: F) -> Self {
        TlsFactory {
            role,
            factory,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Sets the handshake timeout of every layer built (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

impl<F: Factory> Factory for TlsFactory<F> {
    fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
        self.build_protocol_for(&Address::Ip(peer))
    }

    fn build_protocol_for(&mut self, peer: &Address) -> Box<dyn Protocol> {
        let inner = self.factory.build_protocol_for(peer);
        match TlsProtocol::new(self.role.clone(), inner) {
            Ok(layer) => Box::new(layer.with_handshake_timeout(self.handshake_timeout)),
            Err(e) => {
                error!("{peer}: cannot start TLS: {e}");
                Box::new(Refused)
            }
        }
    }

    fn start_factory(&mut self) {
        self.factory.start_factory();
    }

    fn stop_factory(&mut self) {
        self.factory.stop_factory();
    }
}

/// Stands in for a layer rustls would not build (logged when built):
/// closes at once, so the connection is never served in plaintext.
struct Refused;

impl Protocol for Refused {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.abort_connection();
    }

    fn data_received(&mut self, _transport: &mut dyn Transport, _data: &[u8]) {}
}
