//! The baseline for the echo benchmark: a plain echo server on tokio's
//! current-thread runtime (one thread, like the reactor), one task per
//! connection reading into a 64 KiB buffer and writing back what it read.
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
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser, Debug)]
#[command(about = "Echo server on tokio's current-thread runtime (benchmark baseline)")]
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
    let listener = TcpListener::bind((args.host.as_str(), args.port)).await?;
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
