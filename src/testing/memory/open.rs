//! Making memory connections: one the test makes directly or on a
//! listener, and a recorded connect, waiting until the test completes it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, error};

use super::conn::MemoryConn;
use super::records::ConnectRequest;
use crate::protocol::{ClientFactory, Protocol};
use crate::reactor::{key_u32, Reactor, Slot, SlotId, Source, TimerAction};
use crate::reason::Reason;
use crate::tcp::{Admission, ClientOrigin, ConnState, ListenOptions, Origin, Peer, DEAD_ID};
use crate::transport::ConnectionId;

/// The address family's "any" address: a connection the test made
/// directly has no local address of its own.
fn unspecified_like(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
    }
}

impl Reactor {
    /// Puts `conn` in a slot and opens its record.
    fn insert_memory(&mut self, conn: MemoryConn) -> io::Result<ConnectionId> {
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = ConnectionId {
            key: key_u32(entry.key())?,
            generation,
        };
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Memory(Box::new(conn)),
        });
        self.record_mut(id);
        Ok(id)
    }

    /// A connection from `peer` to `protocol`, made now: `connection_made`
    /// runs before this returns. `origin` is the listener that accepted it
    /// (its limits were applied) or nothing.
    pub(crate) fn memory_open(
        &mut self,
        protocol: Box<dyn Protocol>,
        peer: SocketAddr,
        local: Option<SocketAddr>,
        accepted: Option<(SlotId, ListenOptions)>,
    ) -> io::Result<ConnectionId> {
        let local = local.unwrap_or_else(|| unspecified_like(peer));
        let mut conn = MemoryConn::new(peer, local, ConnState::OPEN, self.now());
        conn.protocol = Some(protocol);
        if let Some((listener, options)) = accepted {
            conn.origin = Some(Origin::Accepted(Admission::with_peer(listener)));
            conn.limits.cap = options.write_buffer_limit;
        }
        let id = match self.insert_memory(conn) {
            Ok(id) => id,
            Err(e) => {
                if let Some((listener, _)) = accepted {
                    let admission = Admission::with_peer(listener);
                    self.release_admission(Some(admission), &Peer::Ip(peer));
                }
                return Err(e);
            }
        };
        debug!("made {id} from {peer} in memory");
        if let Some((_, options)) = accepted {
            if options.idle_timeout.is_some() {
                self.set_idle_timeout(id, options.idle_timeout);
            }
        }
        self.with_protocol(id, |p, t| p.connection_made(t));
        self.apply_closes();
        Ok(id)
    }

    /// `connect_tcp` (or `connect_tls`) on a reactor in memory: the
    /// connection waits, connecting, until its test completes or fails it,
    /// or its timeout passes.
    pub(crate) fn memory_connect(
        &mut self,
        addr: SocketAddr,
        factory: Box<dyn ClientFactory>,
        timeout: Duration,
        tls: bool,
    ) -> ConnectionId {
        let memory = self.memory_mut();
        let port = 49152 + memory.next_port % 16384;
        memory.next_port = memory.next_port.wrapping_add(1);
        let local = SocketAddr::new(
            match addr {
                SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            },
            port,
        );
        let mut conn = MemoryConn::new(addr, local, ConnState::Connecting, self.now());
        conn.origin = Some(Origin::Client(Box::new(ClientOrigin {
            factory,
            connect_timer: None,
            dial: None,
        })));
        let id = match self.insert_memory(conn) {
            Ok(id) => id,
            Err(e) => {
                // Only a slab past 2^32 entries: nothing to give back.
                error!("connect to {addr} in memory failed: {e}");
                return DEAD_ID;
            }
        };
        let timer = self.schedule(timeout, TimerAction::ConnectTimeout(id));
        if let Some(MemoryConn {
            origin: Some(Origin::Client(client)),
            ..
        }) = self.memory_conn_mut(id)
        {
            client.connect_timer = Some(timer);
        }
        self.memory_mut().connects.push(ConnectRequest {
            addr,
            timeout,
            tls,
            id,
        });
        debug!("connect {id} to {addr} recorded in memory");
        id
    }

    /// Makes memory connection `id`, connecting, connected: its factory
    /// builds the protocol, what was written meanwhile goes first, then
    /// `connection_made`. False if it is not connecting.
    pub(crate) fn memory_complete_connect(&mut self, id: ConnectionId) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        if conn.state != ConnState::Connecting {
            return false;
        }
        let peer = conn.peer;
        let Some(Origin::Client(client)) = &mut conn.origin else {
            return false;
        };
        let timer = client.connect_timer.take();
        let factory = &mut client.factory;
        match crate::panic::catch(|| factory.build_protocol(peer)) {
            Ok(protocol) => {
                conn.protocol = Some(protocol);
                conn.state = ConnState::OPEN;
            }
            Err(why) => {
                error!("{peer}: build_protocol panicked: {why}; aborting the connection");
                self.queue_close(id, Reason::Panicked(why));
                self.apply_closes();
                return true;
            }
        }
        if let Some(timer) = timer {
            self.cancel(timer);
        }
        self.memory_flush(id);
        debug!("connected {id} to {peer} in memory");
        self.with_protocol(id, |p, t| p.connection_made(t));
        self.after_callback();
        // A buffer still over its watermark is told now that there is a
        // protocol to tell.
        self.flow_changed.push(id);
        self.apply_closes();
        true
    }
}
