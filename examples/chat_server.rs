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
//! cargo run --release --example chat_server -- --tls-cert cert.pem --tls-key key.pem
//! openssl s_client -quiet -CAfile cert.pem -connect 127.0.0.1:8123
//! ```
//!
//! With `--tls-cert` and `--tls-key` it serves TLS only, on the same port.
//!
//! Lines end with `\n` (a trailing `\r` is dropped) and may be at most
//! 64 KiB; empty lines are not passed on. A name is 1 to 32 bytes and
//! unique. Prints `listening on ADDR` on stdout once bound; logs go to stderr.
//!
//! # Members that do not read
//!
//! What the room sends a member waits in the server until the member's
//! client reads it: its *backlog*. A member that stops reading must cost
//! bounded memory and slow nobody else down, so:
//!
//! - A backlog never passes `--max-backlog` (1 MiB): a line that would take
//!   it past is not written, and the member is disconnected instead. The
//!   reactor's own cap ([`ListenOptions::write_buffer_limit`]) is set to the
//!   same figure; the room never reaches it.
//! - A member whose backlog is over its high watermark (64 KiB) and whose
//!   client takes not one byte of it for a whole `--slow-timeout` (5 s) is
//!   disconnected. The room looks every `--slow-timeout` once a member is
//!   over, so that happens one to two of them after it fell behind.
//! - Disconnecting a member queues `* you are disconnected: not reading`
//!   after its backlog (room for that line is always kept), gives its
//!   client `--slow-timeout` more to read both, and resets the connection
//!   after that; the others see `* NAME left`; the server logs one warning.
//! - A speaker whose next lines already wait in the server while some member
//!   is over its high watermark is registered as that member's producer
//!   ([`Reactor::register_producer`]): it is paused, its further input left
//!   in the kernel, until each such member drains below its low watermark
//!   or is disconnected. So a flood is paced by the slowest member rather
//!   than buffered, and by a member that does not read for at most twice
//!   `--slow-timeout`.
//! - A member that sends a line at a time is never paused on another
//!   member's account: its line is queued for everyone at once. (Its own
//!   reading pauses while its own backlog is over the high watermark, as
//!   the reactor does by default: a member that does not read cannot talk.)
//! - A speaker relays at most 4,096 lines-times-members per turn of the
//!   reactor, and resumes a turn after it was paced, so the others are read
//!   and relayed in between.
//!
//! Concretely, "nobody else is slowed" means, as tests/chat_server.rs checks
//! it: while one member never reads and another, named with 32 bytes, sends
//! 512 KiB of one-letter lines (9 MiB relayed to each member, more than the
//! kernel holds for a client that does not read), two members trading lines
//! get each line within 200 ms, the flood reaches them whole and in order,
//! the silent member is disconnected within twice `--slow-timeout`, and the
//! server's peak resident memory grows by less than 8 MiB. Measured with
//! release builds: 0.5 MiB, where the server before these rules grew by
//! 7.4 MiB and kept the silent member's backlog for as long as it stayed;
//! and issue 12's member with a 4,000-byte name sending 64 KiB of empty
//! lines grew it by 246 MiB (now the name is refused, and empty lines are
//! not relayed).

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::{Rc, Weak};
use std::time::Duration;

use clap::Parser;
use log::{info, warn};
use reactor::{
    ConnectionId, Factory, ListenOptions, Protocol, Reactor, Reason, TimerId, Transport,
};

#[derive(Parser, Debug)]
#[command(about = "Chat server: the first line is your name, every later line goes to the others")]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8123)]
    port: u16,
    /// Most bytes the server holds for one member that its client has not
    /// read yet; a line that would pass it disconnects the member instead.
    /// At least 131072, twice the longest line.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = backlog_bytes)]
    max_backlog: usize,
    /// Seconds a member's backlog may stay over 64 KiB without its client
    /// reading a byte of it before the member is disconnected; also how long
    /// a disconnected member gets to read the rest. Fractions allowed.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = positive_seconds)]
    slow_timeout: Duration,
    #[command(flatten)]
    tls: common::tls::TlsArgs,
}

/// Longest line accepted, without its line ending. A client that sends more
/// without a newline is cut off rather than buffered without bound.
const MAX_LINE: usize = 64 * 1024;

/// Longest name, in bytes: a name is repeated before every line its owner
/// says, so it multiplies what the room sends.
const MAX_NAME: usize = 32;

/// The last line a member that does not read is sent.
const GOODBYE: &[u8] = b"* you are disconnected: not reading\n";

fn backlog_bytes(s: &str) -> Result<usize, String> {
    let bytes: usize = s.parse().map_err(|e| format!("{e}"))?;
    if bytes < 2 * MAX_LINE {
        return Err(format!("must be at least {}", 2 * MAX_LINE));
    }
    Ok(bytes)
}

