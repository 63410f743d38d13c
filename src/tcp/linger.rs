//! Lingering closes: a cleanly closed connection keeps its descriptor until
//! the peer's FIN, so closing over unread input does not reset the peer and
//! destroy the tail of our last reply.

use std::io::{self, Read};
use std::net::Shutdown;

use log::debug;

use super::admission::Admission;
use super::peer::Peer;
use super::stream::Stream;
use crate::reactor::{Reactor, Slot, SlotId, Source, TimerAction};
use crate::rules::{LINGER_DISCARD_LIMIT, LINGER_TIMEOUT};
use crate::timer::TimerId;
use crate::transport::ConnectionId;

/// A cleanly closed connection waiting for the peer's FIN (see
/// [`Source::Lingering`]).
pub(crate) struct Lingering {
    stream: Stream,
    peer: Peer,
    timer: TimerId,
    discarded: usize,
    /// The listener it was accepted by: the descriptor still counts against
    /// its `max_connections` until it is closed.
    listener: Option<Admission>,
    /// Input now is a loss the peer must see (a stop's close): reset
    /// rather than discard.
    reset_on_input: bool,
}

impl Reactor {
    /// Shuts our writing side and keeps the descriptor, in the same slot,
    /// until the peer's FIN: closing a socket with unread input sends a
    /// reset, which can destroy the tail of our reply at the peer (an HTTP
    /// 400 sent while the client is still sending, say). Bounded by
    /// [`LINGER_TIMEOUT`] and [`LINGER_DISCARD_LIMIT`].
    ///
    /// With `wait_if_quiet` false, a peer that has sent nothing unread is
    /// not waited for: its socket is closed at once, which sends a FIN, not
    /// a reset, and an idle keep-alive peer does not hold up a stop. With
    /// `reset_on_input`, what the peer sends meanwhile resets the connection
    /// instead of being discarded in silence.
    pub(crate) fn linger(
        &mut self,
        id: ConnectionId,
        stream: Stream,
        peer: Peer,
        listener: Option<Admission>,
        wait_if_quiet: bool,
        reset_on_input: bool,
    ) {
        if stream.shutdown(Shutdown::Write).is_err() {
            drop(stream);
            self.release_admission(listener, &peer);
            return;
        }
        let slot = SlotId::from(id);
        let timer = self.schedule(LINGER_TIMEOUT, TimerAction::LingerTimeout(slot));
        let lingering = Lingering {
            stream,
            peer,
            timer,
            discarded: 0,
            listener,
            reset_on_input,
        };
        // The slot was just vacated, so it gets the same key back, and the
        // descriptor keeps its registration and token.
        let key = self.slots.insert(Slot {
            generation: id.generation,
            queued: false,
            source: Source::Lingering(lingering),
        });
        debug_assert_eq!(key, id.key as usize);
        // Input that arrived before the close raised no edge we will see again.
        self.linger_ready(slot);
        if !wait_if_quiet {
            if let Some(Source::Lingering(lingering)) = self.slot_mut(slot) {
                if lingering.discarded == 0 {
                    self.end_linger(slot, "nothing unread at stop");
                }
            }
        }
    }

    /// Discards what a lingering connection's peer sent; closes it at the
    /// peer's FIN, an error, or the discard limit.
    pub(crate) fn linger_ready(&mut self, id: SlotId) {
        let mut buf = std::mem::take(&mut self.read_buf);
        if buf.is_empty() {
            // Only while a read holds the shared buffer, which no path does
            // today; an empty buffer would read as end-of-file.
            buf = vec![0; 4096];
        }
        let end = match self.slot_mut(id) {
            Some(Source::Lingering(lingering)) => loop {
                match (&lingering.stream).read(&mut buf) {
                    Ok(0) => break Some("the peer closed"),
                    Ok(n) => {
                        lingering.discarded += n;
                        if lingering.reset_on_input {
                            lingering.stream.reset_on_close();
                            break Some("input after a stop's close: reset");
                        }
                        if lingering.discarded > LINGER_DISCARD_LIMIT {
                            break Some("discard limit reached");
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break Some("error"),
                }
            },
            _ => None,
        };
        if self.read_buf.is_empty() {
            self.read_buf = buf;
        }
        if let Some(why) = end {
            self.end_linger(id, why);
        }
    }

    /// Closes a lingering connection's descriptor, and gives its place in
    /// its listener's counts back.
    pub(crate) fn end_linger(&mut self, id: SlotId, why: &str) {
        if !matches!(self.slot_mut(id), Some(Source::Lingering(_))) {
            return;
        }
        if let Source::Lingering(lingering) = self.slots.remove(id.key as usize).source {
            self.cancel(lingering.timer);
            debug!(
                "closed lingering connection to {} ({why}, {} bytes discarded)",
                lingering.peer, lingering.discarded
            );
            let Lingering {
                stream,
                peer,
                listener,
                ..
            } = lingering;
            drop(stream);
            self.release_admission(listener, &peer);
        }
    }
}
