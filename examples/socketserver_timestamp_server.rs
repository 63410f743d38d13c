//! The timestamp server of section 2.6 of seed `004_1074fc63d98d4db4.txt`:
//! `MyRequestHandler`, a `StreamRequestHandler` whose `handle` reads one line
//! (`self.rfile.readline()`) and writes it back after the local time,
//! `[YYYY-MM-DD HH:MM:SS] line`, after which the server closes the
//! connection. Ported onto [`reactor::threaded`]'s `socketserver`
//! equivalents, on port 21569 (the seed's 21567 is `timestamp_server`'s
//! default; `--port 21567` for the seed's client unchanged): a
//! `ThreadingTcpServer` by default,
//! or the seed's own `TCPServer` (one client at a time) with `--server tcp`.
//!
//! As `readline` does, the line keeps its ending (`hi\r\n` gets
//! `[…] hi\r\n`) and a last line without one is answered as it is. A client
//! that closes without sending anything gets nothing (the seed would write
//! a bare stamp to a closed socket). A line may be at most 64 KiB; a longer
//! one closes the connection unanswered. The reactor's version, answering
//! every line of a connection, is `line_timestamp_server`.
//!
//! ```text
//! cargo run --release --example socketserver_timestamp_server
//! cargo run --release --example socketserver_timestamp_server -- --port 0
//! echo hello | nc -N 127.0.0.1 21569
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use reactor::threaded::{RequestHandler, TcpServer, ThreadingTcpServer};

/// Which `socketserver` class serves the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Server {
    /// `ThreadingTCPServer`: a thread per client.
    Threading,
    /// `TCPServer`: one client at a time, as in the seed.
    Tcp,
}

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "socketserver-style timestamp server: answers one line with `[time] line`"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); the seed's is 21567, which
    /// is timestamp_server's default.
    #[arg(long, default_value_t = 21569)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// `threading` (a thread per client) or `tcp` (one client at a time).
    #[arg(long, value_enum, default_value_t = Server::Threading)]
    server: Server,
}

/// Longest line accepted, its `\n` included.
const MAX_LINE: u64 = 64 * 1024;

/// The seed's `MyRequestHandler`.
struct MyRequestHandler;

impl RequestHandler for MyRequestHandler {
    fn handle(&mut self, request: &mut TcpStream, client: SocketAddr) -> io::Result<()> {
        common::logs::connected(client);
        let result = answer_one_line(request);
        common::logs::handled(client, "answered its line", result)
    }
}

/// Reads one line from `request` and writes it back stamped.
fn answer_one_line(request: &mut TcpStream) -> io::Result<()> {
    // `rfile`: buffered reads, bounded so a line without end cannot
    // grow without limit.
    let mut rfile = BufReader::new((&*request).take(MAX_LINE));
    let mut line = Vec::new();
    rfile.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(());
    }
    if !line.ends_with(b"\n") && line.len() as u64 == MAX_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line longer than {MAX_LINE} bytes"),
        ));
    }
    let stamp = chrono::Local::now()
        .format("[%Y-%m-%d %H:%M:%S] ")
        .to_string();
    // `wfile.write`: stamp and line in one write.
    let reply = [stamp.as_bytes(), &line].concat();
    request.write_all(&reply)
}

fn serve(args: &Args) -> Result<(), String> {
    let addr = args
        .listen
        .tcp_addr(&args.host, args.port, "socketserver_timestamp_server")?;
    let cannot = |e: io::Error| common::hints::cannot_listen(addr, &e);
    match args.server {
        Server::Threading => {
            let server = ThreadingTcpServer::bind(addr, || MyRequestHandler).map_err(cannot)?;
            common::announce(server.local_addr())?;
            server.serve_forever();
        }
        Server::Tcp => {
            let server = TcpServer::bind(addr, || MyRequestHandler).map_err(cannot)?;
            common::announce(server.local_addr())?;
            server.serve_forever();
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("socketserver_timestamp_server", serve(&args))
}
