//! The write path: writes made during a callback are coalesced and flushed
//! with one `write` once it returns; what the kernel does not take waits in
//! the connection's buffer, under a hard cap.

use std::io::{self, Write};

use log::{debug, warn};

use super::state::{ConnState, Ending, ReadSide, WriteSide};
use super::stream::{Stream, WriteWatch};
use crate::reactor::{Reactor, Readiness, SlotId, READ_BUFFER_SIZE};
use crate::reason::Reason;
use crate::transport::ConnectionId;

/// The bytes written during the current callback to the one connection
/// that had nothing buffered when it was first written to (in an echo, the
/// connection being served). Shared by the whole reactor, so coalescing
/// costs no allocation per connection or per message; writes to any other
/// connection go to that connection's own buffer. Invariant: the owner's
/// buffer is empty.
#[derive(Default)]
pub(crate) struct Stage {
    owner: Option<ConnectionId>,
    bytes: Vec<u8>,
}

impl Stage {
    /// Bytes staged for `id`.
    pub(crate) fn len_for(&self, id: ConnectionId) -> usize {
        if self.owner == Some(id) {
            self.bytes.len()
        } else {
            0
        }
    }

    /// Whether bytes wait to be flushed.
    pub(crate) fn is_pending(&self) -> bool {
        self.owner.is_some()
    }

    /// Drops what is staged for `id` (its connection closed), returning how
    /// much that was.
    pub(crate) fn discard(&mut self, id: ConnectionId) -> usize {
        if self.owner != Some(id) {
            return 0;
        }
        self.owner = None;
        let n = self.bytes.len();
        self.bytes.clear();
        n
    }
}

impl Reactor {
    /// Writes `data` to connection `id` (see [`Transport::write`](crate::Transport::write)).
    pub fn write_to(&mut self, id: ConnectionId, data: &[u8]) {
        self.write_vectored_to(id, &[data]);
    }

    /// Writes several chunks to connection `id`, in order.
    ///
    /// Nothing reaches the socket before the current callback returns: then
    /// everything written to a connection during it goes out in one `write`
    /// (Twisted's issue 11989: a write per tiny chunk costs 10x the CPU).
    /// A write that would take the connection's buffered output past its cap
    /// ([`set_write_buffer_limit`](Reactor::set_write_buffer_limit)) aborts
    /// the connection with [`Reason::BufferOverflow`]; writes to a closed or
    /// closing-for-writing connection are logged no-ops.
    pub fn write_vectored_to(&mut self, id: ConnectionId, chunks: &[&[u8]]) {
        match self.conn(id) {
            #[cfg(feature = "tls")]
            Some(conn) if conn.tls.is_tls() => return self.write_plain_to(id, chunks),
            Some(_) => {}
            None => return self.memory_write(id, chunks),
        }
        self.write_vectored_raw(id, chunks);
    }

    /// Writes bytes for the socket as they are: a plain connection's, or a
    /// TLS layer's records.
    pub(crate) fn write_vectored_raw(&mut self, id: ConnectionId, chunks: &[&[u8]]) {
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        let Some(now_full) = self.admit_write(id, total, 0) else {
            return;
        };
        let stage_free = self.stage.owner.map_or(true, |owner| owner == id);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let connecting = conn.state == ConnState::Connecting;
        if conn.out.is_empty() && !connecting && stage_free {
            self.stage.owner = Some(id);
            for chunk in chunks {
                self.stage.bytes.extend_from_slice(chunk);
            }
        } else {
            let was_empty = conn.out.is_empty();
            for chunk in chunks {
                conn.out.push(chunk);
            }
            // A buffer that was empty has no WRITABLE interest yet: it is
            // flushed once the callback returns. A connecting one is
            // flushed when the connect completes.
            if was_empty && !connecting {
                self.dirty.push(id);
            }
        }
        if now_full {
            self.set_full(id, true);
        }
    }

    /// Whether `total` more bytes may be written to connection `id`, which
    /// holds `elsewhere` bytes besides its buffer, stage and TLS layer (the
    /// TLS inbox): `None` if the write is dropped (the connection is closed
    /// or closed for writing, the write is empty, or it would pass the cap,
    /// which aborts the connection); otherwise whether it takes the buffered
    /// bytes past the high watermark (strictly, as Twisted's `bufferSize`
    /// check: a full 64 KiB read echoed at once does not pause its own
    /// reading).
    pub(crate) fn admit_write(
        &mut self,
        id: ConnectionId,
        total: usize,
        elsewhere: usize,
    ) -> Option<bool> {
        let staged = self.stage.len_for(id);
        let Some(conn) = self.conn(id) else {
            debug!("write to closed connection {id} ignored");
            return None;
        };
        if !conn.state.accepts_writes() {
            debug!("write to {id}, closed for writing, ignored");
            return None;
        }
        if total == 0 {
            return None;
        }
        let buffered = conn.out.len() + staged + conn.tls.pending() + elsewhere;
        if self.over_cap(id, buffered, total) {
            return None;
        }
        let conn = self.conn(id)?;
        Some(!conn.flow.full && buffered + total > conn.limits.high())
    }

