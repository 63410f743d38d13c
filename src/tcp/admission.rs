//! A listener's counts: admitting each accepted connection against its
//! limits (the listener's total and the per-peer one), and giving its place
//! back once its descriptor closes.

use super::listener::Listener;
use super::peer::Peer;
use crate::reactor::{Reactor, SlotId, Source};

/// The place an accepted connection holds in its listener's counts, given
/// back when its descriptor closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Admission {
    pub(crate) listener: SlotId,
    /// It counts against the per-peer limit too, under its peer's
    /// [`PeerKey`](super::peer::PeerKey) (an IP address, or a UNIX peer's
    /// user id): from its accept, or, on a PROXY protocol listener, from
    /// the header that named the client (until then the peer is the proxy,
    /// whom the limit must not count).
    pub(crate) per_peer: bool,
}

impl Admission {
    /// A connection counted against both limits from its accept: one
    /// whose peer is known then.
    pub(crate) fn with_peer(listener: SlotId) -> Admission {
        Admission {
            listener,
            per_peer: true,
        }
    }
}

impl Listener {
    /// Counts a newly accepted connection from `peer`, or says which limit
    /// it is over. A connection whose peer a PROXY header has yet to name
    /// (`per_peer` false) counts against the listener's total only.
    pub(super) fn admit(&mut self, peer: &Peer, per_peer: bool) -> Result<(), &'static str> {
        if self
            .options
            .max_connections
            .is_some_and(|max| self.stats.open >= max)
        {
            return Err("the listener's connection limit");
        }
        if per_peer {
            self.admit_peer(peer)?;
        }
        self.stats.open += 1;
        self.warned_full = false;
        Ok(())
    }

    /// Counts a connection from `peer` against the per-peer limit, or says
    /// it is over.
    pub(super) fn admit_peer(&mut self, peer: &Peer) -> Result<(), &'static str> {
        if let (Some(max), Some(key)) = (self.options.max_connections_per_peer, peer.key()) {
            let count = self.per_peer.entry(key).or_insert(0);
            if *count >= max {
                return Err("the per-peer connection limit");
            }
            *count += 1;
        }
        self.warned_full = false;
        Ok(())
    }

    /// Undoes `admit` (and `admit_peer`, if `per_peer`) for a connection
    /// that was not kept.
    pub(super) fn release(&mut self, peer: &Peer, per_peer: bool) {
        self.stats.open -= 1;
        if !per_peer {
            return;
        }
        let Some(key) = peer.key() else {
            return;
        };
        if let Some(count) = self.per_peer.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.per_peer.remove(&key);
            }
        }
    }
}

impl Reactor {
    /// Gives back the place a connection from `peer` took in its
    /// listener's counts (`admission`; `None` for a connection no listener
    /// accepted), once its descriptor is closed.
    pub(crate) fn release_admission(&mut self, admission: Option<Admission>, peer: &Peer) {
        let Some(admission) = admission else {
            return;
        };
        if let Some(Source::Listener(l)) = self.slot_mut(admission.listener) {
            l.release(peer, admission.per_peer);
        }
    }
}
