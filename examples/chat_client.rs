//! A client for `chat_server`: each line typed on standard input goes to
//! the room, and each line the server sends is printed. Both run on the
//! reactor: the server's connection, and standard input and output as a
//! connection of their own ([`Reactor::open_stdio`], Twisted's
//! `StandardIO`), each registered as the other's producer, so a flood that
//! stdout cannot take pauses the server's connection, and typing faster
//! than the server takes pauses standard input.
//!
//! ```text
//! cargo run --release --example chat_server &
//! cargo run --release --example chat_client -- --name alice
//! cargo run --release --example chat_client -- --name bob --reconnect
//! ```
//!
//! The server asks for a name first: `--name NAME` answers for the user
//! (the question is not shown); without it, the first line typed is the
//! name. With `--reconnect` ([`ReconnectingClient`]) a connection that
//! fails or is lost is made again, after about `--reconnect-delay` times
//! e, e², … seconds, and the client joins again under the same name; lines
//! typed meanwhile are sent once it has. End of input leaves the room.
//!
//! Errors go to stderr in one line and the exit status is 1: a connection
//! that cannot be made or breaks (without `--reconnect`), or a name the
//! server refuses the first time.

mod common;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use common::input::{InputLines, ReconnectArgs};
use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::reconnect::ReconnectingClient;
use reactor::{ClientFactory, ConnectionId, Factory, Protocol, Reactor, Reason, Transport};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Chat client: stdin lines go to chat_server's room, the room's lines to stdout"
)]
struct Args {
    /// Host name or IP address of the chat server.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port of the chat server.
    #[arg(long, default_value_t = 8123)]
    port: u16,
    #[command(flatten)]
    connect: common::endpoint::ConnectArgs,
    /// Seconds to wait for the connection to be made.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = common::parse_duration)]
    timeout: Duration,
    /// The name to join under (and to join again under, with --reconnect);
    /// without it, the first line typed is the name.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    reconnect: ReconnectArgs,
}

/// What the server asks first.
const NAME_QUESTION: &[u8] = b"What's your name?";

/// The longest line taken from the server (its own limit is 64 KiB, plus
/// a name of 32 bytes and `: `).
const MAX_SERVER_LINE: usize = 80 * 1024;

/// Where the connection to the room stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down,
    /// Connected; the user has not typed a name yet.
    Naming(ConnectionId),
    /// The name was sent; the server's welcome (or refusal) is awaited.
    Joining(ConnectionId),
    Joined(ConnectionId),
}

/// Whether more lines may come from standard input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Open,
    Ended,
}

/// The session the two connections share.
struct Chat {
    /// Where the server is, for messages.
    addr: String,
    stdio: ConnectionId,
    name: Option<Vec<u8>>,
    /// The server welcomed us once: a later refusal of the name (the old
    /// session not yet gone from a server that stayed up) is retried.
    welcomed: bool,
    link: Link,
    /// Lines typed before the client joined, sent once it has.
    pending: VecDeque<Vec<u8>>,
    input: Input,
    /// We left: the end of the server's connection ends the program.
    left: bool,
    reconnect: bool,
    /// Why the program should exit with status 1, read once `run` returns.
    failure: Option<String>,
}

type Shared = Rc<RefCell<Chat>>;

impl Chat {
    /// Sends `line` to the room.
    fn send(&self, reactor: &mut Reactor, server: ConnectionId, line: &[u8]) {
        reactor.write_vectored_to(server, &[line, b"\n"]);
    }

    /// Prints `line` from the server.
    fn show(&self, reactor: &mut Reactor, line: &[u8]) {
        reactor.write_vectored_to(self.stdio, &[line, b"\n"]);
    }

    /// Once joined, or with no server: sends what waits, and leaves once
    /// the input ended and nothing waits.
    fn advance(&mut self, reactor: &mut Reactor) {
        match self.link {
            Link::Joined(server) => {
                while let Some(line) = self.pending.pop_front() {
                    self.send(reactor, server, &line);
                }
                if self.input == Input::Ended {
                    self.left = true;
                    reactor.lose_connection(server);
                } else {
                    reactor.resume_reading(self.stdio);
                }
            }
            Link::Down if self.input == Input::Ended && self.pending.is_empty() => {
                reactor.stop();
            }
            // The input ended before a name was typed: nothing to say.
            Link::Naming(server) if self.input == Input::Ended => {
                self.left = true;
                reactor.lose_connection(server);
            }
            // The server waits for the name the user types.
            Link::Naming(_) => reactor.resume_reading(self.stdio),
            // Not in the room yet: what is typed waits in the pipe.
            Link::Down | Link::Joining(_) => reactor.pause_reading(self.stdio),
        }
    }

    /// A line typed: the name if none is known yet, else a line for the room.
    fn typed(&mut self, reactor: &mut Reactor, line: Vec<u8>) {
        if self.name.is_none() {
            if let Link::Naming(server) = self.link {
                self.send(reactor, server, &line);
                self.link = Link::Joining(server);
            }
            self.name = Some(line);
            return;
        }
        match self.link {
            Link::Joined(server) if self.pending.is_empty() => self.send(reactor, server, &line),
            _ => self.pending.push_back(line),
        }
    }

