//! The timestamp client: sends each line typed on standard input to the
//! `timestamp_server` and prints the stamped reply, one line at a time.
//!
//! A port of `TSClntProtocol`/`TSClntFactory`, the Twisted client in section
//! 2.7 of seed `004_1074fc63d98d4db4.txt`: the same lock-step (send a line,
//! wait for its reply, then the next), and an empty line or end of input
//! hangs up. Where the seed calls the blocking `raw_input` inside its
//! callbacks, this client reads standard input on the reactor itself, as
//! a second connection ([`Reactor::open_stdio`], Twisted's `StandardIO`):
//! while a line waits for its reply, reading stdin is paused.
//!
//! ```text
//! cargo run --release --example timestamp_server &
//! cargo run --release --example timestamp_client
//! printf 'one\ntwo\n' | cargo run --release --example timestamp_client -- --port 21567
//! cargo run --release --example timestamp_client -- --tls --ca cert.pem --server-name localhost
//! cargo run --release --example timestamp_client -- --reconnect
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
//! With `--reconnect` ([`ReconnectingClient`]) a connection that fails or
//! is lost is made again, after about `--reconnect-delay` times e, e², …
//! seconds: the session goes on across a server restart. Lines typed
//! meanwhile wait, and a line whose reply never came is sent again to the
//! new server.
//!
//! Replies go to stdout (after a `> ` prompt when stdin is a terminal);
//! errors go to stderr, and the exit status is 1 if the connection could not
//! be made or broke (without `--reconnect`).

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use common::input::{InputLines, ReconnectArgs};
use reactor::endpoint::ClientEndpoint;
use reactor::reconnect::ReconnectingClient;
use reactor::{ClientFactory, ConnectionId, Factory, Protocol, Reactor, Reason, Transport};

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
    #[command(flatten)]
    reconnect: ReconnectArgs,
}

/// Whether more lines may come from standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Open,
    /// An empty line or the end of input: hang up once every line before
    /// it has its reply.
    Ended,
}

/// The session, shared by the two connections: the lines typed and not
/// yet answered, and where each connection stands.
struct Session {
    /// Where the server is, for messages.
    addr: String,
    stdio: ConnectionId,
    /// Lines typed, not sent yet.
    pending: VecDeque<Vec<u8>>,
    /// The line sent whose reply has not come: sent again after a reconnect.
    in_flight: Option<Vec<u8>>,
    /// The connection to the server, while there is one.
    server: Option<ConnectionId>,
    input: Input,
    /// We hung up: the end of the server's connection ends the program.
    hung_up: bool,
    /// `> ` is shown before each line (stdin is a terminal); whether it is
    /// showing now.
    prompt: bool,
    prompted: bool,
    /// Why the program should exit with status 1, read once `run` returns.
    failure: Option<String>,
}

type Shared = Rc<RefCell<Session>>;

/// Moves the session on after anything changed: the next line goes out
/// once the last one was answered; with nothing left to send, standard
/// input is read again, or, once it ended, the client hangs up.
fn advance(session: &Shared, reactor: &mut Reactor) {
    let mut s = session.borrow_mut();
    if s.in_flight.is_some() {
        return;
    }
    let Some(server) = s.server else {
        if s.input == Input::Ended && s.pending.is_empty() {
            // Nothing left to send, and nobody to send it to.
            reactor.stop();
        }
        return;
    };
    if let Some(line) = s.pending.pop_front() {
        reactor.write_to(server, &line);
        s.in_flight = Some(line);
    } else if s.input == Input::Ended {
        s.hung_up = true;
        reactor.lose_connection(server);
    } else {
        reactor.resume_reading(s.stdio);
        if s.prompt && !s.prompted {
            s.prompted = true;
            reactor.write_to(s.stdio, b"> ");
        }
    }
}

/// Ends the program with `why` as its error.
fn fail(session: &Shared, reactor: &mut Reactor, why: String) {
    session.borrow_mut().failure.get_or_insert(why);
    reactor.stop();
}

/// Standard input and output: lines in, replies out.
struct Terminal {
    session: Shared,
    lines: InputLines,
}

impl Terminal {
    /// Takes typed lines; an empty one ends the input.
    fn take(&mut self, reactor: &mut Reactor, lines: Vec<Vec<u8>>) {
        let mut s = self.session.borrow_mut();
        for line in lines {
            if s.input == Input::Ended {
                break;
            }
            if line.is_empty() {
                s.input = Input::Ended;
            } else {
                s.pending.push_back(line);
                s.prompted = false;
            }
        }
        if !s.pending.is_empty() || s.input == Input::Ended {
            // Lock-step: the next lines are read once these are answered.
            reactor.pause_reading(s.stdio);
        }
        drop(s);
        advance(&self.session, reactor);
    }
}

impl Protocol for Terminal {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let reactor = transport.reactor().expect("on the reactor");
        match self.lines.push(data) {
            Ok(lines) => self.take(reactor, lines),
            Err(why) => fail(&self.session, reactor, why),
        }
    }

    /// Replies still to come are written after the end of input.
    fn allows_half_close(&self) -> bool {
        true
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        let reactor = transport.reactor().expect("on the reactor");
        let mut last: Vec<Vec<u8>> = self.lines.finish().into_iter().collect();
        last.push(Vec::new()); // the end of input hangs up, as an empty line
        self.take(reactor, last);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        if *reason != Reason::ReactorStopped {
            let reactor = transport.reactor().expect("on the reactor");
            fail(
                &self.session,
                reactor,
                format!("standard I/O failed: {reason}"),
            );
        }
    }
}

