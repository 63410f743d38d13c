//! Stopping listeners: one at once (`stop_listening`), or every one for a
//! reactor stop, each once it has accepted what waits in its queue.

use log::{debug, error};

use super::listener::ListenerHandle;
use crate::reactor::{Reactor, SlotId, Source, MAX_ACCEPTS_PER_EVENT};

impl Reactor {
    /// Stops accepting on a listener and calls its factory's `stop_factory`.
    /// Connections it accepted stay open. Returns false if it had stopped already.
    pub fn stop_listening(&mut self, listener: &ListenerHandle) -> bool {
        self.remove_listener(listener.id)
    }

    pub(crate) fn remove_listener(&mut self, id: SlotId) -> bool {
        if !matches!(self.slot_mut(id), Some(Source::Listener(_))) {
            return false;
        }
        if let Source::Listener(mut listener) = self.slots.remove(id.key as usize).source {
            debug!("stopped listening on {}", listener.addr);
            if let Some(socket) = &mut listener.socket {
                // A socket handed to another process (crate::restart) stays
                // open there, and epoll forgets a descriptor only once every
                // copy is closed: without this, its events would go on
                // waking this loop.
                let _ = self.poll.registry().deregister(socket);
            }
            if let Err(why) = crate::panic::catch(|| listener.factory.stop_factory()) {
                error!("stop_factory panicked: {why}");
            }
            crate::panic::drop_caught(listener.factory, "a factory");
        }
        true
    }

    /// Closes every listening socket for a stop (their factories stop
    /// later, after the connections they built), each once it has accepted
    /// what waits in its queue: those connections join the stop like every
    /// open one (see [`accept_queued`](Self::accept_queued)).
    pub(crate) fn close_listening_sockets(&mut self) {
        for id in self.slot_ids(|s| matches!(s, Source::Listener(_))) {
            self.accept_queued(id);
            let socket = match self.slot_mut(id) {
                Some(Source::Listener(listener)) => listener.socket.take(),
                _ => None,
            };
            if let Some(mut socket) = socket {
                // As in `remove_listener`: a copy may live on elsewhere.
                let _ = self.poll.registry().deregister(&mut socket);
            }
        }
    }

    /// Accepts every connection waiting in listener `id`'s queue. Their
    /// handshakes are complete and their clients may have sent a request:
    /// closing the socket would reset them, SO_REUSEPORT or not (Linux
    /// hands them to another socket of the group only with the sysctl
    /// `net.ipv4.tcp_migrate_req`). Bounded by what the queue can hold
    /// (`backlog + 1`), so clients that keep coming cannot hold a stop up;
    /// a client whose handshake completes after the last `accept` and
    /// before the close is still reset, as with any server that closes.
    fn accept_queued(&mut self, id: SlotId) {
        let Some(Source::Listener(listener)) = self.slot_mut(id) else {
            return;
        };
        let holds = usize::try_from(listener.options.backlog).unwrap_or(0) + 1;
        for _ in 0..holds.div_ceil(MAX_ACCEPTS_PER_EVENT) {
            if !self.accept_burst(id) {
                return;
            }
        }
    }
}
