//! Where a connection's ends are: an IP socket address, a UNIX socket's
//! name, or a pipe (standard I/O). Twisted's `IPv4Address`, `IPv6Address`,
//! `UNIXAddress` and `PipeAddress` in one type.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::SocketAddr as StdUnixAddr;
use std::path::{Path, PathBuf};

use socket2::SockAddr;

/// One end of a connection, as [`Transport::peer_addr`](crate::Transport::peer_addr)
/// and [`Transport::local_addr`](crate::Transport::local_addr) report it.
///
/// It prints as a user would write it: `127.0.0.1:8000`, `[::1]:8000`,
/// `unix:/run/app.sock`, `unix:@abstract-name`, `unix:(unnamed)`, `stdio`.
/// Code that only cares about IP peers asks [`ip`](Address::ip) or
/// [`socket_addr`](Address::socket_addr), which are `None` for the others.
///
/// ```
/// use std::net::SocketAddr;
/// use std::path::PathBuf;
/// use reactor::{Address, UnixAddress};
///
/// let tcp: SocketAddr = "127.0.0.1:8000".parse().unwrap();
/// let peer = Address::from(tcp);
/// assert_eq!(peer, tcp); // compares with a SocketAddr directly
/// assert_eq!(peer.ip(), Some(tcp.ip()));
/// assert_eq!(peer.to_string(), "127.0.0.1:8000");
///
/// let unix = Address::Unix(UnixAddress::Path(PathBuf::from("/run/app.sock")));
/// assert_eq!(unix.ip(), None);
/// assert_eq!(unix.to_string(), "unix:/run/app.sock");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// An IPv4 or IPv6 address and port.
    Ip(SocketAddr),
    /// A UNIX socket's name.
    Unix(UnixAddress),
    /// A pipe: the process's standard input and output.
    Pipe,
}

/// The name of one end of a UNIX socket.
///
/// ```
/// use std::path::Path;
/// use reactor::{Address, UnixAddress};
///
/// let file = UnixAddress::new("/run/app.sock");
/// assert_eq!(file.path(), Some(Path::new("/run/app.sock")));
/// let name = UnixAddress::new("@app");
/// assert_eq!(name, UnixAddress::Abstract(b"app".to_vec()));
/// assert_eq!(name.to_string(), "unix:@app");
/// assert_eq!(UnixAddress::Unnamed.to_string(), "unix:(unnamed)");
/// // Any of them is an Address.
/// assert_eq!(Address::from(name).to_string(), "unix:@app");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixAddress {
    /// A socket file in the file system.
    Path(PathBuf),
    /// A Linux abstract name (no file; gone with the last socket using it),
    /// without its leading NUL byte.
    Abstract(Vec<u8>),
    /// No name: the client end of most connections, or a socket pair.
    Unnamed,
}

impl Address {
    /// The IP address, for an IP peer.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use reactor::{Address, UnixAddress};
    ///
    /// let peer = Address::from(std::net::SocketAddr::from(([127, 0, 0, 1], 8000)));
    /// assert_eq!(peer.ip(), Some(Ipv4Addr::LOCALHOST.into()));
    /// assert_eq!(Address::Unix(UnixAddress::Unnamed).ip(), None);
    /// ```
    pub fn ip(&self) -> Option<IpAddr> {
        self.socket_addr().map(|addr| addr.ip())
    }

    /// The IP address and port, for an IP peer.
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use reactor::Address;
    ///
    /// let addr: SocketAddr = "[::1]:8000".parse().unwrap();
    /// assert_eq!(Address::from(addr).socket_addr(), Some(addr));
    /// assert_eq!(Address::Pipe.socket_addr(), None);
    /// ```
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Address::Ip(addr) => Some(*addr),
            Address::Unix(_) | Address::Pipe => None,
        }
    }

    /// The port, for an IP peer.
    ///
    /// ```
    /// use reactor::Address;
    ///
    /// let peer = Address::from(std::net::SocketAddr::from(([127, 0, 0, 1], 8000)));
    /// assert_eq!(peer.port(), Some(8000));
    /// assert_eq!(Address::Pipe.port(), None);
    /// ```
    pub fn port(&self) -> Option<u16> {
        self.socket_addr().map(|addr| addr.port())
    }

    /// The UNIX socket's name, for a UNIX peer.
    ///
    /// ```
    /// use reactor::{Address, UnixAddress};
    ///
    /// let peer = Address::from(UnixAddress::new("@app"));
    /// assert_eq!(peer.unix(), Some(&UnixAddress::Abstract(b"app".to_vec())));
    /// let tcp = Address::from(std::net::SocketAddr::from(([127, 0, 0, 1], 8000)));
    /// assert_eq!(tcp.unix(), None);
    /// ```
    pub fn unix(&self) -> Option<&UnixAddress> {
        match self {
            Address::Unix(unix) => Some(unix),
            Address::Ip(_) | Address::Pipe => None,
        }
    }
}

impl UnixAddress {
    /// The UNIX address a user means by `path`, as
    /// [`Reactor::listen_unix`](crate::Reactor::listen_unix) and
    /// [`Reactor::connect_unix`](crate::Reactor::connect_unix) read it: a
    /// path starting with `@` names a Linux abstract socket (`@app` is the
    /// abstract name `app`), as systemd's `ListenStream=` and Go's `net`
    /// write it; any other path is a socket file. A file whose name starts
    /// with `@` is written `./@name`.
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use reactor::UnixAddress;
    ///
    /// assert_eq!(UnixAddress::new("@app"), UnixAddress::Abstract(b"app".to_vec()));
    /// assert_eq!(UnixAddress::new("./@app"), UnixAddress::Path(PathBuf::from("./@app")));
    /// assert_eq!(UnixAddress::new("/run/app.sock").to_string(), "unix:/run/app.sock");
    /// ```
    pub fn new(path: impl AsRef<Path>) -> UnixAddress {
        let path = path.as_ref();
        match path.as_os_str().as_bytes() {
            [b'@', name @ ..] => UnixAddress::Abstract(name.to_vec()),
            _ => UnixAddress::Path(path.to_path_buf()),
        }
    }

