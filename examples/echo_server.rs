//! An echo server (RFC 862): every byte received goes straight back, under
//! either model: `--model reactor` (the default: one thread, the reactor) or
//! `--model threads` (a thread per connection, blocking reads and writes,
//! [`reactor::threaded`]). Both serve the very same `Echo` protocol. It is
//! the server side of the echo benchmark against `tokio_echo_server` (drive
//! any of them with `echo_load`) and of the `compare` example, so the
//! protocol is the bare minimum and logs nothing per connection.
//!
//! The same `Protocol`/`Factory` shape as `TSServProtocol` in section 2.7 of
//! seed `004_1074fc63d98d4db4.txt`, minus the timestamp.
//!
//! ```text
//! cargo run --release --example echo_server
//! cargo run --release --example echo_server -- --model threads
//! cargo run --release --example echo_load -- --port 7000
//! cargo run --release --example echo_server -- --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! With `--tls-cert` and `--tls-key` it serves TLS only, on the same port,
//! under either model and with `--graceful`.
//!
//! With `--graceful`, SIGINT or SIGTERM stops it the way the seeds' servers
//! stop on Ctrl-C, but without losing a byte: it stops accepting, and every
//! connection goes on echoing until its peer has half-closed (sent its FIN)
//! or gone quiet for `--quiet` seconds, then closes cleanly once its echo is
//! flushed; the process exits 0 when the last connection is done (or after
//! `--grace` seconds, when what is left is reset, so a peer can tell). A
//! second signal exits at once. It is the reactor's feature: with
//! `--model threads` it is refused.
//!
//! With `--reactors N` (reactor model), N reactors on N threads serve the
//! port, each with its own listener on it (SO_REUSEPORT: the kernel spreads
//! connections among them; see [`reactor::ReactorPool`]); `--graceful`
//! stops them all.
//!
//! With `--graceful` (and one reactor), SIGHUP restarts the server without
//! refusing or dropping a connection ([`reactor::restart`]): it starts a
//! new copy of itself with the same flags, handing it the listening socket;
//! once the
//! copy prints its `listening on` line and says it is ready, this process
//! stops accepting and finishes its connections as above, while the copy
//! serves every new one. Restart again by signalling the new process (its
//! pid is in the log line `pid N is ready`).
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use reactor::tls::{ServerConfig, TlsFactory, TlsRole};
use reactor::{threaded, ListenOptions, OnStop, Protocol, ReactorPool, Reason, Transport};

/// Sends back every byte, and logs each connection's start and end as every
/// example server does. Zero-sized, so idle connections cost the server no
/// protocol memory (`compare` measures memory per connection).
struct Echo;

impl Protocol for Echo {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        common::logs::connected(transport.peer_addr());
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        transport.write(data);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        common::logs::closed(transport.peer_addr(), reason);
    }
}

/// Echo that, when a graceful stop begins, finishes instead of closing: it
/// echoes on until the peer half-closes (the default handling of a FIN
/// flushes the echo, then closes) or is quiet for `quiet` (the default
/// `timeout_connection` closes cleanly once the echo is flushed).
struct DrainingEcho {
    quiet: Duration,
}

impl Protocol for DrainingEcho {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        common::logs::connected(transport.peer_addr());
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        common::logs::closed(transport.peer_addr(), reason);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        transport.write(data);
    }

    fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
        transport.set_idle_timeout(Some(self.quiet));
        OnStop::KeepOpen
    }
}

/// How connections are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Model {
    /// One thread, the reactor: non-blocking sockets, callbacks.
    Reactor,
    /// A thread per connection: blocking reads and writes.
    Threads,
}

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "Echo server: sends back every byte it receives, on the reactor or a thread per connection"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 7000 is echo_load's default.
    #[arg(long, default_value_t = 7000)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// Serving model: `reactor` (one thread) or `threads` (one per connection).
    #[arg(long, value_enum, default_value_t = Model::Reactor)]
    model: Model,
    /// Stop gracefully on SIGINT/SIGTERM: flush every connection, then exit 0;
    /// restart without dropping a connection on SIGHUP (reactor model only).
    #[arg(long)]
    graceful: bool,
    /// With --graceful: seconds to wait for connections to finish.
    #[arg(long, value_parser = common::parse_duration, default_value = "5")]
    grace: Duration,
    /// With --graceful: once stopping, a connection whose peer has sent
    /// nothing (and read nothing) for this many seconds is closed.
    #[arg(long, value_parser = common::parse_duration, default_value = "0.5")]
    quiet: Duration,
    /// Reactors serving the port, each on a thread of its own with its own
    /// listener (SO_REUSEPORT); reactor model only.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    reactors: u16,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
    #[command(flatten)]
    proxy: common::proxy::ProxyArgs,
}