/// A timeout flag: seconds, fractions allowed, more than zero.
fn positive_seconds(s: &str) -> Result<Duration, String> {
    let timeout = common::parse_duration(s)?;
    if timeout.is_zero() {
        return Err("must be more than 0".into());
    }
    Ok(timeout)
}

/// The room's rules for members that do not read, from the command line.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_backlog: usize,
    slow_timeout: Duration,
}

/// Whether a member keeps up with what the room sends it.
enum Backlog {
    /// Under its high watermark when last written to or looked at.
    Keeping,
    /// Over its high watermark: `flushed` is how much of what the room wrote
    /// its peer had taken when the room last looked; `check` looks again.
    Behind { flushed: u64, check: TimerId },
}

/// Someone who has chosen a name.
struct Member {
    name: String,
    /// Bytes the room wrote to this member, counted from its joining.
    written: u64,
    backlog: Backlog,
    /// Speakers registered as this member's producers: paused until it drains.
    speakers: Vec<ConnectionId>,
}

impl Member {
    /// How much of what the room wrote the member's peer has taken.
    fn flushed(&self, reactor: &Reactor, id: ConnectionId) -> u64 {
        self.written.saturating_sub(reactor.buffered(id) as u64)
    }
}

/// Everyone who has chosen a name.
struct Room {
    members: BTreeMap<ConnectionId, Member>,
    limits: Limits,
    /// The room itself, for the timers that look at a member again.
    me: Weak<RefCell<Room>>,
}

impl Room {
    fn new(limits: Limits) -> Rc<RefCell<Room>> {
        Rc::new_cyclic(|me| {
            RefCell::new(Room {
                members: BTreeMap::new(),
                limits,
                me: me.clone(),
            })
        })
    }

    fn join(&mut self, reactor: &mut Reactor, id: ConnectionId, name: String) {
        self.say(reactor, id, &[b"* ", name.as_bytes(), b" joined\n"]);
        let member = Member {
            name,
            // What its own welcome left buffered is not the room's.
            written: reactor.buffered(id) as u64,
            backlog: Backlog::Keeping,
            speakers: Vec::new(),
        };
        self.members.insert(id, member);
    }

    /// Writes `chunks` to every member but `from`; returns the members it
    /// left over their high watermark. A member the line would take past
    /// `--max-backlog` is disconnected instead.
    fn say(
        &mut self,
        reactor: &mut Reactor,
        from: ConnectionId,
        chunks: &[&[u8]],
    ) -> Vec<ConnectionId> {
        let len: usize = chunks.iter().map(|c| c.len()).sum();
        let (mut full, mut over) = (Vec::new(), Vec::new());
        for (&id, member) in self.members.iter_mut().filter(|(&id, _)| id != from) {
            // Room for the goodbye is always kept.
            if reactor.buffered(id) + len + GOODBYE.len() > self.limits.max_backlog {
                over.push(id);
                continue;
            }
            reactor.write_vectored_to(id, chunks);
            member.written += len as u64;
            if reactor.is_write_buffer_full(id) {
                full.push(id);
                if matches!(member.backlog, Backlog::Keeping) {
                    let flushed = member.flushed(reactor, id);
                    let check = schedule_check(&self.me, reactor, id, self.limits.slow_timeout);
                    member.backlog = Backlog::Behind { flushed, check };
                }
            }
        }
        let why = format!("its backlog would pass {} bytes", self.limits.max_backlog);
        for id in over {
            self.disconnect(reactor, id, &why);
        }
        full.retain(|id| self.members.contains_key(id));
        full
    }

