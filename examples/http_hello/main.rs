//! A browser asks, the server answers `hello world`: the HTTP server of
//! section 四 ("TCP套接字之HTTP传输") of seed `000_52dec2213283d72d.txt`,
//! done properly on the reactor's
//! [`LineReceiver`](reactor::framing::LineReceiver).
//!
//! The seed's server reads one `recv(4096)`, sends a fixed reply and closes.
//! This one speaks enough HTTP/1.1 for browsers and `curl`:
//!
//! - `GET /` answers `200 OK`, `Content-Type: text/html` (the seed's page
//!   type), `Content-Length: 12` and the body `hello world\n` (with a
//!   newline, so `curl` leaves the shell prompt on a line of its own);
//!   `HEAD /` the same head without the body. Error answers are
//!   `text/plain`.
//! - Any other path: `404 Not Found`. Other methods on `/`: `405 Method Not
//!   Allowed` with `Allow: GET, HEAD`.
//! - Connections are kept alive (HTTP/1.1 by default, HTTP/1.0 with
//!   `Connection: keep-alive`) and pipelined requests are answered in order;
//!   `Connection: close`, or HTTP/1.0 without keep-alive, gets its answer with
//!   `Connection: close` and then the connection is closed.
//! - A malformed request line or header, a missing or repeated `Host` in
//!   HTTP/1.1, or a request head (request line, headers and the empty line,
//!   line endings included) over 8 KiB: `400 Bad Request`, then close.
//!   `Transfer-Encoding` (chunked bodies): `501`, then close. A body is read
//!   (`Content-Length`, at most 64 KiB; more is `413`, then close) and
//!   discarded; `Expect: 100-continue` gets its `100 Continue` first. An HTTP
//!   version other than 1.0 and 1.1: `505`, then close.
//! - A request head must arrive in full within `--head-timeout` (10 s) of its
//!   first byte (of the connection's start, for the first request), however
//!   slowly it trickles in: a slowloris client gets `408 Request Timeout`,
//!   then close. A keep-alive connection that waits `--idle-timeout` (60 s)
//!   for its next request with nothing read or written is closed without an
//!   answer, as nginx's `keepalive_timeout` does; a body that stalls that long
//!   gets the `408`.
//!
//! Lines may end with `\r\n` or a bare `\n`. Every response is written with
//! one vectored write of static byte strings: nothing is allocated per
//! request.
//!
//! ```text
//! cargo run --release --example http_hello              # port 8000, as the seed
//! curl -v http://127.0.0.1:8000/ http://127.0.0.1:8000/ # two requests, one connection
//! ```
//!
//! or open <http://127.0.0.1:8000/> in a browser. With `--tls-cert PEM
//! --tls-key PEM` it serves HTTPS only, on the same port, offering ALPN
//! `http/1.1`:
//!
//! ```text
//! cargo run --release --example http_hello -- --tls-cert cert.pem --tls-key key.pem
//! curl --cacert cert.pem https://localhost:8000/
//! ```
//!
//! With `--reactors N`, N reactors on N threads serve the port, each with
//! its own listener on it (SO_REUSEPORT: the kernel spreads connections
//! among them; see [`reactor::ReactorPool`]).
//!
//! With one reactor, SIGHUP restarts the server without refusing a
//! connection or losing a request ([`reactor::restart`]): it starts a new
//! copy of itself with the
//! same flags, handing it the listening socket, and once the copy is ready
//! it stops accepting and finishes what it has (within 5 s): a request
//! under way, or the first request of a client that has just connected, is
//! answered with `Connection: close`; an idle keep-alive connection is
//! closed, and its client reconnects to the new process.
//!
//! Prints `listening on ADDR`
//! on stdout once bound; logs go to stderr (`RUST_LOG=debug` for each
//! connection and refused request).

#[path = "../common/mod.rs"]
mod common;
mod connection;
mod parse;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use connection::{HttpConnection, Timeouts};
use reactor::{ListenOptions, ReactorPool};

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "HTTP/1.1 server that answers GET / with `hello world`"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 8000 is the seed's.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// Seconds a request head (request line, headers and the empty line) may
    /// take to arrive in full, counted from its first byte (from the
    /// connection's start, for the first request) however slowly the bytes
    /// trickle in; then `408 Request Timeout` and close. Fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = positive_seconds)]
    head_timeout: Duration,
    /// Seconds a keep-alive connection may wait for its next request with
    /// nothing read or written before it is closed (without an answer); a
    /// request body that stalls this long gets `408`. Fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = positive_seconds)]
    idle_timeout: Duration,
    /// Reactors serving the port, each on a thread of its own with its own
    /// listener (SO_REUSEPORT).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    reactors: u16,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    #[command(flatten)]
    proxy: common::proxy::ProxyArgs,
}

/// A timeout flag: seconds, fractions allowed, more than zero.
fn positive_seconds(s: &str) -> Result<Duration, String> {
    let timeout = common::parse_duration(s)?;
    if timeout.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(timeout)
}

fn serve(args: &Args) -> Result<(), String> {
    let timeouts = Timeouts {
        head: args.head_timeout,
        idle: args.idle_timeout,
    };
    // ALPN: a client that offers HTTP/2 too (browsers, curl) is told this
    // server speaks HTTP/1.1.
    let tls = args.tls.server_config(&[b"http/1.1"])?;
    if args.reactors > 1 {
        // `--reactors N`: a ReactorPool, one listener per reactor.
        let addr = args.listen.tcp_addr(&args.host, args.port, "--reactors")?;
        let pool = ReactorPool::new(args.reactors.into())
            .map_err(|e| format!("cannot start the reactors: {e}"))?;
        let bound = pool
            .listen_with(
                addr,
                args.proxy.apply(ListenOptions::default()),
                move |reactor, addr, options, _| {
                    let factory = move || HttpConnection::new(timeouts);
                    common::tls::listen(reactor, addr, tls.clone(), factory, options)
                },
            )
            .map_err(|e| common::hints::cannot_listen(addr, &e))?;
        common::announce(bound)?;
        return pool.wait().map_err(|e| format!("reactor failed: {e}"));
    }
    common::serve_on(&args.host, args.port, &args.listen, |reactor, endpoint| {
        let factory = move || HttpConnection::new(timeouts);
        let options = args.proxy.apply(ListenOptions::default());
        let listening = common::tls::listen_on(reactor, endpoint, tls, factory, options)?;
        reactor.restart_on_sighup(vec![listening.clone()])?;
        Ok(listening)
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("http_hello", serve(&args))
}
