//! Server endpoints: where and how to listen, written as a string
//! (Twisted's `serverFromString`), and [`Reactor::listen_on`].

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use super::parse::{ip_text, quote, unix_path_text, EndpointError, Grammar, Parameters};
use super::systemd::{self, Bound};
use crate::address::{Address, UnixAddress};
use crate::protocol::Factory;
use crate::reactor::Reactor;
use crate::tcp::{ListenOptions, ListenerHandle, ListenerTls, ListeningSocket};

/// Where a server listens: one of the forms below, parsed from a string.
///
/// | form | listens on |
/// |---|---|
/// | `tcp:PORT[:interface=ADDR][:backlog=N]` | TCP `PORT` (0: any free port) on `ADDR` (default `0.0.0.0`, every IPv4 interface) |
/// | `unix:PATH[:mode=0660][:backlog=N]` | a UNIX socket file with permissions `mode` (octal); `unix:@NAME` is a Linux abstract name |
/// | `systemd:INDEX` | the listening socket socket activation passed as descriptor `3 + INDEX` (TCP or UNIX) |
/// | `tls:PORT:cert=PEM:key=PEM[:interface=ADDR][:backlog=N]` | TLS over TCP, presenting the certificate chain in `cert` with the key in `key` |
///
/// Parameters are separated by `:`; after the positional ones (which can be
/// named too: `tcp:port=8000`), `name=value` ones come in any order. A
/// backslash makes the next character plain: `\:` is a colon inside a
/// value (an IPv6 interface: `interface=\:\:1`), `\\` a backslash. The
/// type is case-insensitive. `Display` writes the same endpoint back, so
/// a parsed endpoint round-trips.
///
/// A `unix:` endpoint listens as [`Reactor::listen_unix`] does: a stale
/// socket file is replaced, a live one refused, the file removed when the
/// listener stops (but not when a restart handed it to a new process).
///
/// A `tcp:`, `tls:` or `unix:` endpoint whose address matches a socket
/// this process inherited (from systemd, or from the process it replaced:
/// [`crate::restart`]) takes that socket instead of binding a new one; see
/// [`crate::endpoint`]. An inherited UNIX socket's file is left in place
/// when this process stops: it is systemd's, or the next process's.
///
/// ```
/// use reactor::endpoint::ServerEndpoint;
///
/// let endpoint: ServerEndpoint = "tcp:8000:interface=127.0.0.1:backlog=50".parse()?;
/// assert_eq!(
///     endpoint,
///     ServerEndpoint::Tcp {
///         port: 8000,
///         interface: Some([127, 0, 0, 1].into()),
///         backlog: Some(50),
///     }
/// );
/// assert_eq!(endpoint.to_string(), "tcp:8000:interface=127.0.0.1:backlog=50");
///
/// let v6: ServerEndpoint = r"tcp:8000:interface=\:\:1".parse()?;
/// assert_eq!(v6.to_string(), r"tcp:8000:interface=\:\:1");
/// # Ok::<(), reactor::endpoint::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEndpoint {
    /// `tcp:PORT[:interface=ADDR][:backlog=N]`.
    Tcp {
        /// The port; 0 picks a free one.
        port: u16,
        /// The address to bind; `None` is `0.0.0.0`.
        interface: Option<IpAddr>,
        /// The listen queue's length; `None` is [`ListenOptions`]'s.
        backlog: Option<i32>,
    },
    /// `unix:PATH[:mode=0660][:backlog=N]`, or `unix:@NAME`.
    Unix {
        /// The socket's file, or its abstract name.
        path: UnixAddress,
        /// The socket file's permission bits; `None` leaves the umask's.
        mode: Option<u32>,
        /// The listen queue's length; `None` is the default.
        backlog: Option<i32>,
    },
    /// `systemd:INDEX`: socket `INDEX` (from 0) of those socket activation
    /// passed.
    Systemd {
        /// Which one: descriptor `3 + index`.
        index: usize,
    },
    /// `tls:PORT:cert=PEM:key=PEM[:interface=ADDR][:backlog=N]`.
    Tls {
        /// The port; 0 picks a free one.
        port: u16,
        /// The address to bind; `None` is `0.0.0.0`.
        interface: Option<IpAddr>,
        /// The listen queue's length; `None` is [`ListenOptions`]'s.
        backlog: Option<i32>,
        /// The certificate chain (PEM), the server's own first.
        cert: PathBuf,
        /// Its private key (PEM).
        key: PathBuf,
    },
}