    /// Whether `more` bytes on top of `buffered` would pass connection
    /// `id`'s cap; if so the connection is aborted with
    /// [`Reason::BufferOverflow`], logged once.
    pub(crate) fn over_cap(&mut self, id: ConnectionId, buffered: usize, more: usize) -> bool {
        let Some(conn) = self.conn(id) else {
            return true;
        };
        let limit = conn.limits.cap;
        if more <= limit - buffered.min(limit) {
            return false;
        }
        warn!(
            "{}: connection {id} would buffer {} bytes, over its limit of {limit}; aborting it (the peer does not read)",
            conn.peer,
            buffered + more
        );
        self.queue_close(id, Reason::BufferOverflow { limit });
        true
    }

    /// Flushes what the callbacks that just ran wrote: the staged bytes with
    /// one `write`, and each connection that went from empty to buffered.
    pub(crate) fn flush_writes(&mut self) {
        if let Some(id) = self.stage.owner.take() {
            let mut bytes = std::mem::take(&mut self.stage.bytes);
            self.write_staged(id, &bytes);
            bytes.clear();
            // One burst must not leave the reactor holding megabytes.
            bytes.shrink_to(READ_BUFFER_SIZE);
            self.stage.bytes = bytes;
        }
        while let Some(id) = self.dirty.pop() {
            self.flush(id);
        }
    }

    /// Writes the staged bytes straight to the socket; the remainder goes to
    /// the connection's buffer.
    fn write_staged(&mut self, id: ConnectionId, bytes: &[u8]) {
        let now = self.turn_now;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.state == ConnState::Closed {
            return;
        }
        match write_once(&conn.stream, bytes) {
            Ok(n) => {
                if n > 0 {
                    conn.last_activity = now;
                }
                if n < bytes.len() {
                    conn.out.push(&bytes[n..]);
                }
            }
            Err(e) => {
                debug!("write to {id} failed: {e}");
                self.queue_close(id, Reason::from(e));
                return;
            }
        }
        self.settle(id);
    }

