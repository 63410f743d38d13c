//! The TLS layer itself: a [`Protocol`] that wraps another, encrypting what
//! it writes and decrypting what it receives.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use log::{debug, warn};
use rustls::Connection;

use super::transport::{LayerState, TlsTransport};
use super::{TlsInfo, TlsRole};
use crate::protocol::{OnStop, Protocol, Timeout};
use crate::reason::Reason;
use crate::transport::Transport;

/// The timer tag the layer uses for its handshake timeout, while the
/// handshake runs; the wrapped protocol's timers pass through untouched.
const HANDSHAKE_TIMER_TAG: u64 = u64::MAX;

/// Where the layer is with the handshake and the wrapped protocol.
#[derive(Debug)]
pub(crate) enum Phase {
    /// The handshake is under way. `inner_made`: the wrapped protocol had
    /// `connection_made` already (a [`start_tls`](crate::Transport::start_tls)
    /// upgrade), so completing the handshake tells it nothing new.
    Handshaking { inner_made: bool },
    /// The handshake completed; the wrapped protocol is made.
    Open,
    /// The connection is ending for `reason` (a TLS error, a handshake
    /// timeout, an overflow); nothing more is read or written.
    Failed { reason: Reason, inner_made: bool },
}

/// Where the wrapped protocol's own close stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Not asked.
    No,
    /// `lose_connection` (`write_only`: `lose_write_connection`) was asked:
    /// close_notify goes out once pending plaintext is encrypted (and, if
    /// it is still running, the handshake completes).
    Asked { write_only: bool },
    /// close_notify went out; later writes are dropped.
    Sent,
}

/// A protocol wrapped in TLS: Twisted's `TLSMemoryBIOProtocol`.
///
/// Runs anywhere a [`Protocol`] does. On the reactor, use
/// [`Reactor::listen_tls`](crate::Reactor::listen_tls) and
/// [`Reactor::connect_tls`](crate::Reactor::connect_tls) instead, which
/// also route [`Reactor::write_to`](crate::Reactor::write_to) from other
/// connections through the layer; wrap a protocol yourself for the
/// [`threaded`](crate::threaded) model (see [`TlsFactory`](super::TlsFactory))
/// or for a test over [`testing::Pipe`](crate::testing::Pipe).
///
/// The wrapped protocol's `connection_made` runs once the handshake
/// completes; until then it is not called at all, and if the handshake
/// fails it never is. The layer reserves the timer tag `u64::MAX` while
/// the handshake runs.
pub struct TlsProtocol {
    tls: Connection,
    /// `None` only on the reactor, between callbacks: the reactor keeps the
    /// wrapped protocol in the connection's slot and lends it for each one.
    inner: Option<Box<dyn Protocol>>,
    state: LayerState,
}

impl TlsProtocol {
    /// Wraps `inner` in TLS, playing `role`. Errors: rustls refused the
    /// configuration.
    pub fn new(role: TlsRole, inner: Box<dyn Protocol>) -> io::Result<TlsProtocol> {
        let mut layer = TlsProtocol::unattached(role, false)?;
        layer.inner = Some(inner);
        Ok(layer)
    }

