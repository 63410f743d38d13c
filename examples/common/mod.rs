//! What every example binary shares: address resolution, the `listening on`
//! line, logging, and the one-line error exit; `--listen` and `--connect`
//! ([`endpoint`]); the servers' log lines
//! ([`logs`]: `...connected from: ADDR`, and what an id such as `#1.2`
//! means); the hints that end address errors ([`hints`]); for the clients
//! reading standard input on the reactor, [`input`]; `--proxy-protocol` for
//! the servers behind a load balancer ([`proxy`]); for the load
//! generators, [`load`]; for the servers that can speak TLS, [`tls`]; for
//! the line servers the seeds' clients talk to, [`unfinished`].
#![allow(dead_code)]

pub mod endpoint;
pub mod hints;
pub mod input;
pub mod load;
pub mod logs;
pub mod proxy;
pub mod tls;
pub mod unfinished;

use std::fmt::Display;
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use reactor::endpoint::{DatagramServerEndpoint, Listening, ServerEndpoint};
use reactor::Reactor;

/// Sends logs to stderr, at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}

/// The first address `host:port` resolves to; a host that looks like an
/// IP address but is not one is said to be so, not sent to the resolver.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Some(why) = hints::not_an_ip(host) {
        return Err(why);
    }
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))
}

/// Prints the one stdout line scripts wait for, flushed so a pipe sees it
/// at once: `listening on 127.0.0.1:8000`, `listening on unix:/run/a.sock`.
pub fn announce(addr: impl Display) -> Result<(), String> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// Exit status for `result`: failures print one line, `NAME: message`, on stderr.
pub fn exit_with(name: &str, result: Result<(), impl Display>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a UDP server: a new reactor, `listen` binding it on the endpoint
/// `--listen` names (or UDP on `host:port`), the `listening on` line with
/// the address `listen` returns, then the loop.
pub fn serve_udp(
    host: &str,
    port: u16,
    flags: &endpoint::UdpListenArgs,
    listen: impl FnOnce(&mut Reactor, &DatagramServerEndpoint) -> io::Result<SocketAddr>,
) -> Result<(), String> {
    let endpoint = flags.endpoint(host, port)?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let bound = listen(&mut reactor, &endpoint)
        .map_err(|e| hints::cannot_listen(endpoint.bind_addr(), &e))?;
    announce(bound)?;
    reactor.run().map_err(|e| format!("reactor failed: {e}"))
}

/// Runs a stream server: a new reactor, `listen` listening on the endpoint
/// `--listen` names (or TCP on `host:port`), the `listening on` line with
/// the address it listens on, readiness told to whoever started the process
/// with its sockets ([`reactor::restart::notify_ready`]), then the loop.
pub fn serve_on(
    host: &str,
    port: u16,
    flags: &endpoint::ListenArgs,
    listen: impl FnOnce(&mut Reactor, &ServerEndpoint) -> io::Result<Listening>,
) -> Result<(), String> {
    let endpoint = flags.endpoint(host, port)?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let listening = listen(&mut reactor, &endpoint).map_err(|e| cannot_listen_on(&endpoint, &e))?;
    announce(listening.local_addr())?;
    if let Err(e) = reactor::restart::notify_ready() {
        log::warn!("cannot tell NOTIFY_SOCKET this server is ready: {e}");
    }
    reactor.run().map_err(|e| format!("reactor failed: {e}"))
}

/// The message for a listener that could not listen on `endpoint`: the
/// error, then a hint when one helps (for a TCP address, as `--port` has).
fn cannot_listen_on(endpoint: &ServerEndpoint, e: &io::Error) -> String {
    match endpoint {
        ServerEndpoint::Tcp {
            port,
            interface: Some(ip),
            ..
        } => hints::cannot_listen(SocketAddr::new(*ip, *port), e),
        _ => format!("cannot listen on {endpoint}: {e}"),
    }
}

/// Parses a flag given in seconds, fractions allowed (`2`, `0.25`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{e}"))
}

/// Standard input, read a line at a time on request, as the lock-step
/// clients do: `> ` is shown first when stdin is a terminal.
pub struct LineReader {
    stdin: io::StdinLock<'static>,
    prompt: bool,
}

impl LineReader {
    /// Locks standard input for this reader.
    pub fn new() -> Self {
        let stdin = io::stdin();
        let prompt = io::IsTerminal::is_terminal(&stdin);
        LineReader {
            stdin: stdin.lock(),
            prompt,
        }
    }

    /// The next line without its line ending; `None` at end of input, on an
    /// empty line (both mean "hang up" to the seeds' clients), or on a read
    /// error, which is logged.
    pub fn next_line(&mut self) -> Option<Vec<u8>> {
        if self.prompt {
            let mut out = io::stdout().lock();
            let _ = out.write_all(b"> ").and_then(|()| out.flush());
        }
        let mut line = Vec::new();
        match io::BufRead::read_until(&mut self.stdin, b'\n', &mut line) {
            Ok(_) => {
                let trimmed = line.strip_suffix(b"\n").unwrap_or(&line);
                let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
                (!trimmed.is_empty()).then(|| trimmed.to_vec())
            }
            Err(e) => {
                log::error!("cannot read stdin: {e}");
                None
            }
        }
    }
}
