//! The TLS flags the servers share: `--tls-cert PEM --tls-key PEM` make a
//! server speak TLS only, on its usual `--host`/`--port` or `--listen`
//! endpoint; without them it serves plain TCP as before (or TLS, for a
//! `--listen tls:...` endpoint).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use reactor::endpoint::{Listening, ServerEndpoint};
use reactor::tls::ServerConfig;
use reactor::{Factory, ListenOptions, ListenerHandle, Reactor};

/// `--tls-cert` and `--tls-key`, flattened into a server's own flags
/// (`#[command(flatten)]`). Each requires the other.
#[derive(clap::Args, Debug, Clone)]
pub struct TlsArgs {
    /// Serve TLS only, presenting this certificate chain (PEM: the server's
    /// certificate first, then any issuers); needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The server configuration the flags ask for, offering `alpn` (most
    /// preferred first; empty for none), or `None` without the flags. A file
    /// that cannot be read or does not hold a usable certificate and key is
    /// an error of one line, for [`exit_with`](super::exit_with), before
    /// anything is bound.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Option<Arc<ServerConfig>>, String> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut config = reactor::tls::server_config(cert, key)
            .map_err(|e| format!("cannot use --tls-cert/--tls-key: {e}"))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Some(Arc::new(config)))
    }
}

/// Listens on `addr` over TLS under `tls`, or plain TCP when it is `None`:
/// for the servers whose listeners a `ReactorPool` binds, one per reactor.
pub fn listen(
    reactor: &mut Reactor,
    addr: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    factory: impl Factory,
    options: ListenOptions,
) -> io::Result<ListenerHandle> {
    match tls {
        Some(config) => reactor.listen_tls_with(addr, config, factory, options),
        None => reactor.listen_tcp_with(addr, factory, options),
    }
}

/// Listens on `endpoint`, over TLS under `tls` (from `--tls-cert` and
/// `--tls-key`) when it is given, else as the endpoint says (a `tls:`
/// endpoint brings its own certificate and key): the one place a server
/// chooses between TLS and plain TCP.
pub fn listen_on(
    reactor: &mut Reactor,
    endpoint: &ServerEndpoint,
    tls: Option<Arc<ServerConfig>>,
    factory: impl Factory,
    options: ListenOptions,
) -> io::Result<Listening> {
    match tls {
        Some(config) => reactor.listen_on_tls(endpoint, config, factory, options),
        None => reactor.listen_on_with(endpoint, factory, options),
    }
}
