//! The baseline for the echo benchmark: a plain echo server on tokio's
//! current-thread runtime (one thread, like the reactor), one task per
//! connection reading into a 64 KiB buffer and writing back what it read.
//! It listens with the reactor's default backlog (1024) rather than
//! `TcpListener::bind`'s 128: with a few hundred connection attempts at once
//! the short queue overflows, and the dropped SYNs are retried only after a
//! second, which delays a load run's start by that much.
//!
//! ```text
//! cargo run --release --example tokio_echo_server -- --port 0
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` for per-connection lines).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::{debug, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Echo server on tokio's current-thread runtime (benchmark baseline)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// Bytes read at once per connection, as in a typical tokio echo server.
const BUFFER: usize = 64 * 1024;

/// Connections the kernel queues before `accept`: the reactor's default.
const BACKLOG: u32 = 1024;

async fn echo(mut socket: TcpStream, peer: SocketAddr) {
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                debug!("read from {peer} failed: {e}");
                return;
            }
        };
        if let Err(e) = socket.write_all(&buf[..n]).await {
            debug!("write to {peer} failed: {e}");
            return;
        }
    }
    debug!("{peer} closed");
}

async fn serve(args: Args) -> io::Result<()> {
    let addr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} has no address", args.host),
            )
        })?;
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As TcpListener::bind and the reactor do.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(BACKLOG)?;
    {
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {}", listener.local_addr()?)?;
        out.flush()?;
    }
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                debug!("accepted {peer}");
                tokio::spawn(echo(socket, peer));
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
            eprintln!("tokio_echo_server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio_echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}
