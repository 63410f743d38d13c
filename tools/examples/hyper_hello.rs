//! The baseline for the HTTP benchmark (`bench/http.sh`): `http_hello`'s
//! answers from hyper 1's HTTP/1 server on tokio's current-thread runtime
//! (one thread, like the reactor), one task per connection.
//!
//! `GET /` gets the same bytes as from `http_hello`: `200 OK`,
//! `Content-Type: text/html`, `Content-Length: 12`, `hello world\n`, header
//! names in title case and no `Date` header; other paths `404`, other
//! methods on `/` `405` with `Allow: GET, HEAD`. Requests hyper itself
//! refuses (malformed, or a head over 8 KiB) get hyper's own answers.
//! TCP_NODELAY is set on every connection, as `http_hello` does, and the
//! listener has the reactor's backlog (1024).
//!
//! ```text
//! cargo run --release --example hyper_hello -- --port 0
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

#[path = "../../examples/common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use log::{debug, warn};
use tokio::net::TcpSocket;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "HTTP/1.1 hello world on hyper and tokio's current-thread runtime (benchmark baseline)"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 8001, next to http_hello's 8000.
    #[arg(long, default_value_t = 8001)]
    port: u16,
}

/// Connections the kernel queues before `accept`: the reactor's default.
const BACKLOG: u32 = 1024;

/// Largest request head, as `http_hello`'s.
const MAX_HEAD: usize = 8 * 1024;

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain");
/// The page's type, as `http_hello`'s.
const TEXT_HTML: HeaderValue = HeaderValue::from_static("text/html");

/// A plain-text answer with `http_hello`'s headers, in its order.
fn text(status: StatusCode, allow: bool, body: &'static str) -> Response<Full<&'static [u8]>> {
    typed(status, allow, body, TEXT_PLAIN)
}

/// An answer of type `content_type` with `http_hello`'s headers, in its order.
fn typed(
    status: StatusCode,
    allow: bool,
    body: &'static str,
    content_type: HeaderValue,
) -> Response<Full<&'static [u8]>> {
    let mut response = Response::new(Full::new(body.as_bytes()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if allow {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    response
}

async fn hello(request: Request<Incoming>) -> Result<Response<Full<&'static [u8]>>, Infallible> {
    Ok(if request.uri().path() != "/" {
        text(StatusCode::NOT_FOUND, false, "not found\n")
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        text(StatusCode::METHOD_NOT_ALLOWED, true, "method not allowed\n")
    } else {
        // hyper leaves the body out of an answer to HEAD.
        typed(StatusCode::OK, false, "hello world\n", TEXT_HTML)
    })
}

async fn serve(args: Args) -> Result<(), String> {
    let addr = common::resolve(&args.host, args.port)?;
    let listen = || -> io::Result<tokio::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    let listener = listen().map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    common::announce(bound)?;
    let mut builder = http1::Builder::new();
    builder
        .title_case_headers(true)
        .auto_date_header(false)
        .max_header_size(MAX_HEAD);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                debug!("{peer}: connected");
                if let Err(e) = stream.set_nodelay(true) {
                    debug!("{peer}: cannot set TCP_NODELAY: {e}");
                }
                let connection = builder.serve_connection(TokioIo::new(stream), service_fn(hello));
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        debug!("{peer}: {e}");
                    }
                });
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
    let args = Args::parse();
    common::init_logging();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
        .and_then(|runtime| runtime.block_on(serve(args)));
    common::exit_with("hyper_hello", result)
}
