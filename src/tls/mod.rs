//! TLS on any transport, as a layer between the socket and a protocol:
//! Twisted's `TLSMemoryBIOProtocol`, on [rustls].
//!
//! The layer feeds what the socket delivers to rustls and hands the
//! decrypted bytes to the protocol's `data_received`; the protocol writes
//! plaintext through a [`Transport`](crate::Transport) that encrypts. The
//! protocol does not know: the same `Protocol` serves plain TCP and TLS.
//!
//! - On the reactor: [`Reactor::listen_tls`](crate::Reactor::listen_tls),
//!   [`Reactor::connect_tls`](crate::Reactor::connect_tls), and
//!   [`Transport::start_tls`](crate::Transport::start_tls) to upgrade a
//!   plain connection (STARTTLS).
//! - Anywhere else a `Protocol` runs (the [`threaded`](crate::threaded)
//!   model, [`testing`](crate::testing)'s in-memory transports): wrap it in
//!   a [`TlsProtocol`], or build them with a [`TlsFactory`].
//!
//! What the layer promises:
//! - The protocol's `connection_made` runs once the handshake completes,
//!   so [`Transport::tls_info`](crate::Transport::tls_info) (ALPN, SNI,
//!   version, the peer's certificates) is known there. A handshake that
//!   fails, or does not complete within its timeout
//!   ([`DEFAULT_HANDSHAKE_TIMEOUT`]), ends the connection with
//!   [`Reason::Tls`](crate::Reason::Tls), logged once; the protocol never
//!   hears of it, and a client factory gets `client_connection_failed`.
//! - Everything a protocol writes during one callback is encrypted together,
//!   into as few records as its size allows (many tiny writes never become
//!   many tiny records). Bytes written before the handshake completes
//!   (after `start_tls`) are held and sent after it.
//! - `lose_connection` sends close_notify, flushes, then closes; a peer
//!   that closes without close_notify is reported as
//!   [`Reason::Truncated`](crate::Reason::Truncated), never as a clean end.
//!
//! # Example: an echo server over TLS and a client
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use reactor::{Protocol, Reactor, Transport};
//!
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! let server = Arc::new(reactor::tls::server_config("cert.pem", "key.pem")?);
//! let client = Arc::new(reactor::tls::client_config("cert.pem")?);
//! let mut reactor = Reactor::new()?;
//! let port = reactor.listen_tls("127.0.0.1:0".parse().unwrap(), server, || Echo)?;
//! reactor.connect_tls(port.local_addr(), "localhost", client, || Echo, Duration::from_secs(5));
//! # Ok::<(), std::io::Error>(())
//! ```

mod config;
mod factory;
mod layer;
mod transport;

use std::io;
use std::sync::Arc;

pub use rustls;
pub use rustls::pki_types::{CertificateDer, ServerName};
pub use rustls::{ClientConfig, ServerConfig};

pub use self::config::{
    client_config, client_config_with_identity, load_certs, load_key, load_roots, server_config,
    server_config_with_client_auth,
};
pub use self::factory::TlsFactory;
pub use self::layer::TlsProtocol;

pub use crate::rules::DEFAULT_HANDSHAKE_TIMEOUT;

/// Which end of the handshake a layer plays, with its configuration.
#[derive(Clone)]
pub enum TlsRole {
    /// Accepts the handshake: presents the configuration's certificate.
    Server(Arc<ServerConfig>),
    /// Starts the handshake, asking for `server_name` (sent as SNI and
    /// checked against the server's certificate).
    Client {
        /// Trusted authorities, client certificate, ALPN offers.
        config: Arc<ClientConfig>,
        /// The name the server's certificate must carry.
        server_name: ServerName<'static>,
    },
}

impl TlsRole {
    /// The client role for a host name or IP address (`"localhost"`,
    /// `"127.0.0.1"`); an invalid name is an `InvalidInput` error.
    pub fn client(config: Arc<ClientConfig>, server_name: &str) -> io::Result<TlsRole> {
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{server_name:?} is not a valid TLS server name: {e}"),
            )
        })?;
        Ok(TlsRole::Client {
            config,
            server_name,
        })
    }

    /// The server role.
    pub fn server(config: Arc<ServerConfig>) -> TlsRole {
        TlsRole::Server(config)
    }
}

impl std::fmt::Debug for TlsRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsRole::Server(_) => f.write_str("TlsRole::Server"),
            TlsRole::Client { server_name, .. } => {
                write!(f, "TlsRole::Client({})", server_name.to_str())
            }
        }
    }
}

/// What a completed handshake negotiated, from
/// [`Transport::tls_info`](crate::Transport::tls_info).
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// The protocol version, e.g. `TLSv1_3`.
    pub version: rustls::ProtocolVersion,
    /// The cipher suite.
    pub cipher_suite: rustls::CipherSuite,
    /// The ALPN protocol both ends agreed on, e.g. `b"http/1.1"`.
    pub alpn: Option<Vec<u8>>,
    /// The server name the client asked for (SNI): on a server, what the
    /// client sent (`None` if it sent none, as for an IP address); on a
    /// client, the name it connected with.
    pub server_name: Option<String>,
    /// The peer's certificate chain, leaf first: the server's on a client;
    /// on a server, the client's under mutual TLS (else empty).
    pub peer_certificates: Vec<CertificateDer<'static>>,
}
