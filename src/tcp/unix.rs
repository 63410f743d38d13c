//! UNIX sockets on the reactor: `listen_unix` and `connect_unix` (and their
//! TLS forms). Their connections are the same `Conn`s as TCP's, with a
//! UNIX [`Stream`]: everything else is shared.

use std::io;
use std::path::Path;
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};

use super::connector::DEAD_ID;
use super::lent::TlsHost;
use super::listener::{ListenOptions, ListenerHandle, ListenerTls};
use super::peer::Peer;
use super::stream::{ListeningSocket, Stream};
use crate::address::UnixAddress;
use crate::protocol::{ClientFactory, Factory};
use crate::reactor::Reactor;
use crate::transport::ConnectionId;
use crate::unix::PeerCredentials;

impl Reactor {
    /// Listens on the UNIX socket `path` with default [`ListenOptions`],
    /// building a protocol from `factory` for every accepted connection,
    /// as [`listen_tcp`](Reactor::listen_tcp) does for TCP: every protocol,
    /// framing receiver, limit and timeout works the same. Twisted's
    /// `listenUNIX`.
    ///
    /// - **Names.** A path starting with `@` is a Linux abstract name
    ///   (`@app`: no file, gone with the last socket using it); write
    ///   `./@name` for a file whose name starts with `@`. See
    ///   [`UnixAddress::new`].
    /// - **The socket file's mode** is [`ListenOptions::file_mode`], set
    ///   after `bind` and before `listen`: until `listen`, a connect is
    ///   refused, so no client ever connects under the mode the umask gave.
    ///   (Binding under a narrower umask would do too, but the umask is the
    ///   whole process's, and other threads create files meanwhile.)
    /// - **A file already at `path`.** A socket file nobody listens on (its
    ///   process died: a connect to it is refused) is stale and is
    ///   replaced. One that answers a connect (or whose backlog is full) is
    ///   another process's: `AddrInUse`, "another process is listening on
    ///   PATH" (that process sees the probe as a connection closed at
    ///   once). A file that is not a socket is never removed (`AddrInUse`).
    /// - **On stop** (of the listener, or of the reactor), the socket file
    ///   is removed, unless another file has taken its place meanwhile (its
    ///   device and inode are compared).
    /// - **Peers.** [`Transport::peer_addr`](crate::Transport::peer_addr)
    ///   is [`Address::Unix`](crate::Address::Unix) (usually
    ///   [`UnixAddress::Unnamed`]: clients seldom bind);
    ///   [`Transport::peer_credentials`](crate::Transport::peer_credentials)
    ///   gives the client's pid, uid and gid. A per-peer limit
    ///   ([`ListenOptions::max_connections_per_peer`]) counts connections
    ///   per user id.
    /// - **Resets.** A UNIX socket has no RST. `abort_connection` (and
    ///   every close the reactor makes a reset: a panic, an overflowing
    ///   buffer, a stop discarding bytes) drops what is buffered and
    ///   closes; the peer reads what the kernel already holds for it, then
    ///   ECONNRESET if input we had not read was queued on our side, or
    ///   else end-of-file. `set_nodelay` does nothing (no Nagle).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use reactor::protocols::Echo;
    /// use reactor::Reactor;
    ///
    /// let dir = std::env::temp_dir().join(format!("reactor-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("echo.sock");
    /// let mut reactor = Reactor::new()?;
    /// let listener = reactor.listen_unix(&path, || Echo)?;
    /// let bound = reactor.listener_address(&listener).unwrap();
    /// assert_eq!(bound.to_string(), format!("unix:{}", path.display()));
    /// let handle = reactor.handle()?;
    /// let client = std::thread::spawn(move || {
    ///     let mut reply = [0; 5];
    ///     let answer = UnixStream::connect(&path).and_then(|mut s| {
    ///         s.write_all(b"hello")?;
    ///         s.read_exact(&mut reply)
    ///     });
    ///     handle.stop();
    ///     answer.map(|()| reply)
    /// });
    /// reactor.run()?;
    /// assert_eq!(&client.join().unwrap()?, b"hello");
    /// assert!(!dir.join("echo.sock").exists()); // removed on stop
    /// # std::fs::remove_dir(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_unix(
        &mut self,
        path: impl AsRef<Path>,
        factory: impl Factory,
    ) -> io::Result<ListenerHandle> {
        self.listen_unix_with(path, factory, ListenOptions::default())
    }

    /// [`listen_unix`](Reactor::listen_unix) with explicit options
    /// (`reuse_address` and `only_v6` do not apply).
    ///
    /// ```
    /// use std::os::unix::fs::PermissionsExt;
    /// use reactor::protocols::Echo;
    /// use reactor::{ListenOptions, Reactor};
    ///
    /// let dir = std::env::temp_dir().join(format!("reactor-doc-with-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("private.sock");
    /// let mut reactor = Reactor::new()?;
    /// let options = ListenOptions {
    ///     file_mode: Some(0o600), // only this user may connect
    ///     ..ListenOptions::default()
    /// };
    /// let listener = reactor.listen_unix_with(&path, || Echo, options)?;
    /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
    /// reactor.stop_listening(&listener);
    /// assert!(!path.exists()); // removed on stop
    /// # std::fs::remove_dir(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_unix_with(
        &mut self,
        path: impl AsRef<Path>,
        factory: impl Factory,
        options: ListenOptions,
    ) -> io::Result<ListenerHandle> {
        self.listen_unix_as(UnixAddress::new(path), Box::new(factory), options, None)
    }

    /// Binds a UNIX listener at `addr`; `tls` makes it a TLS one.
    pub(crate) fn listen_unix_as(
        &mut self,
        addr: UnixAddress,
        factory: Box<dyn Factory>,
        options: ListenOptions,
        tls: Option<ListenerTls>,
    ) -> io::Result<ListenerHandle> {
        self.refuse_while_stopping()?;
        if self.memory.is_some() {
            return Err(no_unix_in_memory());
        }
        let (listener, file) = crate::unix::listen(&addr, options.backlog, options.file_mode)?;
        let socket = ListeningSocket::Unix {
            socket: UnixListener::from_std(listener),
            _file: file.map(Box::new),
        };
        self.add_listener(socket, factory, options, tls)
    }

    /// Connects to the UNIX socket `path` (`@name` for an abstract name)
    /// without blocking, as [`connect_tcp`](Reactor::connect_tcp) does:
    /// `started_connecting` now; then `connection_made`, or
    /// `client_connection_failed` with the reason (a file that is not
    /// there: `NotFound`; nothing listening: `ConnectionRefused`; a full
    /// backlog: `WouldBlock`, since a UNIX connect does not wait for room).
    /// Never calls back before returning. The connection's
    /// [`peer_credentials`](crate::Transport::peer_credentials) are the
    /// server's, as they were when it started listening.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::{Protocol, Reactor, Transport};
    ///
    /// /// Says hello; keeps the server's pid and its answer, then stops.
    /// struct Hello(Rc<RefCell<(Option<u32>, String)>>);
    /// impl Protocol for Hello {
    ///     fn connection_made(&mut self, t: &mut dyn Transport) {
    ///         self.0.borrow_mut().0 = t.peer_credentials().and_then(|c| c.pid);
    ///         t.write(b"hello");
    ///     }
    ///     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
    ///         self.0.borrow_mut().1.push_str(&String::from_utf8_lossy(data));
    ///         t.lose_connection();
    ///         t.reactor().unwrap().stop();
    ///     }
    /// }
    ///
    /// // An abstract name: no file to create or clean up.
    /// let name = format!("@reactor-doc-connect-{}", std::process::id());
    /// let mut reactor = Reactor::new()?;
    /// reactor.listen_unix(&name, || Echo)?;
    /// let seen = Rc::new(RefCell::new((None, String::new())));
    /// let kept = seen.clone();
    /// reactor.connect_unix(&name, move || Hello(kept.clone()), Duration::from_secs(5));
    /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
    /// reactor.run()?;
    /// // The server is this very process.
    /// assert_eq!(*seen.borrow(), (Some(std::process::id()), "hello".to_string()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect_unix(
        &mut self,
        path: impl AsRef<Path>,
        factory: impl ClientFactory,
        timeout: Duration,
    ) -> ConnectionId {
        self.connect_unix_as(
            UnixAddress::new(path),
            Box::new(factory),
            timeout,
            TlsHost::plain(),
        )
    }

    /// Starts a connect to `addr` whose connection speaks TLS if `tls` says so.
    fn connect_unix_as(
        &mut self,
        addr: UnixAddress,
        factory: Box<dyn ClientFactory>,
        timeout: Duration,
        tls: TlsHost,
    ) -> ConnectionId {
        let Some(factory) = self.start_connecting(factory, &addr) else {
            return DEAD_ID;
        };
        let connected = if self.memory.is_some() {
            Err(no_unix_in_memory())
        } else {
            addr.to_std().and_then(|a| UnixStream::connect_addr(&a))
        };
        let (stream, credentials) = match connected {
            // A UNIX connect completes (or fails) at once: the server's
            // credentials are known now.
            Ok(stream) => {
                let credentials = PeerCredentials::of(&stream).ok();
                (Ok(Stream::Unix(stream)), credentials)
            }
            Err(e) => (Err(e), None),
        };
        let peer = Peer::unix(addr, credentials);
        self.add_connecting(stream, peer, factory, timeout, tls)
    }
}

