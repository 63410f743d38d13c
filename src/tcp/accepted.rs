//! Making an accepted connection, for a plain listener at once and for a
//! PROXY protocol listener once the header is read: its slot and
//! registration, its protocol and TLS layer, and `connection_made`.

use log::{debug, error, warn};
use mio::Interest;

use super::admission::Admission;
use super::connection::{Conn, Origin};
use super::lent::TlsHost;
use super::listener::ListenOptions;
#[cfg(feature = "tls")]
use super::listener::Listener;
use super::peer::Peer;
use super::state::ConnState;
use super::stream::Stream;
use crate::protocol::Protocol;
use crate::reactor::{key_u32, Reactor, Slot, SlotId, Source};
use crate::transport::ConnectionId;

impl Reactor {
    /// Registers a socket `admission.listener` accepted from `peer` and
    /// gives it a slot, in `state`, without a protocol yet; or, if it
    /// cannot, drops it and gives back its admission.
    pub(super) fn insert_accepted(
        &mut self,
        mut stream: Stream,
        peer: Peer,
        state: ConnState,
        admission: Admission,
    ) -> Option<ConnectionId> {
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let Ok(key) = key_u32(entry.key()) else {
            warn!("connection from {peer} dropped: too many connections");
            self.release_admission(Some(admission), &peer);
            return None;
        };
        let id = ConnectionId { key, generation };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, SlotId::from(id).token(), Interest::READABLE)
        {
            warn!("connection from {peer} dropped: cannot register it: {e}");
            self.release_admission(Some(admission), &peer);
            return None;
        }
        debug!("accepted {id} from {peer}");
        let conn = Conn::new(stream, peer, None, state, Origin::Accepted(admission));
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Conn(conn),
        });
        Some(id)
    }

    /// Makes accepted connection `id`: its protocol and TLS layer go in,
    /// the listener's options apply, and `connection_made` runs.
    pub(super) fn start_accepted(
        &mut self,
        id: ConnectionId,
        protocol: Box<dyn Protocol>,
        tls: TlsHost,
        options: ListenOptions,
    ) {
        let Some(conn) = self.conn_mut(id) else {
            crate::panic::drop_caught(protocol, "a protocol");
            return;
        };
        conn.protocol = Some(protocol);
        conn.state = ConnState::OPEN;
        conn.limits.cap = options.write_buffer_limit;
        conn.tls = tls;
        #[cfg(feature = "tls")]
        if conn.tls.is_tls() {
            super::tls::no_delay(&conn.stream, &conn.peer);
        }
        if options.idle_timeout.is_some() {
            self.set_idle_timeout(id, options.idle_timeout);
        }
        self.with_protocol(id, |p, t| p.connection_made(t));
        // What it wrote goes out now, not into a buffer of its own behind
        // the rest of the accept burst.
        self.after_callback();
    }

    /// The protocol, and TLS layer if it is a TLS listener, for a
    /// connection `listener` accepted from `peer`; `None` (logged) if the
    /// factory panicked or TLS cannot start.
    pub(super) fn build_accepted(
        &mut self,
        listener: SlotId,
        peer: &Peer,
    ) -> Option<(Box<dyn Protocol>, TlsHost)> {
        // Never served in plaintext on a TLS port.
        let tls = self.tls_for_accepted(listener, peer).ok()?;
        let Some(Source::Listener(l)) = self.slot_mut(listener) else {
            return None;
        };
        let factory = &mut l.factory;
        match crate::panic::catch(|| factory.build_protocol_for(&peer.address())) {
            Ok(protocol) => Some((protocol, tls)),
            Err(why) => {
                error!("{peer}: build_protocol panicked: {why}; connection dropped");
                None
            }
        }
    }

    pub(super) fn add_connection(
        &mut self,
        stream: Stream,
        peer: Peer,
        protocol: Box<dyn Protocol>,
        admission: Admission,
        options: ListenOptions,
        tls: TlsHost,
    ) {
        let Some(id) = self.insert_accepted(stream, peer, ConnState::OPEN, admission) else {
            crate::panic::drop_caught(protocol, "a protocol");
            return;
        };
        self.start_accepted(id, protocol, tls, options);
    }

    /// The TLS layer for a connection `listener` accepted from `peer`, if it
    /// is a TLS listener.
    pub(super) fn tls_for_accepted(
        &mut self,
        listener: SlotId,
        peer: &Peer,
    ) -> Result<TlsHost, ()> {
        #[cfg(feature = "tls")]
        if let Some(Source::Listener(Listener {
            tls: Some(role),
            options,
            ..
        })) = self.slot_mut(listener)
        {
            return match crate::tls::TlsProtocol::unattached((**role).clone(), false) {
                Ok(mut layer) => {
                    layer.set_handshake_timeout(options.tls_handshake_timeout);
                    Ok(TlsHost::with_layer(layer))
                }
                Err(e) => {
                    error!("{peer}: cannot start TLS: {e}; connection dropped");
                    Err(())
                }
            };
        }
        let _ = (listener, peer);
        Ok(TlsHost::plain())
    }
}
