//! A connection's peer as the reactor keeps it, and whom a per-peer limit
//! counts it against.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use crate::address::{Address, UnixAddress};
use crate::unix::PeerCredentials;

/// The other end of a connection. Every callback's transport holds a copy
/// (the transport must answer `peer_addr` in `connection_lost` too, when
/// the socket is gone), so cloning it never allocates: an IP address is
/// copied, a UNIX name is shared. As small as the `SocketAddr` it replaces
/// (32 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Peer {
    Ip(SocketAddr),
    Unix {
        /// `None` for an unnamed peer (most clients: they do not bind).
        name: Option<Rc<UnixAddress>>,
        /// Read once, when the connection is made (SO_PEERCRED cannot
        /// change afterwards); `None` if the kernel would not say.
        credentials: Option<PeerCredentials>,
    },
    /// The other end of standard input and output
    /// ([`Reactor::open_stdio`](crate::Reactor::open_stdio)).
    Pipe,
}

/// Whom a per-peer connection limit counts a connection against: its IP
/// address, or for a UNIX connection its user id (every process of one
/// user is one peer, as every port of one host is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PeerKey {
    Ip(IpAddr),
    Uid(u32),
}

impl Peer {
    /// A UNIX peer named `name` (`Unnamed` costs no allocation).
    pub(crate) fn unix(name: UnixAddress, credentials: Option<PeerCredentials>) -> Peer {
        let name = match name {
            UnixAddress::Unnamed => None,
            named => Some(Rc::new(named)),
        };
        Peer::Unix { name, credentials }
    }

    /// The address a transport reports.
    pub(crate) fn address(&self) -> Address {
        match self {
            Peer::Ip(addr) => Address::Ip(*addr),
            Peer::Unix { name, .. } => Address::Unix(
                name.as_deref()
                    .map_or(UnixAddress::Unnamed, UnixAddress::clone),
            ),
            Peer::Pipe => Address::Pipe,
        }
    }

    /// The peer's credentials, for a UNIX peer.
    pub(crate) fn credentials(&self) -> Option<PeerCredentials> {
        match self {
            Peer::Ip(_) | Peer::Pipe => None,
            Peer::Unix { credentials, .. } => *credentials,
        }
    }

    /// Whom a per-peer limit counts this connection against; `None` (not
    /// counted) for a UNIX peer whose credentials are unknown, or a pipe
    /// (which no listener accepts).
    pub(crate) fn key(&self) -> Option<PeerKey> {
        match self {
            Peer::Ip(addr) => Some(PeerKey::Ip(addr.ip())),
            Peer::Unix { credentials, .. } => credentials.map(|c| PeerKey::Uid(c.uid)),
            Peer::Pipe => None,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Ip(addr) => fmt::Display::fmt(addr, f),
            Peer::Unix {
                name: Some(name), ..
            } => fmt::Display::fmt(&**name, f),
            Peer::Unix { name: None, .. } => fmt::Display::fmt(&UnixAddress::Unnamed, f),
            Peer::Pipe => fmt::Display::fmt(&Address::Pipe, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_no_larger_than_the_socket_address_it_replaced() {
        assert_eq!(
            std::mem::size_of::<Peer>(),
            std::mem::size_of::<SocketAddr>()
        );
    }

    #[test]
    fn a_unix_peer_counts_by_user() {
        let cred = PeerCredentials {
            pid: Some(7),
            uid: 1000,
            gid: 100,
        };
        let peer = Peer::unix(UnixAddress::Unnamed, Some(cred));
        assert_eq!(peer.key(), Some(PeerKey::Uid(1000)));
        assert_eq!(peer.to_string(), "unix:(unnamed)");
        assert_eq!(Peer::unix(UnixAddress::Unnamed, None).key(), None);
    }
}
