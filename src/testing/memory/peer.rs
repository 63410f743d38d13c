//! What the test does as the peer of a memory connection: sending,
//! closing, resetting, reading or not; and the reads the protocol gets.

use std::io;

use log::{debug, error};

use super::MemoryReactor;
use crate::reactor::{Reactor, READ_BUFFER_SIZE};
use crate::reason::Reason;
use crate::tcp::{ConnState, Ending, ReadSide, WriteSide};
use crate::transport::ConnectionId;

impl MemoryReactor {
    /// The peer sends `data`: the protocol's `data_received` runs now (once
    /// per 64 KiB, as reads from a socket), unless its reading is paused;
    /// then the data waits until it resumes. False (and dropped) if the
    /// connection does not read: not made, closing or closed, or the peer
    /// closed already.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert!(memory.receive(id, b"ping"));
    /// assert_eq!(memory.take_written(id), b"ping");
    /// memory.close(id);
    /// assert!(!memory.receive(id, b"late"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn receive(&mut self, id: ConnectionId, data: &[u8]) -> bool {
        let taken = self.reactor.memory_receive(id, data);
        self.settle();
        taken
    }

    /// The peer closes its side (its FIN), after what it sent: a protocol
    /// that allows half-close hears `read_connection_lost`; any other
    /// connection closes with `Reason::PeerClosed` once the peer has read
    /// what is buffered for it. False if the connection does not read.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::Reason;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert!(memory.close(id));
    /// assert_eq!(memory.close_reason(id), Some(&Reason::PeerClosed));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close(&mut self, id: ConnectionId) -> bool {
        let taken = self.reactor.memory_peer_close(id);
        self.settle();
        taken
    }

    /// The peer resets the connection: it closes at once with a
    /// `ConnectionReset` error, whatever was buffered. False if it is
    /// closed already.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert!(memory.reset(id));
    /// let why = memory.close_reason(id).unwrap();
    /// assert_eq!(why.error_kind(), Some(ErrorKind::ConnectionReset));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn reset(&mut self, id: ConnectionId) -> bool {
        let open = self
            .reactor
            .memory_conn(id)
            .is_some_and(|c| c.state != crate::tcp::ConnState::Closed);
        if open {
            let reset = io::Error::from(io::ErrorKind::ConnectionReset);
            self.reactor.queue_close(id, Reason::from(reset));
        }
        self.settle();
        open
    }

    /// Whether the peer reads what is written to it (it does at first).
    /// While it does not, writes wait in the connection's buffer: past the
    /// high watermark the protocol (and its registered producers) hear
    /// `pause_producing`; past the cap the connection is aborted, as on
    /// TCP. Reading again takes everything that waited, and producers
    /// resume. False if `id` names no open memory connection.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.set_peer_reading(id, false);
    /// memory.receive(id, &[b'x'; 70_000]);
    /// assert_eq!(memory.buffered(id), 70_000);
    /// assert!(memory.is_write_buffer_full(id), "past the 64 KiB watermark");
    /// memory.set_peer_reading(id, true);
    /// assert_eq!(memory.take_written(id).len(), 70_000);
    /// assert!(!memory.is_write_buffer_full(id));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_peer_reading(&mut self, id: ConnectionId, reading: bool) -> bool {
        let done = self.reactor.memory_set_peer_reading(id, reading);
        self.settle();
        done
    }

    /// The peer, not reading otherwise, reads up to `max` bytes of what
    /// waits for it; returns how many it read. Below the low watermark,
    /// producers resume.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.set_peer_reading(id, false);
    /// memory.receive(id, b"abcdef");
    /// assert_eq!(memory.peer_reads(id, 4), 4);
    /// assert_eq!(memory.written(id), b"abcd");
    /// assert_eq!(memory.buffered(id), 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn peer_reads(&mut self, id: ConnectionId, max: usize) -> usize {
        let n = self.reactor.memory_deliver(id, max);
        self.settle();
        n
    }
}

