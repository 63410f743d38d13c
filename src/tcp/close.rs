//! Closing a connection: queued during callbacks, applied after them;
//! the descriptor reset, lingering or simply closed as the reason asks, and
//! `connection_lost` and the client factory's hooks called once.

use std::io::{self, Read};

use log::{debug, error};

use super::admission::Admission;
use super::connection::{ClientOrigin, Conn, Origin};
use super::lent::Lent;
use super::peer::Peer;
use super::state::ConnState;
use super::stream::Stream;
use super::transport::ConnTransport;
use crate::protocol::ClientFactory;
use crate::reactor::{Reactor, Source};
use crate::reason::Reason;
use crate::transport::ConnectionId;

/// A close waiting to be applied: the reason, the staged bytes that the
/// close discarded (the rest of what was unsent is in the buffer), and
/// whether it ends a flush that a stop waited for (such a connection then
/// lingers for its peer's FIN, since the peer is still reading our reply).
pub(crate) struct QueuedClose {
    pub(crate) id: ConnectionId,
    pub(crate) reason: Reason,
    pub(crate) unsent_staged: usize,
    pub(crate) after_stop_flush: bool,
}

/// The socket of a connection being closed, with what deciding how to close
/// it needs.
struct Departing {
    stream: Stream,
    peer: Peer,
    /// The listener whose counts it is part of until the descriptor closes.
    listener: Option<Admission>,
    /// It ends a flush a stop waited for (see [`QueuedClose`]).
    after_stop_flush: bool,
}

impl Reactor {
    /// Marks `id` closed and queues its `connection_lost`; the first reason
    /// wins. What it had staged is dropped now (and counted as unsent).
    pub(crate) fn queue_close(&mut self, id: ConnectionId, reason: Reason) {
        self.queue_close_as(id, reason, false);
    }

    /// [`queue_close`](Self::queue_close), saying whether the close ends a
    /// flush that a stop waited for.
    pub(crate) fn queue_close_as(
        &mut self,
        id: ConnectionId,
        reason: Reason,
        after_stop_flush: bool,
    ) {
        let Some(conn) = self.conn_mut(id) else {
            return self.memory_queue_close(id, reason);
        };
        if conn.state == ConnState::Closed {
            return;
        }
        conn.state = ConnState::Closed;
        let unsent_staged = self.stage.discard(id);
        self.closes.push(QueuedClose {
            id,
            reason,
            unsent_staged,
            after_stop_flush,
        });
    }

    /// Applies what the callbacks that just ran asked for: flushes their
    /// writes, tells producers to pause or resume, and closes connections.
    pub(crate) fn apply_closes(&mut self) {
        // pause_producing and connection_lost may write or close anything,
        // queueing more of each; all of it is applied in this pass.
        loop {
            self.after_callback();
            if !self.udp_refusals.is_empty() {
                // What connection_refused writes or closes is applied in
                // this pass too.
                self.apply_udp_refusals();
                continue;
            }
            if self.closes.is_empty() {
                break;
            }
            for close in std::mem::take(&mut self.closes) {
                self.finish_close(close);
            }
        }
    }

    fn finish_close(&mut self, close: QueuedClose) {
        let QueuedClose {
            id,
            reason,
            unsent_staged,
            after_stop_flush,
        } = close;
        if self.conn(id).is_none() {
            return self.memory_finish_close(id, reason);
        }
        let Source::Conn(conn) = self.slots.remove(id.key as usize).source else {
            return;
        };
        let Conn {
            stream,
            peer,
            protocol,
            out,
            flow,
            producers,
            idle,
            deadline,
            origin,
            tls,
            ..
        } = conn;
        let unsent = out.len() + unsent_staged;
        drop(out);
        // Producers it held paused are released: nothing more goes to it.
        if flow.full {
            for producer in producers.into_iter() {
                self.hold(producer, false);
            }
        }
        for timer in idle.map(|(_, t)| t).into_iter().chain(deadline.timer()) {
            self.cancel(timer);
        }
        let (listener, client, dial) = match origin {
            Origin::Accepted(listener) => (Some(listener), None, None),
            Origin::Client(client) => {
                let ClientOrigin {
                    factory,
                    connect_timer,
                    dial,
                } = *client;
                if let Some(timer) = connect_timer {
                    self.cancel(timer);
                }
                // A dial that ends unmade takes its attempts with it.
                if let Some(dial) = dial {
                    self.end_dial(dial);
                }
                (None, Some(factory), None)
            }
            Origin::Attempt(dial) => (None, None, Some(dial)),
            Origin::Stdio => (None, None, None),
        };
        let socket = Departing {
            stream,
            peer: peer.clone(),
            listener,
            after_stop_flush,
        };
        let reason = self.dispose(id, socket, reason, unsent);
        debug!("connection {id} to {peer} closed: {reason}");
        // Each under its own catch: a panicking protocol must not cost the
        // client factory its hooks (a reconnecting factory would stop).
        let lent = Lent::departing(tls, protocol);
        let made = lent.as_ref().is_some_and(Lent::made);
        let reported = lent
            .as_ref()
            .map_or(reason.clone(), |l| l.reported(&reason));
        if let Some(mut lent) = lent {
            let raw = lent.is_layer();
            let lost = crate::panic::catch(|| {
                lent.callee().connection_lost(
                    &mut ConnTransport::with_route(self, id, &peer, raw),
                    &reason,
                );
            });
            if let Err(why) = lost {
                error!("{peer}: connection_lost of connection {id} panicked: {why}");
            }
            lent.drop_caught();
        }
        if let Some(factory) = client {
            self.end_client_factory(factory, made, &reported);
        }
        if let Some(dial) = dial {
            self.attempt_ended(dial, id, reason);
        }
    }

