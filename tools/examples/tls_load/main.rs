//! A load generator for TLS echo servers (`bench/tls.sh`), in three modes:
//!
//! * ping-pong (the default): `--conns` TLS connections, each sending an
//!   `--size`-byte message, waiting for all of it to come back, checking it
//!   byte for byte, recording the round trip and sending the next, for
//!   `--secs` seconds from the moment every connection is up (or from
//!   `--start-at`, a UNIX time, if later). Prints one line:
//!
//!   ```text
//!   conns=C size=M secs=D msgs=N msgs_per_s=X p50_us=.. p99_us=.. errors=E
//!   ```
//!
//! * `--handshakes`: each of `--conns` clients in turn connects, completes a
//!   full handshake (resumption is off, and a resumed handshake counts as an
//!   error) sending one message with its Finished (or after it, with
//!   `--message-after-handshake`), checks its echo, sends close_notify and
//!   waits for the server to close, for `--secs` seconds. The same line,
//!   where `msgs` are those exchanges, and `full_handshakes=N` follows.
//!
//! * `--idle N`: opens N connections and completes the handshake on each,
//!   prints `connected K` (K up) and holds them until end-of-file on stdin
//!   or `--hold-secs`, then exits. For a server's memory per idle TLS
//!   connection.
//!
//! `errors` counts echoes that differed from what was sent, failed
//! connections or handshakes, and connections lost before the end; the
//! first failure of each run is shown on stderr. Nothing is retried, and
//! every mode ends by itself: the ping-pong and handshakes after `--secs`,
//! idle after `--hold-secs` at the latest. It talks to loopback addresses
//! only.
//!
//! The client configuration is `reactor::tls::client_config(--ca)` with
//! resumption off; `tokio_tls_echo_server` and `echo_server --tls-cert`
//! both use `reactor::tls::server_config`, so every side does the same
//! cryptography.
//!
//! Two engines drive the ping-pong: tokio's current-thread runtime with
//! tokio-rustls (`tokio_engine.rs`, also the handshakes and idle modes),
//! and with `--io-uring` rustls in memory over io_uring (`uring.rs`), which
//! costs the load less CPU per message than an epoll server spends, so one
//! core of it can keep a server on the other core busy. Either way one
//! thread, so one core at most.
//!
//! ```text
//! cargo run --example make_cert -- --cert cert.pem --key key.pem
//! cargo run --release --example tokio_tls_echo_server -- --port 7000 \
//!     --tls-cert cert.pem --tls-key key.pem
//! cargo run --release --example tls_load -- --port 7000 --ca cert.pem \
//!     --conns 50 --size 512 --secs 5 --io-uring
//! ```

#[path = "../../../examples/common/mod.rs"]
mod common;
mod tokio_engine;
#[cfg(target_os = "linux")]
mod uring;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::load::{fill_message, parse_secs, parse_unix_time, rate, Histogram};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::ClientConfig;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Load for a TLS echo server: ping-pong, full handshakes, or idle connections"
)]
struct Args {
    /// Server host name or address; it must be a loopback address.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 7000, value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    /// The certificates to trust (PEM), e.g. make_cert's certificate: the
    /// server's must chain to one of them.
    #[arg(long, value_name = "PEM")]
    ca: PathBuf,
    /// The name the server's certificate is checked against (DNS name or IP
    /// address).
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Connections in the ping-pong; with --handshakes, clients connecting
    /// at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    conns: u32,
    /// Bytes per message.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=(1 << 24)))]
    size: u32,
    /// Seconds of ping-pong (or of handshakes), once every connection is up.
    #[arg(long, default_value = "5", value_parser = parse_secs)]
    secs: f64,
    /// Start the timed run at this UNIX time (seconds), once connected, so
    /// that load processes started together time the same window. If
    /// connecting takes longer, the run starts at once, with a warning.
    #[arg(long, value_parser = parse_unix_time)]
    start_at: Option<f64>,
    /// Seconds each connection attempt, handshake included, may take.
    #[arg(long, default_value = "10", value_parser = parse_secs)]
    connect_timeout: f64,
    /// Connections being opened at once (keeps the server's accept backlog
    /// from overflowing when thousands are opened).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    max_pending: u32,
    /// A new connection and full handshake for every message, instead of
    /// ping-pong on long-lived connections.
    #[arg(long, conflicts_with_all = ["idle", "io_uring"])]
    handshakes: bool,
    /// With --handshakes: write the message once the handshake is complete,
    /// in a write of its own, rather than with the client's Finished.
    #[arg(long, requires = "handshakes")]
    message_after_handshake: bool,
    /// Only open this many connections, complete their handshakes and hold
    /// them; print `connected K`.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000),
          conflicts_with = "io_uring")]
    idle: Option<u32>,
    /// With --idle: exit after this many seconds even if stdin stays open.
    #[arg(long, default_value = "300", value_parser = parse_secs)]
    hold_secs: f64,
    /// Drive the ping-pong through io_uring, rustls working in memory: the
    /// load then costs less CPU per message than the server (Linux 6.1+).
    /// Connections are opened one at a time, and --max-pending is unused.
    #[arg(long)]
    io_uring: bool,
}

