//! The chat room: members, what they say, and the rules for members that
//! do not read (see the example's documentation in `main.rs`). Apart from
//! `main.rs` so that a test can build the room on a
//! [`MemoryReactor`](reactor::testing::MemoryReactor) (`tests/chat_room.rs`
//! includes this file).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::time::Duration;

use log::{info, warn};
use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::{ConnectionId, Factory, Protocol, Reactor, Reason, TimerId, Transport};

use crate::common;

/// Longest line accepted, without its line ending. A client that sends more
/// without a newline is cut off rather than buffered without bound.
pub const MAX_LINE: usize = 64 * 1024;

/// Longest name, in bytes: a name is repeated before every line its owner
/// says, so it multiplies what the room sends.
const MAX_NAME: usize = 32;

/// The last line a member that does not read is sent.
pub const GOODBYE: &[u8] = b"* you are disconnected: not reading\n";

/// The room's rules for members that do not read, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `--max-backlog`: most bytes held for a member its client has not read.
    pub max_backlog: usize,
    /// `--slow-timeout`: how long a member over its high watermark may read
    /// nothing, and how long a disconnected one gets to read the rest.
    pub slow_timeout: Duration,
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

/// A speaker's lines that wait: the first, already cut out by the line
/// receiver, and the bytes received after it, cut into lines once the
/// speaker goes on.
#[derive(Default)]
struct Held {
    line: Vec<u8>,
    rest: Vec<u8>,
}

/// Where a member is in handing out the lines it sent.
enum Speaking {
    /// Every complete line received so far was handled.
    Idle,
    /// Lines wait: this turn's share was handed out, the rest go from a
    /// timer next turn, so the others are served in between.
    Yielding(Held),
    /// Lines wait until these members, over their high watermark, drain or
    /// leave: this speaker is registered as their producer.
    Waiting(Vec<ConnectionId>, Held),
}

/// What a speaker relayed in this turn (one read, or one resumption).
#[derive(Default)]
struct Turn {
    /// Lines times the members they went to.
    writes: usize,
    /// The members over their high watermark after its last line: a line
    /// after it in the same turn waits for them.
    full: Vec<ConnectionId>,
}

/// Writes (lines times the members they go to) a speaker makes per turn.
/// A read of one-letter lines is 32,768 lines: relaying it at once would
/// keep everyone else waiting for the whole of it.
const WRITES_PER_TURN: usize = 4096;

/// The tag of the timer that hands out a speaker's next share of lines.
const NEXT_SHARE: u64 = 1;

/// One member's connection, behind a [`LineReceiver`]: lines end with `\n`,
/// a `\r` before it dropped.
struct Chatter {
    room: Rc<RefCell<Room>>,
    /// `None` until the first line names this member.
    name: Option<String>,
    speaking: Speaking,
    turn: Turn,
}

impl LineHandler for Chatter {
    fn connection_made(&mut self, lines: &mut Lines<'_>) {
        let transport = lines.transport();
        common::logs::connected(transport.peer_addr());
        transport.write(b"What's your name?\n");
    }

