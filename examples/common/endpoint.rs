//! `--listen ENDPOINT` for the servers and `--connect ENDPOINT` for the
//! clients ([`reactor::endpoint`]'s strings), beside their `--host` and
//! `--port`: each example flattens one of these structs into its flags
//! (`#[command(flatten)]`), and the functions here turn the lot into the one
//! endpoint it uses. The stream programs take [`ListenArgs`] and
//! [`ConnectArgs`]; the UDP ones [`UdpListenArgs`] (`udp:PORT`) and
//! [`UdpConnectArgs`] (`udp:host=HOST:port=PORT`).

use std::net::SocketAddr;

use reactor::endpoint::{
    ClientEndpoint, DatagramClientEndpoint, DatagramServerEndpoint, ServerEndpoint,
};
use reactor::threaded;

/// `--listen`, flattened into a server's flags. It replaces `--host` and
/// `--port`, which it conflicts with.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ListenArgs {
    /// Where to listen instead of --host/--port, as an endpoint:
    /// `tcp:PORT[:interface=ADDR][:backlog=N]`, `unix:PATH[:mode=0660]`,
    /// `systemd:INDEX` (socket activation), or
    /// `tls:PORT:cert=PEM:key=PEM[:interface=ADDR]`. A `\` escapes a colon
    /// (`interface=\:\:1`).
    #[arg(long, value_name = "ENDPOINT", conflicts_with_all = ["host", "port"])]
    pub listen: Option<ServerEndpoint>,
}

impl ListenArgs {
    /// The endpoint to listen on: `--listen`, or TCP on `host:port` (a host
    /// name is resolved here, once, before the reactor runs).
    pub fn endpoint(&self, host: &str, port: u16) -> Result<ServerEndpoint, String> {
        if let Some(endpoint) = &self.listen {
            return Ok(endpoint.clone());
        }
        let addr = super::resolve(host, port)?;
        Ok(ServerEndpoint::Tcp {
            port: addr.port(),
            interface: Some(addr.ip()),
            backlog: None,
        })
    }

    /// For the servers that bind a TCP address themselves (the
    /// `socketserver`-style ones, and a `ReactorPool`): `host:port`, or a
    /// `tcp:` `--listen`'s address; any other endpoint is refused with a
    /// message naming `server`.
    pub fn tcp_addr(&self, host: &str, port: u16, server: &str) -> Result<SocketAddr, String> {
        match &self.listen {
            None => super::resolve(host, port),
            Some(ServerEndpoint::Tcp {
                port, interface, ..
            }) => Ok(SocketAddr::new(
                interface.unwrap_or([0, 0, 0, 0].into()),
                *port,
            )),
            Some(other) => Err(format!(
                "{server} listens on tcp: endpoints only, not {other}"
            )),
        }
    }
}

/// Listens as [`threaded::ThreadedServer`] can: on `--listen`'s `tcp:` or
/// `unix:` endpoint, or on `host:port`; `options`' backlog and socket-file
/// mode come from the endpoint when it names them. An error is the one
/// line [`super::exit_with`] prints.
pub fn listen_threaded(
    flags: &ListenArgs,
    host: &str,
    port: u16,
    factory: impl reactor::Factory + Send,
    mut options: threaded::ThreadedOptions,
) -> Result<threaded::ThreadedServer, String> {
    if let Some(ServerEndpoint::Unix {
        path,
        mode,
        backlog,
    }) = &flags.listen
    {
        options.file_mode = *mode;
        options.backlog = backlog.unwrap_or(options.backlog);
        let name = reactor::Address::Unix(path.clone()).to_string();
        // `unix:NAME` is how the address prints; the listener takes NAME.
        let name = name.strip_prefix("unix:").unwrap_or(&name).to_string();
        return threaded::ThreadedServer::listen_unix_with(&name, factory, options)
            .map_err(|e| format!("cannot listen on {}: {e}", flags.listen.as_ref().unwrap()));
    }
    if let Some(ServerEndpoint::Tcp {
        backlog: Some(backlog),
        ..
    }) = &flags.listen
    {
        options.backlog = *backlog;
    }
    let addr = match &flags.listen {
        None | Some(ServerEndpoint::Tcp { .. }) => flags.tcp_addr(host, port, "")?,
        Some(other) => {
            return Err(format!(
                "the threaded model listens on tcp: and unix: endpoints, not {other}"
            ))
        }
    };
    threaded::ThreadedServer::listen_tcp_with(addr, factory, options)
        .map_err(|e| super::hints::cannot_listen(addr, &e))
}