    /// The socket file's path, for a [`Path`](UnixAddress::Path) address.
    ///
    /// ```
    /// use std::path::Path;
    /// use reactor::UnixAddress;
    ///
    /// assert_eq!(UnixAddress::new("/run/app.sock").path(), Some(Path::new("/run/app.sock")));
    /// assert_eq!(UnixAddress::new("@app").path(), None); // abstract: no file
    /// assert_eq!(UnixAddress::Unnamed.path(), None);
    /// ```
    pub fn path(&self) -> Option<&Path> {
        match self {
            UnixAddress::Path(path) => Some(path),
            UnixAddress::Abstract(_) | UnixAddress::Unnamed => None,
        }
    }

    /// The address as std names it, to connect to; an unnamed address
    /// cannot be connected to (`InvalidInput`), nor can a path or name
    /// longer than a `sockaddr_un` holds.
    pub(crate) fn to_std(&self) -> io::Result<StdUnixAddr> {
        self.to_name(StdUnixAddr::from_pathname, StdUnixAddr::from_abstract_name)
    }

    /// The address as socket2 names it, to bind to: as
    /// [`to_std`](Self::to_std), with socket2's spelling of an abstract
    /// name (a leading NUL byte).
    pub(crate) fn to_sockaddr(&self) -> io::Result<SockAddr> {
        self.to_name(SockAddr::unix, |name| {
            let mut bytes = Vec::with_capacity(name.len() + 1);
            bytes.push(0);
            bytes.extend_from_slice(name);
            SockAddr::unix(std::ffi::OsStr::from_bytes(&bytes))
        })
    }

    /// The one rule from an address to the name a socket binds or connects
    /// to, whichever library spells it: a path names a socket file, an
    /// abstract name an abstract socket, and an unnamed address nothing.
    fn to_name<'a, T>(
        &'a self,
        path: impl FnOnce(&'a Path) -> io::Result<T>,
        abstract_name: impl FnOnce(&'a [u8]) -> io::Result<T>,
    ) -> io::Result<T> {
        match self {
            UnixAddress::Path(name) => path(name),
            UnixAddress::Abstract(name) => abstract_name(name),
            UnixAddress::Unnamed => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an unnamed UNIX address cannot be listened on or connected to",
            )),
        }
    }

    /// The address of a socket, as `getsockname` reports it through
    /// socket2; `None` if it is not a UNIX socket.
    pub(crate) fn from_sockaddr(addr: &SockAddr) -> Option<UnixAddress> {
        addr.is_unix()
            .then(|| UnixAddress::from_name(addr.as_pathname(), addr.as_abstract_namespace()))
    }

    /// The one rule from a socket's name, whichever library reports it, to
    /// an address: its path, else its abstract name, else unnamed.
    fn from_name(path: Option<&Path>, abstract_name: Option<&[u8]>) -> UnixAddress {
        match (path, abstract_name) {
            (Some(path), _) => UnixAddress::Path(path.to_path_buf()),
            (None, Some(name)) => UnixAddress::Abstract(name.to_vec()),
            (None, None) => UnixAddress::Unnamed,
        }
    }
}

impl From<&StdUnixAddr> for UnixAddress {
    fn from(addr: &StdUnixAddr) -> Self {
        UnixAddress::from_name(addr.as_pathname(), addr.as_abstract_name())
    }
}

impl From<SocketAddr> for Address {
    fn from(addr: SocketAddr) -> Self {
        Address::Ip(addr)
    }
}

impl From<UnixAddress> for Address {
    fn from(addr: UnixAddress) -> Self {
        Address::Unix(addr)
    }
}

impl PartialEq<SocketAddr> for Address {
    fn eq(&self, other: &SocketAddr) -> bool {
        self.socket_addr() == Some(*other)
    }
}

impl PartialEq<Address> for SocketAddr {
    fn eq(&self, other: &Address) -> bool {
        other == self
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(addr) => fmt::Display::fmt(addr, f),
            Address::Unix(unix) => fmt::Display::fmt(unix, f),
            Address::Pipe => f.write_str("stdio"),
        }
    }
}

impl fmt::Display for UnixAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixAddress::Path(path) => write!(f, "unix:{}", path.display()),
            UnixAddress::Abstract(name) => {
                write!(f, "unix:@{}", String::from_utf8_lossy(name))
            }
            UnixAddress::Unnamed => f.write_str("unix:(unnamed)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_a_user_writes_it() {
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(Address::from(v6).to_string(), "[::1]:80");
        let abstract_name = Address::Unix(UnixAddress::Abstract(b"app".to_vec()));
        assert_eq!(abstract_name.to_string(), "unix:@app");
        assert_eq!(
            Address::Unix(UnixAddress::Unnamed).to_string(),
            "unix:(unnamed)"
        );
        assert_eq!(Address::Pipe.to_string(), "stdio");
    }

    #[test]
    fn only_ip_peers_have_an_ip() {
        assert_eq!(Address::Pipe.ip(), None);
        assert_eq!(Address::Unix(UnixAddress::Unnamed).port(), None);
        let v4: SocketAddr = "127.0.0.2:5".parse().unwrap();
        assert_eq!(Address::from(v4).port(), Some(5));
    }
}