/// `--reactors N` for N > 1: a [`ReactorPool`] serves the port; with
/// `--graceful`, SIGINT/SIGTERM stop every reactor as they stop one.
fn serve_pool(args: &Args, tls: Option<Arc<ServerConfig>>) -> Result<(), String> {
    let addr = args.listen.tcp_addr(&args.host, args.port, "--reactors")?;
    let pool = ReactorPool::new(args.reactors.into())
        .map_err(|e| format!("cannot start the reactors: {e}"))?;
    let (graceful, quiet) = (args.graceful, args.quiet);
    if graceful {
        pool.stop_on_signals()
            .and_then(|()| pool.set_shutdown_grace(args.grace))
            .map_err(|e| format!("cannot set up the reactors: {e}"))?;
    }
    let bound = pool
        .listen_with(
            addr,
            args.proxy.apply(ListenOptions::default()),
            move |reactor, addr, options, _| {
                let tls = tls.clone();
                if graceful {
                    let factory = move || DrainingEcho { quiet };
                    return common::tls::listen(reactor, addr, tls, factory, options);
                }
                common::tls::listen(reactor, addr, tls, || Echo, options)
            },
        )
        .map_err(|e| common::hints::cannot_listen(addr, &e))?;
    common::announce(bound)?;
    pool.wait().map_err(|e| format!("reactor failed: {e}"))
}

fn serve(args: &Args) -> Result<(), String> {
    let tls = args.tls.server_config(&[])?;
    match args.model {
        Model::Reactor if args.reactors > 1 => serve_pool(args, tls),
        Model::Reactor => {
            common::serve_on(&args.host, args.port, &args.listen, |reactor, endpoint| {
                let options = args.proxy.apply(ListenOptions::default());
                if args.graceful {
                    reactor.stop_on_signals()?;
                    reactor.set_shutdown_grace(args.grace);
                    let quiet = args.quiet;
                    let factory = move || DrainingEcho { quiet };
                    let listening =
                        common::tls::listen_on(reactor, endpoint, tls, factory, options)?;
                    reactor.restart_on_sighup(vec![listening.clone()])?;
                    return Ok(listening);
                }
                common::tls::listen_on(reactor, endpoint, tls, || Echo, options)
            })
        }
        Model::Threads if args.graceful => {
            Err("--graceful is the reactor's: it cannot be used with --model threads".into())
        }
        Model::Threads if args.proxy.mode().is_some() => {
            Err("--proxy-protocol is the reactor's: it cannot be used with --model threads".into())
        }
        Model::Threads if args.reactors > 1 => {
            Err("--reactors is the reactor's: it cannot be used with --model threads".into())
        }
        Model::Threads => {
            // No connection limit, as the reactor model has none: `compare`
            // measures both models up to 5,000 connections.
            let options = threaded::ThreadedOptions {
                max_connections: None,
                ..threaded::ThreadedOptions::default()
            };
            let (host, port, flags) = (&args.host, args.port, &args.listen);
            let server = match tls {
                // The layer runs inside each connection's thread, around Echo.
                Some(config) => {
                    let factory = TlsFactory::new(TlsRole::server(config), || Echo);
                    common::endpoint::listen_threaded(flags, host, port, factory, options)
                }
                None => common::endpoint::listen_threaded(flags, host, port, || Echo, options),
            }?;
            common::announce(server.address())?;
            // Serves until the process is killed.
            server.wait();
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("echo_server", serve(&args))
}
