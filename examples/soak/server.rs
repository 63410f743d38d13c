//! The side under test: one reactor on its own thread serving a TCP echo
//! (twice: once for well-behaved clients, once for writers that never
//! read, so each listener knows how its connections may end), a broadcast
//! service in the chat server's pattern, and a UDP echo.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};

use reactor::protocols::Echo;
use reactor::{
    ConnectionId, DatagramProtocol, DatagramTransport, Factory, Protocol, Reactor, ReactorHandle,
    Reason, Transport,
};

use crate::counters::Counters;

/// Cap on what the broadcast service buffers for one member
/// (`Transport::set_write_buffer_limit`): a member that does not read is
/// cut off rather than holding memory.
pub const BROADCAST_CAP: usize = 256 * 1024;

/// Longest broadcast line accepted; a member that sends more without a
/// newline is cut off.
const MAX_LINE: usize = 64 * 1024;

/// The addresses the services listen on.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    /// TCP echo for clients that read what they are sent.
    pub echo: SocketAddr,
    /// TCP echo for writers that never read.
    pub sink: SocketAddr,
    /// Broadcast: each line a member sends goes to every other member.
    pub broadcast: SocketAddr,
    /// UDP echo.
    pub udp: SocketAddr,
}

/// The reactor thread.
pub struct Server {
    /// Where the services listen.
    pub addrs: Addrs,
    handle: ReactorHandle,
    thread: JoinHandle<Result<(), String>>,
}

impl Server {
    /// Starts the reactor on a thread of its own: the TCP echo on `echo`,
    /// the other services on the same host with ports the system picks.
    pub fn start(echo: SocketAddr, counters: Arc<Counters>) -> Result<Server, String> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("reactor".into())
            .spawn(move || {
                let mut reactor = match listen(echo, counters) {
                    Ok((reactor, addrs, handle)) => {
                        let _ = tx.send(Ok((addrs, handle)));
                        reactor
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return Ok(());
                    }
                };
                reactor.run().map_err(|e| format!("reactor failed: {e}"))
            })
            .map_err(|e| format!("cannot start the reactor thread: {e}"))?;
        let (addrs, handle) = rx
            .recv()
            .map_err(|_| "the reactor thread died while starting".to_string())??;
        Ok(Server {
            addrs,
            handle,
            thread,
        })
    }

    /// Stops the reactor and waits for its thread; an error if `run`
    /// failed or a callback escaped and killed the thread.
    pub fn stop(self) -> Result<(), String> {
        self.handle.stop();
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err("the reactor thread panicked".into()),
        }
    }
}

fn listen(
    echo: SocketAddr,
    counters: Arc<Counters>,
) -> Result<(Reactor, Addrs, ReactorHandle), String> {
    let mut reactor = Reactor::new().map_err(|e| format!("cannot create the reactor: {e}"))?;
    let handle = reactor
        .handle()
        .map_err(|e| format!("cannot make a reactor handle: {e}"))?;
    let any_port = SocketAddr::new(echo.ip(), 0);
    let echo_factory = |peer_reads: bool| {
        let counters = Arc::clone(&counters);
        move || CheckedEcho {
            peer_reads,
            counters: Arc::clone(&counters),
        }
    };
    let addrs_echo = listen_tcp(&mut reactor, echo, echo_factory(true))?;
    let sink = listen_tcp(&mut reactor, any_port, echo_factory(false))?;
    let room = Rc::new(RefCell::new(Room::default()));
    let member_counters = Arc::clone(&counters);
    let broadcast = listen_tcp(&mut reactor, any_port, move || Member {
        room: Rc::clone(&room),
        counters: Arc::clone(&member_counters),
        role: None,
        pending: Vec::new(),
    })?;
    let udp = reactor
        .listen_udp(any_port, UdpEcho)
        .map_err(|e| format!("cannot listen on UDP {any_port}: {e}"))?
        .local_addr();
    let addrs = Addrs {
        echo: addrs_echo,
        sink,
        broadcast,
        udp,
    };
    Ok((reactor, addrs, handle))
}

