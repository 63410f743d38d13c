//! Client endpoints: where and how to connect, written as a string
//! (Twisted's `clientFromString`), and [`Reactor::connect_to`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::parse::{quote, unix_path_text, EndpointError, Grammar, Parameters};
use crate::address::UnixAddress;
use crate::protocol::ClientFactory;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::resolve::Destination;
use crate::transport::ConnectionId;

/// Where a client connects: one of the forms below, parsed from a string.
///
/// | form | connects to |
/// |---|---|
/// | `tcp:host=HOST:port=PORT` | TCP `PORT` on `HOST` (an IP address, or a host name looked up off the loop, then Happy Eyeballs) |
/// | `unix:path=PATH` | the UNIX socket `PATH`; `unix:path=@NAME` is a Linux abstract name |
/// | `tls:host=HOST:port=PORT[:ca=PEM]` | TLS over TCP, checking the server's certificate for `HOST` against the authorities in `ca` (default: the system's) |
///
/// The parameters may also be given by position: `tcp:HOST:PORT`,
/// `unix:PATH`, `tls:HOST:PORT`. The syntax is [`ServerEndpoint`](super::ServerEndpoint)'s
/// (`:` separates, `\` escapes: an IPv6 host is `host=\:\:1`).
///
/// ```
/// use reactor::endpoint::ClientEndpoint;
///
/// let endpoint: ClientEndpoint = "tcp:example.com:80".parse()?;
/// assert_eq!(
///     endpoint,
///     ClientEndpoint::Tcp { host: "example.com".into(), port: 80 }
/// );
/// assert_eq!(endpoint.to_string(), "tcp:host=example.com:port=80");
/// # Ok::<(), reactor::endpoint::EndpointError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEndpoint {
    /// `tcp:host=HOST:port=PORT`.
    Tcp {
        /// An IP address or a host name.
        host: String,
        /// The port, 1 to 65535.
        port: u16,
    },
    /// `unix:path=PATH`.
    Unix {
        /// The socket's file, or its abstract name.
        path: UnixAddress,
    },
    /// `tls:host=HOST:port=PORT[:ca=PEM]`.
    Tls {
        /// An IP address or a host name; the server's certificate must be
        /// valid for it (it is also sent as SNI).
        host: String,
        /// The port, 1 to 65535.
        port: u16,
        /// The authorities to trust (PEM); `None` trusts the system's.
        ca: Option<PathBuf>,
    },
}

const CLIENTS: &[Grammar] = &[
    Grammar {
        kind: "tcp",
        positional: &["host", "port"],
        names: &["host", "port"],
        usage: "tcp takes host=HOST:port=PORT",
    },
    Grammar {
        kind: "unix",
        positional: &["path"],
        names: &["path"],
        usage: "unix takes path=PATH",
    },
    Grammar {
        kind: "tls",
        positional: &["host", "port"],
        names: &["host", "port", "ca"],
        usage: "tls takes host=HOST:port=PORT:ca=PEM",
    },
];

const CLIENT_TYPES: &str = "clients are tcp:, unix: and tls:";

impl FromStr for ClientEndpoint {
    type Err = EndpointError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let params = Parameters::parse(input, CLIENTS, CLIENT_TYPES)?;
        Ok(match params.kind() {
            "tcp" => ClientEndpoint::Tcp {
                host: params.host()?,
                port: params.connect_port()?,
            },
            "unix" => ClientEndpoint::Unix {
                path: params.unix_path()?,
            },
            _ => ClientEndpoint::Tls {
                host: params.host()?,
                port: params.connect_port()?,
                ca: params.optional_file("ca")?,
            },
        })
    }
}

impl fmt::Display for ClientEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEndpoint::Tcp { host, port } => {
                write!(f, "tcp:host={}:port={port}", quote(host, false))
            }
            ClientEndpoint::Unix { path } => {
                write!(f, "unix:path={}", quote(&unix_path_text(path), false))
            }
            ClientEndpoint::Tls { host, port, ca } => {
                write!(f, "tls:host={}:port={port}", quote(host, false))?;
                if let Some(ca) = ca {
                    write!(f, ":ca={}", quote(&ca.to_string_lossy(), false))?;
                }
                Ok(())
            }
        }
    }
}

