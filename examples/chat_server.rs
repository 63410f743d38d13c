//! Twisted's classic chat server on the reactor: a client's first line is
//! its name; after that each line it sends reaches every other member as
//! `NAME: LINE`, and members are told when someone joins or leaves.
//!
//! Built the way `TSServProtocol` (section 2.7 of seed
//! `004_1074fc63d98d4db4.txt`) is, plus the shared state Twisted's chat keeps
//! in its factory: here an `Rc<RefCell<Room>>` every protocol holds a clone of.
//!
//! ```text
//! cargo run --release --example chat_server
//! nc 127.0.0.1 8123        # in two or more terminals
//! ```
//!
//! Lines end with `\n` (a trailing `\r` is dropped) and may be at most
//! 64 KiB. Prints `listening on ADDR` on stdout once bound; logs go to stderr.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use log::info;
use reactor::{ConnectionId, Factory, Protocol, Reactor, Reason, Transport};

#[derive(Parser, Debug)]
#[command(about = "Chat server: the first line is your name, every later line goes to the others")]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8123)]
    port: u16,
}

/// Longest line accepted, without its line ending. A client that sends more
/// without a newline is cut off rather than buffered without bound.
const MAX_LINE: usize = 64 * 1024;

/// Everyone who has chosen a name.
#[derive(Default)]
struct Room {
    members: HashMap<ConnectionId, String>,
}

impl Room {
    /// Writes `chunks` to every member but `from`.
    fn broadcast(&self, transport: &mut dyn Transport, chunks: &[&[u8]]) {
        let from = transport.id();
        // Only an in-memory test transport has no reactor, and no one to tell.
        let Some(reactor) = transport.reactor() else {
            return;
        };
        for &id in self.members.keys().filter(|&&id| id != from) {
            reactor.write_vectored_to(id, chunks);
        }
    }
}

struct Chatter {
    room: Rc<RefCell<Room>>,
    /// `None` until the first line names this member.
    name: Option<String>,
    /// The unfinished line, carried over to the next read.
    pending: Vec<u8>,
}

impl Chatter {
    /// Handles one line; returns false once the connection is being closed.
    fn line_received(&mut self, transport: &mut dyn Transport, line: &[u8]) -> bool {
        let Some(name) = &self.name else {
            return self.choose_name(transport, line);
        };
        self.room
            .borrow()
            .broadcast(transport, &[name.as_bytes(), b": ", line, b"\n"]);
        true
    }

    fn choose_name(&mut self, transport: &mut dyn Transport, line: &[u8]) -> bool {
        let name = String::from_utf8_lossy(line).into_owned();
        let mut room = self.room.borrow_mut();
        let refusal = if name.is_empty() {
            Some("A name cannot be empty. Bye.\n".to_owned())
        } else if room.members.values().any(|n| *n == name) {
            Some(format!("The name {name} is taken. Bye.\n"))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            transport.write(refusal.as_bytes());
            transport.lose_connection();
            return false;
        }
        info!("{} is {name}", transport.peer_addr());
        transport.write(format!("Welcome, {name}!\n").as_bytes());
        room.broadcast(transport, &[b"* ", name.as_bytes(), b" joined\n"]);
        room.members.insert(transport.id(), name.clone());
        self.name = Some(name);
        true
    }
}

impl Protocol for Chatter {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        info!("...connected from: {}", transport.peer_addr());
        transport.write(b"What's your name?\n");
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let mut rest = &buf[..];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_LINE {
                return too_long(transport);
            }
            if !self.line_received(transport, line) {
                return;
            }
        }
        if rest.len() > MAX_LINE {
            return too_long(transport);
        }
        let done = buf.len() - rest.len();
        buf.drain(..done);
        self.pending = buf;
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, _reason: &Reason) {
        if let Some(name) = self.name.take() {
            let mut room = self.room.borrow_mut();
            room.members.remove(&transport.id());
            room.broadcast(transport, &[b"* ", name.as_bytes(), b" left\n"]);
        }
    }
}

fn too_long(transport: &mut dyn Transport) {
    transport.write(format!("Line too long (the limit is {MAX_LINE} bytes). Bye.\n").as_bytes());
    transport.lose_connection();
}

/// Hands every connection the one room.
struct ChatFactory {
    room: Rc<RefCell<Room>>,
}

impl Factory for ChatFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        Box::new(Chatter {
            room: Rc::clone(&self.room),
            name: None,
            pending: Vec::new(),
        })
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let addr = common::resolve(&args.host, args.port)?;
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let factory = ChatFactory {
        room: Rc::default(),
    };
    let listener = reactor
        .listen_tcp(addr, factory)
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    common::announce(listener.local_addr())?;
    reactor.run().map_err(|e| format!("reactor failed: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("chat_server", serve(&args))
}
