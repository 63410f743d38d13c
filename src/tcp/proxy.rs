//! Connections accepted by a PROXY protocol listener, before they are made
//! (see [`crate::proxy`] for the rules).
//!
//! The header is peeked at, not read, until it is whole: nothing is
//! buffered per connection, a header split across segments is parsed again
//! from its start as each segment comes (at most [`MAX_HEADER`] bytes), and
//! once it is whole exactly its bytes are read off the socket. What follows
//! stays in the socket for the protocol's first `data_received`, so nothing
//! that came with the header is lost. The header timeout is the connection's
//! deadline while it waits.

use std::io::{self, Read};
use std::time::Duration;

use log::{debug, warn};

use super::admission::Admission;
use super::connection::Origin;
use super::listener::ListenOptions;
use super::peer::Peer;
use super::state::{ConnState, Deadline};
use super::stream::Stream;
use crate::proxy::{parse_header, ProxyHeader, ProxyHeaderError, ProxyProtocol, MAX_HEADER};
use crate::reactor::{Reactor, Readiness, SlotId, Source, TimerAction};
use crate::reason::Reason;
use crate::rules::{log_refusal, refusal_level};
use crate::transport::ConnectionId;

/// What a connection waiting for its header has sent so far.
enum Seen {
    /// Nothing yet: wait for the next edge.
    Nothing,
    /// The peer closed, having sent nothing.
    Closed,
    /// `received` bytes, and what they are.
    Bytes {
        received: usize,
        parsed: Result<Option<ProxyHeader>, ProxyHeaderError>,
    },
    /// The socket failed (a reset).
    Failed(io::Error),
}

impl Reactor {
    /// A connection `admission.listener` accepted from `peer` (the proxy,
    /// over TCP or a UNIX socket): registered in
    /// [`ConnState::AwaitingProxyHeader`] under the header timeout, and
    /// looked at at once, since a proxy sends the header with its first
    /// segment and it is usually there already.
    pub(super) fn await_proxy_header(
        &mut self,
        stream: Stream,
        peer: Peer,
        admission: Admission,
        options: ListenOptions,
    ) {
        let state = ConnState::AwaitingProxyHeader;
        let Some(id) = self.insert_accepted(stream, peer, state, admission) else {
            return;
        };
        debug!("connection {id} waits for its PROXY header");
        let timer = self.schedule(options.proxy_header_timeout, TimerAction::Deadline(id));
        if let Some(conn) = self.conn_mut(id) {
            conn.deadline = Deadline::Pending(timer);
        }
        let now = Readiness {
            readable: true,
            ..Readiness::default()
        };
        self.proxy_header_ready(id, now);
    }

    /// Connection `id`, waiting for its header, is readable (or failed):
    /// it is made once the header is whole, closed if it is wrong, and
    /// left waiting otherwise.
    pub(crate) fn proxy_header_ready(&mut self, id: ConnectionId, readiness: Readiness) {
        let Some((mode, _)) = self.header_rules(id) else {
            return;
        };
        match self.peek_header(id) {
            Seen::Nothing => {}
            Seen::Failed(e) => {
                debug!("connection {id} failed before its PROXY header: {e}");
                self.queue_close(id, Reason::from(e));
            }
            Seen::Closed => match mode {
                // Nothing sent, then a FIN: a direct client (a check that
                // only connects), told as any other.
                ProxyProtocol::Optional => self.make_direct(id, readiness),
                ProxyProtocol::Required => {
                    self.header_failed(id, ProxyHeaderError::Truncated { received: 0 })
                }
            },
            Seen::Bytes { received, parsed } => match parsed {
                Ok(Some(header)) => self.take_header(id, header, readiness),
                Ok(None) if readiness.read_closed => {
                    self.header_failed(id, ProxyHeaderError::Truncated { received })
                }
                Ok(None) => {}
                Err(ProxyHeaderError::NotProxyProtocol) if mode == ProxyProtocol::Optional => {
                    self.make_direct(id, readiness)
                }
                Err(why) => self.header_failed(id, why),
            },
        }
    }