impl Reactor {
    /// The peer of memory connection `id` sent `data`: the protocol is given
    /// it now, a read's worth at a time, unless reading is paused; then it
    /// waits. False if the connection does not read (not made, closed or
    /// closing, or the peer closed already).
    pub(crate) fn memory_receive(&mut self, id: ConnectionId, data: &[u8]) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        if !conn.state.reads() || conn.peer_fin {
            debug!("data for {id}, which does not read, dropped");
            return false;
        }
        conn.inbox.extend_from_slice(data);
        self.memory_read(id);
        true
    }

    /// The peer of memory connection `id` closed its side: the protocol
    /// hears it after any input still waiting. False if it does not read.
    pub(crate) fn memory_peer_close(&mut self, id: ConnectionId) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        if !conn.state.reads() || conn.peer_fin {
            return false;
        }
        conn.peer_fin = true;
        self.memory_read(id);
        true
    }

    /// Gives the protocol what waits in the inbox, at most one 64 KiB read
    /// per callback, while reading is not paused; then the peer's close.
    /// Between reads its writes are flushed and its producers told, as
    /// between a socket's reads.
    pub(crate) fn memory_read(&mut self, id: ConnectionId) {
        let now = self.now();
        while let Some(conn) = self.memory_conn_mut(id) {
            if !conn.state.reads() || conn.read_pause.any() {
                break;
            }
            if conn.inbox.is_empty() {
                if conn.peer_fin {
                    self.memory_peer_finished(id);
                }
                break;
            }
            let rest = conn.inbox.split_off(READ_BUFFER_SIZE.min(conn.inbox.len()));
            let data = std::mem::replace(&mut conn.inbox, rest);
            conn.last_activity = now;
            self.with_protocol(id, |p, t| p.data_received(t, &data));
            self.after_callback();
        }
    }

    /// Queues memory connection `id` to read what waits, if anything does
    /// and it reads again.
    pub(crate) fn memory_ready(&mut self, id: ConnectionId) {
        let waits = self
            .memory_conn(id)
            .is_some_and(|c| c.has_input() && c.state.reads() && !c.read_pause.any());
        if waits {
            self.memory_mut().ready.push(id);
        }
    }

    /// The peer's FIN reached the protocol: as on TCP, a half-closing
    /// protocol is told and may go on writing; otherwise the connection
    /// ends once the peer has read what is buffered.
    fn memory_peer_finished(&mut self, id: ConnectionId) {
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        conn.peer_fin = false;
        let ConnState::Open { write, .. } = conn.state else {
            return;
        };
        let half_close = write == WriteSide::Open && self.memory_allows_half_close(id);
        let Some(conn) = self.memory_conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closed {
            return; // allows_half_close panicked
        }
        if half_close {
            conn.state = ConnState::Open {
                read: ReadSide::Finished,
                write,
            };
            self.with_protocol(id, |p, t| p.read_connection_lost(t));
        } else if conn.out.is_empty() {
            self.queue_close(id, Reason::PeerClosed);
        } else {
            conn.state = ConnState::Flushing(Ending::Peer);
        }
    }

    /// The protocol's `allows_half_close`, under the panic guard.
    fn memory_allows_half_close(&mut self, id: ConnectionId) -> bool {
        let Some(Some(protocol)) = self.memory_conn(id).map(|c| c.protocol.as_ref()) else {
            return false;
        };
        match crate::panic::catch(|| protocol.allows_half_close()) {
            Ok(allows) => allows,
            Err(why) => {
                error!("allows_half_close of connection {id} panicked: {why}; aborting it");
                self.queue_close(id, Reason::Panicked(why));
                false
            }
        }
    }

    /// Whether the peer of memory connection `id` reads what is written to
    /// it; turning it on delivers what waited.
    pub(crate) fn memory_set_peer_reading(&mut self, id: ConnectionId, reading: bool) -> bool {
        let Some(conn) = self.memory_conn_mut(id) else {
            return false;
        };
        conn.peer_reading = reading;
        if reading {
            self.memory_flush(id);
        }
        true
    }
}