/// What `listen_unix` and `connect_unix` answer on a reactor in memory
/// ([`MemoryReactor`](crate::testing::MemoryReactor)), which models TCP
/// connections only.
fn no_unix_in_memory() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a reactor in memory has no UNIX sockets",
    )
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;

    use super::*;
    use crate::reason::Reason;
    use crate::tls::{ClientConfig, ServerConfig, TlsProtocol, TlsRole};

    impl Reactor {
        /// [`listen_unix`](Reactor::listen_unix) for TLS connections, as
        /// [`listen_tls`](Reactor::listen_tls) is `listen_tcp` for them
        /// ([`connect_unix_tls`](Reactor::connect_unix_tls) shows a client).
        ///
        /// ```
        /// use std::sync::Arc;
        /// use reactor::protocols::Echo;
        /// use reactor::Reactor;
        ///
        /// // A self-signed certificate for localhost (in a real program:
        /// // `reactor::tls::server_config("cert.pem", "key.pem")`).
        /// # let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
        /// # let cert = localhost.cert.der().clone();
        /// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(localhost.signing_key.serialize_der().into());
        /// # let server_config = rustls::ServerConfig::builder()
        /// #     .with_no_client_auth()
        /// #     .with_single_cert(vec![cert.clone()], key)?;
        /// let name = format!("@reactor-doc-listen-tls-{}", std::process::id());
        /// let mut reactor = Reactor::new()?;
        /// let listener = reactor.listen_unix_tls(&name, Arc::new(server_config), || Echo)?;
        /// let address = reactor.listener_address(&listener).unwrap();
        /// assert_eq!(address.to_string(), format!("unix:{name}"));
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn listen_unix_tls(
            &mut self,
            path: impl AsRef<Path>,
            config: Arc<ServerConfig>,
            factory: impl Factory,
        ) -> io::Result<ListenerHandle> {
            self.listen_unix_tls_with(path, config, factory, ListenOptions::default())
        }

        /// [`listen_unix_tls`](Reactor::listen_unix_tls) with explicit options.
        ///
        /// ```
        /// use std::os::unix::fs::PermissionsExt;
        /// use std::sync::Arc;
        /// use reactor::protocols::Echo;
        /// use reactor::{ListenOptions, Reactor};
        ///
        /// # let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
        /// # let cert = localhost.cert.der().clone();
        /// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(localhost.signing_key.serialize_der().into());
        /// # let server_config = rustls::ServerConfig::builder()
        /// #     .with_no_client_auth()
        /// #     .with_single_cert(vec![cert.clone()], key)?;
        /// let dir = std::env::temp_dir().join(format!("reactor-doc-tls-{}", std::process::id()));
        /// std::fs::create_dir_all(&dir)?;
        /// let path = dir.join("tls.sock");
        /// let options = ListenOptions {
        ///     file_mode: Some(0o660), // this user and its group
        ///     ..ListenOptions::default()
        /// };
        /// let mut reactor = Reactor::new()?;
        /// let config = Arc::new(server_config);
        /// let listener = reactor.listen_unix_tls_with(&path, config, || Echo, options)?;
        /// assert_eq!(std::fs::metadata(&path)?.permissions().mode() & 0o777, 0o660);
        /// reactor.stop_listening(&listener);
        /// # std::fs::remove_dir(&dir)?;
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn listen_unix_tls_with(
            &mut self,
            path: impl AsRef<Path>,
            config: Arc<ServerConfig>,
            factory: impl Factory,
            options: ListenOptions,
        ) -> io::Result<ListenerHandle> {
            self.listen_unix_as(
                UnixAddress::new(path),
                Box::new(factory),
                options,
                Some(TlsRole::Server(config)),
            )
        }

        /// [`connect_unix`](Reactor::connect_unix) over TLS, as
        /// [`connect_tls`](Reactor::connect_tls) is `connect_tcp` over it:
        /// the server's certificate must be valid for `server_name`.
        ///
        /// ```
        /// use std::cell::RefCell;
        /// use std::rc::Rc;
        /// use std::sync::Arc;
        /// use std::time::Duration;
        /// use reactor::protocols::Echo;
        /// use reactor::{Protocol, Reactor, Transport};
        ///
        /// /// Says hello over TLS, keeps the echo, stops the reactor.
        /// struct Hello(Rc<RefCell<Vec<u8>>>);
        /// impl Protocol for Hello {
        ///     fn connection_made(&mut self, t: &mut dyn Transport) {
        ///         t.write(b"hello"); // the handshake is done by now
        ///     }
        ///     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        ///         self.0.borrow_mut().extend_from_slice(data);
        ///         t.reactor().unwrap().stop();
        ///     }
        /// }
        ///
        /// // A self-signed certificate for localhost, trusted by the client.
        /// # let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
        /// # let cert = localhost.cert.der().clone();
        /// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(localhost.signing_key.serialize_der().into());
        /// # let server_config = rustls::ServerConfig::builder()
        /// #     .with_no_client_auth()
        /// #     .with_single_cert(vec![cert.clone()], key)?;
        /// # let mut roots = rustls::RootCertStore::empty();
        /// # roots.add(cert)?;
        /// # let client_config = rustls::ClientConfig::builder()
        /// #     .with_root_certificates(roots)
        /// #     .with_no_client_auth();
        /// let name = format!("@reactor-doc-connect-tls-{}", std::process::id());
        /// let mut reactor = Reactor::new()?;
        /// reactor.listen_unix_tls(&name, Arc::new(server_config), || Echo)?;
        /// let echo = Rc::new(RefCell::new(Vec::new()));
        /// let hello = { let echo = echo.clone(); move || Hello(echo.clone()) };
        /// let (client, timeout) = (Arc::new(client_config), Duration::from_secs(5));
        /// reactor.connect_unix_tls(&name, "localhost", client, hello, timeout);
        /// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
        /// reactor.run()?;
        /// assert_eq!(*echo.borrow(), b"hello");
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        pub fn connect_unix_tls(
            &mut self,
            path: impl AsRef<Path>,
            server_name: &str,
            config: Arc<ClientConfig>,
            factory: impl ClientFactory,
            timeout: Duration,
        ) -> ConnectionId {
            let layer = TlsRole::client(config, server_name)
                .and_then(|role| TlsProtocol::unattached(role, false));
            match layer {
                Ok(mut layer) => {
                    layer.set_handshake_timeout(timeout);
                    self.connect_unix_as(
                        UnixAddress::new(path),
                        Box::new(factory),
                        timeout,
                        TlsHost::with_layer(layer),
                    )
                }
                Err(e) => self.connect_failing(Box::new(factory), Reason::Tls(e.to_string())),
            }
        }
    }
}