/// The connection to the server.
struct TsClnt {
    session: Shared,
}

impl Protocol for TsClnt {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        let mut s = self.session.borrow_mut();
        s.server = Some(transport.id());
        // A line whose reply never came goes to the new server.
        if let Some(line) = &s.in_flight {
            transport.write(line);
        }
        drop(s);
        advance(&self.session, transport.reactor().expect("on the reactor"));
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        // Lock-step, as in the seed: one read is taken to be one whole reply.
        let reply = data.strip_suffix(b"\n").unwrap_or(data);
        let reply = reply.strip_suffix(b"\r").unwrap_or(reply);
        let reactor = transport.reactor().expect("on the reactor");
        let stdio = {
            let mut s = self.session.borrow_mut();
            s.in_flight = None;
            s.stdio
        };
        reactor.write_vectored_to(stdio, &[reply, b"\n"]);
        advance(&self.session, reactor);
    }
}

struct TsClntFactory {
    session: Shared,
    reconnect: bool,
}

impl Factory for TsClntFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(TsClnt {
            session: Rc::clone(&self.session),
        })
    }
}

impl ClientFactory for TsClntFactory {
    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        // With --reconnect, the reconnecting client logs it and retries.
        if !self.reconnect {
            let addr = self.session.borrow().addr.clone();
            fail(
                &self.session,
                reactor,
                format!("cannot connect to {addr}: {reason}"),
            );
        }
    }

    fn client_connection_lost(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let (addr, hung_up) = {
            let mut s = self.session.borrow_mut();
            s.server = None;
            (s.addr.clone(), s.hung_up)
        };
        if hung_up {
            reactor.stop();
        } else if !self.reconnect {
            if reason.is_clean() {
                reactor.stop();
            } else {
                fail(
                    &self.session,
                    reactor,
                    format!("connection to {addr} lost: {reason}"),
                );
            }
        }
    }
}

/// Where to connect, and how.
struct Server {
    /// `--connect`: where and how, as an endpoint (`addr` is unused then).
    endpoint: Option<ClientEndpoint>,
    addr: SocketAddr,
    tls: Option<Arc<reactor::tls::rustls::ClientConfig>>,
    /// With TLS: the name the certificate must carry.
    name: String,
    timeout: Duration,
}

impl Server {
    /// One attempt. A failed TLS handshake reaches
    /// `client_connection_failed`, as a refused connect does.
    fn connect(&self, reactor: &mut Reactor, factory: impl ClientFactory) -> ConnectionId {
        if let Some(endpoint) = &self.endpoint {
            return reactor.connect_to(endpoint, factory, self.timeout);
        }
        match &self.tls {
            Some(config) => {
                reactor.connect_tls(self.addr, &self.name, config.clone(), factory, self.timeout)
            }
            None => reactor.connect_tcp(self.addr, factory, self.timeout),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("timestamp_client", run(&args))
}

fn run(args: &Args) -> Result<(), String> {
    let endpoint = args.connect.connect.clone();
    if endpoint.is_some() && args.tls {
        return Err(
            "--connect replaces --tls and --ca: write tls:host=HOST:port=PORT:ca=PEM".into(),
        );
    }
    let addr = match &endpoint {
        // Not used: the endpoint says where.
        Some(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        None => common::resolve(&args.host, args.port)?,
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
    // Ctrl-C stops gracefully, which puts standard input's flags back.
    reactor
        .stop_on_signals()
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let session = Rc::new(RefCell::new(Session {
        addr: match &endpoint {
            Some(endpoint) => endpoint.to_string(),
            None => addr.to_string(),
        },
        stdio: ConnectionId::from_parts(u32::MAX, 0),
        pending: VecDeque::new(),
        in_flight: None,
        server: None,
        input: Input::Open,
        hung_up: false,
        prompt: std::io::stdin().is_terminal(),
        prompted: false,
        failure: None,
    }));
    let terminal = Terminal {
        session: Rc::clone(&session),
        lines: InputLines::default(),
    };
    let stdio = reactor
        .open_stdio(terminal)
        .map_err(|e| format!("cannot use standard input and output: {e}"))?;
    session.borrow_mut().stdio = stdio;
    // Nothing is read before the connection is made.
    reactor.pause_reading(stdio);
    let factory = TsClntFactory {
        session: Rc::clone(&session),
        reconnect: args.reconnect.reconnect,
    };
    let server = Server {
        endpoint,
        addr,
        tls,
        name: args
            .server_name
            .clone()
            .unwrap_or_else(|| args.host.clone()),
        timeout: args.timeout,
    };
    if args.reconnect.reconnect {
        let client = ReconnectingClient::new(factory).with_backoff(args.reconnect.backoff());
        client.connect_with(&mut reactor, move |reactor, attempt| {
            server.connect(reactor, attempt)
        });
    } else {
        server.connect(&mut reactor, factory);
    }
    reactor.run().map_err(|e| format!("reactor failed: {e}"))?;
    let failure = session.borrow_mut().failure.take();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