/// `--connect`, flattened into a client's flags. It replaces `--host` and
/// `--port`, which it conflicts with.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectArgs {
    /// Where to connect instead of --host/--port, as an endpoint:
    /// `tcp:host=HOST:port=PORT`, `unix:path=PATH`, or
    /// `tls:host=HOST:port=PORT[:ca=PEM]`. A `\` escapes a colon
    /// (`host=\:\:1`).
    #[arg(long, value_name = "ENDPOINT", conflicts_with_all = ["host", "port"])]
    pub connect: Option<ClientEndpoint>,
}

impl ConnectArgs {
    /// The endpoint to connect to: `--connect`, or TCP to `host:port`.
    pub fn endpoint(&self, host: &str, port: u16) -> ClientEndpoint {
        match &self.connect {
            Some(endpoint) => endpoint.clone(),
            None => ClientEndpoint::Tcp {
                host: host.to_string(),
                port,
            },
        }
    }

    /// [`endpoint`](Self::endpoint), a host name given by `--host` resolved
    /// here, once, before the reactor runs (as the clients always did).
    pub fn resolved(&self, host: &str, port: u16) -> Result<ClientEndpoint, String> {
        if self.connect.is_some() {
            return Ok(self.endpoint(host, port));
        }
        let addr = super::resolve(host, port)?;
        Ok(ClientEndpoint::Tcp {
            host: addr.ip().to_string(),
            port: addr.port(),
        })
    }
}

/// How a client names where it connects in its messages: `127.0.0.1:8123`
/// for TCP to an IP address (as before endpoints), else the endpoint.
pub fn target_text(endpoint: &ClientEndpoint) -> String {
    match endpoint {
        ClientEndpoint::Tcp { host, port } => match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, *port).to_string(),
            Err(_) => endpoint.to_string(),
        },
        other => other.to_string(),
    }
}

/// `--listen` for the UDP servers, flattened into their flags. It replaces
/// `--host` and `--port`, which it conflicts with.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UdpListenArgs {
    /// Where to listen instead of --host/--port, as a UDP endpoint:
    /// `udp:PORT[:interface=ADDR]` (port 0 picks a free one; the interface
    /// defaults to 0.0.0.0, every IPv4 one). A `\` escapes a colon
    /// (`interface=\:\:1`).
    #[arg(long, value_name = "ENDPOINT", conflicts_with_all = ["host", "port"])]
    pub listen: Option<DatagramServerEndpoint>,
}

impl UdpListenArgs {
    /// The endpoint to bind: `--listen`, or UDP on `host:port` (a host name
    /// is resolved here, once, before the reactor runs).
    pub fn endpoint(&self, host: &str, port: u16) -> Result<DatagramServerEndpoint, String> {
        if let Some(endpoint) = &self.listen {
            return Ok(endpoint.clone());
        }
        let addr = super::resolve(host, port)?;
        Ok(DatagramServerEndpoint::Udp {
            port: addr.port(),
            interface: Some(addr.ip()),
        })
    }

    /// For the servers that bind a UDP socket themselves (the
    /// `socketserver`-style one): the address [`endpoint`](Self::endpoint)
    /// binds.
    pub fn addr(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        Ok(self.endpoint(host, port)?.bind_addr())
    }
}

/// `--connect` for the UDP clients, flattened into their flags. It replaces
/// `--host` and `--port`, which it conflicts with.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UdpConnectArgs {
    /// Where to send instead of --host/--port, as a UDP endpoint:
    /// `udp:host=HOST:port=PORT` (or `udp:HOST:PORT`). A `\` escapes a
    /// colon (`host=\:\:1`).
    #[arg(long, value_name = "ENDPOINT", conflicts_with_all = ["host", "port"])]
    pub connect: Option<DatagramClientEndpoint>,
}

impl UdpConnectArgs {
    /// The address to send to: `--connect`'s, or `host:port`'s, a host name
    /// resolved here, once, before the reactor runs.
    pub fn addr(&self, host: &str, port: u16) -> Result<SocketAddr, String> {
        match &self.connect {
            Some(endpoint) => super::resolve(endpoint.host(), endpoint.port()),
            None => super::resolve(host, port),
        }
    }
}