    /// Writes what connection `id` has buffered, as far as the socket takes it.
    pub(crate) fn flush(&mut self, id: ConnectionId) {
        let now = self.turn_now;
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_flush(id);
        };
        if matches!(conn.state, ConnState::Closed | ConnState::Connecting) {
            return;
        }
        let before = conn.out.len();
        let flushed = conn.out.flush_into(&conn.stream);
        if conn.out.len() < before {
            conn.last_activity = now;
        }
        if let Err(e) = flushed {
            debug!("write to {id} failed: {e}");
            self.queue_close(id, Reason::from(e));
            return;
        }
        self.settle(id);
    }

    /// Brings a connection in line with its buffer after a write: WRITABLE
    /// interest exactly while bytes wait, the close or shutdown a drained
    /// buffer was waiting for, and producers resumed below the low watermark.
    fn settle(&mut self, id: ConnectionId) {
        let Some((conn, registry)) = self.conn_and_registry(id) else {
            return;
        };
        let waiting = !conn.out.is_empty();
        if waiting != conn.want_write {
            let token = SlotId::from(id).token();
            if let Err(e) = conn.stream.watch_writes(registry, token, waiting) {
                self.queue_close(id, Reason::from(e));
                return;
            }
            conn.want_write = waiting;
        }
        // Nothing will report a regular file writable: what it did not
        // take is retried from the leftover queue.
        let retry = waiting && conn.stream.write_watch() == WriteWatch::Retried;
        // An empty buffer is below any low watermark, 0 included.
        let drained = !waiting || conn.out.len() < conn.limits.low();
        let unfull = conn.flow.full && drained;
        if !waiting {
            match conn.state {
                ConnState::Flushing(Ending::Local) => self.queue_close(id, Reason::LocalClosed),
                ConnState::Flushing(Ending::Peer) => self.queue_close(id, Reason::PeerClosed),
                ConnState::Flushing(Ending::Stop) => {
                    self.queue_close_as(id, Reason::ReactorStopped, true)
                }
                ConnState::Open {
                    write: WriteSide::ShutWhenFlushed,
                    ..
                } => self.shut_write_side(id),
                _ => {}
            }
        }
        if unfull {
            self.set_full(id, false);
        }
        if retry {
            self.defer(id.into(), Readiness::LEFTOVER);
        }
    }

    /// Closes connection `id` once its buffer is flushed (see
    /// [`Transport::lose_connection`](crate::Transport::lose_connection)).
    /// Cancels a connection attempt still under way.
    ///
    /// On a TLS connection whose handshake completed, close_notify goes
    /// first (after what was written), as the connection's own
    /// `lose_connection` does.
    pub fn lose_connection(&mut self, id: ConnectionId) {
        #[cfg(feature = "tls")]
        if self.close_through_layer(id, false) {
            return;
        }
        self.lose_connection_raw(id);
    }

    /// Closes the socket once its buffer is flushed, saying nothing to a
    /// TLS layer (the layer itself calls this, after its close_notify).
    pub(crate) fn lose_connection_raw(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_lose_connection(id);
        };
        match conn.state {
            ConnState::Open { .. } => {
                conn.state = ConnState::Flushing(Ending::Local);
                // Closed once the callback returns, so writes later in the
                // same callback are still sent (as in Twisted).
                self.dirty.push(id);
            }
            ConnState::Connecting | ConnState::AwaitingProxyHeader => {
                self.queue_close(id, Reason::Aborted)
            }
            ConnState::Flushing(_) | ConnState::Closed => {}
        }
    }

    /// Shuts our writing side of connection `id` once its buffer is flushed,
    /// and goes on reading (see [`Transport::lose_write_connection`](crate::Transport::lose_write_connection)).
    pub fn lose_write_connection(&mut self, id: ConnectionId) {
        #[cfg(feature = "tls")]
        if self.close_through_layer(id, true) {
            return;
        }
        self.lose_write_connection_raw(id);
    }

    /// [`lose_write_connection`](Self::lose_write_connection) at the socket.
    pub(crate) fn lose_write_connection_raw(&mut self, id: ConnectionId) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_lose_write_connection(id);
        };
        let ConnState::Open {
            read,
            write: WriteSide::Open,
        } = conn.state
        else {
            return;
        };
        conn.state = ConnState::Open {
            read,
            write: WriteSide::ShutWhenFlushed,
        };
        // Staged bytes go first: shut once the callback's writes are out.
        self.dirty.push(id);
    }

    /// Sends our FIN; if the peer's came already, the connection is done.
    fn shut_write_side(&mut self, id: ConnectionId) {
        let Some((conn, registry)) = self.conn_and_registry(id) else {
            return;
        };
        let ConnState::Open { read, .. } = conn.state else {
            return;
        };
        conn.state = ConnState::Open {
            read,
            write: WriteSide::Shut,
        };
        if let Err(e) = conn.stream.shutdown_write(registry) {
            self.queue_close(id, Reason::from(e));
        } else if read == ReadSide::Finished {
            self.queue_close(id, Reason::PeerClosed);
        }
    }

    /// Sets the outgoing-buffer sizes at which connection `id`'s producing
    /// pauses (`high`, passed) and resumes (`low`, drained below);
    /// see [`Transport::set_write_watermarks`](crate::Transport::set_write_watermarks).
    pub fn set_write_watermarks(&mut self, id: ConnectionId, low: usize, high: usize) {
        if let Some(conn) = self.conn_mut(id) {
            conn.limits.set_watermarks(low, high);
        } else if let Some(m) = self.memory_conn_mut(id) {
            m.limits.set_watermarks(low, high);
        }
    }

    /// Caps the bytes connection `id` may hold buffered (see
    /// [`Transport::set_write_buffer_limit`](crate::Transport::set_write_buffer_limit)).
    pub fn set_write_buffer_limit(&mut self, id: ConnectionId, bytes: usize) {
        if let Some(conn) = self.conn_mut(id) {
            conn.limits.cap = bytes;
        } else if let Some(m) = self.memory_conn_mut(id) {
            m.limits.cap = bytes;
        }
    }

    /// Whether connection `id`'s outgoing buffer crossed its high watermark
    /// and has not drained below the low one since: a writer about to write
    /// to another connection asks this first, as a producer does.
    pub fn is_write_buffer_full(&self, id: ConnectionId) -> bool {
        match self.conn(id) {
            Some(conn) => conn.flow.full,
            None => self.memory_conn(id).is_some_and(|m| m.flow.full),
        }
    }

    /// Bytes buffered for connection `id`, written but not yet taken by the
    /// kernel (0 for a closed one).
    pub fn buffered(&self, id: ConnectionId) -> usize {
        match self.conn(id) {
            Some(c) => c.out.len() + self.stage.len_for(id) + c.tls.pending(),
            None => self.memory_conn(id).map_or(0, |m| m.out.len()),
        }
    }
}

/// One `write` of `bytes`. Returns how many bytes the kernel took (0 if it
/// would block).
fn write_once(stream: &Stream, bytes: &[u8]) -> io::Result<usize> {
    let mut stream = stream;
    loop {
        match stream.write(bytes) {
            Ok(0) if !bytes.is_empty() => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