    /// A line from the server.
    fn heard(&mut self, reactor: &mut Reactor, line: &[u8]) {
        let Link::Joining(server) = self.link else {
            self.show(reactor, line);
            return;
        };
        if line == NAME_QUESTION {
            return; // answered already, for the user
        }
        self.show(reactor, line);
        if line.starts_with(b"Welcome, ") {
            self.link = Link::Joined(server);
            self.welcomed = true;
            self.advance(reactor);
        } else if line.ends_with(b"Bye.") && !(self.reconnect && self.welcomed) {
            // The name was refused: that will not change.
            self.failure = Some(String::from_utf8_lossy(line).into_owned());
        }
    }
}

/// The connection to the room, line by line.
struct Room {
    chat: Shared,
}

impl LineHandler for Room {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        let transport = lines.transport();
        let server = transport.id();
        let reactor = transport.reactor().expect("on the reactor");
        let mut chat = self.chat.borrow_mut();
        // Each waits for the other: stdout full pauses the room, the room's
        // buffer full pauses stdin.
        reactor.register_producer(chat.stdio, server);
        reactor.register_producer(server, chat.stdio);
        chat.link = match chat.name.clone() {
            Some(name) => {
                chat.send(reactor, server, &name);
                Link::Joining(server)
            }
            None => Link::Naming(server),
        };
        chat.advance(reactor);
    }

    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let reactor = lines.transport().reactor().expect("on the reactor");
        self.chat.borrow_mut().heard(reactor, line);
    }

    fn line_length_exceeded(&mut self, lines: &mut Lines<'_>, pending: usize) {
        log::warn!("the server sent a line of {pending} bytes or more; hanging up");
        lines.transport().lose_connection();
    }
}

/// Standard input and output: lines typed in, the room's lines out.
struct Terminal {
    chat: Shared,
    lines: InputLines,
}

impl Terminal {
    fn take(&mut self, reactor: &mut Reactor, lines: Vec<Vec<u8>>) {
        let mut chat = self.chat.borrow_mut();
        for line in lines {
            chat.typed(reactor, line);
        }
        chat.advance(reactor);
    }
}

impl Protocol for Terminal {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let reactor = transport.reactor().expect("on the reactor");
        match self.lines.push(data) {
            Ok(lines) => self.take(reactor, lines),
            Err(why) => {
                self.chat.borrow_mut().failure.get_or_insert(why);
                reactor.stop();
            }
        }
    }

    /// The room's lines are still printed after the end of input.
    fn allows_half_close(&self) -> bool {
        true
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        let reactor = transport.reactor().expect("on the reactor");
        let last: Vec<Vec<u8>> = self.lines.finish().into_iter().collect();
        self.chat.borrow_mut().input = Input::Ended;
        self.take(reactor, last);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        if *reason != Reason::ReactorStopped {
            let reactor = transport.reactor().expect("on the reactor");
            let why = format!("standard I/O failed: {reason}");
            self.chat.borrow_mut().failure.get_or_insert(why);
            reactor.stop();
        }
    }
}

struct RoomFactory {
    chat: Shared,
}

impl Factory for RoomFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        let room = Room {
            chat: Rc::clone(&self.chat),
        };
        Box::new(
            LineReceiver::new(room)
                .with_delimiter(b"\n")
                .with_max_length(MAX_SERVER_LINE),
        )
    }
}

impl ClientFactory for RoomFactory {
    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        // With --reconnect, the reconnecting client logs it and retries.
        let mut chat = self.chat.borrow_mut();
        if !chat.reconnect {
            let why = format!("cannot connect to {}: {reason}", chat.addr);
            chat.failure.get_or_insert(why);
            reactor.stop();
        }
    }

    fn client_connection_lost(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let mut chat = self.chat.borrow_mut();
        chat.link = Link::Down;
        if chat.left || chat.failure.is_some() {
            reactor.stop();
        } else if !chat.reconnect {
            if !reason.is_clean() {
                let why = format!("connection to {} lost: {reason}", chat.addr);
                chat.failure = Some(why);
            }
            reactor.stop();
        } else {
            chat.advance(reactor);
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("chat_client", run(&args))
}

fn run(args: &Args) -> Result<(), String> {
    let endpoint = args.connect.resolved(&args.host, args.port)?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    // Ctrl-C stops gracefully, which puts standard input's flags back.
    reactor
        .stop_on_signals()
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let chat = Rc::new(RefCell::new(Chat {
        addr: common::endpoint::target_text(&endpoint),
        stdio: ConnectionId::from_parts(u32::MAX, 0),
        name: args.name.clone().map(String::into_bytes),
        welcomed: false,
        link: Link::Down,
        pending: VecDeque::new(),
        input: Input::Open,
        left: false,
        reconnect: args.reconnect.reconnect,
        failure: None,
    }));
    let terminal = Terminal {
        chat: Rc::clone(&chat),
        lines: InputLines::default(),
    };
    let stdio = reactor
        .open_stdio(terminal)
        .map_err(|e| format!("cannot use standard input and output: {e}"))?;
    chat.borrow_mut().stdio = stdio;
    // Nothing is read before the client is in the room.
    reactor.pause_reading(stdio);
    let factory = RoomFactory {
        chat: Rc::clone(&chat),
    };
    let timeout = args.timeout;
    if args.reconnect.reconnect {
        ReconnectingClient::new(factory)
            .with_backoff(args.reconnect.backoff())
            .connect_with(&mut reactor, move |reactor, attempt| {
                reactor.connect_to(&endpoint, attempt, timeout)
            });
    } else {
        reactor.connect_to(&endpoint, factory, timeout);
    }
    reactor.run().map_err(|e| format!("reactor failed: {e}"))?;
    let failure = chat.borrow_mut().failure.take();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
