//! The upper-case server of seeds `001_444414cdf44704f4.txt` and
//! `003_53eaec948bc5f072.txt`, ported handler for handler onto
//! [`reactor::threaded`]'s `socketserver` equivalents: `MyTCPHandler` with
//! its `setup`, `handle` and `finish`, served by a `ThreadingTcpServer`
//! (seed 003, a thread per client; the default) or a `TcpServer` (seed 001,
//! one client at a time: `--server tcp`), on seed 001's port 9999.
//!
//! As in the seeds, `handle` loops: it reads whatever one `recv(1024)`
//! returns and sends it back upper-cased (ASCII letters only, as Python's
//! `bytes.upper()`), until the client closes. Unlike the reactor's
//! `upper_server`, there are no lines and no `end` command: a chunk is
//! answered as TCP delivered it, which is the seeds' behaviour.
//!
//! ```text
//! cargo run --release --example socketserver_upper_server
//! cargo run --release --example socketserver_upper_server -- --server tcp --port 0
//! nc 127.0.0.1 9999
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr (the
//! seed's `print`s become info lines).

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use log::debug;
use reactor::threaded::{RequestHandler, TcpServer, ThreadingTcpServer};

/// Which `socketserver` class serves the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Server {
    /// `ThreadingTCPServer`: a thread per client (seed 003).
    Threading,
    /// `TCPServer`: one client at a time; the next waits (seed 001).
    Tcp,
}

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "socketserver-style upper-case server: sends back each chunk upper-cased"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 9999 is seed 001's.
    #[arg(long, default_value_t = 9999)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// `threading` (a thread per client) or `tcp` (one client at a time).
    #[arg(long, value_enum, default_value_t = Server::Threading)]
    server: Server,
}

/// Sends back each chunk read from `request` upper-cased, until end of file.
fn upper_until_end(request: &mut TcpStream) -> io::Result<()> {
    let mut data = [0; 1024];
    loop {
        let n = request.read(&mut data)?;
        if n == 0 {
            return Ok(());
        }
        let chunk = &mut data[..n];
        chunk.make_ascii_uppercase();
        request.write_all(chunk)?;
    }
}

/// Seed 001's `MyTCPHandler`.
struct MyTcpHandler;

impl RequestHandler for MyTcpHandler {
    fn setup(&mut self, _request: &mut TcpStream, client: SocketAddr) -> io::Result<()> {
        common::logs::connected(client);
        debug!("{client}: setup");
        Ok(())
    }

    fn handle(&mut self, request: &mut TcpStream, client: SocketAddr) -> io::Result<()> {
        let result = upper_until_end(request);
        common::logs::handled(client, "the client hung up", result)
    }

    fn finish(&mut self, _request: &mut TcpStream, client: SocketAddr) -> io::Result<()> {
        debug!("{client}: finish");
        Ok(())
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let addr = args
        .listen
        .tcp_addr(&args.host, args.port, "socketserver_upper_server")?;
    let cannot = |e: io::Error| common::hints::cannot_listen(addr, &e);
    match args.server {
        Server::Threading => {
            let server = ThreadingTcpServer::bind(addr, || MyTcpHandler).map_err(cannot)?;
            common::announce(server.local_addr())?;
            server.serve_forever();
        }
        Server::Tcp => {
            let server = TcpServer::bind(addr, || MyTcpHandler).map_err(cannot)?;
            common::announce(server.local_addr())?;
            server.serve_forever();
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("socketserver_upper_server", serve(&args))
}
