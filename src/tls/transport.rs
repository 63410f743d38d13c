//! The transport a protocol inside the TLS layer writes through: plaintext
//! in, encrypted by the layer once the callback returns.

use std::io;
use std::time::Duration;

use log::debug;

use super::layer::{Closing, Phase};
use super::{TlsInfo, TlsRole, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::address::Address;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::rules::{DEFAULT_HIGH_WATERMARK, DEFAULT_WRITE_BUFFER_LIMIT};
use crate::timer::TimerId;
use crate::transport::{ConnectionId, Transport};

/// The layer's state apart from rustls itself, so that a protocol can hold
/// the transport (which needs it) while the layer lends it a record's
/// plaintext straight out of rustls.
pub(crate) struct LayerState {
    pub(crate) phase: Phase,
    /// Plaintext written and not yet encrypted: what the current callback
    /// wrote, or what waits for the handshake to complete.
    pub(crate) plain_out: Vec<u8>,
    pub(crate) closing: Closing,
    /// The peer's close_notify came: its end of the stream is complete.
    pub(crate) received_close_notify: bool,
    /// Our close answered the peer's close_notify, so the peer closed.
    pub(crate) peer_closed_first: bool,
    pub(crate) handshake_timeout: Duration,
    pub(crate) handshake_timer: Option<TimerId>,
    /// The name a client asked for (a server learns it from rustls).
    pub(crate) client_server_name: Option<String>,
    /// What the handshake negotiated, once it completed.
    pub(crate) info: Option<Box<TlsInfo>>,
    /// What the protocol set through this transport, so plaintext held
    /// during the handshake counts against the same bounds as ciphertext.
    high_watermark: usize,
    write_limit: usize,
}

impl LayerState {
    pub(crate) fn new(phase: Phase, client_server_name: Option<String>) -> Self {
        LayerState {
            phase,
            plain_out: Vec::new(),
            closing: Closing::No,
            received_close_notify: false,
            peer_closed_first: false,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshake_timer: None,
            client_server_name,
            info: None,
            high_watermark: DEFAULT_HIGH_WATERMARK,
            write_limit: DEFAULT_WRITE_BUFFER_LIMIT,
        }
    }

    pub(crate) fn inner_made(&self) -> bool {
        match self.phase {
            Phase::Open => true,
            Phase::Handshaking { inner_made } | Phase::Failed { inner_made, .. } => inner_made,
        }
    }

    fn accepts_writes(&self) -> bool {
        self.closing == Closing::No && !matches!(self.phase, Phase::Failed { .. })
    }
}

/// The [`Transport`] handed to the protocol inside a TLS layer: writes are
/// plaintext, collected for the layer to encrypt together once the callback
/// returns; everything else reaches the transport below.
pub(crate) struct TlsTransport<'a> {
    state: &'a mut LayerState,
    outer: &'a mut dyn Transport,
}

impl<'a> TlsTransport<'a> {
    pub(crate) fn new(state: &'a mut LayerState, outer: &'a mut dyn Transport) -> Self {
        TlsTransport { state, outer }
    }
}

impl Transport for TlsTransport<'_> {
    fn write(&mut self, data: &[u8]) {
        self.write_vectored(&[data]);
    }

    fn write_vectored(&mut self, chunks: &[&[u8]]) {
        if !self.state.accepts_writes() {
            debug!("write to {}, closing, ignored", self.outer.id());
            return;
        }
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        let buffered = self.state.plain_out.len() + self.outer.buffered();
        let limit = self.state.write_limit;
        // Once open, the plaintext is encrypted when the callback returns
        // and the transport below enforces its own cap on the records; what
        // waits for the handshake is bounded here.
        if !matches!(self.state.phase, Phase::Open) && total > limit - buffered.min(limit) {
            log::warn!(
                "{}: connection {} would hold {} bytes during the TLS handshake, over its limit of {limit}; aborting it",
                self.outer.peer_addr(),
                self.outer.id(),
                buffered + total
            );
            let inner_made = self.state.inner_made();
            self.state.phase = Phase::Failed {
                reason: Reason::BufferOverflow { limit },
                inner_made,
            };
            self.state.plain_out = Vec::new();
            self.outer.abort_connection();
            return;
        }
        for chunk in chunks {
            self.state.plain_out.extend_from_slice(chunk);
        }
    }

    fn lose_connection(&mut self) {
        if self.state.closing == Closing::No {
            self.state.closing = Closing::Asked { write_only: false };
        }
    }

    fn abort_connection(&mut self) {
        self.state.plain_out = Vec::new();
        self.outer.abort_connection();
    }

    fn lose_write_connection(&mut self) {
        if self.state.closing == Closing::No {
            self.state.closing = Closing::Asked { write_only: true };
        }
    }

    fn peer_addr(&self) -> Address {
        self.outer.peer_addr()
    }

    fn local_addr(&self) -> io::Result<Address> {
        self.outer.local_addr()
    }

    fn peer_credentials(&self) -> Option<crate::PeerCredentials> {
        self.outer.peer_credentials()
    }

    fn id(&self) -> ConnectionId {
        self.outer.id()
    }

    fn set_nodelay(&mut self, nodelay: bool) -> io::Result<()> {
        self.outer.set_nodelay(nodelay)
    }

    fn buffered(&self) -> usize {
        self.outer.buffered() + self.state.plain_out.len()
    }

    fn is_closing(&self) -> bool {
        !self.state.accepts_writes() || self.outer.is_closing()
    }

    fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.outer.set_idle_timeout(timeout);
    }

    fn set_deadline(&mut self, after: Option<Duration>) {
        self.outer.set_deadline(after);
    }

    fn set_write_watermarks(&mut self, low: usize, high: usize) {
        self.state.high_watermark = high;
        self.outer.set_write_watermarks(low, high);
    }

    fn set_write_buffer_limit(&mut self, bytes: usize) {
        self.state.write_limit = bytes;
        self.outer.set_write_buffer_limit(bytes);
    }

    fn is_write_buffer_full(&self) -> bool {
        self.outer.is_write_buffer_full() || self.state.plain_out.len() > self.state.high_watermark
    }

    fn pause_reading(&mut self) {
        self.outer.pause_reading();
    }

    fn resume_reading(&mut self) {
        self.outer.resume_reading();
    }

    fn call_later(&mut self, delay: Duration, tag: u64) -> TimerId {
        self.outer.call_later(delay, tag)
    }

    fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.outer.cancel_timer(timer)
    }

    fn reset_timer(&mut self, timer: TimerId, delay: Duration) -> bool {
        self.outer.reset_timer(timer, delay)
    }

    fn delay_timer(&mut self, timer: TimerId, by: Duration) -> bool {
        self.outer.delay_timer(timer, by)
    }

    fn is_timer_active(&self, timer: TimerId) -> bool {
        self.outer.is_timer_active(timer)
    }

    fn reactor(&mut self) -> Option<&mut Reactor> {
        self.outer.reactor()
    }

    fn start_tls(&mut self, _role: TlsRole) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the connection is already TLS",
        ))
    }

    fn tls_info(&self) -> Option<&TlsInfo> {
        self.state.info.as_deref()
    }
}