    /// Aborts the connection if the handshake has not completed `timeout`
    /// after the connection was made (default [`DEFAULT_HANDSHAKE_TIMEOUT`](super::DEFAULT_HANDSHAKE_TIMEOUT)).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.state.handshake_timeout = timeout;
        self
    }

    /// A layer with no protocol inside yet: the reactor lends it one per
    /// callback. `inner_made`: the protocol is already made (STARTTLS).
    pub(crate) fn unattached(role: TlsRole, inner_made: bool) -> io::Result<TlsProtocol> {
        let (mut tls, server_name): (Connection, _) = match role {
            TlsRole::Server(config) => (
                rustls::ServerConnection::new(config)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
                    .into(),
                None,
            ),
            TlsRole::Client {
                config,
                server_name,
            } => {
                let name = server_name.to_str().into_owned();
                (
                    rustls::ClientConnection::new(config, server_name)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
                        .into(),
                    Some(name),
                )
            }
        };
        // Our own cap bounds what waits (the connection's write buffer
        // limit); rustls must take whatever one callback wrote at once.
        tls.set_buffer_limit(None);
        Ok(TlsProtocol {
            tls,
            inner: None,
            state: LayerState::new(Phase::Handshaking { inner_made }, server_name),
        })
    }

    pub(crate) fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.state.handshake_timeout = timeout;
    }

    /// Lends the layer its protocol for one callback.
    pub(crate) fn attach(&mut self, inner: Box<dyn Protocol>) {
        self.inner = Some(inner);
    }

    /// Takes the lent protocol back.
    pub(crate) fn detach(&mut self) -> Option<Box<dyn Protocol>> {
        self.inner.take()
    }

    /// Whether the wrapped protocol was made, so is owed `connection_lost`
    /// (and a client factory `client_connection_lost` rather than
    /// `client_connection_failed`).
    pub(crate) fn inner_made(&self) -> bool {
        self.state.inner_made()
    }

    /// Plaintext accepted but not yet encrypted.
    pub(crate) fn pending(&self) -> usize {
        self.state.plain_out.len()
    }

    /// Takes plaintext written to this connection from elsewhere (the
    /// reactor's `write_to`); it is encrypted by the next [`flush`](Self::flush).
    pub(crate) fn write_plain(&mut self, chunks: &[&[u8]]) {
        for chunk in chunks {
            self.state.plain_out.extend_from_slice(chunk);
        }
    }

    /// Asks for the close `lose_connection` (or `lose_write_connection`)
    /// makes from inside, if the handshake is done; carried out by the
    /// next [`flush`](Self::flush). False if the layer cannot say
    /// close_notify now (the caller closes the socket instead).
    pub(crate) fn ask_close(&mut self, write_only: bool) -> bool {
        if !matches!(self.state.phase, Phase::Open) {
            return false;
        }
        if self.state.closing == Closing::No {
            self.state.closing = Closing::Asked { write_only };
        }
        true
    }

    /// Starts the handshake: arms its timeout and sends what rustls has to
    /// say first (a client's hello).
    pub(crate) fn start(&mut self, outer: &mut dyn Transport) {
        if let Phase::Handshaking { .. } = self.state.phase {
            if self.state.handshake_timer.is_none() {
                self.state.handshake_timer =
                    Some(outer.call_later(self.state.handshake_timeout, HANDSHAKE_TIMER_TAG));
            }
        }
        self.flush(outer);
    }

    /// Encrypts the plaintext pending (once the handshake is done), carries
    /// out a close the protocol asked for, and hands every record rustls has
    /// ready to `outer` at once: the reactor sends them with one `write`.
    pub(crate) fn flush(&mut self, outer: &mut dyn Transport) {
        if let Phase::Open = self.state.phase {
            if !self.state.plain_out.is_empty() && self.state.closing != Closing::Sent {
                // With no buffer limit, rustls takes it all.
                let _ = self.tls.writer().write_all(&self.state.plain_out);
            }
            self.state.plain_out.clear();
            if self.state.plain_out.capacity() > crate::rules::DEFAULT_HIGH_WATERMARK {
                self.state.plain_out = Vec::new();
            }
            if let Closing::Asked { write_only } = self.state.closing {
                self.state.closing = Closing::Sent;
                self.tls.send_close_notify();
                self.write_records(outer);
                if write_only {
                    outer.lose_write_connection();
                } else {
                    outer.lose_connection();
                }
                return;
            }
        }
        self.write_records(outer);
    }

    /// The reason to report for a connection that ended with `reason` at
    /// the socket: a TLS failure names itself, a peer that closed without
    /// close_notify may have truncated the stream, and our close answering
    /// the peer's close_notify is the peer's clean close.
    pub(crate) fn reported_reason(&self, reason: &Reason) -> Reason {
        match &self.state.phase {
            Phase::Failed { reason, .. } => reason.clone(),
            Phase::Handshaking { .. } => match reason {
                Reason::PeerClosed | Reason::LocalClosed => {
                    Reason::Tls("the connection closed during the handshake".into())
                }
                other => other.clone(),
            },
            Phase::Open => match reason {
                Reason::PeerClosed if !self.state.received_close_notify => Reason::Truncated,
                Reason::LocalClosed if self.state.peer_closed_first => Reason::PeerClosed,
                other => other.clone(),
            },
        }
    }

    /// Hands rustls's pending records to `outer`, in one vectored write per
    /// batch.
    fn write_records(&mut self, outer: &mut dyn Transport) {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut Outer(outer)).is_err() {
                break;
            }
        }
    }

    /// Ends the connection for a TLS error: logged once, the alert rustls
    /// prepared is sent, then the connection closes.
    fn fail(&mut self, outer: &mut dyn Transport, reason: Reason, abort: bool) {
        if let Phase::Failed { .. } = self.state.phase {
            return;
        }
        // A server logs each failed connection once; a client's failure is
        // its factory's `client_connection_failed` (or its protocol's
        // `connection_lost`), which reports it to whoever connected.
        if self.state.client_server_name.is_some() {
            debug!("{}: {reason}", outer.peer_addr());
        } else {
            warn!("{}: {reason}", outer.peer_addr());
        }
        let inner_made = self.state.inner_made();
        self.state.phase = Phase::Failed { reason, inner_made };
        self.state.plain_out = Vec::new();
        if abort {
            outer.abort_connection();
        } else {
            self.write_records(outer);
            outer.lose_connection();
        }
    }

    /// The handshake just completed: record what it negotiated, then make
    /// the wrapped protocol (unless STARTTLS made it long ago).
    fn handshake_done(&mut self, outer: &mut dyn Transport) {
        let Phase::Handshaking { inner_made } = self.state.phase else {
            return;
        };
        if let Some(timer) = self.state.handshake_timer.take() {
            outer.cancel_timer(timer);
        }
        let server_name = match &self.tls {
            Connection::Server(server) => server.server_name().map(str::to_owned),
            Connection::Client(_) => self.state.client_server_name.clone(),
        };
        self.state.info = Some(Box::new(TlsInfo {
            version: self
                .tls
                .protocol_version()
                .unwrap_or(rustls::ProtocolVersion::Unknown(0)),
            cipher_suite: self
                .tls
                .negotiated_cipher_suite()
                .map_or(rustls::CipherSuite::Unknown(0), |s| s.suite()),
            alpn: self.tls.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificates: self
                .tls
                .peer_certificates()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
        }));
        self.state.phase = Phase::Open;
        debug!("{}: TLS handshake done", outer.peer_addr());
        if !inner_made {
            if let Some(inner) = self.inner.as_deref_mut() {
                inner.connection_made(&mut TlsTransport::new(&mut self.state, outer));
            }
        }
    }

    /// Hands the decrypted bytes to the wrapped protocol, one record's
    /// plaintext per call, with no copy. Stops once the protocol closes.
    fn deliver(&mut self, outer: &mut dyn Transport) {
        loop {
            if !matches!(self.state.phase, Phase::Open) || self.state.closing != Closing::No {
                return;
            }
            let Some(inner) = self.inner.as_deref_mut() else {
                return;
            };
            let mut reader = self.tls.reader();
            let chunk = match reader.fill_buf() {
                Ok(chunk) if !chunk.is_empty() => chunk,
                _ => return,
            };
            let n = chunk.len();
            inner.data_received(&mut TlsTransport::new(&mut self.state, outer), chunk);
            reader.consume(n);
            if outer.is_closing() {
                return;
            }
        }
    }

    /// The peer sent close_notify: nothing more will come. A protocol that
    /// handles half-close hears `read_connection_lost` and may go on
    /// writing; otherwise we answer with our own close_notify and close.
    fn peer_sent_close_notify(&mut self, outer: &mut dyn Transport) {
        self.state.received_close_notify = true;
        let half_close = self.inner.as_deref().is_some_and(|p| p.allows_half_close());
        if half_close && self.state.inner_made() {
            self.with_inner(outer, |p, t| p.read_connection_lost(t));
        } else if self.state.closing == Closing::No {
            self.state.peer_closed_first = true;
            self.state.closing = Closing::Asked { write_only: false };
        }
    }

    /// Runs `f` on the wrapped protocol, if it is made, through the
    /// encrypting transport; then flushes what it wrote.
    fn with_inner(
        &mut self,
        outer: &mut dyn Transport,
        f: impl FnOnce(&mut dyn Protocol, &mut dyn Transport),
    ) {
        if self.state.inner_made() && !matches!(self.state.phase, Phase::Failed { .. }) {
            if let Some(inner) = self.inner.as_deref_mut() {
                f(inner, &mut TlsTransport::new(&mut self.state, outer));
            }
        }
        self.flush(outer);
    }
}

