//! A hand-written mio echo server: the baseline the reactor is measured
//! against ("as fast on one core as a hand-written mio loop").
//!
//! One thread, one `Poll`, a `Slab` of streams, one read buffer, edge-triggered
//! readiness, a short read taken as "drained", replies written directly with
//! only a remainder buffered (and WRITABLE asked for only then). No timers,
//! no callbacks, no fairness cap (a connection is read for as long as reads
//! fill the buffer), no limits: the least a correct mio echo server does.
//! Used by `bench/echo.sh` (`VERSUS=mio`).
//!
//! ```text
//! cargo run --release --example mio_echo_server -- --port 7001
//! ```

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use clap::Parser;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

#[derive(Parser, Debug)]
#[command(version, about = "Echo server as a bare mio loop (benchmark baseline)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 7001)]
    port: u16,
}

const LISTENER: Token = Token(usize::MAX);
const READ_BUF: usize = 64 * 1024;

struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet written back.
    pending: Vec<u8>,
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    let addr: SocketAddr = match (args.host.as_str(), args.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        Some(a) => a,
        None => {
            eprintln!("mio_echo_server: cannot resolve {}", args.host);
            return ExitCode::FAILURE;
        }
    };
    match serve(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mio_echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(addr: SocketAddr) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; READ_BUF];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&poll, &listener, &mut conns);
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let keep = serve_event(
                &poll,
                conn,
                event.token(),
                event.is_readable(),
                event.is_writable(),
                event.is_read_closed() || event.is_error(),
                &mut buf,
            );
            if !keep {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

fn accept_all(poll: &Poll, listener: &TcpListener, conns: &mut Slab<Conn>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                    .is_ok()
                {
                    entry.insert(Conn {
                        stream,
                        pending: Vec::new(),
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            // The next pending connection may be fine.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // Out of descriptors, say: this baseline does not recover
                // (the reactor keeps a spare descriptor for that); the
                // listener waits for the next connection's edge.
                log::warn!("accept: {e}");
                return;
            }
        }
    }
}

/// Handles one event; false when the connection is done.
fn serve_event(
    poll: &Poll,
    conn: &mut Conn,
    token: Token,
    readable: bool,
    writable: bool,
    must_drain: bool,
    buf: &mut [u8],
) -> bool {
    if writable && !conn.pending.is_empty() {
        match flush(conn) {
            Ok(true) => {
                if poll
                    .registry()
                    .reregister(&mut conn.stream, token, Interest::READABLE)
                    .is_err()
                {
                    return false;
                }
                // Reading stopped while the remainder waited; the
                // reregistration re-arms the edge, so input that waited
                // meanwhile is reported by the next poll.
            }
            Ok(false) => return true,
            Err(_) => return false,
        }
    }
    if !readable || !conn.pending.is_empty() {
        // While a remainder waits, reading stops: the peer is not reading
        // our replies, so its requests wait in the kernel, not here.
        return true;
    }
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                match write_some(&mut conn.stream, &buf[..n]) {
                    Ok(w) if w == n => {}
                    Ok(w) => conn.pending.extend_from_slice(&buf[w..n]),
                    Err(_) => return false,
                }
                if !conn.pending.is_empty() {
                    return poll
                        .registry()
                        .reregister(
                            &mut conn.stream,
                            token,
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_ok();
                }
                // A short read drained the socket, unless a FIN or an error
                // came with the event: then read on to see it.
                if n < buf.len() && !must_drain {
                    return true;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Writes what the socket takes now: 0 when it takes nothing.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    loop {
        match stream.write(data) {
            Ok(0) if !data.is_empty() => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes out the remainder; true once it is all gone.
fn flush(conn: &mut Conn) -> io::Result<bool> {
    while !conn.pending.is_empty() {
        match write_some(&mut conn.stream, &conn.pending)? {
            0 => return Ok(false),
            n => {
                conn.pending.drain(..n);
            }
        }
    }
    Ok(true)
}