/// What every engine needs to know about a run.
pub struct Settings {
    pub addr: SocketAddr,
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub conns: u32,
    pub size: usize,
    pub secs: f64,
    pub start_at: Option<f64>,
    pub connect_timeout: Duration,
    pub max_pending: u32,
    pub hold: Duration,
    pub message_after_handshake: bool,
}

/// What a finished ping-pong or handshakes run reports.
pub struct Report {
    pub msgs: u64,
    /// Seconds the run actually lasted.
    pub elapsed: f64,
    pub hist: Histogram,
    pub errors: u64,
    /// With --handshakes: the full handshakes made (one per message).
    pub full_handshakes: Option<u64>,
}

/// Prints the one result line.
fn print_report(s: &Settings, r: &Report) {
    let mut line = format!(
        "conns={} size={} secs={} msgs={} msgs_per_s={:.0} p50_us={:.1} p99_us={:.1} errors={}",
        s.conns,
        s.size,
        s.secs,
        r.msgs,
        rate(r.msgs, r.elapsed),
        r.hist.quantile(0.50) / 1000.0,
        r.hist.quantile(0.99) / 1000.0,
        r.errors
    );
    if let Some(n) = r.full_handshakes {
        line.push_str(&format!(" full_handshakes={n}"));
    }
    println!("{line}");
}

/// Counts failures and remembers the first, to show it once on stderr.
#[derive(Default)]
pub struct Failures {
    pub count: u64,
    pub first: Option<String>,
}

impl Failures {
    pub fn add(&mut self, why: impl Into<String>) {
        self.count += 1;
        self.first.get_or_insert_with(|| why.into());
    }

    /// Says on stderr how many `what` failed, and the first reason.
    pub fn report(&self, what: &str) {
        if let Some(first) = &self.first {
            eprintln!("tls_load: {} {what} failed (first: {first})", self.count);
        }
    }
}

/// Writes message number `seq` of connection `idx` over the first (up to 8)
/// bytes of `buf`, whose body `fill_message` wrote once: a hash of both,
/// so a stale, misrouted or corrupted echo differs while stamping costs a
/// few nanoseconds per message.
pub fn stamp(buf: &mut [u8], idx: usize, seq: u64) {
    let mut tag = [0u8; 8];
    fill_message(&mut tag, idx as u32, seq);
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&tag[..n]);
}

/// A message buffer for connection `idx`: its own pattern, stamped for
/// message 0.
pub fn first_message(size: usize, idx: usize) -> Vec<u8> {
    let mut msg = vec![0u8; size];
    fill_message(&mut msg, idx as u32, u64::MAX);
    stamp(&mut msg, idx, 0);
    msg
}

fn settings(args: &Args) -> Result<Settings, String> {
    let addr = common::resolve(&args.host, args.port)?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: tls_load loads this machine only",
            addr.ip()
        ));
    }
    let mut config =
        reactor::tls::client_config(&args.ca).map_err(|e| format!("cannot use --ca: {e}"))?;
    // Every handshake full, as a new client's: what --handshakes measures,
    // and what the idle connections hold.
    config.resumption = Resumption::disabled();
    Ok(Settings {
        addr,
        config: Arc::new(config),
        server_name: ServerName::try_from(args.server_name.clone()).map_err(|e| {
            format!(
                "--server-name {:?} is not a DNS name or IP address: {e}",
                args.server_name
            )
        })?,
        conns: args.idle.unwrap_or(args.conns),
        size: args.size as usize,
        secs: args.secs,
        start_at: args.start_at,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
        max_pending: args.max_pending,
        hold: Duration::from_secs_f64(args.hold_secs),
        message_after_handshake: args.message_after_handshake,
    })
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let s = match settings(&args) {
        Ok(s) => s,
        Err(e) => return common::exit_with("tls_load", Err(e)),
    };
    let outcome = if args.io_uring {
        #[cfg(target_os = "linux")]
        {
            uring::run(&s).map(Some)
        }
        #[cfg(not(target_os = "linux"))]
        Err("--io-uring needs Linux".to_string())
    } else if args.idle.is_some() {
        tokio_engine::idle(&s).map(|()| None)
    } else if args.handshakes {
        tokio_engine::handshakes(&s).map(Some)
    } else {
        tokio_engine::ping_pong(&s).map(Some)
    };
    match outcome {
        Ok(Some(report)) => {
            print_report(&s, &report);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => common::exit_with("tls_load", Err(e)),
    }
}
