//! Connecting to a host name, or to several addresses: Happy Eyeballs
//! (RFC 8305; Twisted's `HostnameEndpoint` does the same).
//!
//! A *dial* is a client connection still looking for its socket. Its
//! `ConnectionId` is the one `connect_tcp` returned, and its slot holds a
//! [`Conn`] in `Connecting` whose socket is a placeholder (never
//! registered, never written to: writes wait in the buffer until the
//! connect completes, as for any connect), so everything a caller may do
//! to a connection under way works the same on a dial: writing, watermarks,
//! pausing reading, `lose_connection` to cancel it. The dial itself is
//! one enum ([`Dial`]) in the connection's client origin:
//!
//! ```text
//! Resolving ──addresses──▶ Attempting { pending, running, stagger, last_error }
//!     │ no address               │ an attempt connects: its socket moves into the
//!     ▼                          │ dial's slot, the others are aborted → made
//!   failed (Unresolved)          ▼ all attempts failed → failed (the last error)
//! ```
//!
//! The rules (RFC 8305 sections 4 and 5):
//!
//! - **Order.** Addresses in the resolver's order, families interleaved:
//!   the first address's family first, then the other, alternating
//!   ([`interleave`]), duplicates dropped.
//! - **Stagger.** One attempt starts at once; the next after
//!   [`CONNECTION_ATTEMPT_DELAY`] (or the reactor's
//!   [`set_connection_attempt_delay`](Reactor::set_connection_attempt_delay)),
//!   or as soon as an attempt fails, whichever comes first; earlier
//!   attempts keep going meanwhile.
//! - **Winner.** The first attempt to connect is the connection: its socket
//!   takes the dial's slot (so the id the caller holds names it), the
//!   others are aborted and their slots freed; they were never
//!   connections, and no callback hears of them.
//! - **Failure.** The factory's `client_connection_failed` runs once: with
//!   the last attempt's error once every address failed, with
//!   [`Reason::Unresolved`] if the name gave no address, with
//!   [`Reason::TimedOut`] when the connect timeout (which covers the lookup
//!   and every attempt) passes first.
//!
//! Each attempt is a connection slot of its own (`Origin::Attempt`), so its
//! events reach it as any connect's do, and [`Reactor::connection_count`]
//! counts it while it runs.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use log::{debug, warn};
use mio::net::TcpStream;
use mio::Interest;

use super::connection::{ClientOrigin, Conn, Origin};
use super::lent::TlsHost;
use super::peer::Peer;
use super::state::ConnState;
use super::stream::Stream;
use crate::protocol::ClientFactory;
use crate::reactor::{key_u32, Reactor, Readiness, Slot, SlotId, Source, TimerAction};
use crate::reason::Reason;
use crate::timer::TimerId;
use crate::transport::ConnectionId;

/// How long Happy Eyeballs waits for an attempt before starting the next
/// one alongside it: RFC 8305's recommended "Connection Attempt Delay".
///
/// ```
/// assert_eq!(reactor::CONNECTION_ATTEMPT_DELAY.as_millis(), 250);
/// ```
pub const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// The least delay between attempts: RFC 8305 says it MUST NOT be less
/// than 10 ms, so that a dial cannot flood the network.
pub(crate) const MIN_ATTEMPT_DELAY: Duration = Duration::from_millis(10);

/// Where a dial stands.
pub(crate) enum Dial {
    /// Waiting for the resolver's answer about `host`.
    Resolving { host: String, port: u16 },
    /// Trying addresses.
    Attempting(Attempts),
}

/// A dial's attempts.
pub(crate) struct Attempts {
    /// Addresses not tried yet, in the order to try them.
    pending: VecDeque<SocketAddr>,
    /// Attempts under way.
    running: Vec<ConnectionId>,
    /// Starts the next attempt (the stagger, or the dial's first step).
    next: Option<TimerId>,
    /// Why the last attempt to fail failed.
    last_error: Option<Reason>,
}

/// `addrs` in the order Happy Eyeballs tries them (RFC 8305 section 4):
/// the first address's family first, then one of the other family, and so
/// on alternating; each family in the order given; duplicates dropped.
pub(crate) fn interleave(addrs: Vec<SocketAddr>) -> VecDeque<SocketAddr> {
    let mut unique = Vec::with_capacity(addrs.len());
    for addr in addrs {
        if !unique.contains(&addr) {
            unique.push(addr);
        }
    }
    let Some(first) = unique.first() else {
        return VecDeque::new();
    };
    let preferred_v6 = first.is_ipv6();
    let (mut preferred, mut other): (VecDeque<_>, VecDeque<_>) = unique
        .into_iter()
        .partition(|a| a.is_ipv6() == preferred_v6);
    let mut order = VecDeque::with_capacity(preferred.len() + other.len());
    loop {
        match (preferred.pop_front(), other.pop_front()) {
            (None, None) => return order,
            (a, b) => order.extend(a.into_iter().chain(b)),
        }
    }
}

