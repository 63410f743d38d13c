//! The baseline for the TLS benchmark (`bench/tls.sh`): `tokio_echo_server`
//! with TLS, on tokio's current-thread runtime (one thread, like the
//! reactor) and tokio-rustls, with the server configuration
//! `echo_server --tls-cert` uses (`reactor::tls::server_config`). One task per
//! connection completes the handshake, then reads into a 64 KiB buffer and
//! writes back what it read, as the plain tokio baseline does. It listens
//! with the reactor's default backlog (1024), for the reason given in
//! `tokio_echo_server.rs`.
//!
//! Unlike the plain baseline it sets TCP_NODELAY on every connection.
//! tokio-rustls writes the session tickets that end a TLS 1.3 handshake and
//! the first echo in two writes; with Nagle's algorithm on, the echo waits
//! for the client to acknowledge the tickets, and a client that has nothing
//! to send delays that acknowledgement (40 ms on Linux), which would make a
//! handshake benchmark measure the delayed-ACK timer rather than the server.
//!
//! ```text
//! cargo run --example make_cert -- --cert cert.pem --key key.pem
//! cargo run --release --example tokio_tls_echo_server -- --port 0 \
//!     --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` for per-connection lines, failed handshakes included).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use log::{debug, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "TLS echo server on tokio's current-thread runtime and tokio-rustls (benchmark baseline)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The server's certificate chain (PEM, leaf first), e.g. from make_cert.
    #[arg(long, value_name = "PEM")]
    tls_cert: PathBuf,
    /// The private key of the chain's leaf certificate (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: PathBuf,
}

/// Bytes read at once per connection, as in `tokio_echo_server`.
const BUFFER: usize = 64 * 1024;

/// Connections the kernel queues before `accept`: the reactor's default.
const BACKLOG: u32 = 1024;

async fn echo(acceptor: TlsAcceptor, socket: TcpStream, peer: SocketAddr) {
    if let Err(e) = socket.set_nodelay(true) {
        debug!("TCP_NODELAY on {peer} failed: {e}");
    }
    let mut stream = match acceptor.accept(socket).await {
        Ok(stream) => stream,
        Err(e) => {
            debug!("handshake with {peer} failed: {e}");
            return;
        }
    };
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                debug!("read from {peer} failed: {e}");
                return;
            }
        };
        if let Err(e) = stream.write_all(&buf[..n]).await {
            debug!("write to {peer} failed: {e}");
            return;
        }
        // tokio-rustls writes what it can in write_all; flush sends the rest.
        if let Err(e) = stream.flush().await {
            debug!("write to {peer} failed: {e}");
            return;
        }
    }
    // The peer's close_notify: answer with ours, as a TLS server should.
    if let Err(e) = stream.shutdown().await {
        debug!("closing {peer} failed: {e}");
    }
    debug!("{peer} closed");
}

async fn serve(args: Args) -> Result<(), String> {
    // The very configuration echo_server --tls-cert builds (reactor::tls's
    // provider and rustls's defaults), so both servers do the same
    // cryptography.
    let config = reactor::tls::server_config(&args.tls_cert, &args.tls_key)
        .map_err(|e| format!("cannot use --tls-cert/--tls-key: {e}"))?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let addr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", args.host))?
        .next()
        .ok_or_else(|| format!("{} has no address", args.host))?;
    let listen = || -> io::Result<tokio::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // As TcpListener::bind and the reactor do.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    let listener = listen().map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {bound}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                debug!("accepted {peer}");
                tokio::spawn(echo(acceptor.clone(), socket, peer));
            }
            Err(e) => {
                // Out of descriptors or memory: back off rather than spin.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_tls_echo_server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_tls_echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}
