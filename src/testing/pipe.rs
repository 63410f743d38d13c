//! Two protocols connected to each other in memory, each through its own
//! [`StringTransport`]: what one writes, the other receives, with no
//! socket and no real time.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use super::StringTransport;
use crate::protocol::Protocol;
use crate::reason::Reason;

/// How many rounds [`Pipe::pump`] runs before deciding the two protocols
/// will never fall quiet (each round moves everything both have written).
const MAX_ROUNDS: usize = 10_000;

/// One end of a [`Pipe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The end that connected: 127.0.0.1:40000.
    Client,
    /// The end that accepted: 127.0.0.1:8000.
    Server,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// What one end's peer sent it and it has not been given yet, in order.
enum Arrival {
    Data(Vec<u8>),
    /// The peer's FIN: end-of-file after the data before it.
    Eof,
}

/// Where one end's connection stands, as its protocol has been told.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EndState {
    Open,
    /// It closed its writing side (`lose_write_connection`); still reading.
    WriteShut,
    /// It read the peer's end-of-file and, allowing half-close, writes on.
    ReadShut,
    /// `connection_lost` was called with this reason.
    Lost(Reason),
}

/// One end: its transport, what waits to be delivered to it, its state.
struct End {
    transport: StringTransport,
    inbox: VecDeque<Arrival>,
    state: EndState,
}

impl End {
    fn new(peer: SocketAddr, local: SocketAddr) -> End {
        End {
            transport: StringTransport::with_addrs(peer, local),
            inbox: VecDeque::new(),
            state: EndState::Open,
        }
    }
}

/// Two protocols connected in memory, as over a loopback socket:
/// [`pump`](Pipe::pump) hands what each wrote to the other's
/// `data_received` until neither has anything more to say, and carries out
/// the closes they ask for with the reasons the reactor gives
/// (`lose_connection`: [`Reason::LocalClosed`] on the closer, end-of-file
/// on the other, which hears [`Reason::PeerClosed`] or, if it allows
/// half-close, `read_connection_lost`; `abort_connection`:
/// [`Reason::Aborted`] on the closer and a reset,
/// [`Reason::Error`] `ConnectionReset`, on the other).
///
/// Each end's [`StringTransport`] is the test's to look at and drive
/// ([`transport`](Pipe::transport)): the bytes written since the last
/// pump, the watermarks set. Closing it directly
/// (`pipe.transport(Side::Client).lose_connection()`) closes that end under
/// its protocol, as a process that exits does: for a TLS end, a close with
/// no close_notify. Time moves for both ends with [`advance`](Pipe::advance).
///
/// Data arrives in one piece per write round, whatever the writer's
/// chunking; `pause_reading` holds it (and the end-of-file after it) until
/// `resume_reading` and the next pump.
///
/// # Example: a TLS client and server, in memory
///
#[cfg_attr(feature = "tls", doc = "```")]
#[cfg_attr(not(feature = "tls"), doc = "```ignore")]
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::sync::Arc;
/// use reactor::testing::{Pipe, Side};
/// use reactor::tls::{rustls, TlsProtocol, TlsRole};
/// use reactor::{Protocol, Reason, Transport};
///
/// /// Says hello once the handshake is done; keeps the answer and closes.
/// struct Hello(Rc<RefCell<Vec<u8>>>);
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &mut dyn Transport) {
///         t.write(b"hello");
///     }
///     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
///         self.0.borrow_mut().extend_from_slice(data);
///         t.lose_connection();
///     }
/// }
///
/// /// Answers in capitals.
/// struct Upper;
/// impl Protocol for Upper {
///     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
///         t.write(&data.to_ascii_uppercase());
///     }
/// }
///
/// // A self-signed certificate for localhost, which the client trusts.
/// let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
/// let cert = localhost.cert.der().clone();
/// let key = rustls::pki_types::PrivateKeyDer::Pkcs8(localhost.signing_key.serialize_der().into());
/// let server_config = rustls::ServerConfig::builder()
///     .with_no_client_auth()
///     .with_single_cert(vec![cert.clone()], key)?;
/// let mut roots = rustls::RootCertStore::empty();
/// roots.add(cert)?;
/// let client_config = rustls::ClientConfig::builder()
///     .with_root_certificates(roots)
///     .with_no_client_auth();
///
/// let answer = Rc::new(RefCell::new(Vec::new()));
/// let client = TlsProtocol::new(
///     TlsRole::client(Arc::new(client_config), "localhost")?,
///     Box::new(Hello(answer.clone())),
/// )?;
/// let server = TlsProtocol::new(TlsRole::server(Arc::new(server_config)), Box::new(Upper))?;
///
/// let mut pipe = Pipe::new(client, server);
/// pipe.pump();
/// assert_eq!(*answer.borrow(), b"HELLO");
/// // The client closed (with close_notify); the server answered in kind.
/// assert_eq!(pipe.lost(Side::Client), Some(&Reason::LocalClosed));
/// assert!(pipe.lost(Side::Server).is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pipe<C: Protocol, S: Protocol> {
    client: C,
    server: S,
    client_end: End,
    server_end: End,
}