impl Protocol for TlsProtocol {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.start(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            if let Phase::Failed { .. } = self.state.phase {
                return;
            }
            // The protocol closed: what the peer sent after is discarded,
            // as the reactor discards input after `lose_connection`.
            if self.state.closing != Closing::No || transport.is_closing() {
                break;
            }
            if let Err(e) = self.tls.read_tls(&mut rest) {
                self.fail(transport, Reason::Tls(format!("reading: {e}")), true);
                return;
            }
            let io = match self.tls.process_new_packets() {
                Ok(io) => io,
                Err(e) => {
                    let what = if self.tls.is_handshaking() {
                        "handshake failed"
                    } else if matches!(e, rustls::Error::AlertReceived(_)) {
                        "the peer ended the session"
                    } else {
                        "bad record"
                    };
                    self.fail(transport, Reason::Tls(format!("{what}: {e}")), false);
                    return;
                }
            };
            if matches!(self.state.phase, Phase::Handshaking { .. }) && !self.tls.is_handshaking() {
                self.handshake_done(transport);
            }
            self.deliver(transport);
            if io.peer_has_closed() && !self.state.received_close_notify {
                self.peer_sent_close_notify(transport);
            }
        }
        self.flush(transport);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        let reported = self.reported_reason(reason);
        if self.state.inner_made() {
            if let Some(inner) = self.inner.as_deref_mut() {
                inner.connection_lost(
                    &mut TlsTransport::new(&mut self.state, transport),
                    &reported,
                );
            }
        } else if !matches!(self.state.phase, Phase::Failed { .. }) {
            debug!("{}: {reported}", transport.peer_addr());
        }
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        if self.state.inner_made() {
            self.with_inner(transport, |p, t| p.timeout_connection(t, timeout));
        } else {
            transport.lose_connection();
        }
    }

    fn allows_half_close(&self) -> bool {
        self.inner.as_deref().is_some_and(|p| p.allows_half_close())
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        // Already told, when close_notify came before the FIN.
        if !self.state.received_close_notify {
            self.with_inner(transport, |p, t| p.read_connection_lost(t));
        }
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        self.with_inner(transport, |p, t| p.pause_producing(t));
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.with_inner(transport, |p, t| p.resume_producing(t));
    }

    fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
        let mut action = OnStop::Close;
        self.with_inner(transport, |p, t| action = p.stopping(t));
        if action == OnStop::Close && self.state.closing == Closing::No {
            // The stop closes the socket once it is flushed: say so first.
            if let Phase::Open = self.state.phase {
                self.state.closing = Closing::Sent;
                self.tls.send_close_notify();
                self.write_records(transport);
            }
        }
        action
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        if tag == HANDSHAKE_TIMER_TAG && matches!(self.state.phase, Phase::Handshaking { .. }) {
            self.state.handshake_timer = None;
            let reason = Reason::Tls(format!(
                "the handshake did not complete within {:?}",
                self.state.handshake_timeout
            ));
            self.fail(transport, reason, true);
            return;
        }
        self.with_inner(transport, |p, t| p.timer_fired(t, tag));
    }
}

impl Drop for TlsProtocol {
    fn drop(&mut self) {
        // The wrapped protocol's Drop is user code: under the panic guard.
        if let Some(inner) = self.inner.take() {
            crate::panic::drop_caught(inner, "a protocol");
        }
    }
}

/// rustls writes its records through this into the transport below.
struct Outer<'a>(&'a mut dyn Transport);

impl Write for Outer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let chunks: [&[u8]; 64] = std::array::from_fn(|i| bufs.get(i).map_or(&[][..], |b| &b[..]));
        let n = bufs.len().min(64);
        self.0.write_vectored(&chunks[..n]);
        Ok(chunks[..n].iter().map(|c| c.len()).sum())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TlsProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsProtocol")
            .field("phase", &self.state.phase)
            .finish_non_exhaustive()
    }
}
