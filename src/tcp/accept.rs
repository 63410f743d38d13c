//! The accept loop: bursts of `accept` on a readable listener, each
//! connection admitted against the limits, and the back-off when `accept`
//! fails for want of resources.

use std::io;

use log::{debug, warn};

use super::admission::Admission;
use crate::reactor::{Reactor, SlotId, Source, TimerAction, MAX_ACCEPTS_PER_EVENT};
use crate::rules::{concerns_only_this_connection, log_refusal, ACCEPT_RETRY};

impl Reactor {
    pub(crate) fn retry_accept(&mut self, id: SlotId) {
        if let Some(Source::Listener(listener)) = self.slot_mut(id) {
            listener.retry_scheduled = false;
            self.accept_ready(id);
        }
    }

    pub(crate) fn accept_ready(&mut self, id: SlotId) {
        if self.accept_burst(id) {
            self.defer(id, crate::reactor::Readiness::LEFTOVER);
        }
    }

    /// Accepts up to [`MAX_ACCEPTS_PER_EVENT`] connections; returns whether
    /// it stopped at that cap (more may wait) rather than at an empty queue,
    /// an error, or a closed listener.
    pub(super) fn accept_burst(&mut self, id: SlotId) -> bool {
        for _ in 0..MAX_ACCEPTS_PER_EVENT {
            let Some(Source::Listener(listener)) = self.slot_mut(id) else {
                return false;
            };
            let Some(socket) = &listener.socket else {
                return false;
            };
            match socket.accept() {
                Ok((stream, peer)) => {
                    if listener.backing_off {
                        listener.backing_off = false;
                        warn!("accepting on {} again", listener.addr);
                    }
                    // Behind a PROXY header, the peer is the proxy: the
                    // client is counted once the header names it.
                    let proxied = listener.options.proxy_protocol.is_some();
                    if let Err(why) = listener.admit(&peer, !proxied) {
                        // Accepted and closed at once: the client learns at
                        // once, rather than waiting in the backlog.
                        drop(stream);
                        listener.stats.refused += 1;
                        log_refusal(&mut listener.warned_full, &peer, why, &listener.addr);
                        continue;
                    }
                    let options = *listener.options;
                    let admission = Admission {
                        listener: id,
                        per_peer: !proxied,
                    };
                    if proxied {
                        self.await_proxy_header(stream, peer, admission, options);
                        continue;
                    }
                    match self.build_accepted(id, &peer) {
                        Some((protocol, tls)) => {
                            self.add_connection(stream, peer, protocol, admission, options, tls)
                        }
                        None => {
                            drop(stream);
                            self.release_admission(Some(admission), &peer);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if concerns_only_this_connection(&e) => {
                    debug!("accept on {} skipped a connection: {e}", listener.addr);
                }
                Err(e) => {
                    // Out of descriptors or memory: the pending connection stays
                    // in the backlog. Polling again would spin, so wait a little.
                    if !listener.backing_off {
                        listener.backing_off = true;
                        warn!(
                            "accept on {} failed: {e}; retrying every {} ms",
                            listener.addr,
                            ACCEPT_RETRY.as_millis()
                        );
                    }
                    if !listener.retry_scheduled {
                        listener.retry_scheduled = true;
                        self.schedule(ACCEPT_RETRY, TimerAction::RetryAccept(id));
                    }
                    return false;
                }
            }
        }
        true
    }
}
