//! Listeners of a reactor in memory (`testing::MemoryReactor`): no
//! socket, and protocols built for the connections a test makes, under the
//! same limits as accepted ones.

use std::io;
use std::net::SocketAddr;

use log::error;

use super::listener::{ListenOptions, Listener, ListenerHandle};
use super::peer::Peer;
use crate::address::Address;
use crate::protocol::{Factory, Protocol};
use crate::reactor::{key_u32, Reactor, Slot, SlotId, Source};
use crate::rules::log_refusal;

impl Reactor {
    /// A listener without a socket, for a reactor in memory: it builds
    /// protocols for the connections its test makes
    /// ([`accept_in_memory`](Self::accept_in_memory)) under the same
    /// limits, and stops as any other.
    pub(super) fn listen_in_memory(
        &mut self,
        addr: SocketAddr,
        mut factory: Box<dyn Factory>,
        options: ListenOptions,
        tls: bool,
    ) -> io::Result<ListenerHandle> {
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = SlotId {
            key: key_u32(entry.key())?,
            generation,
        };
        if let Err(why) = crate::panic::catch(|| factory.start_factory()) {
            error!("start_factory of the listener on {addr} panicked: {why}");
        }
        entry.insert(Slot {
            generation,
            queued: false,
            // A memory connection carries plaintext: the TLS role is only
            // recorded.
            source: Source::Listener(Listener::new(None, factory, Address::Ip(addr), options)),
        });
        let handle = ListenerHandle {
            id,
            addr: Some(addr),
        };
        self.record_listen(handle, options, tls);
        Ok(handle)
    }

    /// The protocol for a connection from `peer` that a test makes on
    /// listener `id` in memory, and the options it starts with; an error if
    /// the listener is gone, a limit refuses the peer (counted, as an
    /// accept would be), or `build_protocol` panicked.
    pub(crate) fn accept_in_memory(
        &mut self,
        id: SlotId,
        peer: SocketAddr,
    ) -> io::Result<(Box<dyn Protocol>, ListenOptions)> {
        let Some(Source::Listener(listener)) = self.slot_mut(id) else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not listening"));
        };
        let peer = Peer::Ip(peer);
        if let Err(why) = listener.admit(&peer, true) {
            listener.stats.refused += 1;
            log_refusal(&mut listener.warned_full, &peer, why, &listener.addr);
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, why));
        }
        let factory = &mut listener.factory;
        match crate::panic::catch(|| factory.build_protocol_for(&peer.address())) {
            Ok(protocol) => Ok((protocol, *listener.options)),
            Err(why) => {
                error!("{peer}: build_protocol panicked: {why}; connection dropped");
                listener.release(&peer, true);
                Err(io::Error::other(why))
            }
        }
    }
}