    /// The timer a member over its high watermark set went off.
    fn check(&mut self, reactor: &mut Reactor, id: ConnectionId) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let Backlog::Behind { flushed: then, .. } = member.backlog else {
            return;
        };
        if !reactor.is_write_buffer_full(id) {
            member.backlog = Backlog::Keeping;
            return;
        }
        let now = member.flushed(reactor, id);
        if now > then {
            let check = schedule_check(&self.me, reactor, id, self.limits.slow_timeout);
            member.backlog = Backlog::Behind {
                flushed: now,
                check,
            };
            return;
        }
        let why = format!(
            "not reading: {} bytes waiting, none taken for {:?}",
            reactor.buffered(id),
            self.limits.slow_timeout
        );
        self.disconnect(reactor, id, &why);
    }

    /// Removes a member that does not read: it gets the goodbye after its
    /// backlog and `--slow-timeout` to read them, then is reset.
    fn disconnect(&mut self, reactor: &mut Reactor, id: ConnectionId, why: &str) {
        let Some(member) = self.remove(reactor, id) else {
            return;
        };
        let peer = reactor.peer_addr(id);
        warn!("{peer:?}: {} disconnected: {why}", member.name);
        reactor.write_to(id, GOODBYE);
        reactor.lose_connection(id);
        reactor.set_deadline(id, Some(self.limits.slow_timeout));
        self.say(reactor, id, &[b"* ", member.name.as_bytes(), b" left\n"]);
    }

    /// A member's connection closed.
    fn leave(&mut self, reactor: &mut Reactor, id: ConnectionId) {
        for member in self.members.values_mut() {
            member.speakers.retain(|&s| s != id);
        }
        if let Some(member) = self.remove(reactor, id) {
            self.say(reactor, id, &[b"* ", member.name.as_bytes(), b" left\n"]);
        }
    }

    /// Takes member `id` out of the room, releasing the speakers it held.
    fn remove(&mut self, reactor: &mut Reactor, id: ConnectionId) -> Option<Member> {
        let member = self.members.remove(&id)?;
        if let Backlog::Behind { check, .. } = member.backlog {
            reactor.cancel(check);
        }
        for &speaker in &member.speakers {
            reactor.unregister_producer(id, speaker);
        }
        Some(member)
    }
}

/// Looks at member `id` again after `delay`.
fn schedule_check(
    room: &Weak<RefCell<Room>>,
    reactor: &mut Reactor,
    id: ConnectionId,
    delay: Duration,
) -> TimerId {
    let room = room.clone();
    reactor.call_later(delay, move |reactor| {
        if let Some(room) = room.upgrade() {
            room.borrow_mut().check(reactor, id);
        }
    })
}

/// What became of a line.
enum Heard {
    /// Relayed to this many members (0 for a name or an empty line); these
    /// of them are over their high watermark now.
    Said {
        writes: usize,
        full: Vec<ConnectionId>,
    },
    /// The connection is being closed.
    Closed,
}

/// Where a member is in handing out the lines it sent.
enum Speaking {
    /// Every complete line received so far was handled.
    Idle,
    /// Lines wait: this turn's share was handed out, the rest go from a
    /// timer next turn, so the others are served in between.
    Yielding,
    /// Lines wait until these members, over their high watermark, drain or
    /// leave: this speaker is registered as their producer.
    Waiting(Vec<ConnectionId>),
}

/// Writes (lines times the members they go to) a speaker makes per turn.
/// A read of one-letter lines is 32,768 lines: relaying it at once would
/// keep everyone else waiting for the whole of it.
const WRITES_PER_TURN: usize = 4096;

/// The tag of the timer that hands out a speaker's next share of lines.
const NEXT_SHARE: u64 = 1;

struct Chatter {
    room: Rc<RefCell<Room>>,
    /// `None` until the first line names this member.
    name: Option<String>,
    /// Input not handled yet: an unfinished line, and while this member is
    /// not `Idle`, the complete lines after the last one handed out.
    pending: Vec<u8>,
    speaking: Speaking,
}