    /// Closes the descriptor as the reason asks (a reset, a lingering clean
    /// close, or a plain close) and returns the reason to report: a close
    /// that discards bytes resets the peer and says so.
    fn dispose(
        &mut self,
        id: ConnectionId,
        socket: Departing,
        reason: Reason,
        unsent: usize,
    ) -> Reason {
        let Departing {
            stream,
            peer,
            listener,
            after_stop_flush,
        } = socket;
        let resets = matches!(
            reason,
            Reason::Aborted | Reason::Panicked(_) | Reason::BufferOverflow { .. }
        );
        // A broken socket has nothing left to say to the peer.
        let broken = matches!(reason, Reason::Error { .. });
        let stream = match stream {
            // Pipes have no reset and nothing to linger for: they are
            // closed, and a loss is only reported.
            Stream::Stdio(pipes) => {
                pipes.close(self.poll.registry());
                return if resets || broken || unsent == 0 {
                    reason
                } else {
                    Reason::Discarded {
                        unsent,
                        unread: 0,
                        cause: Box::new(reason),
                    }
                };
            }
            socket => socket,
        };
        let unread = if reason == Reason::ReactorStopped {
            self.unread_input(&stream)
        } else {
            0
        };
        if resets || broken || unsent > 0 || unread > 0 {
            stream.reset_on_close();
            drop(stream);
            self.release_admission(listener, &peer);
            if resets || broken {
                return reason;
            }
            return Reason::Discarded {
                unsent,
                unread,
                cause: Box::new(reason),
            };
        }
        match reason {
            // Input after our FIN is discarded (the protocol chose to close),
            // unless the reactor is stopping: then nothing will ever read
            // it, and the peer must see the loss.
            Reason::LocalClosed => {
                let stopping = self.is_stopping();
                self.linger(id, stream, peer, listener, true, stopping)
            }
            // A stop closes as `lose_connection` does, but input arriving
            // after our FIN is a loss the peer must see, and a quiet peer
            // that had nothing buffered for it is not waited for.
            Reason::ReactorStopped => {
                self.linger(id, stream, peer, listener, after_stop_flush, true)
            }
            // Closing the descriptor also removes it from epoll.
            _ => {
                drop(stream);
                self.release_admission(listener, &peer);
            }
        }
        reason
    }

    /// Reads and counts what the peer sent that no protocol will see, so a
    /// stop can tell a loss from a quiet peer. Bounded: past the linger
    /// discard limit it stops counting.
    ///
    /// A UNIX socket's input is counted where it is queued, not read: its
    /// close is a reset for the peer only while unread input is queued.
    fn unread_input(&mut self, stream: &Stream) -> usize {
        if let Stream::Unix(unix) = stream {
            return crate::unix::queued_input(unix);
        }
        let mut buf = std::mem::take(&mut self.read_buf);
        if buf.is_empty() {
            buf = vec![0; 4096];
        }
        let mut unread = 0;
        loop {
            match (&*stream).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    unread += n;
                    if unread > crate::rules::LINGER_DISCARD_LIMIT {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if self.read_buf.is_empty() {
            self.read_buf = buf;
        }
        unread
    }

    /// The factory of a client connection hears how it ended, then stops.
    pub(crate) fn end_client_factory(
        &mut self,
        mut factory: Box<dyn ClientFactory>,
        made: bool,
        reason: &Reason,
    ) {
        let hooks = crate::panic::catch(|| {
            if made {
                factory.client_connection_lost(self, reason);
            } else {
                factory.client_connection_failed(self, reason);
            }
        });
        if let Err(why) = hooks {
            error!("a client factory hook panicked: {why}");
        }
        if let Err(why) = crate::panic::catch(|| factory.stop_factory()) {
            error!("stop_factory panicked: {why}");
        }
        crate::panic::drop_caught(factory, "a client factory");
    }
}