    /// The header timeout passed: the connection is closed, unless an
    /// `Optional` listener's has sent nothing at all (a direct client that
    /// waits for the server to speak first).
    pub(crate) fn proxy_header_late(&mut self, id: ConnectionId) {
        // What came in the timer's own turn, not yet read, still counts.
        let readable = Readiness {
            readable: true,
            ..Readiness::default()
        };
        self.proxy_header_ready(id, readable);
        if self.conn(id).map(|c| c.state) != Some(ConnState::AwaitingProxyHeader) {
            return;
        }
        let Some((mode, after)) = self.header_rules(id) else {
            return;
        };
        let received = match self.peek_header(id) {
            Seen::Nothing | Seen::Closed => 0,
            Seen::Bytes { received, .. } => received,
            Seen::Failed(e) => {
                self.queue_close(id, Reason::from(e));
                return;
            }
        };
        if received == 0 && mode == ProxyProtocol::Optional {
            debug!("connection {id} sent nothing within {after:?}: a direct client");
            self.make_direct(id, Readiness::LEFTOVER);
            return;
        }
        self.header_failed(id, ProxyHeaderError::TimedOut { after, received });
    }

    /// The mode and header timeout of the listener that accepted `id`; if
    /// that listener was stopped meanwhile, nothing can build the
    /// connection's protocol, so it is closed and `None` returned.
    fn header_rules(&mut self, id: ConnectionId) -> Option<(ProxyProtocol, Duration)> {
        let Origin::Accepted(admission) = &self.conn(id)?.origin else {
            return None;
        };
        let options = self.listener_options(admission.listener);
        match options.and_then(|o| o.proxy_protocol.map(|m| (m, o.proxy_header_timeout))) {
            Some(rules) => Some(rules),
            None => {
                debug!("connection {id}: its listener stopped before its PROXY header came");
                self.queue_close(id, Reason::Aborted);
                None
            }
        }
    }

    /// Peeks at what connection `id` has received, and parses it.
    fn peek_header(&mut self, id: ConnectionId) -> Seen {
        let mut buf = std::mem::take(&mut self.read_buf);
        let seen = match self.conn(id) {
            Some(conn) => peek(&conn.stream, &mut buf),
            None => Seen::Nothing,
        };
        self.read_buf = buf;
        seen
    }