const SERVERS: &[Grammar] = &[
    Grammar {
        kind: "tcp",
        positional: &["port"],
        names: &["port", "interface", "backlog"],
        usage: "tcp takes PORT:interface=ADDR:backlog=N",
    },
    Grammar {
        kind: "unix",
        positional: &["path"],
        names: &["path", "mode", "backlog"],
        usage: "unix takes PATH:mode=0660:backlog=N",
    },
    Grammar {
        kind: "systemd",
        positional: &["index"],
        names: &["index"],
        usage: "systemd takes INDEX, from 0",
    },
    Grammar {
        kind: "tls",
        positional: &["port"],
        names: &["port", "cert", "key", "interface", "backlog"],
        usage: "tls takes PORT:cert=PEM:key=PEM:interface=ADDR:backlog=N",
    },
];

const SERVER_TYPES: &str = "servers are tcp:, unix:, systemd: and tls:";

impl FromStr for ServerEndpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let params = Parameters::parse(input, SERVERS, SERVER_TYPES)?;
        Ok(match params.kind() {
            "tcp" => ServerEndpoint::Tcp {
                port: params.listen_port()?,
                interface: params.interface()?,
                backlog: params.backlog()?,
            },
            "unix" => ServerEndpoint::Unix {
                path: params.unix_path()?,
                mode: params.mode()?,
                backlog: params.backlog()?,
            },
            "systemd" => ServerEndpoint::Systemd {
                index: params.index()?,
            },
            _ => ServerEndpoint::Tls {
                port: params.listen_port()?,
                interface: params.interface()?,
                backlog: params.backlog()?,
                cert: params.file("cert")?,
                key: params.file("key")?,
            },
        })
    }
}

impl fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip_and_backlog = |f: &mut fmt::Formatter<'_>, ip: &Option<IpAddr>, b: &Option<i32>| {
            if let Some(ip) = ip {
                write!(f, ":interface={}", quote(&ip_text(ip), false))?;
            }
            if let Some(backlog) = b {
                write!(f, ":backlog={backlog}")?;
            }
            Ok(())
        };
        match self {
            ServerEndpoint::Tcp {
                port,
                interface,
                backlog,
            } => {
                write!(f, "tcp:{port}")?;
                ip_and_backlog(f, interface, backlog)
            }
            ServerEndpoint::Unix {
                path,
                mode,
                backlog,
            } => {
                write!(f, "unix:{}", quote(&unix_path_text(path), true))?;
                if let Some(mode) = mode {
                    write!(f, ":mode={mode:04o}")?;
                }
                if let Some(backlog) = backlog {
                    write!(f, ":backlog={backlog}")?;
                }
                Ok(())
            }
            ServerEndpoint::Systemd { index } => write!(f, "systemd:{index}"),
            ServerEndpoint::Tls {
                port,
                interface,
                backlog,
                cert,
                key,
            } => {
                write!(
                    f,
                    "tls:{port}:cert={}:key={}",
                    quote(&cert.to_string_lossy(), false),
                    quote(&key.to_string_lossy(), false)
                )?;
                ip_and_backlog(f, interface, backlog)
            }
        }
    }
}

/// The address a `tcp:`, `tls:` or `udp:` endpoint binds.
pub(super) fn bind_addr(port: u16, interface: Option<IpAddr>) -> SocketAddr {
    SocketAddr::new(interface.unwrap_or(Ipv4Addr::UNSPECIFIED.into()), port)
}

/// A listener made from an endpoint: where it listens, and how to stop it.
///
/// ```
/// use reactor::protocols::Echo;
/// use reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let endpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
/// let listening = reactor.listen_on(&endpoint, || Echo)?;
/// println!("listening on {}", listening.local_addr()); // 127.0.0.1:PORT
/// assert!(reactor.listener_stats(listening.handle()).is_some());
/// assert!(listening.stop(&mut reactor));
/// assert!(!listening.stop(&mut reactor)); // stopped already
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Listening {
    address: Address,
    handle: ListenerHandle,
}