impl Reactor {
    /// Sets how long Happy Eyeballs waits for a connection attempt before
    /// starting the next address's alongside it (default
    /// [`CONNECTION_ATTEMPT_DELAY`]; at least 10 ms, as RFC 8305 requires).
    /// Applies to attempts started from now on.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut reactor = reactor::Reactor::new()?;
    /// // A network where the first family's SYNs are known to be lost.
    /// reactor.set_connection_attempt_delay(Duration::from_millis(100));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_connection_attempt_delay(&mut self, delay: Duration) {
        self.attempt_delay = delay.max(MIN_ATTEMPT_DELAY);
    }

    /// Starts dialing: `dial` begins resolving or attempting at the next
    /// timers phase (so a failure is never reported inside `connect_tcp`,
    /// and a factory that reconnects from `client_connection_failed`
    /// retries once per turn). `port` is the destination's, for the
    /// placeholder peer address.
    pub(crate) fn dial(
        &mut self,
        dial: Dial,
        port: u16,
        factory: Box<dyn ClientFactory>,
        timeout: Duration,
        tls: TlsHost,
    ) -> Result<ConnectionId, (Box<dyn ClientFactory>, io::Error)> {
        let placeholder = match placeholder() {
            Ok(stream) => stream,
            Err(e) => return Err((factory, e)),
        };
        let key = match key_u32(self.slots.vacant_key()) {
            Ok(key) => key,
            Err(e) => return Err((factory, e)),
        };
        let id = ConnectionId::from(SlotId {
            key,
            generation: self.next_generation(),
        });
        let connect_timer = Some(self.schedule(timeout, TimerAction::ConnectTimeout(id)));
        let first = self.schedule(
            Duration::ZERO,
            TimerAction::Call(Box::new(move |r| r.dial_begin(id))),
        );
        let dial = match dial {
            Dial::Attempting(mut attempts) => {
                attempts.next = Some(first);
                Dial::Attempting(attempts)
            }
            resolving => resolving,
        };
        let origin = Origin::Client(Box::new(ClientOrigin {
            factory,
            connect_timer,
            dial: Some(dial),
        }));
        let peer = Peer::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
        let mut conn = Conn::new(placeholder, peer, None, ConnState::Connecting, origin);
        conn.tls = tls;
        let key = self.slots.insert(Slot {
            generation: id.generation,
            queued: false,
            source: Source::Conn(conn),
        });
        debug_assert_eq!(key, id.key as usize, "vacant_key names the next insert");
        Ok(id)
    }

    /// A dial that is still dialing (not made, not closing).
    fn dialing(&mut self, id: ConnectionId) -> Option<&mut Dial> {
        let conn = self.conn_mut(id)?;
        if conn.state != ConnState::Connecting {
            return None;
        }
        match &mut conn.origin {
            Origin::Client(client) => client.dial.as_mut(),
            _ => None,
        }
    }

    /// Whether connection `id` is a dial still looking for its socket (its
    /// own socket is a placeholder then: it never connects by itself).
    pub(crate) fn is_dialing(&mut self, id: ConnectionId) -> bool {
        self.dialing(id).is_some()
    }

    /// The dial's first step: look its name up, or start its first attempt.
    fn dial_begin(&mut self, id: ConnectionId) {
        match self.dialing(id) {
            Some(Dial::Resolving { host, port }) => {
                let (host, port) = (host.clone(), *port);
                debug!("{id}: looking up {host:?}");
                if let Err(e) = self.resolve(id, host.clone(), port) {
                    let why = format!("the resolver is busy: {e}");
                    self.queue_close(id, Reason::Unresolved { host, why });
                }
            }
            Some(Dial::Attempting(attempts)) => {
                attempts.next = None;
                self.next_attempt(id);
            }
            None => {}
        }
    }

    /// The resolver answered for dial `id` (if it is still dialing: it may
    /// have timed out or been cancelled meanwhile).
    pub(crate) fn resolved(&mut self, id: ConnectionId, result: io::Result<Vec<SocketAddr>>) {
        let Some(dial) = self.dialing(id) else {
            return;
        };
        let Dial::Resolving { host, .. } = dial else {
            return;
        };
        let host = mem::take(host);
        let addrs = match result {
            Ok(addrs) if !addrs.is_empty() => addrs,
            Ok(_) => {
                let why = "the name has no address".to_owned();
                return self.queue_close(id, Reason::Unresolved { host, why });
            }
            Err(e) => {
                debug!("{id}: cannot resolve {host:?}: {e}");
                let why = e.to_string();
                return self.queue_close(id, Reason::Unresolved { host, why });
            }
        };
        debug!("{id}: {host:?} is {addrs:?}");
        *dial = Dial::Attempting(Attempts::new(addrs));
        self.next_attempt(id);
    }

    /// The attempts of dial `id`, if it is still dialing and past its lookup.
    fn attempts(&mut self, id: ConnectionId) -> Option<&mut Attempts> {
        match self.dialing(id)? {
            Dial::Attempting(attempts) => Some(attempts),
            Dial::Resolving { .. } => None,
        }
    }

    /// Starts the next address's attempt now (the stagger passed, or an
    /// attempt failed), and schedules the one after; fails the dial if
    /// nothing is left to try and nothing runs.
    fn next_attempt(&mut self, id: ConnectionId) {
        // A stagger still pending is overtaken: the next attempt starts now.
        if let Some(timer) = self.attempts(id).and_then(|a| a.next.take()) {
            self.cancel(timer);
        }
        loop {
            let Some(attempts) = self.attempts(id) else {
                return;
            };
            let Some(addr) = attempts.pending.pop_front() else {
                if attempts.running.is_empty() {
                    let reason = attempts.last_error.take().unwrap_or(Reason::Error {
                        kind: io::ErrorKind::InvalidInput,
                        os_code: None,
                    });
                    debug!("{id}: every address failed; the last: {reason}");
                    self.queue_close(id, reason);
                }
                return;
            };
            match self.start_attempt(id, addr) {
                Ok(attempt) => {
                    let delay = self.attempt_delay;
                    let Some(attempts) = self.attempts(id) else {
                        return;
                    };
                    attempts.running.push(attempt);
                    if !attempts.pending.is_empty() {
                        let stagger = TimerAction::Call(Box::new(move |r| r.stagger_passed(id)));
                        let timer = self.schedule(delay, stagger);
                        if let Some(attempts) = self.attempts(id) {
                            attempts.next = Some(timer);
                        }
                    }
                    return;
                }
                // An attempt that fails at once: the next starts now.
                Err(reason) => {
                    if let Some(attempts) = self.attempts(id) {
                        attempts.last_error = Some(reason);
                    }
                }
            }
        }
    }

    /// The stagger timer of dial `id` fired: the next attempt starts.
    fn stagger_passed(&mut self, id: ConnectionId) {
        if let Some(attempts) = self.attempts(id) {
            // It fired: nothing to cancel.
            attempts.next = None;
            self.next_attempt(id);
        }
    }

    /// Starts connecting to `addr` for dial `dial`, in a slot of its own.
    fn start_attempt(
        &mut self,
        dial: ConnectionId,
        addr: SocketAddr,
    ) -> Result<ConnectionId, Reason> {
        let started = TcpStream::connect(addr).and_then(|mut stream| {
            let id = SlotId {
                key: key_u32(self.slots.vacant_key())?,
                generation: self.next_generation(),
            };
            self.poll.registry().register(
                &mut stream,
                id.token(),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok((stream, id))
        });
        let (stream, id) = match started {
            Ok(started) => started,
            Err(e) => {
                debug!("{dial}: attempt to {addr} failed at once: {e}");
                return Err(Reason::from(e));
            }
        };
        let conn = Conn::new(
            stream,
            Peer::Ip(addr),
            None,
            ConnState::Connecting,
            Origin::Attempt(dial),
        );
        let key = self.slots.insert(Slot {
            generation: id.generation,
            queued: false,
            source: Source::Conn(conn),
        });
        debug_assert_eq!(key, id.key as usize, "vacant_key names the next insert");
        let attempt = ConnectionId::from(id);
        debug!("{dial}: attempt {attempt} to {addr} started");
        Ok(attempt)
    }

    /// Attempt `attempt` of dial `dial` connected: it wins. Its socket
    /// moves into the dial's slot, the other attempts are aborted, and the
    /// dial completes as any connect does.
    pub(crate) fn attempt_won(
        &mut self,
        attempt: ConnectionId,
        dial: ConnectionId,
        readiness: Readiness,
    ) {
        if self.dialing(dial).is_none() {
            // The dial is over (a race lost in the same turn): not needed.
            return self.queue_close(attempt, Reason::Aborted);
        }
        let Source::Conn(won) = self.slots.remove(attempt.key as usize).source else {
            return;
        };
        let Conn {
            mut stream, peer, ..
        } = won;
        let token = SlotId::from(dial).token();
        let moved = self.poll.registry().reregister(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = moved {
            // It cannot be watched as the dial: it counts as failed.
            drop(stream);
            return self.attempt_ended(dial, attempt, Reason::from(e));
        }
        let Some(conn) = self.conn_mut(dial) else {
            return;
        };
        // TCP_NODELAY set on the dial (or wanted by TLS) carries over.
        let nodelay = match &conn.stream {
            Stream::Tcp(placeholder) => placeholder.nodelay().unwrap_or(false),
            _ => false,
        } || tls_wants_nodelay(&conn.tls);
        let placeholder = mem::replace(&mut conn.stream, stream);
        drop(placeholder);
        debug!("{dial}: attempt {attempt} to {peer} won");
        if nodelay {
            if let Err(e) = conn.stream.set_nodelay(true) {
                warn!("{peer}: cannot set TCP_NODELAY: {e}");
            }
        }
        conn.peer = peer;
        let state = match &mut conn.origin {
            Origin::Client(client) => client.dial.take(),
            _ => None,
        };
        if let Some(Dial::Attempting(mut attempts)) = state {
            attempts.running.retain(|&a| a != attempt);
            self.end_dial(Dial::Attempting(attempts));
        }
        self.finish_connect(dial, readiness);
    }

    /// Attempt `attempt` of dial `dial` closed (it failed, or was aborted):
    /// the next address's attempt starts now, or the dial fails if that
    /// was the last.
    pub(crate) fn attempt_ended(
        &mut self,
        dial: ConnectionId,
        attempt: ConnectionId,
        reason: Reason,
    ) {
        let Some(attempts) = self.attempts(dial) else {
            return;
        };
        attempts.running.retain(|&a| a != attempt);
        debug!("{dial}: attempt {attempt} failed: {reason}");
        attempts.last_error = Some(reason);
        self.next_attempt(dial);
    }

    /// A dial is over (made, failed, timed out, cancelled): its attempts
    /// still running are aborted, its pending timer cancelled.
    pub(crate) fn end_dial(&mut self, dial: Dial) {
        let Dial::Attempting(attempts) = dial else {
            // A lookup in flight: its answer will find no dial.
            return;
        };
        if let Some(timer) = attempts.next {
            self.cancel(timer);
        }
        for attempt in attempts.running {
            self.queue_close(attempt, Reason::Aborted);
        }
    }
}

impl Attempts {
    /// Attempts at `addrs`, in Happy Eyeballs' order, none started.
    pub(crate) fn new(addrs: Vec<SocketAddr>) -> Attempts {
        Attempts {
            pending: interleave(addrs),
            running: Vec::new(),
            next: None,
            last_error: None,
        }
    }
}

/// A TLS connection's socket has TCP_NODELAY set (see `tcp/tls.rs`).
fn tls_wants_nodelay(tls: &TlsHost) -> bool {
    #[cfg(feature = "tls")]
    return tls.is_tls();
    #[cfg(not(feature = "tls"))]
    {
        let _ = tls;
        false
    }
}

/// The socket a dial holds until an attempt wins: a TCP socket never
/// connected, never registered, never written to (writes to a connection
/// still connecting wait in its buffer), so that the dial's slot is a
/// connection like any other meanwhile.
fn placeholder() -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    Ok(TcpStream::from_std(socket.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn families_alternate_starting_with_the_first_address_family() {
        let given = addrs(&["[::1]:1", "[::2]:1", "[::3]:1", "10.0.0.1:1", "10.0.0.2:1"]);
        let want = addrs(&["[::1]:1", "10.0.0.1:1", "[::2]:1", "10.0.0.2:1", "[::3]:1"]);
        assert_eq!(Vec::from(interleave(given)), want);
        let given = addrs(&["10.0.0.1:1", "[::1]:1", "[::2]:1", "10.0.0.2:1"]);
        let want = addrs(&["10.0.0.1:1", "[::1]:1", "10.0.0.2:1", "[::2]:1"]);
        assert_eq!(Vec::from(interleave(given)), want);
    }

    #[test]
    fn duplicates_are_tried_once_and_one_family_keeps_its_order() {
        let given = addrs(&["10.0.0.2:1", "10.0.0.1:1", "10.0.0.2:1"]);
        assert_eq!(
            Vec::from(interleave(given)),
            addrs(&["10.0.0.2:1", "10.0.0.1:1"])
        );
        assert!(interleave(Vec::new()).is_empty());
    }
}
