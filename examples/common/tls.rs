//! TLS settings the TLS examples share (`tokio_tls_echo_server`,
//! `tls_load`): reading PEM files, and rustls configurations with rustls's
//! defaults, on the one crypto provider the crate's features enable (the
//! process default rustls picks from them, as `reactor::tls` does), so that
//! a benchmark compares servers doing the same cryptography. Included with
//! `#[path = "../common/tls.rs"] mod tls;` (or `common/tls.rs`) by the
//! examples that use it, so the others build without it.
#![allow(dead_code)]

use std::path::Path;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Every certificate in the PEM file at `path`, in order (a chain: leaf first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The first private key in the PEM file at `path`.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", path.display()))
}

/// A server configuration presenting the chain in `cert` with the key in
/// `key`; no client authentication, rustls's defaults otherwise (TLS 1.3
/// and 1.2, session tickets as rustls sends them). Like every configuration
/// here it uses the process's default crypto provider, which rustls installs
/// from the crate features when exactly one provider is enabled.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .map_err(|e| {
            format!(
                "{} and {} do not go together: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// A client configuration trusting only the certificates in the PEM file
/// `ca`; no client certificate, rustls's defaults otherwise.
pub fn client_config(ca: &Path) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("{} cannot be a trust anchor: {e}", ca.display()))?;
    }
    Ok(ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Parses the name a client checks the server's certificate against: a DNS
/// name or an IP address.
pub fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(name.to_string())
        .map_err(|e| format!("{name:?} is not a DNS name or IP address: {e}"))
}