impl Listening {
    /// Where it listens, with the real port when port 0 was asked for. It
    /// prints as a user writes it: `127.0.0.1:8000`, `unix:/run/app.sock`.
    ///
    /// ```
    /// # use reactor::protocols::Echo;
    /// # let mut reactor = reactor::Reactor::new()?;
    /// let endpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
    /// let listening = reactor.listen_on(&endpoint, || Echo)?;
    /// assert_eq!(listening.local_addr().ip(), Some([127, 0, 0, 1].into()));
    /// assert_ne!(listening.local_addr().port(), Some(0)); // the real port
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn local_addr(&self) -> &Address {
        &self.address
    }

    /// The listener's handle, for [`Reactor::listener_stats`] and
    /// [`Reactor::stop_listening`].
    ///
    /// ```
    /// # use reactor::protocols::Echo;
    /// # let mut reactor = reactor::Reactor::new()?;
    /// let endpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
    /// let listening = reactor.listen_on(&endpoint, || Echo)?;
    /// let stats = reactor.listener_stats(listening.handle()).unwrap();
    /// assert_eq!((stats.open, stats.refused), (0, 0));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self) -> &ListenerHandle {
        &self.handle
    }

    /// Stops listening (see [`Reactor::stop_listening`]): true if it was
    /// listening.
    ///
    /// ```
    /// # use reactor::protocols::Echo;
    /// # let mut reactor = reactor::Reactor::new()?;
    /// let endpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
    /// let listening = reactor.listen_on(&endpoint, || Echo)?;
    /// assert!(listening.stop(&mut reactor));
    /// assert!(reactor.listener_stats(listening.handle()).is_none()); // gone
    /// assert!(!listening.stop(&mut reactor)); // stopped already
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(&self, reactor: &mut Reactor) -> bool {
        reactor.stop_listening(&self.handle)
    }
}

