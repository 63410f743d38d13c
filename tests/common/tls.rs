//! TLS test material: a certificate authority, a server certificate for
//! localhost and 127.0.0.1, a client certificate, written as PEM files to a
//! directory of the test's own; and a blocking rustls client.
//!
//! Included with `#[path = "common/tls.rs"] mod tls_common;` next to
//! `mod common;`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use reactor::tls::rustls::{ClientConnection, StreamOwned};
use reactor::tls::{ClientConfig, ServerConfig, ServerName};

use crate::common::WAIT;

/// PEM files under a fresh directory, removed on drop.
pub struct Certs {
    pub dir: PathBuf,
    /// The authority that signed both certificates (the client's root).
    pub ca: PathBuf,
    /// The server's chain (leaf, then the authority) and key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// A client certificate, for mutual TLS.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// An authority that signed nothing here: a client trusting only it
    /// must refuse the server.
    pub other_ca: PathBuf,
}

impl Certs {
    /// Generates everything, in a directory named after `tag`.
    pub fn new(tag: &str) -> Certs {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "reactor-tls-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca_pem, issuer) = authority("reactor test CA");
        let (other_pem, _) = authority("some other CA");
        let server = leaf(&issuer, &["localhost", "127.0.0.1"]);
        let client = leaf(&issuer, &["client.test"]);
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        Certs {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &format!("{}{ca_pem}", server.0)),
            server_key: write("server.key", &server.1),
            client_cert: write("client.pem", &format!("{}{ca_pem}", client.0)),
            client_key: write("client.key", &client.1),
            other_ca: write("other-ca.pem", &other_pem),
            dir,
        }
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::new(reactor::tls::server_config(&self.server_cert, &self.server_key).unwrap())
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::new(reactor::tls::client_config(&self.ca).unwrap())
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn authority(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(issuer: &Issuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A blocking TLS client over loopback, with the test timeouts.
pub type Client = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr` and returns the TLS stream (the handshake runs on
/// the first read or write).
pub fn connect(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> Client {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp)
}

/// The path of a file in `dir`.
pub fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// A reactor thread serving `factory`'s protocols over TLS with `certs`'
/// server identity.
pub fn tls_server<P: reactor::Protocol>(
    certs: &Certs,
    factory: impl FnMut() -> P + Send + 'static,
) -> crate::common::ReactorThread {
    let config = certs.server_config();
    crate::common::ReactorThread::start(move |r| {
        Ok(r.listen_tls(crate::common::localhost(), config, factory)?
            .local_addr())
    })
}

/// A reactor thread serving echoing [`Recorder`](crate::common::Recorder)s
/// over TLS, and the channel their callbacks report on.
pub fn recording_tls_server(
    certs: &Certs,
    options: reactor::ListenOptions,
) -> (
    crate::common::ReactorThread,
    std::sync::mpsc::Receiver<String>,
) {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = certs.server_config();
    let server = crate::common::ReactorThread::start(move |r| {
        let factory = move || crate::common::Recorder {
            tx: tx.clone(),
            echo: true,
        };
        Ok(
            r.listen_tls_with(crate::common::localhost(), config, factory, options)?
                .local_addr(),
        )
    });
    (server, rx)
}