fn listen_tcp(
    reactor: &mut Reactor,
    addr: SocketAddr,
    factory: impl Factory,
) -> Result<SocketAddr, String> {
    reactor
        .listen_tcp(addr, factory)
        .map(|l| l.local_addr())
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// The crate's [`Echo`], counting connections, watching how much it
/// buffers, and checking how each connection ends.
struct CheckedEcho {
    /// Whether the peer reads what it is sent: such a connection must end
    /// with the peer's clean close. One that never reads ends as it may.
    peer_reads: bool,
    counters: Arc<Counters>,
}

impl Protocol for CheckedEcho {
    fn connection_made(&mut self, _transport: &mut dyn Transport) {
        Counters::add(&self.counters.served, 1);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        Echo.data_received(transport, data);
        self.counters
            .max_echo_buffered
            .fetch_max(transport.buffered() as u64, Relaxed);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        Counters::add(&self.counters.ended, 1);
        let expected = match reason {
            Reason::PeerClosed => true,
            Reason::Panicked(_) => false,
            _ => !self.peer_reads,
        };
        if !expected {
            self.counters.error(format_args!(
                "server: echo connection from {} ended: {reason}",
                transport.peer_addr()
            ));
        }
    }
}

/// What a broadcast member said it is, in its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Reads everything: must never be cut off, and ends cleanly.
    Reader,
    /// Never reads: may be cut off, and may end any way but a panic.
    Deaf,
}

/// Every named member of the broadcast service.
#[derive(Default)]
struct Room {
    members: HashMap<ConnectionId, Role>,
}

/// One broadcast connection: its first line is `reader ID` or `deaf ID`,
/// every later line goes to every other member, as in `chat_server`.
struct Member {
    room: Rc<RefCell<Room>>,
    counters: Arc<Counters>,
    /// `None` until the first line.
    role: Option<Role>,
    /// The unfinished line, carried to the next read.
    pending: Vec<u8>,
}

impl Member {
    /// Handles one line, newline included; false once this connection is closing.
    fn line_received(&mut self, transport: &mut dyn Transport, line: &[u8]) -> bool {
        if self.role.is_none() {
            let role = if line.starts_with(b"reader ") {
                Role::Reader
            } else if line.starts_with(b"deaf ") {
                Role::Deaf
            } else {
                self.counters.error(format_args!(
                    "server: broadcast member {} sent no role",
                    transport.peer_addr()
                ));
                transport.abort_connection();
                return false;
            };
            self.role = Some(role);
            self.room.borrow_mut().members.insert(transport.id(), role);
            return true;
        }
        self.broadcast(transport, line);
        true
    }

    /// Writes `line` to every member but this one; cuts off any member
    /// holding more than [`FALLBACK_CAP`] (see there).
    fn broadcast(&self, transport: &mut dyn Transport, line: &[u8]) {
        let from = transport.id();
        let Some(reactor) = transport.reactor() else {
            return;
        };
        // Copied out, so no borrow of the room is held while the reactor
        // runs: whatever it calls back may change the room.
        let others: Vec<(ConnectionId, Role)> = self
            .room
            .borrow()
            .members
            .iter()
            .filter(|(&id, _)| id != from)
            .map(|(&id, &role)| (id, role))
            .collect();
        // A member whose buffered lines would pass BROADCAST_CAP is
        // aborted by the reactor (`Reason::BufferOverflow`); its
        // `connection_lost` counts it.
        for (id, _role) in others {
            reactor.write_to(id, line);
        }
    }
}

impl Protocol for Member {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        Counters::add(&self.counters.served, 1);
        transport.set_write_buffer_limit(BROADCAST_CAP);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let mut done = 0;
        while let Some(end) = buf[done..].iter().position(|&b| b == b'\n') {
            let line = done..done + end + 1;
            done = line.end;
            if !self.line_received(transport, &buf[line]) {
                return;
            }
        }
        if buf.len() - done > MAX_LINE {
            self.counters.error(format_args!(
                "server: broadcast member {} sent an over-long line",
                transport.peer_addr()
            ));
            transport.abort_connection();
            return;
        }
        buf.drain(..done);
        self.pending = buf;
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        Counters::add(&self.counters.ended, 1);
        self.room.borrow_mut().members.remove(&transport.id());
        if matches!(reason, Reason::BufferOverflow { .. }) {
            Counters::add(&self.counters.cap_cuts, 1);
        }
        let expected = match (self.role, reason) {
            (_, Reason::Panicked(_)) => false,
            (Some(Role::Deaf), _) => true,
            (_, reason) => *reason == Reason::PeerClosed,
        };
        if !expected {
            self.counters.error(format_args!(
                "server: broadcast member {} ({:?}) ended: {reason}",
                transport.peer_addr(),
                self.role
            ));
        }
    }
}

/// Sends every datagram back where it came from, as `udp_echo_server`.
struct UdpEcho;

impl DatagramProtocol for UdpEcho {
    fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
        t.write_to(data, from);
    }
}
