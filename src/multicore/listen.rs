//! One listening socket per reactor, all on one address: SO_REUSEPORT on
//! each, and port 0 resolved once, by reactor 0, for all.

use std::io;
use std::net::SocketAddr;
#[cfg(feature = "tls")]
use std::sync::Arc;

use super::{ReactorPool, Siblings};
use crate::{Factory, ListenOptions, ListenerHandle, Reactor};

impl ReactorPool {
    /// Listens on `addr` on every reactor, with default [`ListenOptions`]
    /// (SO_REUSEPORT set), and returns the bound address: port 0 picks one
    /// free port, the same for all. `builder` makes each reactor's factory:
    /// it is called once per reactor, on that reactor's thread, with its
    /// [`Siblings`]; what it captures is what the reactors share.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::sync::{Arc, Mutex};
    /// use reactor::protocols::Echo;
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(2)?;
    /// // The builder runs once per reactor and sees which one it builds for.
    /// let built_for = Arc::new(Mutex::new(Vec::new()));
    /// let seen = built_for.clone();
    /// let addr = pool.listen_tcp("127.0.0.1:0".parse().unwrap(), move |siblings| {
    ///     seen.lock().unwrap().push(siblings.index());
    ///     || Echo
    /// })?;
    /// let mut indexes = built_for.lock().unwrap().clone();
    /// indexes.sort();
    /// assert_eq!(indexes, [0, 1]);
    ///
    /// let mut client = TcpStream::connect(addr)?; // one port, whichever reactor
    /// client.write_all(b"ping")?;
    /// let mut echo = [0; 4];
    /// client.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"ping");
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_tcp<F: Factory>(
        &self,
        addr: SocketAddr,
        builder: impl Fn(&Siblings) -> F + Send + Sync + 'static,
    ) -> io::Result<SocketAddr> {
        self.listen_tcp_with(addr, ListenOptions::default(), builder)
    }

    /// [`listen_tcp`](Self::listen_tcp) with explicit options; their limits
    /// (`max_connections`, …) apply to each reactor's listener on its own.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::net::TcpStream;
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::{ListenOptions, ReactorPool};
    ///
    /// let pool = ReactorPool::new(2)?;
    /// let options = ListenOptions {
    ///     idle_timeout: Some(Duration::from_millis(100)),
    ///     ..ListenOptions::default()
    /// };
    /// let addr = pool.listen_tcp_with("127.0.0.1:0".parse().unwrap(), options, |_| || Echo)?;
    ///
    /// let mut client = TcpStream::connect(addr)?;
    /// client.set_read_timeout(Some(Duration::from_secs(10)))?;
    /// client.write_all(b"ping")?;
    /// let mut echo = [0; 4];
    /// client.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"ping");
    /// // Then quiet: whichever reactor has it closes it after 100 ms.
    /// assert_eq!(client.read(&mut echo)?, 0);
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_tcp_with<F: Factory>(
        &self,
        addr: SocketAddr,
        options: ListenOptions,
        builder: impl Fn(&Siblings) -> F + Send + Sync + 'static,
    ) -> io::Result<SocketAddr> {
        self.listen_with(addr, options, move |reactor, addr, options, siblings| {
            reactor.listen_tcp_with(addr, builder(siblings), options)
        })
    }

    /// [`listen_tcp`](Self::listen_tcp) over TLS under `config` (see
    /// [`Reactor::listen_tls`]); the configuration is shared by every
    /// reactor (its session cache and ticketer too).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::sync::Arc;
    /// use reactor::protocols::Echo;
    /// use reactor::ReactorPool;
    /// # use reactor::tls::rustls;
    /// # // A self-signed certificate for localhost (in a real program:
    /// # // `reactor::tls::server_config("cert.pem", "key.pem")`).
    /// # let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// # let cert = localhost.cert.der().clone();
    /// # let key = localhost.signing_key.serialize_der();
    /// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.into());
    /// # let server_config = rustls::ServerConfig::builder()
    /// #     .with_no_client_auth()
    /// #     .with_single_cert(vec![cert.clone()], key)?;
    /// # let mut roots = rustls::RootCertStore::empty();
    /// # roots.add(cert)?;
    /// # let client_config = Arc::new(
    /// #     rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth(),
    /// # );
    /// # // A blocking TLS client over a std socket.
    /// # let tls_client = |addr: std::net::SocketAddr| -> Result<_, Box<dyn std::error::Error>> {
    /// #     let name = "localhost".try_into()?;
    /// #     let session = rustls::ClientConnection::new(client_config.clone(), name)?;
    /// #     Ok(rustls::StreamOwned::new(session, std::net::TcpStream::connect(addr)?))
    /// # };
    ///
    /// let pool = ReactorPool::new(2)?;
    /// let config = Arc::new(server_config); // one configuration for every reactor
    /// let addr = pool.listen_tls("127.0.0.1:0".parse().unwrap(), config, |_| || Echo)?;
    ///
    /// let mut client = tls_client(addr)?; // handshake, then plaintext both ways
    /// client.write_all(b"ping")?;
    /// let mut echo = [0; 4];
    /// client.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"ping");
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn listen_tls<F: Factory>(
        &self,
        addr: SocketAddr,
        config: Arc<crate::tls::ServerConfig>,
        builder: impl Fn(&Siblings) -> F + Send + Sync + 'static,
    ) -> io::Result<SocketAddr> {
        self.listen_tls_with(addr, config, ListenOptions::default(), builder)
    }

