//! A connection's protocol as its callbacks see it: alone, or inside the
//! TLS layer that shares its slot. The reactor lends both out together for
//! each callback and puts them back after.

use crate::protocol::Protocol;
use crate::reactor::Reactor;
use crate::reason::Reason;
#[cfg(feature = "tls")]
use crate::tls::TlsProtocol;
use crate::transport::ConnectionId;

/// Whether a connection speaks TLS, and where its layer is. One pointer
/// in every connection's slot (none is spent on plain connections but
/// that), so the layer, boxed again inside, can be lent to a callback while
/// the connection still says it is TLS.
#[derive(Default)]
pub(crate) struct TlsHost(#[cfg(feature = "tls")] Option<Box<TlsSlot>>);

/// A TLS connection's layer: `None` while it is lent to a callback (then
/// plaintext written to the connection waits in the reactor's `tls_inbox`).
#[cfg(feature = "tls")]
pub(crate) struct TlsSlot {
    layer: Option<Box<TlsProtocol>>,
}

impl TlsHost {
    /// A plain connection.
    pub(crate) fn plain() -> TlsHost {
        TlsHost::default()
    }

    /// A TLS connection with its layer in place.
    #[cfg(feature = "tls")]
    pub(crate) fn with_layer(layer: TlsProtocol) -> TlsHost {
        TlsHost(Some(Box::new(TlsSlot {
            layer: Some(Box::new(layer)),
        })))
    }

    /// Whether writes to the connection are plaintext for a layer.
    #[cfg(feature = "tls")]
    pub(crate) fn is_tls(&self) -> bool {
        self.0.is_some()
    }

    /// The layer, unless it is lent out.
    #[cfg(feature = "tls")]
    pub(crate) fn layer_mut(&mut self) -> Option<&mut TlsProtocol> {
        self.0.as_mut()?.layer.as_deref_mut()
    }

    /// Takes the layer out (to lend it).
    #[cfg(feature = "tls")]
    pub(crate) fn take_layer(&mut self) -> Option<Box<TlsProtocol>> {
        self.0.as_mut()?.layer.take()
    }

    /// Puts a lent layer back.
    #[cfg(feature = "tls")]
    pub(crate) fn put_layer(&mut self, layer: Box<TlsProtocol>) {
        match &mut self.0 {
            Some(slot) => slot.layer = Some(layer),
            None => self.0 = Some(Box::new(TlsSlot { layer: Some(layer) })),
        }
    }

    /// Plaintext the layer holds, not yet encrypted.
    pub(crate) fn pending(&self) -> usize {
        #[cfg(feature = "tls")]
        if let Some(layer) = self.0.as_ref().and_then(|s| s.layer.as_ref()) {
            return layer.pending();
        }
        0
    }
}

/// A connection's protocol, lent to one callback: alone, or inside its TLS
/// layer.
pub(crate) enum Lent {
    Plain(Box<dyn Protocol>),
    #[cfg(feature = "tls")]
    Tls(Box<TlsProtocol>),
}

impl Lent {
    /// What the callback calls: the protocol, or the layer that wraps it.
    pub(crate) fn callee(&mut self) -> &mut dyn Protocol {
        match self {
            Lent::Plain(protocol) => &mut **protocol,
            #[cfg(feature = "tls")]
            Lent::Tls(layer) => &mut **layer,
        }
    }

    /// Whether the callee writes ciphertext, which must reach the socket
    /// as it is rather than through the layer again.
    pub(crate) fn is_layer(&self) -> bool {
        !matches!(self, Lent::Plain(_))
    }

    /// How a close that ended the connection for `reason` is reported: a
    /// TLS layer names its own failures and tells a truncated stream from
    /// a clean end.
    pub(crate) fn reported(&self, reason: &Reason) -> Reason {
        match self {
            Lent::Plain(_) => reason.clone(),
            #[cfg(feature = "tls")]
            Lent::Tls(layer) => layer.reported_reason(reason),
        }
    }

    /// Whether the protocol was made, so its client factory hears
    /// `client_connection_lost` rather than `client_connection_failed` (a
    /// TLS layer makes it once its handshake completes).
    pub(crate) fn made(&self) -> bool {
        match self {
            Lent::Plain(_) => true,
            #[cfg(feature = "tls")]
            Lent::Tls(layer) => layer.inner_made(),
        }
    }

    /// What a closed connection left: its protocol, inside its layer if it
    /// had one, so `connection_lost` goes through the layer.
    pub(crate) fn departing(tls: TlsHost, protocol: Option<Box<dyn Protocol>>) -> Option<Lent> {
        #[cfg(feature = "tls")]
        if let Some(mut layer) = { tls }.take_layer() {
            // A client whose connect never completed has no protocol: the
            // layer alone reports how its handshake ended.
            if let Some(protocol) = protocol {
                layer.attach(protocol);
            }
            return Some(Lent::Tls(layer));
        }
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        protocol.map(Lent::Plain)
    }

    /// Drops what was lent, user code (`Drop`) under the panic guard.
    pub(crate) fn drop_caught(self) {
        match self {
            Lent::Plain(protocol) => crate::panic::drop_caught(protocol, "a protocol"),
            #[cfg(feature = "tls")]
            Lent::Tls(layer) => crate::panic::drop_caught(layer, "a protocol"),
        }
    }
}

impl Reactor {
    /// Takes connection `id`'s protocol (and its layer) out for a callback;
    /// `None` if it has none outside its callbacks (closed, not yet made,
    /// or already inside one).
    pub(crate) fn lend(&mut self, id: ConnectionId) -> Option<Lent> {
        let conn = self.conn_mut(id)?;
        let protocol = conn.protocol.take()?;
        #[cfg(feature = "tls")]
        if let Some(mut layer) = conn.tls.take_layer() {
            layer.attach(protocol);
            return Some(Lent::Tls(layer));
        }
        Some(Lent::Plain(protocol))
    }

    /// Puts back what [`lend`](Self::lend) took. Plaintext written to the
    /// connection while its layer was out goes into the layer now.
    pub(crate) fn give_back(&mut self, id: ConnectionId, lent: Lent) {
        if self.conn(id).is_none() {
            lent.drop_caught();
            return;
        }
        match lent {
            Lent::Plain(protocol) => {
                if let Some(conn) = self.conn_mut(id) {
                    conn.protocol = Some(protocol);
                }
            }
            #[cfg(feature = "tls")]
            Lent::Tls(mut layer) => {
                let mut pending = false;
                self.tls_inbox.retain(|(to, bytes)| {
                    if *to == id {
                        layer.write_plain(&[bytes]);
                        pending = true;
                    }
                    *to != id
                });
                if pending {
                    self.tls_dirty.push(id);
                }
                if let Some(conn) = self.conn_mut(id) {
                    conn.protocol = layer.detach();
                    conn.tls.put_layer(layer);
                }
            }
        }
    }
}
