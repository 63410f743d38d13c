//! Writes a self-signed certificate and its private key (PEM) for trying TLS
//! locally: the servers take them with `--tls-cert` and `--tls-key`, and
//! clients trust the certificate itself as their only root (`tls_load --ca`,
//! `curl --cacert`, `openssl s_client -CAfile`).
//!
//! ```text
//! cargo run --example make_cert -- --cert cert.pem --key key.pem
//! ```
//!
//! The certificate names `localhost`, `127.0.0.1` and `::1` unless `--name`
//! is given (IP addresses become IP subject alternative names, anything else
//! a DNS name). It is an end-entity certificate (no CA basic constraint,
//! which webpki refuses in a server's certificate) with an ECDSA P-256 key.
//! A self-signed end entity serves as its own trust anchor: webpki takes any
//! certificate it is given as a root, and OpenSSL trusts a self-signed
//! certificate found in `-CAfile`. `tests/make_cert.rs` checks the rustls
//! handshake. It says what it wrote on stderr; stdout stays empty.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Write a self-signed TLS certificate and key (PEM) for local testing",
    after_help = "Then, for example: echo_server --host 127.0.0.1 --port 7000 \
                  --tls-cert cert.pem --tls-key key.pem, and a client trusting cert.pem \
                  (tls_load --port 7000 --ca cert.pem, curl --cacert cert.pem, \
                  openssl s_client -CAfile cert.pem)."
)]
struct Args {
    /// Where to write the certificate (PEM); replaced if it exists.
    #[arg(long, default_value = "cert.pem")]
    cert: PathBuf,
    /// Where to write the private key (PEM, PKCS#8); replaced if it exists,
    /// readable by its owner only.
    #[arg(long, default_value = "key.pem")]
    key: PathBuf,
    /// A name the certificate is valid for: a DNS name or an IP address.
    /// Repeat for several; any given replace the defaults (localhost,
    /// 127.0.0.1, ::1).
    #[arg(long = "name", value_name = "NAME")]
    names: Vec<String>,
}

/// The names a certificate is made for when `--name` is not given.
const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Builds the self-signed certificate for `names`: its PEM and its key's PEM.
fn make(names: Vec<String>) -> Result<(String, String), rcgen::Error> {
    let common_name = names[0].clone();
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    // What a TLS server's certificate is for; with these, OpenSSL and webpki
    // check the purpose rather than assume any.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `contents` to `path`, creating it with `mode` (on Unix) or
/// truncating it.
fn write_file(path: &Path, contents: &str, private: bool) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file: File = options.open(path)?;
    // An existing file keeps its mode: narrow it for the key.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = private;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn run(args: Args) -> Result<(), String> {
    let names = if args.names.is_empty() {
        DEFAULT_NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        args.names
    };
    let shown = names.join(", ");
    let (cert, key) = make(names).map_err(|e| format!("cannot make the certificate: {e}"))?;
    write_file(&args.key, &key, true)
        .map_err(|e| format!("cannot write {}: {e}", args.key.display()))?;
    write_file(&args.cert, &cert, false)
        .map_err(|e| format!("cannot write {}: {e}", args.cert.display()))?;
    eprintln!(
        "make_cert: wrote the self-signed certificate for {shown} to {} and its key to {}",
        args.cert.display(),
        args.key.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_cert: {e}");
            ExitCode::FAILURE
        }
    }
}
