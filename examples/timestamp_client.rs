//! The timestamp client: sends each line typed on standard input to the
//! `timestamp_server` and prints the stamped reply, one line at a time.
//!
//! A port of `TSClntProtocol`/`TSClntFactory`, the Twisted client in section
//! 2.7 of seed `004_1074fc63d98d4db4.txt`: the same lock-step (send a line,
//! wait for its reply, then read the next), and an empty line or end of
//! input hangs up. Where the seed calls the blocking `raw_input` inside its
//! callbacks, this client reads standard input on a thread of its own and
//! hands each line to the reactor with `ReactorHandle::call_from_thread`.
//!
//! ```text
//! cargo run --release --example timestamp_server &
//! cargo run --release --example timestamp_client
//! printf 'one\ntwo\n' | cargo run --release --example timestamp_client -- --port 21567
//! cargo run --release --example timestamp_client -- --tls --ca cert.pem --server-name localhost
//! ```
//!
//! `--connect ENDPOINT` names the server as an endpoint instead of
//! `--host`/`--port`: `tcp:host=HOST:port=PORT`, `unix:path=PATH`, or
//! `tls:host=HOST:port=PORT:ca=PEM` (in place of `--tls`).
//!
//! With `--tls` it connects over TLS, trusting the authorities in `--ca` and
//! checking the server's certificate against `--server-name` (by default
//! the `--host` value); a failed handshake is reported as a failed connect.
//!
//! Replies go to stdout (after a `> ` prompt when stdin is a terminal);
//! errors go to stderr, and the exit status is 1 if the connection could not
//! be made or broke.

mod common;

use std::cell::RefCell;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::Parser;
use log::error;
use reactor::{
    ClientFactory, ConnectionId, Factory, Protocol, Reactor, ReactorHandle, Reason, Transport,
};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Timestamp client: sends stdin line by line, prints each reply"
)]
struct Args {
    /// Host name or IP address of the timestamp server.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port of the timestamp server.
    #[arg(long, default_value_t = 21567)]
    port: u16,
    #[command(flatten)]
    connect: common::endpoint::ConnectArgs,
    /// Seconds to wait for the connection to be made.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = common::parse_duration)]
    timeout: Duration,
    /// Connect over TLS (to `timestamp_server --tls-cert ...`); needs --ca.
    #[arg(long, requires = "ca")]
    tls: bool,
    /// With --tls: the certificate authorities to trust (PEM); a self-signed
    /// server certificate is its own authority.
    #[arg(long, value_name = "PEM", requires = "tls")]
    ca: Option<PathBuf>,
    /// With --tls: the name the server's certificate must carry, also sent as
    /// SNI [default: the --host value].
    #[arg(long, value_name = "NAME", requires = "tls")]
    server_name: Option<String>,
}

/// Asks the stdin thread for the next line, to be sent on the given connection.
type LineRequests = Sender<ConnectionId>;

struct TsClnt {
    next_line: LineRequests,
}

impl TsClnt {
    fn send_data(&self, transport: &mut dyn Transport) {
        // The reader is gone only after it has asked to hang up.
        let _ = self.next_line.send(transport.id());
    }
}

impl Protocol for TsClnt {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.send_data(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        // Lock-step, as in the seed: one read is taken to be one whole reply.
        let reply = data.strip_suffix(b"\n").unwrap_or(data);
        let reply = reply.strip_suffix(b"\r").unwrap_or(reply);
        let mut out = io::stdout().lock();
        if let Err(e) = out
            .write_all(reply)
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush())
        {
            error!("cannot write to stdout: {e}");
            transport.lose_connection();
            return;
        }
        self.send_data(transport);
    }
}

struct TsClntFactory {
    /// Where it connects, for messages.
    server: String,
    next_line: LineRequests,
    /// Why the program should exit with status 1, read once `run` returns.
    failure: Rc<RefCell<Option<String>>>,
}

impl Factory for TsClntFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(TsClnt {
            next_line: self.next_line.clone(),
        })
    }
}

impl ClientFactory for TsClntFactory {
    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        *self.failure.borrow_mut() = Some(format!("cannot connect to {}: {reason}", self.server));
        reactor.stop();
    }

    fn client_connection_lost(&mut self, reactor: &mut Reactor, reason: &Reason) {
        if !reason.is_clean() {
            *self.failure.borrow_mut() =
                Some(format!("connection to {} lost: {reason}", self.server));
        }
        reactor.stop();
    }
}

/// Runs on its own thread, so a blocking read of stdin never stalls the
/// reactor. Reads a line only when asked, which keeps the client in lock-step.
fn read_lines(requests: Receiver<ConnectionId>, reactor: ReactorHandle) {
    let mut stdin = common::LineReader::new();
    for conn in requests {
        let line = stdin.next_line();
        let hang_up = line.is_none();
        reactor.call_from_thread(move |r| match line {
            Some(line) => r.write_to(conn, &line),
            None => r.lose_connection(conn),
        });
        if hang_up {
            return;
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("timestamp_client", run(&args))
}

fn run(args: &Args) -> Result<(), String> {
    if args.connect.connect.is_some() && args.tls {
        return Err(
            "--connect replaces --tls and --ca: write tls:host=HOST:port=PORT:ca=PEM".into(),
        );
    }
    let addr = match &args.connect.connect {
        Some(_) => None,
        None => Some(common::resolve(&args.host, args.port)?),
    };
    // Read before connecting, so a bad file is its own error. (clap makes
    // --tls and --ca come together.)
    let tls = match &args.ca {
        Some(ca) => Some(Arc::new(
            reactor::tls::client_config(ca).map_err(|e| format!("cannot use --ca: {e}"))?,
        )),
        None => None,
    };
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let handle = reactor
        .handle()
        .map_err(|e| format!("cannot create the reactor's handle: {e}"))?;
    let (next_line, requests) = channel();
    // Not joined: it may be blocked reading stdin when the connection ends,
    // and returning from main ends it.
    thread::spawn(move || read_lines(requests, handle));
    let failure = Rc::new(RefCell::new(None));
    let factory = TsClntFactory {
        server: match (&args.connect.connect, addr) {
            (Some(endpoint), _) => endpoint.to_string(),
            (None, addr) => addr.map(|a| a.to_string()).unwrap_or_default(),
        },
        next_line,
        failure: Rc::clone(&failure),
    };
    match (addr, tls) {
        (None, _) => {
            let endpoint = args.connect.endpoint(&args.host, args.port);
            reactor.connect_to(&endpoint, factory, args.timeout);
        }
        // A failed handshake reaches `client_connection_failed`, as a
        // refused connect does.
        (Some(addr), Some(config)) => {
            let server_name = args.server_name.as_deref().unwrap_or(&args.host);
            reactor.connect_tls(addr, server_name, config, factory, args.timeout);
        }
        (Some(addr), None) => {
            reactor.connect_tcp(addr, factory, args.timeout);
        }
    }
    reactor.run().map_err(|e| format!("reactor failed: {e}"))?;
    match failure.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