/// `host` as an IP address, if it is one (IPv6 in brackets or not).
fn ip_of(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Where the system keeps its trusted authorities, first found: `SSL_CERT_FILE`,
/// then the bundles of Debian, Fedora and Alpine, and BSD's and macOS's file.
#[cfg(feature = "tls")]
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The system's bundle of trusted authorities.
#[cfg(feature = "tls")]
fn system_ca() -> std::io::Result<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        return Ok(PathBuf::from(file));
    }
    SYSTEM_CA_FILES
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file())
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no trusted authorities: give ca=PEM, or set SSL_CERT_FILE (none of {})",
                    SYSTEM_CA_FILES.join(", ")
                ),
            )
        })
}

impl Reactor {
    /// Connects to `endpoint` without blocking, as
    /// [`connect_tcp`](Reactor::connect_tcp) and
    /// [`connect_tls`](Reactor::connect_tls) do: the factory's
    /// `started_connecting` runs now, then either its protocol's
    /// `connection_made` or `client_connection_failed` with the reason.
    /// `timeout` bounds the connect (and a TLS handshake, again).
    ///
    /// A `tls:` endpoint reads its `ca` file (or the system's authorities)
    /// now; a file that cannot be used fails the connect with
    /// [`Reason::Tls`] at the next turn.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::{client_factory, Protocol, Reactor, Transport};
    ///
    /// struct Quiet;
    /// impl Protocol for Quiet {
    ///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// let server = reactor.listen_on(&"tcp:0:interface=127.0.0.1".parse().unwrap(), || Quiet)?;
    /// let port = server.local_addr().port().unwrap();
    /// let endpoint = format!("tcp:host=127.0.0.1:port={port}").parse().unwrap();
    /// let factory = client_factory(
    ///     || Quiet,
    ///     |reactor, reason| panic!("cannot connect: {reason}"),
    /// );
    /// reactor.connect_to(&endpoint, factory, Duration::from_secs(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_to(
        &mut self,
        endpoint: &ClientEndpoint,
        factory: impl ClientFactory,
        timeout: Duration,
    ) -> ConnectionId {
        match endpoint {
            ClientEndpoint::Tcp { host, port } => {
                self.connect_tcp(destination(host, *port), factory, timeout)
            }
            ClientEndpoint::Unix { path } => {
                self.connect_unix(unix_path_text(path), factory, timeout)
            }
            ClientEndpoint::Tls { host, port, ca } => {
                self.connect_tls_to(host, *port, ca, factory, timeout)
            }
        }
    }

    #[cfg(feature = "tls")]
    fn connect_tls_to(
        &mut self,
        host: &str,
        port: u16,
        ca: &Option<PathBuf>,
        factory: impl ClientFactory,
        timeout: Duration,
    ) -> ConnectionId {
        let config = match ca {
            Some(ca) => crate::tls::client_config(ca),
            None => system_ca().and_then(crate::tls::client_config),
        };
        let config = match config {
            Ok(config) => std::sync::Arc::new(config),
            Err(e) => return self.connect_failing(Box::new(factory), Reason::Tls(e.to_string())),
        };
        // The certificate is checked for the host as given, an IP address
        // without its brackets.
        let name = ip_of(host).map_or_else(|| host.to_string(), |ip| ip.to_string());
        self.connect_tls(destination(host, port), &name, config, factory, timeout)
    }

    #[cfg(not(feature = "tls"))]
    fn connect_tls_to(
        &mut self,
        _host: &str,
        _port: u16,
        _ca: &Option<PathBuf>,
        factory: impl ClientFactory,
        _timeout: Duration,
    ) -> ConnectionId {
        log::error!("tls: endpoints need the crate's `tls` feature");
        let reason = Reason::Error {
            kind: std::io::ErrorKind::Unsupported,
            os_code: None,
        };
        self.connect_failing(Box::new(factory), reason)
    }
}

/// Where `host` and `port` are: an address, or a name to look up off the
/// loop (then Happy Eyeballs, as [`Reactor::connect_tcp`] does).
fn destination(host: &str, port: u16) -> Destination {
    match ip_of(host) {
        Some(ip) => Destination::from(SocketAddr::new(ip, port)),
        None => Destination::from((host, port)),
    }
}
