//! What a stop does to connections: each protocol is asked, then closed
//! or left to finish; at the end of the grace period the rest are closed
//! regardless, resetting those whose bytes would otherwise vanish.

use super::state::{ConnState, Ending};
use crate::protocol::OnStop;
use crate::reactor::{Reactor, Source};
use crate::reason::Reason;
use crate::transport::ConnectionId;

impl Reactor {
    /// A graceful stop begins: connects under way fail, and every open
    /// connection's protocol is asked ([`Protocol::stopping`](crate::Protocol::stopping)):
    /// by default it is closed as by `lose_connection` (flushed, then a
    /// FIN), or it stays open to finish its work within the grace period.
    pub(crate) fn stop_connections(&mut self) {
        for id in self.slot_ids(|s| matches!(s, Source::Conn(_))) {
            let id = ConnectionId::from(id);
            let Some(conn) = self.conn(id) else {
                continue;
            };
            match conn.state {
                ConnState::Connecting => self.queue_close(id, Reason::ReactorStopped),
                ConnState::Open { .. } => self.ask_to_stop(id),
                // Accepted before the stop: asked once its header is whole
                // and it is made, within the grace period.
                ConnState::AwaitingProxyHeader => {}
                ConnState::Flushing(_) | ConnState::Closed => {}
            }
        }
    }

    /// Asks open connection `id`'s protocol what a stop does to it, and
    /// does it.
    pub(crate) fn ask_to_stop(&mut self, id: ConnectionId) {
        let mut action = OnStop::Close;
        self.with_protocol(id, |p, t| action = p.stopping(t));
        if action == OnStop::Close {
            self.close_for_stop(id);
        }
        self.after_callback();
    }

    /// Closes open connection `id` for a stop: at once if nothing is
    /// buffered (its unread input, if any, resets it: see `dispose`), else
    /// once flushed, lingering for the peer's FIN.
    fn close_for_stop(&mut self, id: ConnectionId) {
        let staged = self.stage.len_for(id);
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if !conn.state.is_open() {
            return;
        }
        if conn.out.is_empty() && staged == 0 {
            self.queue_close(id, Reason::ReactorStopped);
            return;
        }
        conn.state = ConnState::Flushing(Ending::Stop);
        // Its writable edge may have been in the batch the stop cut short:
        // write until the socket would block.
        if staged == 0 {
            self.flush(id);
        }
    }

    /// The grace period is over (or there was none): flushes what the
    /// socket takes now and closes. A connection that still had bytes to
    /// send, or input nobody read, is reset and reported as
    /// [`Reason::Discarded`].
    pub(crate) fn close_on_stop(&mut self, id: ConnectionId) {
        if let Some(conn) = self.conn_mut(id) {
            if !conn.out.is_empty() && conn.state != ConnState::Connecting {
                let _ = conn.out.flush_into(&conn.stream);
            }
        }
        self.queue_close(id, Reason::ReactorStopped);
    }
}