impl<C: Protocol, S: Protocol> Pipe<C, S> {
    /// Connects `client` (127.0.0.1:40000) to `server` (127.0.0.1:8000):
    /// `connection_made` runs on the client, then on the server. Nothing
    /// moves until [`pump`](Pipe::pump).
    pub fn new(client: C, server: S) -> Self {
        let client_addr = SocketAddr::from(([127, 0, 0, 1], 40000));
        let server_addr = SocketAddr::from(([127, 0, 0, 1], 8000));
        let mut pipe = Pipe {
            client,
            server,
            client_end: End::new(server_addr, client_addr),
            server_end: End::new(client_addr, server_addr),
        };
        pipe.client.connection_made(&mut pipe.client_end.transport);
        pipe.server.connection_made(&mut pipe.server_end.transport);
        pipe
    }

    /// The client's protocol.
    pub fn client(&mut self) -> &mut C {
        &mut self.client
    }

    /// The server's protocol.
    pub fn server(&mut self) -> &mut S {
        &mut self.server
    }

    /// `side`'s transport: what its protocol wrote since the last pump,
    /// what it set, its clock.
    pub fn transport(&mut self, side: Side) -> &mut StringTransport {
        &mut self.end(side).transport
    }

    /// The reason `side`'s protocol was given in `connection_lost`, once it
    /// was called (a TLS layer may tell the protocol inside another: a
    /// clean close after close_notify, a truncation without it).
    pub fn lost(&self, side: Side) -> Option<&Reason> {
        let end = match side {
            Side::Client => &self.client_end,
            Side::Server => &self.server_end,
        };
        match &end.state {
            EndState::Lost(reason) => Some(reason),
            _ => None,
        }
    }

    /// Moves both ends' clocks forward by `by`, firing the timers that came
    /// due (the client's, then the server's). What they write waits for the
    /// next [`pump`](Pipe::pump).
    pub fn advance(&mut self, by: Duration) {
        for side in [Side::Client, Side::Server] {
            let (protocol, end) = self.parts(side);
            if !matches!(end.state, EndState::Lost(_)) {
                end.transport.advance(by, protocol);
            }
        }
    }

    /// Delivers what each end wrote to the other, round after round, until
    /// a round moves nothing and closes nothing; returns the bytes moved.
    ///
    /// # Panics
    ///
    /// If the two are still talking after 10,000 rounds: a loop, not a
    /// conversation.
    pub fn pump(&mut self) -> usize {
        let mut moved = 0;
        for _ in 0..MAX_ROUNDS {
            let mut busy = false;
            for side in [Side::Client, Side::Server] {
                let (bytes, changed) = self.send(side);
                moved += bytes;
                busy |= bytes > 0 || changed;
            }
            for side in [Side::Client, Side::Server] {
                busy |= self.deliver(side);
            }
            if !busy {
                return moved;
            }
        }
        panic!("Pipe::pump: the two protocols are still talking after {MAX_ROUNDS} rounds");
    }

    fn end(&mut self, side: Side) -> &mut End {
        match side {
            Side::Client => &mut self.client_end,
            Side::Server => &mut self.server_end,
        }
    }

