//! The UDP server of seed `003_53eaec948bc5f072.txt`'s `socketserver`
//! section: a handler given each datagram (`self.request[0]`), the server's
//! socket (`self.request[1]`) and the client's address, answering with
//! `sendto`, served by a `ThreadingUDPServer` (a thread per datagram; the
//! default) or a `UDPServer` (one at a time: `--server udp`), on the seed's
//! port 8081. Ported onto [`reactor::threaded`]'s `ThreadingUdpServer`.
//!
//! The seed's handler answers a fixed placeholder, `xxxx` (and, as its
//! method is misspelt `handler`, Python never calls it); this one answers
//! what the seed's plain UDP server does, the datagram upper-cased (ASCII
//! letters only, as `bytes.upper()`), the same reply `udp_upper_server` gives
//! on the reactor. Empty datagrams get an empty answer.
//!
//! ```text
//! cargo run --release --example socketserver_udp_server
//! cargo run --release --example socketserver_udp_server -- --port 0
//! echo -n hello | nc -u -w1 127.0.0.1 8081
//! ```
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr
//! (`RUST_LOG=debug` shows each datagram, as the seed's `print`s did).

mod common;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use reactor::threaded::{DatagramHandler, ThreadingUdpServer, UdpServer};

/// Which `socketserver` class serves the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Server {
    /// `ThreadingUDPServer`: a thread per datagram, as in the seed.
    Threading,
    /// `UDPServer`: one datagram at a time.
    Udp,
}

#[derive(Parser, Debug)]
#[command(
    version,
    about = "socketserver-style UDP server: answers each datagram upper-cased"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// UDP port to listen on (0 picks a free one); 8081 is the seed's.
    #[arg(long, default_value_t = 8081)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::UdpListenArgs,
    /// `threading` (a thread per datagram) or `udp` (one at a time).
    #[arg(long, value_enum, default_value_t = Server::Threading)]
    server: Server,
}

/// The seed's `MyTcp` handler, under its UDP server.
struct Upper;

impl DatagramHandler for Upper {
    fn handle(&mut self, data: &[u8], client: SocketAddr, socket: &UdpSocket) -> io::Result<()> {
        common::logs::datagram(client, data.len());
        socket.send_to(&data.to_ascii_uppercase(), client)?;
        Ok(())
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let addr = args.listen.addr(&args.host, args.port)?;
    let cannot = |e: io::Error| common::hints::cannot_listen(addr, &e);
    match args.server {
        Server::Threading => {
            let server = ThreadingUdpServer::bind(addr, || Upper).map_err(cannot)?;
            common::announce(server.local_addr())?;
            server.serve_forever();
        }
        Server::Udp => {
            let server = UdpServer::bind(addr, || Upper).map_err(cannot)?;
            common::announce(server.local_addr())?;
            server.serve_forever();
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("socketserver_udp_server", serve(&args))
}