impl Reactor {
    /// Listens on `endpoint` with default [`ListenOptions`] (see
    /// [`listen_on_with`](Reactor::listen_on_with)).
    ///
    /// ```
    /// use reactor::{Protocol, Reactor, Transport};
    ///
    /// struct Echo;
    /// impl Protocol for Echo {
    ///     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
    ///         transport.write(data);
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let endpoint = "tcp:0:interface=127.0.0.1".parse().expect("a valid endpoint");
    /// let listening = reactor.listen_on(&endpoint, || Echo)?;
    /// assert_eq!(listening.local_addr().ip(), Some([127, 0, 0, 1].into()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_on(
        &mut self,
        endpoint: &ServerEndpoint,
        factory: impl Factory,
    ) -> io::Result<Listening> {
        self.listen_on_with(endpoint, factory, ListenOptions::default())
    }

    /// Listens on `endpoint`, building a protocol from `factory` for every
    /// connection, with `options` (an endpoint's `backlog` replaces
    /// `options.backlog`). A `tls:` endpoint reads its certificate and key
    /// now: a file that cannot be read, or a pair that does not match, is
    /// an error before anything is bound.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::{ListenOptions, Reactor};
    ///
    /// let mut reactor = Reactor::new()?;
    /// let options = ListenOptions {
    ///     max_connections: Some(100),
    ///     ..ListenOptions::default()
    /// };
    /// let endpoint = "tcp:0:interface=127.0.0.1:backlog=16".parse().unwrap();
    /// let listening = reactor.listen_on_with(&endpoint, || Echo, options)?;
    /// # let _ = listening;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    ///
    /// A `tcp:`, `tls:` or `unix:` endpoint takes a socket this process
    /// inherited bound to its address, if there is one, instead of binding
    /// (its backlog is then the one it was created with); `systemd:N` only
    /// ever takes inherited socket `N`, and its error says why when there
    /// is none (not socket-activated, `LISTEN_PID` names another process,
    /// fewer sockets passed, claimed already).
    pub fn listen_on_with(
        &mut self,
        endpoint: &ServerEndpoint,
        factory: impl Factory,
        options: ListenOptions,
    ) -> io::Result<Listening> {
        if let ServerEndpoint::Tls { cert, key, .. } = endpoint {
            #[cfg(feature = "tls")]
            {
                let config = crate::tls::server_config(cert, key)?;
                return self.listen_on_tls(endpoint, std::sync::Arc::new(config), factory, options);
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = (cert, key);
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "tls: endpoints need the crate's `tls` feature",
                ));
            }
        }
        self.listen_endpoint(endpoint, Box::new(factory), options, None)
    }

    /// Listens on `endpoint` speaking TLS with `config`, whatever its type:
    /// a `tcp:`, `systemd:` or `unix:` endpoint serves TLS, and a `tls:`
    /// one uses `config` in place of its `cert` and `key` (to offer ALPN,
    /// or require client certificates).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use reactor::protocols::Echo;
    /// use reactor::{ListenOptions, Reactor};
    ///
    /// let mut config = reactor::tls::server_config("cert.pem", "key.pem")?;
    /// config.alpn_protocols = vec![b"http/1.1".to_vec()];
    /// let mut reactor = Reactor::new()?;
    /// // A socket systemd passed, serving TLS.
    /// let endpoint = "systemd:0".parse().unwrap();
    /// reactor.listen_on_tls(&endpoint, Arc::new(config), || Echo, ListenOptions::default())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn listen_on_tls(
        &mut self,
        endpoint: &ServerEndpoint,
        config: std::sync::Arc<crate::tls::ServerConfig>,
        factory: impl Factory,
        options: ListenOptions,
    ) -> io::Result<Listening> {
        let role = crate::tls::TlsRole::Server(config);
        self.listen_endpoint(endpoint, Box::new(factory), options, Some(role))
    }

    fn listen_endpoint(
        &mut self,
        endpoint: &ServerEndpoint,
        factory: Box<dyn Factory>,
        mut options: ListenOptions,
        tls: Option<ListenerTls>,
    ) -> io::Result<Listening> {
        self.refuse_while_stopping()?;
        let socket = match endpoint {
            ServerEndpoint::Tcp {
                port,
                interface,
                backlog,
            }
            | ServerEndpoint::Tls {
                port,
                interface,
                backlog,
                ..
            } => {
                let addr = bind_addr(*port, *interface);
                match systemd::take_ip(addr.ip(), addr.port()) {
                    Some(inherited) => inherited,
                    None => {
                        if let Some(backlog) = backlog {
                            options.backlog = *backlog;
                        }
                        let handle = self.listen(addr, factory, options, tls)?;
                        return Ok(self.listening(handle));
                    }
                }
            }
            ServerEndpoint::Unix {
                path,
                mode,
                backlog,
            } => match systemd::take_unix(path) {
                Some(inherited) => inherited,
                None => {
                    if let Some(backlog) = backlog {
                        options.backlog = *backlog;
                    }
                    options.file_mode = *mode;
                    let handle = self.listen_unix_as(path.clone(), factory, options, tls)?;
                    return Ok(self.listening(handle));
                }
            },
            ServerEndpoint::Systemd { index } => systemd::take_index(*index)?,
        };
        // An inherited socket: TCP or UNIX, whichever it is. Its file (if
        // any) is not ours to remove: systemd's, or the next process's.
        let listening = match systemd::local(&socket) {
            Some(Bound::Ip(_)) => {
                let listener = std::net::TcpListener::from(systemd::into_fd(socket));
                listener.set_nonblocking(true)?;
                ListeningSocket::Tcp(mio::net::TcpListener::from_std(listener))
            }
            Some(Bound::Unix(_)) | None => {
                let listener = std::os::unix::net::UnixListener::from(systemd::into_fd(socket));
                listener.set_nonblocking(true)?;
                ListeningSocket::Unix {
                    socket: mio::net::UnixListener::from_std(listener),
                    _file: None,
                }
            }
        };
        let handle = self.add_listener(listening, factory, options, tls)?;
        Ok(self.listening(handle))
    }

    /// The [`Listening`] for a listener just made.
    fn listening(&self, handle: ListenerHandle) -> Listening {
        let address = self
            .listener_address(&handle)
            .unwrap_or(Address::Ip(handle.local_addr()));
        Listening { address, handle }
    }
}