    /// The header is whole: its bytes are read off the socket and the
    /// connection is made under the client's address (its own, for `LOCAL`
    /// and the like).
    fn take_header(&mut self, id: ConnectionId, header: ProxyHeader, readiness: Readiness) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let consumed = match self.conn(id) {
            // A peek has just seen these bytes queued.
            Some(conn) => (&conn.stream).read_exact(&mut buf[..header.len]),
            None => Ok(()),
        };
        self.read_buf = buf;
        if let Err(e) = consumed {
            debug!("connection {id} failed reading its PROXY header: {e}");
            self.queue_close(id, Reason::from(e));
            return;
        }
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let proxy = &conn.peer;
        // A header without addresses (`LOCAL`, a proxy's own health check;
        // or a family other than TCP) leaves the connection the proxy's.
        let client = header
            .addresses
            .map_or_else(|| proxy.clone(), |a| Peer::Ip(a.source));
        debug!(
            "connection {id}: PROXY v{} header from {proxy} names {client}",
            header.version
        );
        self.make_proxied(id, client, readiness);
    }

    /// An `Optional` listener's connection without a header: made under
    /// its own address, with nothing read.
    fn make_direct(&mut self, id: ConnectionId, readiness: Readiness) {
        let Some(conn) = self.conn(id) else {
            return;
        };
        let peer = conn.peer.clone();
        debug!("connection {id} from {peer} sent no PROXY header: a direct client");
        self.make_proxied(id, peer, readiness);
    }

    /// Makes connection `id` as the client `client`: counted against the
    /// per-peer limit under that address, its protocol built for it, then
    /// what came after the header read, and, if the reactor is stopping,
    /// its protocol asked what to do, as those made before the stop were.
    fn make_proxied(&mut self, id: ConnectionId, client: Peer, readiness: Readiness) {
        let now = self.turn_now;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Origin::Accepted(admission) = conn.origin else {
            return;
        };
        let timer = std::mem::take(&mut conn.deadline).timer();
        conn.peer = client.clone();
        conn.last_activity = now;
        if let Some(timer) = timer {
            self.cancel(timer);
        }
        let Some(options) = self.listener_options(admission.listener) else {
            self.queue_close(id, Reason::Aborted);
            return;
        };
        if !self.admit_proxied(admission.listener, &client) {
            // Accepted and closed at once, as over a limit at accept.
            self.queue_close(id, Reason::Aborted);
            return;
        }
        if let Some(conn) = self.conn_mut(id) {
            conn.origin = Origin::Accepted(Admission {
                per_peer: true,
                ..admission
            });
        }
        let Some((protocol, tls)) = self.build_accepted(admission.listener, &client) else {
            self.queue_close(id, Reason::Aborted);
            return;
        };
        self.start_accepted(id, protocol, tls, options);
        // The header's segment raised the only edge the bytes after it
        // will get: read them to the end now.
        self.read(
            id,
            Readiness {
                readable: true,
                read_closed: readiness.read_closed,
                leftover: true,
                ..Readiness::default()
            },
        );
        if self.is_stopping() && self.is_connected(id) {
            self.ask_to_stop(id);
        }
    }

    /// Counts a connection whose PROXY header named its client `peer`
    /// against the per-peer limit; over it, the refusal is counted and
    /// logged as at accept, and false returned.
    pub(super) fn admit_proxied(&mut self, listener: SlotId, peer: &Peer) -> bool {
        let Some(Source::Listener(l)) = self.slot_mut(listener) else {
            return false;
        };
        l.warned_header = false;
        match l.admit_peer(peer) {
            Ok(()) => true,
            Err(why) => {
                l.stats.refused += 1;
                log_refusal(&mut l.warned_full, peer, why, &l.addr);
                false
            }
        }
    }

    /// Counts a connection closed for its PROXY header and logs why: a
    /// warning for the first failure since the last good header (the
    /// proxy's configuration, or who can reach the port, is wrong), debug
    /// for the rest of the burst and for a peer that closed having sent
    /// nothing (a port scan, a check that only connects).
    pub(super) fn count_header_failure(
        &mut self,
        listener: SlotId,
        peer: &Peer,
        why: &ProxyHeaderError,
    ) {
        let Some(Source::Listener(l)) = self.slot_mut(listener) else {
            debug!("{peer}: closed before it was made: {why}");
            return;
        };
        l.stats.proxy_header_failures += 1;
        let silent = *why == ProxyHeaderError::Truncated { received: 0 };
        let level = if silent {
            log::Level::Debug
        } else {
            refusal_level(&mut l.warned_header)
        };
        match level {
            log::Level::Warn => warn!(
                "{peer}: closed before it was made, on {}: {why} \
                 (further PROXY header failures logged at debug until a good one)",
                l.addr
            ),
            _ => debug!("{peer}: closed before it was made, on {}: {why}", l.addr),
        }
    }

    /// Closes connection `id` for its header, with a reset, and counts and
    /// logs why.
    fn header_failed(&mut self, id: ConnectionId, why: ProxyHeaderError) {
        let Some(conn) = self.conn(id) else {
            return;
        };
        // A reset on TCP; on a UNIX socket the peeked, unread header
        // makes the close one.
        conn.stream.reset_on_close();
        let peer = conn.peer.clone();
        if let Origin::Accepted(admission) = conn.origin {
            self.count_header_failure(admission.listener, &peer, &why);
        }
        self.queue_close(id, Reason::ProxyHeader(why));
    }
}

/// Peeks at what `stream` has received (at most [`MAX_HEADER`] bytes).
fn peek(stream: &Stream, buf: &mut [u8]) -> Seen {
    let window = buf.len().min(MAX_HEADER);
    loop {
        return match stream.peek(&mut buf[..window]) {
            Ok(0) => Seen::Closed,
            Ok(received) => Seen::Bytes {
                received,
                parsed: parse_header(&buf[..received]),
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Seen::Nothing,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Seen::Failed(e),
        };
    }
}