    /// Relays `line`, or holds it and the rest of this read when this turn's
    /// share is handed out or a member its last line filled is over its
    /// high watermark. Only a second line within one turn ever waits: a
    /// member that sends a line at a time is never paused on another
    /// member's account.
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let held = || Held {
            line: line.to_vec(),
            rest: Vec::new(),
        };
        if !self.turn.full.is_empty() {
            let full = std::mem::take(&mut self.turn.full);
            self.wait_for(lines.transport(), &full);
            self.speak(lines, Speaking::Waiting(full, held()));
        } else if self.turn.writes >= WRITES_PER_TURN {
            lines.transport().call_later(Duration::ZERO, NEXT_SHARE);
            self.speak(lines, Speaking::Yielding(held()));
        } else if let Heard::Said { writes, full } = self.hear(lines.transport(), line) {
            self.turn.writes += writes;
            self.turn.full = full;
        }
    }

    /// The rest of a read after a held line, and anything read before the
    /// pause took hold: held behind it.
    fn raw_data_received(&mut self, _lines: &mut Lines<'_>, data: &[u8]) {
        if let Speaking::Yielding(held) | Speaking::Waiting(_, held) = &mut self.speaking {
            held.rest.extend_from_slice(data);
        }
    }

    fn line_length_exceeded(&mut self, lines: &mut Lines<'_>, _pending: usize) {
        let refusal = format!("Line too long (the limit is {MAX_LINE} bytes). Bye.\n");
        lines.transport().write(refusal.as_bytes());
        lines.transport().lose_connection();
    }

    /// The next share of a speaker's lines.
    fn timer_fired(&mut self, lines: &mut Lines<'_>, tag: u64) {
        if tag == NEXT_SHARE && matches!(self.speaking, Speaking::Yielding(_)) {
            self.go_on(lines);
        }
    }

    /// Every member this speaker waited on drained or left (or its own
    /// backlog drained): it stops waiting on them and goes on with its lines
    /// next turn. Not at once: the reactor resumes a producer within the
    /// turn whose flush drained its consumers, and a flood whose consumers'
    /// kernels keep taking it would go on for the whole of it while nobody
    /// else is read.
    fn resume_producing(&mut self, lines: &mut Lines<'_>) {
        let Speaking::Waiting(full, held) = &mut self.speaking else {
            return;
        };
        let (full, held) = (std::mem::take(full), std::mem::take(held));
        let transport = lines.transport();
        let me = transport.id();
        if let Some(reactor) = transport.reactor() {
            let mut room = self.room.borrow_mut();
            for &id in &full {
                reactor.unregister_producer(id, me);
                if let Some(member) = room.members.get_mut(&id) {
                    member.speakers.retain(|&s| s != me);
                }
            }
        }
        transport.call_later(Duration::ZERO, NEXT_SHARE);
        self.speaking = Speaking::Yielding(held);
    }

    fn connection_lost(&mut self, lines: &mut Lines<'_>, reason: &Reason, _unfinished: &[u8]) {
        let transport = lines.transport();
        common::logs::closed(transport.peer_addr(), reason);
        let id = transport.id();
        if let Some(reactor) = transport.reactor() {
            self.room.borrow_mut().leave(reactor, id);
        }
    }
}

impl Chatter {
    /// Holds this member's lines: the line receiver passes what follows
    /// to `raw_data_received`, and reading pauses.
    fn speak(&mut self, lines: &mut Lines<'_>, waiting: Speaking) {
        lines.set_raw_mode();
        lines.transport().pause_reading();
        self.speaking = waiting;
    }

    /// A new turn of a speaker whose lines waited: its held line is
    /// relayed, and the rest go back to the line receiver.
    fn go_on(&mut self, lines: &mut Lines<'_>) {
        let (Speaking::Yielding(held) | Speaking::Waiting(_, held)) =
            std::mem::replace(&mut self.speaking, Speaking::Idle)
        else {
            return;
        };
        self.turn = Turn::default();
        lines.transport().resume_reading();
        if let Heard::Said { writes, full } = self.hear(lines.transport(), &held.line) {
            self.turn = Turn { writes, full };
        }
        lines.set_line_mode_with(&held.rest);
    }

    /// A new read: a new turn.
    fn reading(&mut self) {
        if matches!(self.speaking, Speaking::Idle) {
            self.turn = Turn::default();
        }
    }

    fn hear(&mut self, transport: &mut dyn Transport, line: &[u8]) -> Heard {
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

/// A member's protocol: its [`Chatter`] behind a line receiver, told when a
/// read begins, since a turn's share counts from there.
struct Connection(LineReceiver<Chatter>);

impl Protocol for Connection {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.0.connection_made(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        self.0.handler_mut().reading();
        self.0.data_received(transport, data);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        self.0.connection_lost(transport, reason);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        self.0.pause_producing(transport);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.0.resume_producing(transport);
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        self.0.timer_fired(transport, tag);
    }
}

/// Hands every connection the one room.
pub struct ChatFactory {
    room: Rc<RefCell<Room>>,
}

impl ChatFactory {
    /// A factory for a new, empty room with these rules.
    pub fn new(limits: Limits) -> ChatFactory {
        ChatFactory {
            room: Room::new(limits),
        }
    }
}

impl Factory for ChatFactory {
    fn build_protocol(&mut self, _peer: SocketAddr) -> Box<dyn Protocol> {
        let chatter = Chatter {
            room: Rc::clone(&self.room),
            name: None,
            speaking: Speaking::Idle,
            turn: Turn::default(),
        };
        Box::new(Connection(
            LineReceiver::new(chatter).with_max_length(MAX_LINE),
        ))
    }
}