    fn parts(&mut self, side: Side) -> (&mut dyn Protocol, &mut End) {
        match side {
            Side::Client => (&mut self.client, &mut self.client_end),
            Side::Server => (&mut self.server, &mut self.server_end),
        }
    }

    /// Takes what `side` wrote to its peer's inbox and carries out the close
    /// it asked for; returns the bytes sent and whether anything closed.
    fn send(&mut self, side: Side) -> (usize, bool) {
        let end = self.end(side);
        let bytes = end.transport.take();
        if matches!(end.state, EndState::Lost(_)) {
            return (0, false);
        }
        let aborted = end.transport.is_aborted();
        let closing = end.transport.is_disconnecting();
        let write_shut = end.transport.is_write_closed() && end.state == EndState::Open;
        let sent = if bytes.is_empty() {
            0
        } else {
            self.arrive(side.other(), Arrival::Data(bytes))
        };
        if aborted {
            // The peer gets a reset at once, whatever it was reading, and
            // loses what it had not read (with what was just sent).
            self.lose(side, Reason::Aborted);
            let reset = io::Error::from(io::ErrorKind::ConnectionReset);
            self.lose(side.other(), Reason::from(&reset));
        } else if closing {
            self.lose(side, Reason::LocalClosed);
        } else if write_shut {
            self.end(side).state = EndState::WriteShut;
            self.arrive(side.other(), Arrival::Eof);
        } else {
            return (sent, false);
        }
        (sent, true)
    }

    /// Queues `arrival` for `side`, unless its connection is gone (then
    /// what was sent is lost, as to a closed socket); returns the bytes
    /// queued.
    fn arrive(&mut self, side: Side, arrival: Arrival) -> usize {
        let end = self.end(side);
        if matches!(end.state, EndState::Lost(_)) {
            return 0;
        }
        let n = match &arrival {
            Arrival::Data(bytes) => bytes.len(),
            Arrival::Eof => 0,
        };
        end.inbox.push_back(arrival);
        n
    }

    /// Hands `side` what arrived for it, in order, while it reads; returns
    /// whether anything was handed over.
    fn deliver(&mut self, side: Side) -> bool {
        let mut any = false;
        loop {
            let (protocol, end) = self.parts(side);
            if matches!(end.state, EndState::Lost(_))
                || end.transport.is_reading_paused()
                || end.transport.is_disconnecting()
            {
                return any;
            }
            let Some(arrival) = end.inbox.pop_front() else {
                return any;
            };
            any = true;
            match arrival {
                Arrival::Data(bytes) => protocol.data_received(&mut end.transport, &bytes),
                Arrival::Eof => self.end_of_file(side),
            }
        }
    }

    /// `side` reads its peer's FIN.
    fn end_of_file(&mut self, side: Side) {
        let (protocol, end) = self.parts(side);
        match end.state {
            EndState::Open if protocol.allows_half_close() => {
                end.state = EndState::ReadShut;
                protocol.read_connection_lost(&mut end.transport);
            }
            EndState::Open | EndState::WriteShut => self.lose(side, Reason::PeerClosed),
            EndState::ReadShut | EndState::Lost(_) => {}
        }
    }

    /// Ends `side`'s connection: `connection_lost` with `reason`, and its
    /// peer reads end-of-file (a clean close) after what was sent before.
    fn lose(&mut self, side: Side, reason: Reason) {
        let (protocol, end) = self.parts(side);
        if matches!(end.state, EndState::Lost(_)) {
            return;
        }
        end.state = EndState::Lost(reason.clone());
        end.inbox.clear();
        protocol.connection_lost(&mut end.transport, &reason);
        end.transport.take();
        if reason.is_clean() {
            self.arrive(side.other(), Arrival::Eof);
        }
    }
}

impl<C: Protocol + std::fmt::Debug, S: Protocol + std::fmt::Debug> std::fmt::Debug for Pipe<C, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe")
            .field("client", &self.client)
            .field("server", &self.server)
            .field("client_state", &self.client_end.state)
            .field("server_state", &self.server_end.state)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests;