    /// [`listen_tls`](Self::listen_tls) with explicit options.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::{ListenOptions, ReactorPool};
    /// # use reactor::tls::rustls;
    /// # // A self-signed certificate for localhost (in a real program:
    /// # // `reactor::tls::server_config("cert.pem", "key.pem")`).
    /// # let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    /// # let cert = localhost.cert.der().clone();
    /// # let key = localhost.signing_key.serialize_der();
    /// # let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.into());
    /// # let server_config = rustls::ServerConfig::builder()
    /// #     .with_no_client_auth()
    /// #     .with_single_cert(vec![cert.clone()], key)?;
    /// # let mut roots = rustls::RootCertStore::empty();
    /// # roots.add(cert)?;
    /// # let client_config = Arc::new(
    /// #     rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth(),
    /// # );
    /// # // A blocking TLS client over a std socket.
    /// # let tls_client = |addr: std::net::SocketAddr| -> Result<_, Box<dyn std::error::Error>> {
    /// #     let name = "localhost".try_into()?;
    /// #     let session = rustls::ClientConnection::new(client_config.clone(), name)?;
    /// #     Ok(rustls::StreamOwned::new(session, std::net::TcpStream::connect(addr)?))
    /// # };
    ///
    /// let pool = ReactorPool::new(2)?;
    /// let options = ListenOptions {
    ///     tls_handshake_timeout: Duration::from_secs(2),
    ///     ..ListenOptions::default()
    /// };
    /// let addr = pool.listen_tls_with(
    ///     "127.0.0.1:0".parse().unwrap(),
    ///     Arc::new(server_config),
    ///     options,
    ///     |_| || Echo,
    /// )?;
    ///
    /// let mut client = tls_client(addr)?;
    /// client.write_all(b"ping")?;
    /// let mut echo = [0; 4];
    /// client.read_exact(&mut echo)?;
    /// assert_eq!(&echo, b"ping");
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn listen_tls_with<F: Factory>(
        &self,
        addr: SocketAddr,
        config: Arc<crate::tls::ServerConfig>,
        options: ListenOptions,
        builder: impl Fn(&Siblings) -> F + Send + Sync + 'static,
    ) -> io::Result<SocketAddr> {
        self.listen_with(addr, options, move |reactor, addr, options, siblings| {
            reactor.listen_tls_with(addr, config.clone(), builder(siblings), options)
        })
    }

    /// Runs `listen` on every reactor, on its thread, to make its listener:
    /// for listeners the other methods do not cover. `listen` gets the
    /// address to bind, `options` with `reuse_port` set (the listener must
    /// use them, or the second reactor's bind fails with "address in use"),
    /// and the reactor's [`Siblings`]. Reactor 0 binds first, with `addr`;
    /// the others then bind the address it got, so port 0 means one free
    /// port for all. If any fails, the listeners already made are stopped
    /// and the error, naming the reactor, is returned.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::{ListenOptions, ReactorPool};
    ///
    /// let pool = ReactorPool::new(2)?;
    /// let addr = "127.0.0.1:0".parse().unwrap();
    /// let bound = pool.listen_with(addr, ListenOptions::default(), |reactor, addr, options, _| {
    ///     reactor.listen_tcp_with(addr, || Echo, options)
    /// })?;
    /// assert_ne!(bound.port(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listen_with(
        &self,
        addr: SocketAddr,
        options: ListenOptions,
        listen: impl Fn(&mut Reactor, SocketAddr, ListenOptions, &Siblings) -> io::Result<ListenerHandle>
            + Send
            + Sync
            + 'static,
    ) -> io::Result<SocketAddr> {
        let options = ListenOptions {
            reuse_port: true,
            ..options
        };
        let listen = std::sync::Arc::new(listen);
        let first = listen.clone();
        let made = self.call_on(0, move |reactor, siblings| {
            first(reactor, addr, options, siblings)
        })?;
        let first = made.map_err(|e| on_reactor(0, e))?;
        let bound = first.local_addr();
        let others = self.call_on_each(move |reactor, siblings| {
            if siblings.index() == 0 {
                return Ok(None);
            }
            listen(reactor, bound, options, siblings).map(Some)
        });
        let others = match others {
            Ok(others) => others,
            Err(e) => {
                self.unlisten(vec![Some(first)]);
                return Err(e);
            }
        };
        let mut made = vec![Some(first)];
        let mut error = None;
        for (index, result) in others.into_iter().enumerate().skip(1) {
            match result {
                Ok(listener) => made.push(listener),
                Err(e) => {
                    made.push(None);
                    error.get_or_insert(on_reactor(index, e));
                }
            }
        }
        if let Some(e) = error {
            self.unlisten(made);
            return Err(e);
        }
        Ok(bound)
    }

    /// Stops the listeners made so far (index `i` on reactor `i`), after a
    /// sibling's failed: the pool listens on all reactors or none.
    fn unlisten(&self, made: Vec<Option<ListenerHandle>>) {
        for (index, listener) in made.into_iter().enumerate() {
            if let Some(listener) = listener {
                // A reactor that has stopped has closed its listeners anyway.
                let _ = self.call_on(index, move |reactor, _| reactor.stop_listening(&listener));
            }
        }
    }
}

/// `e`, saying on which reactor it happened.
fn on_reactor(index: usize, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("reactor {index}: {e}"))
}