impl Chatter {
    /// Hands out the complete lines in `pending`, in order, up to this
    /// turn's share, keeping the rest. Stops early when a member is over
    /// its high watermark and more lines wait: this member then waits for
    /// it. Reading is paused exactly while lines wait.
    fn handle_pending(&mut self, transport: &mut dyn Transport) {
        let buf = std::mem::take(&mut self.pending);
        let mut rest = &buf[..];
        let mut writes = 0;
        let mut next = Speaking::Idle;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..end];
            rest = &rest[end + 1..];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > MAX_LINE {
                return too_long(transport);
            }
            let full = match self.line_received(transport, line) {
                Heard::Closed => return,
                Heard::Said { writes: w, full } => {
                    writes += w;
                    full
                }
            };
            if !rest.contains(&b'\n') {
                break;
            }
            if !full.is_empty() {
                next = Speaking::Waiting(full);
                break;
            }
            if writes >= WRITES_PER_TURN {
                next = Speaking::Yielding;
                break;
            }
        }
        if matches!(next, Speaking::Idle) && rest.len() > MAX_LINE {
            return too_long(transport);
        }
        let done = buf.len() - rest.len();
        self.pending = buf;
        self.pending.drain(..done);
        self.speak(transport, next);
    }

    /// Moves to `next`, pausing reading while lines wait.
    fn speak(&mut self, transport: &mut dyn Transport, next: Speaking) {
        let was_idle = matches!(self.speaking, Speaking::Idle);
        let now_idle = matches!(next, Speaking::Idle);
        if was_idle && !now_idle {
            transport.pause_reading();
        } else if !was_idle && now_idle {
            transport.resume_reading();
        }
        match &next {
            Speaking::Idle => {}
            Speaking::Yielding => {
                transport.call_later(Duration::ZERO, NEXT_SHARE);
            }
            Speaking::Waiting(full) => self.wait_for(transport, full),
        }
        self.speaking = next;
    }

    fn line_received(&mut self, transport: &mut dyn Transport, line: &[u8]) -> Heard {
        let Some(name) = &self.name else {
            return self.choose_name(transport, line);
        };
        let nothing = Heard::Said {
            writes: 0,
            full: Vec::new(),
        };
        if line.is_empty() {
            return nothing;
        }
        let from = transport.id();
        // Only an in-memory test transport has no reactor, and no one to tell.
        let Some(reactor) = transport.reactor() else {
            return nothing;
        };
        let mut room = self.room.borrow_mut();
        if !room.members.contains_key(&from) {
            // Disconnected for not reading (by a cascade within this very
            // callback, say): it has nothing more to say.
            return Heard::Closed;
        }
        let writes = room.members.len() - 1;
        let full = room.say(reactor, from, &[name.as_bytes(), b": ", line, b"\n"]);
        Heard::Said { writes, full }
    }

    fn choose_name(&mut self, transport: &mut dyn Transport, line: &[u8]) -> Heard {
        let name = String::from_utf8_lossy(line).into_owned();
        let mut room = self.room.borrow_mut();
        let refusal = if name.is_empty() {
            Some("A name cannot be empty. Bye.\n".to_owned())
        } else if name.len() > MAX_NAME {
            Some(format!("A name may be at most {MAX_NAME} bytes. Bye.\n"))
        } else if room.members.values().any(|m| m.name == name) {
            Some(format!("The name {name} is taken. Bye.\n"))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            transport.write(refusal.as_bytes());
            transport.lose_connection();
            return Heard::Closed;
        }
        info!("{} is {name}", transport.peer_addr());
        transport.write(format!("Welcome, {name}!\n").as_bytes());
        let id = transport.id();
        if let Some(reactor) = transport.reactor() {
            room.join(reactor, id, name.clone());
        }
        self.name = Some(name);
        Heard::Said {
            writes: 0,
            full: Vec::new(),
        }
    }

    /// Registers this member as the producer of each of `full`: the reactor
    /// pauses it until every one of them drains or leaves.
    fn wait_for(&mut self, transport: &mut dyn Transport, full: &[ConnectionId]) {
        let me = transport.id();
        let Some(reactor) = transport.reactor() else {
            return;
        };
        let mut room = self.room.borrow_mut();
        for &id in full {
            reactor.register_producer(id, me);
            if let Some(member) = room.members.get_mut(&id) {
                member.speakers.push(me);
            }
        }
    }
}

impl Protocol for Chatter {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        info!("...connected from: {}", transport.peer_addr());
        transport.write(b"What's your name?\n");
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        self.pending.extend_from_slice(data);
        self.handle_pending(transport);
    }

    /// The next share of a speaker's lines.
    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        if tag == NEXT_SHARE && matches!(self.speaking, Speaking::Yielding) {
            self.handle_pending(transport);
        }
    }

    /// Every member this speaker waited on drained or left (or its own
    /// backlog drained): it stops waiting on them and goes on with its lines
    /// next turn. Not at once: the reactor resumes a producer within the
    /// turn whose flush drained its consumers, and a flood whose consumers'
    /// kernels keep taking it would go on for the whole of it while nobody
    /// else is read.
    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        let Speaking::Waiting(full) = &self.speaking else {
            return;
        };
        let me = transport.id();
        if let Some(reactor) = transport.reactor() {
            let mut room = self.room.borrow_mut();
            for &id in full {
                reactor.unregister_producer(id, me);
                if let Some(member) = room.members.get_mut(&id) {
                    member.speakers.retain(|&s| s != me);
                }
            }
        }
        self.speak(transport, Speaking::Yielding);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, _reason: &Reason) {
        let id = transport.id();
        if let Some(reactor) = transport.reactor() {
            self.room.borrow_mut().leave(reactor, id);
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
            speaking: Speaking::Idle,
        })
    }
}

fn serve(args: &Args) -> Result<(), String> {
    let limits = Limits {
        max_backlog: args.max_backlog,
        slow_timeout: args.slow_timeout,
    };
    let tls = args.tls.server_config(&[])?;
    common::serve(&args.host, args.port, |reactor, addr| {
        let options = ListenOptions {
            write_buffer_limit: limits.max_backlog,
            ..ListenOptions::default()
        };
        let factory = ChatFactory {
            room: Room::new(limits),
        };
        Ok(common::tls::listen(reactor, addr, tls, factory, options)?.local_addr())
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("chat_server", serve(&args))
}
