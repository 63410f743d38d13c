//! Building rustls configurations from PEM files.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Reads every certificate in a PEM file, in order (a chain: the leaf
/// first, then its issuers).
pub fn load_certs(path: impl AsRef<Path>) -> io::Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate in the file", path.display()),
        ));
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: impl AsRef<Path>) -> io::Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, e))
}

/// A root store holding every certificate in a PEM file: the certificate
/// authorities a client trusts (or a server trusts for client certificates).
pub fn load_roots(path: impl AsRef<Path>) -> io::Result<RootCertStore> {
    let path = path.as_ref();
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// A server configuration from a certificate chain and its key, both PEM,
/// with no client authentication. Set `alpn_protocols` on the result to
/// offer ALPN, then wrap it in an `Arc` for
/// [`Reactor::listen_tls`](crate::Reactor::listen_tls).
///
/// ```no_run
/// use std::sync::Arc;
/// let mut config = reactor::tls::server_config("cert.pem", "key.pem")?;
/// config.alpn_protocols = vec![b"http/1.1".to_vec()];
/// let config = Arc::new(config);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn server_config(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> io::Result<ServerConfig> {
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(load_certs(cert_chain)?, load_key(key)?)
        .map_err(|e| {
            invalid(format!(
                "the certificate and key do not make a server identity: {e}"
            ))
        })
}

/// A server configuration that requires every client to present a
/// certificate issued by one of the authorities in `client_ca` (mutual
/// TLS); a client without one fails its handshake.
pub fn server_config_with_client_auth(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
    client_ca: impl AsRef<Path>,
) -> io::Result<ServerConfig> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(client_ca)?), provider())
            .build()
            .map_err(|e| invalid(e.to_string()))?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_certs(cert_chain)?, load_key(key)?)
        .map_err(|e| {
            invalid(format!(
                "the certificate and key do not make a server identity: {e}"
            ))
        })
}

/// A client configuration that trusts the certificate authorities in a PEM
/// file (a self-signed server certificate is its own authority).
///
/// ```no_run
/// use std::sync::Arc;
/// let config = Arc::new(reactor::tls::client_config("ca.pem")?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn client_config(ca: impl AsRef<Path>) -> io::Result<ClientConfig> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(load_roots(ca)?)
        .with_no_client_auth())
}

/// A client configuration that trusts the authorities in `ca` and presents
/// a certificate chain and key of its own, for servers that require client
/// certificates (mutual TLS).
pub fn client_config_with_identity(
    ca: impl AsRef<Path>,
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> io::Result<ClientConfig> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_root_certificates(load_roots(ca)?)
        .with_client_auth_cert(load_certs(cert_chain)?, load_key(key)?)
        .map_err(|e| {
            invalid(format!(
                "the certificate and key do not make a client identity: {e}"
            ))
        })
}

/// The crypto provider every helper here uses: aws-lc-rs, rustls's default
/// (it builds with a C compiler alone and offers post-quantum key exchange).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> io::Error {
    match e {
        rustls::pki_types::pem::Error::Io(e) => {
            io::Error::new(e.kind(), format!("{}: {e}", path.display()))
        }
        other => invalid(format!("{}: {other:?}", path.display())),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
