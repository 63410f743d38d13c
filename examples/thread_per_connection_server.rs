//! Seed `002_3c91646919f6c3d0.txt`'s TCP server (section 15.2.2): the
//! hand-made model, an accept loop that starts a `threading.Thread` running
//! `do_tcp` for every client. Here the loop and the threads are
//! [`reactor::threaded::ThreadingTcpServer`]'s and `do_tcp` is the handler's
//! `handle`; the seed's port is 10000.
//!
//! For every chunk one `recv(1024)` returns, the server answers
//! `服务端接收到数据：` ("the server received the data: ") followed by the
//! chunk, as the seed does. A chunk that is exactly `end` (a trailing `\n`
//! or `\r\n` is allowed, for `nc`) or the client's close ends the
//! connection, with no reply. The seed's `sleep(1)` before each answer is
//! left out, and its decoding as UTF-8 too: the chunk goes back as it came,
//! so bytes that are not UTF-8 do not kill the thread.
//!
//! ```text
//! cargo run --release --example thread_per_connection_server
//! cargo run --release --example thread_per_connection_server -- --port 0
//! nc 127.0.0.1 10000
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

use clap::Parser;
use reactor::threaded::{RequestHandler, ThreadingTcpServer};

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "Thread-per-connection server (seed 002): answers each chunk; `end` hangs up"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 10000 is the seed's.
    #[arg(long, default_value_t = 10000)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
}

/// The seed's answer prefix: "the server received the data: ".
const PREFIX: &str = "服务端接收到数据：";

/// The seed's `do_tcp(sock, addr)`.
struct DoTcp;

impl RequestHandler for DoTcp {
    fn handle(&mut self, sock: &mut TcpStream, addr: SocketAddr) -> io::Result<()> {
        common::logs::connected(addr);
        let result = answer_until_end(sock);
        common::logs::handled(addr, "the client hung up or sent end", result)
    }
}

/// Answers each chunk read from `sock` until end of file or `end`.
fn answer_until_end(sock: &mut TcpStream) -> io::Result<()> {
    let mut data = [0; 1024];
    loop {
        let n = sock.read(&mut data)?;
        let chunk = &data[..n];
        if n == 0 || is_end(chunk) {
            return Ok(());
        }
        sock.write_all(&[PREFIX.as_bytes(), chunk].concat())?;
    }
}

/// Whether `chunk` is the `end` command, with or without a line ending.
fn is_end(chunk: &[u8]) -> bool {
    let chunk = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    chunk.strip_suffix(b"\r").unwrap_or(chunk) == b"end"
}

fn serve(args: &Args) -> Result<(), String> {
    let addr = args
        .listen
        .tcp_addr(&args.host, args.port, "thread_per_connection_server")?;
    let server = ThreadingTcpServer::bind(addr, || DoTcp)
        .map_err(|e| common::hints::cannot_listen(addr, &e))?;
    common::announce(server.local_addr())?;
    server.serve_forever();
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("thread_per_connection_server", serve(&args))
}
