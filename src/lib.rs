//! A single-threaded, callback-based networking reactor over mio, in the
//! style of Python's Twisted.
//!
//! A [`Reactor`] owns every socket and timer. A [`Factory`] builds a
//! [`Protocol`] for each connection; the reactor calls its
//! [`connection_made`](Protocol::connection_made),
//! [`data_received`](Protocol::data_received) and
//! [`connection_lost`](Protocol::connection_lost), handing it a
//! [`Transport`] to write through. Callbacks never block, and from any of
//! them a program can write to other connections, schedule timers, listen,
//! connect, or stop.
//!
//! The same protocols run over TLS ([`Reactor::listen_tls`],
//! [`Reactor::connect_tls`], [`Transport::start_tls`]; the [`tls`] module),
//! over UNIX sockets ([`Reactor::listen_unix`], [`Reactor::connect_unix`]),
//! on a thread per connection ([`threaded`]), and in memory for tests
//! ([`testing`]).
//!
//! # A guided tour
//!
//! Each section below is a complete program that runs as a test
//! (`cargo test --doc`): it listens on 127.0.0.1 with port 0 (any free
//! port), talks to itself, and stops on its own. The checks are made after
//! `run` returns, from what the callbacks kept: a panic inside a callback
//! (a failed `assert!` too) is caught and costs only its own connection, so
//! it would not fail a test. Coming from Python's
//! `socket` module, where a server is a loop around blocking `accept` and
//! `recv` calls, the one idea to take in first is the inversion: here the
//! reactor does the waiting, and your code is the callbacks it makes when
//! something has happened.
//!
//! 1. [A first server](#a-first-server)
//! 2. [A client](#a-client)
//! 3. [Timers](#timers)
//! 4. [Framing: lines and frames](#framing-lines-and-frames)
//! 5. [UDP](#udp)
//! 6. [Flow control](#flow-control)
//! 7. [Stopping](#stopping)
//! 8. [TLS](#tls)
//! 9. [Testing a protocol without sockets](#testing-a-protocol-without-sockets)
//! 10. [The threaded model](#the-threaded-model)
//!
//! ## A first server
//!
//! A protocol answers what arrives; a closure returning one is a factory;
//! [`Reactor::listen_tcp`] binds and [`Reactor::run`] serves. Here a plain
//! blocking client, on a thread of its own, is the test: it sends `hello`,
//! reads the answer, and stops the reactor through a [`ReactorHandle`] (the
//! one thing other threads may do with a reactor).
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use reactor::{Protocol, Reactor, Transport};
//!
//! /// Answers every chunk upper-cased.
//! struct Upper;
//! impl Protocol for Upper {
//!     fn connection_made(&mut self, transport: &mut dyn Transport) {
//!         log::info!("connected from: {}", transport.peer_addr());
//!     }
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         transport.write(&data.to_ascii_uppercase());
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let listener = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Upper)?;
//! let addr = listener.local_addr(); // the port the system picked
//!
//! let handle = reactor.handle()?;
//! let client = std::thread::spawn(move || {
//!     let answer = (|| {
//!         let mut stream = TcpStream::connect(addr)?;
//!         stream.set_read_timeout(Some(Duration::from_secs(5)))?;
//!         stream.write_all(b"hello")?;
//!         let mut answer = [0; 5];
//!         stream.read_exact(&mut answer)?;
//!         Ok::<_, std::io::Error>(answer)
//!     })();
//!     handle.stop(); // whatever happened, let `run` return
//!     answer
//! });
//!
//! reactor.run()?;
//! assert_eq!(&client.join().unwrap()?, b"HELLO");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! `data` is whatever one read returned: TCP keeps no message boundaries,
//! so `hello` may arrive as `he` and `llo`. Upper-casing does not mind;
//! most protocols do, and [framing](#framing-lines-and-frames) is the answer.
//!
//! ## A client
//!
//! [`Reactor::connect_tcp`] connects without blocking. Its factory is a
//! [`ClientFactory`], which also hears whether the connection could be
//! made. A closure is one too, but it can only log a refusal (as a
//! warning); [`client_factory`] pairs it with a closure for the failure, and
//! a program that should stop when its only connection fails *or ends*
//! writes a factory of its own, as Twisted's `ClientFactory` with
//! `clientConnectionFailed` and `clientConnectionLost` does.
//!
//! ```
//! use std::cell::RefCell;
//! use std::net::SocketAddr;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use reactor::{ClientFactory, Factory, Protocol, Reactor, Reason, Transport};
//!
//! /// Sends one question, keeps the answer, hangs up.
//! struct Ask {
//!     answer: Rc<RefCell<Vec<u8>>>,
//! }
//! impl Protocol for Ask {
//!     fn connection_made(&mut self, transport: &mut dyn Transport) {
//!         transport.write(b"what time is it?");
//!     }
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         self.answer.borrow_mut().extend_from_slice(data);
//!         if self.answer.borrow().ends_with(b"?") {
//!             transport.lose_connection();
//!         }
//!     }
//! }
//!
//! /// Builds `Ask`, and stops the reactor when its connection fails or ends.
//! struct AskFactory {
//!     answer: Rc<RefCell<Vec<u8>>>,
//! }
//! impl Factory for AskFactory {
//!     fn build_protocol(&mut self, _server: SocketAddr) -> Box<dyn Protocol> {
//!         Box::new(Ask { answer: self.answer.clone() })
//!     }
//! }
//! impl ClientFactory for AskFactory {
//!     fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
//!         eprintln!("cannot connect: {reason}");
//!         reactor.stop();
//!     }
//!     fn client_connection_lost(&mut self, reactor: &mut Reactor, _reason: &Reason) {
//!         reactor.stop();
//!     }
//! }
//!
//! /// The server side, for the example's sake: echoes.
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let server = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
//! let answer = Rc::new(RefCell::new(Vec::new()));
//! let factory = AskFactory { answer: answer.clone() };
//! reactor.connect_tcp(server.local_addr(), factory, Duration::from_secs(5));
//! reactor.run()?; // returns once the client's connection has ended
//! assert_eq!(*answer.borrow(), b"what time is it?");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A refused connection reaches `client_connection_failed` instead, with a
//! [`Reason`] saying why; the [`ClientFactory`] page has that example.
//!
//! ## Timers
//!
//! Nothing may sleep in a callback: a program asks to be called later.
//! [`Reactor::call_later`] takes a closure; a protocol's own timers
//! ([`Transport::call_later`]) come back to its
//! [`timer_fired`](Protocol::timer_fired) with a tag, and are never called
//! after the connection is gone. Both can be cancelled. Idle timeouts and
//! deadlines are built in ([`Transport::set_idle_timeout`],
//! [`Transport::set_deadline`]).
//!
//! ```
//! use std::io::Read;
//! use std::net::TcpStream;
//! use std::time::Duration;
//! use reactor::{Protocol, Reactor, Transport};
//!
//! /// Sends `tick` three times, 10 ms apart, then closes.
//! struct Ticker {
//!     left: u32,
//! }
//! impl Protocol for Ticker {
//!     fn connection_made(&mut self, transport: &mut dyn Transport) {
//!         transport.call_later(Duration::from_millis(10), 0);
//!     }
//!     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
//!     fn timer_fired(&mut self, transport: &mut dyn Transport, _tag: u64) {
//!         transport.write(b"tick\n");
//!         self.left -= 1;
//!         if self.left > 0 {
//!             transport.call_later(Duration::from_millis(10), 0);
//!         } else {
//!             transport.lose_connection();
//!         }
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let listener = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Ticker { left: 3 })?;
//! let addr = listener.local_addr();
//! // A safety net: stop after 10 s whatever happens (cancelled below).
//! let watchdog = reactor.call_later(Duration::from_secs(10), |r| r.stop());
//!
//! let handle = reactor.handle()?;
//! let client = std::thread::spawn(move || {
//!     let mut ticks = String::new();
//!     let read = TcpStream::connect(addr).and_then(|mut s| s.read_to_string(&mut ticks));
//!     handle.call_from_thread(move |r| {
//!         r.cancel(watchdog);
//!         r.stop();
//!     });
//!     read.map(|_| ticks)
//! });
//!
//! reactor.run()?;
//! assert_eq!(client.join().unwrap()?, "tick\ntick\ntick\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Framing: lines and frames
//!
//! Python's tutorials call it the "sticky packet" problem (粘包): one
//! `recv(1024)` may hold half a message or three. The [`framing`] module's
//! receivers are protocols that collect bytes and call a handler once per
//! whole message, whatever the split, with a bounded length (what a
//! message may cost is checked before it is buffered):
//! [`LineReceiver`](framing::LineReceiver) for lines,
//! [`LengthPrefixedReceiver`](framing::LengthPrefixedReceiver) for frames
//! behind a binary length (the seeds' `struct.pack` header),
//! [`NetstringReceiver`](framing::NetstringReceiver) for netstrings. Each
//! has a raw mode for bytes that follow a header, such as a file's body.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use reactor::framing::{LineHandler, LineReceiver, Lines};
//! use reactor::Reactor;
//!
//! /// Answers every line upper-cased; the line `end` hangs up.
//! struct UpperLines;
//! impl LineHandler for UpperLines {
//!     fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
//!         if line == b"end" {
//!             lines.transport().lose_connection();
//!         } else {
//!             lines.send_line(&line.to_ascii_uppercase()); // adds the delimiter
//!         }
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let listener = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || {
//!     LineReceiver::new(UpperLines)
//!         .with_delimiter(b"\n") // lines end at "\n"
//!         .with_max_length(1024) // a longer line closes the connection
//! })?;
//! let addr = listener.local_addr();
//!
//! let handle = reactor.handle()?;
//! let client = std::thread::spawn(move || {
//!     let answer = (|| {
//!         let mut stream = TcpStream::connect(addr)?;
//!         stream.write_all(b"one\ntw")?; // a line and a half...
//!         stream.write_all(b"o\nend\n")?; // ...and the rest
//!         let mut answer = String::new();
//!         stream.read_to_string(&mut answer)?; // until the server hangs up
//!         Ok::<_, std::io::Error>(answer)
//!     })();
//!     handle.stop();
//!     answer
//! });
//!
//! reactor.run()?;
//! assert_eq!(client.join().unwrap()?, "ONE\nTWO\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## UDP
//!
//! UDP has no connections: [`Reactor::listen_udp`] binds one socket and runs
//! a [`DatagramProtocol`] on it, which gets every datagram whole (empty ones
//! too) with its sender, and answers through its [`DatagramTransport`].
//! Sends never block: what the kernel cannot take waits in a bounded queue,
//! and what does not fit is dropped and counted. Both ends below are on the
//! same reactor.
//!
//! ```
//! use std::cell::RefCell;
//! use std::net::SocketAddr;
//! use std::rc::Rc;
//! use std::time::Duration;
//! use reactor::{DatagramProtocol, DatagramTransport, Reactor};
//!
//! /// Answers every datagram upper-cased, to its sender.
//! struct UpperServer;
//! impl DatagramProtocol for UpperServer {
//!     fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], from: SocketAddr) {
//!         t.write_to(&data.to_ascii_uppercase(), from);
//!     }
//! }
//!
//! /// Sends one datagram, keeps the answer, stops the reactor.
//! struct Client {
//!     server: SocketAddr,
//!     answer: Rc<RefCell<Vec<u8>>>,
//! }
//! impl DatagramProtocol for Client {
//!     fn start_protocol(&mut self, t: &mut dyn DatagramTransport) {
//!         t.write_to(b"hello", self.server);
//!     }
//!     fn datagram_received(&mut self, t: &mut dyn DatagramTransport, data: &[u8], _: SocketAddr) {
//!         self.answer.borrow_mut().extend_from_slice(data);
//!         t.reactor().unwrap().stop();
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let server = reactor.listen_udp("127.0.0.1:0".parse().unwrap(), UpperServer)?;
//! let answer = Rc::new(RefCell::new(Vec::new()));
//! let client = Client { server: server.local_addr(), answer: answer.clone() };
//! reactor.listen_udp("127.0.0.1:0".parse().unwrap(), client)?;
//! // UDP may lose a datagram: do not wait for ever.
//! reactor.call_later(Duration::from_secs(10), |r| r.stop());
//! reactor.run()?;
//! assert_eq!(*answer.borrow(), b"HELLO");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`UdpHandle`] sends from outside the protocol's callbacks; the
//! [`DatagramTransport`] page shows a connected endpoint hearing an ICMP
//! refusal.
//!
//! ## Flow control
//!
//! [`Transport::write`] never blocks, so what a peer does not read waits in
//! the connection's buffer. Two mechanisms keep that bounded. When the
//! buffer passes its high watermark ([`Transport::set_write_watermarks`],
//! [`DEFAULT_HIGH_WATERMARK`]), the protocol's
//! [`pause_producing`](Protocol::pause_producing) runs, and by default stops
//! *reading* that connection: an echo server holds at most one watermark
//! for a client that never reads. A protocol that produces data itself
//! writes while [`Transport::is_write_buffer_full`] is false and goes on in
//! [`resume_producing`](Protocol::resume_producing);
//! [`producer::StreamSender`] does that for any [`std::io::Read`]. And a
//! hard cap ([`Transport::set_write_buffer_limit`],
//! [`DEFAULT_WRITE_BUFFER_LIMIT`]) closes a connection whose program ignores
//! the watermarks. [`Reactor::register_producer`] pauses one connection
//! while another's buffer is full (a proxy).
//!
//! ```
//! use std::io::Read;
//! use std::net::TcpStream;
//! use reactor::producer::{Progress, StreamSender};
//! use reactor::{Protocol, Reactor, Transport};
//!
//! /// Sends 1 MiB, never holding more than about 64 KiB of it at once.
//! struct Download {
//!     body: StreamSender<std::io::Take<std::io::Repeat>>,
//! }
//! impl Download {
//!     fn produce(&mut self, transport: &mut dyn Transport) {
//!         match self.body.produce(transport) {
//!             Ok(Progress::Done) => transport.lose_connection(),
//!             Ok(Progress::Paused) => {} // resume_producing will call again
//!             Err(_) => transport.abort_connection(),
//!         }
//!     }
//! }
//! impl Protocol for Download {
//!     fn connection_made(&mut self, transport: &mut dyn Transport) {
//!         transport.set_write_watermarks(16 * 1024, 64 * 1024);
//!         self.produce(transport);
//!     }
//!     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
//!     fn resume_producing(&mut self, transport: &mut dyn Transport) {
//!         self.produce(transport);
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let listener = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Download {
//!     body: StreamSender::new(std::io::repeat(b'x').take(1 << 20)),
//! })?;
//! let addr = listener.local_addr();
//!
//! let handle = reactor.handle()?;
//! let client = std::thread::spawn(move || {
//!     let mut body = Vec::new();
//!     let read = TcpStream::connect(addr).and_then(|mut s| s.read_to_end(&mut body));
//!     handle.stop();
//!     read
//! });
//!
//! reactor.run()?;
//! assert_eq!(client.join().unwrap()?, 1 << 20);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Stopping
//!
//! [`Reactor::stop`] (from a callback) or [`ReactorHandle::stop`] (from
//! another thread) begins a graceful stop: listeners close, every
//! connection's [`stopping`](Protocol::stopping) is asked, and by default
//! each connection is flushed and closed; one that answers
//! [`OnStop::KeepOpen`] may finish its work within the grace period
//! ([`Reactor::set_shutdown_grace`], [`DEFAULT_SHUTDOWN_GRACE`]). A close
//! that would lose bytes resets the connection instead, so the peer can
//! tell. [`Reactor::stop_on_signals`] makes SIGINT (Ctrl-C) and SIGTERM do
//! the same; [`Reactor::add_shutdown_hook`] runs code as the stop begins.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use reactor::{OnStop, Protocol, Reactor, Transport};
//!
//! /// Echoes; says goodbye when the server stops.
//! struct Polite;
//! impl Protocol for Polite {
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//!     fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
//!         transport.write(b"bye\n");
//!         OnStop::Close // flushed, then closed
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let listener = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Polite)?;
//! let addr = listener.local_addr();
//! reactor.add_shutdown_hook(|_| eprintln!("stopping"));
//!
//! let handle = reactor.handle()?;
//! let client = std::thread::spawn(move || {
//!     let talk = (|| {
//!         let mut stream = TcpStream::connect(addr)?;
//!         stream.write_all(b"hi\n")?;
//!         let mut echo = [0; 3];
//!         stream.read_exact(&mut echo)?; // the server is serving us...
//!         handle.stop(); // ...now stop it, with us still connected
//!         let mut rest = String::new();
//!         stream.read_to_string(&mut rest)?;
//!         Ok::<_, std::io::Error>(rest)
//!     })();
//!     handle.stop(); // (again, if the talk failed early: a no-op otherwise)
//!     talk
//! });
//!
//! reactor.run()?;
//! assert_eq!(client.join().unwrap()?, "bye\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A real server's `main` runs until it is told to stop. This one is not
//! run as a test, because it serves until Ctrl-C:
//!
//! ```no_run
//! use reactor::protocols::Echo;
//! use reactor::Reactor;
//!
//! fn main() -> std::io::Result<()> {
//!     let mut reactor = Reactor::new()?;
//!     let listener = reactor.listen_tcp("127.0.0.1:7000".parse().unwrap(), || Echo)?;
//!     println!("listening on {}", listener.local_addr());
//!     reactor.stop_on_signals()?; // Ctrl-C: a graceful stop, then `run` returns
//!     reactor.run()
//! }
//! ```
//!
//! ## TLS
//!
//! TLS is a layer between the socket and the protocol (the default `tls`
//! feature, on [rustls]): the same protocol serves plain TCP
//! and TLS, and is made once the handshake is done. [`Reactor::listen_tls`]
//! and [`Reactor::connect_tls`] take a rustls configuration;
//! [`tls::server_config`] and [`tls::client_config`] read one from PEM
//! files. The [`tls`] module says what the layer promises (close_notify,
//! truncation, handshake timeouts, mutual TLS, STARTTLS).
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use std::sync::Arc;
//! use std::time::Duration;
//! use reactor::protocols::Echo;
//! use reactor::tls::rustls;
//! use reactor::{Protocol, Reactor, Transport};
//!
//! /// Says hello over TLS, keeps the echo, stops the reactor.
//! struct Hello(Rc<RefCell<Vec<u8>>>);
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, transport: &mut dyn Transport) {
//!         transport.write(b"hello"); // the handshake is done by now
//!     }
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         self.0.borrow_mut().extend_from_slice(data);
//!         transport.reactor().unwrap().stop();
//!     }
//! }
//!
//! // A self-signed certificate for localhost, trusted by the client (in a
//! // real program: `tls::server_config("cert.pem", "key.pem")` and
//! // `tls::client_config("ca.pem")`).
//! let localhost = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
//! let cert = localhost.cert.der().clone();
//! let key = rustls::pki_types::PrivateKeyDer::Pkcs8(localhost.signing_key.serialize_der().into());
//! let server_config = rustls::ServerConfig::builder()
//!     .with_no_client_auth()
//!     .with_single_cert(vec![cert.clone()], key)?;
//! let mut roots = rustls::RootCertStore::empty();
//! roots.add(cert)?;
//! let client_config = rustls::ClientConfig::builder()
//!     .with_root_certificates(roots)
//!     .with_no_client_auth();
//!
//! let mut reactor = Reactor::new()?;
//! let addr = "127.0.0.1:0".parse().unwrap();
//! let server = reactor.listen_tls(addr, Arc::new(server_config), || Echo)?;
//! let answer = Rc::new(RefCell::new(Vec::new()));
//! let hello = { let answer = answer.clone(); move || Hello(answer.clone()) };
//! let (client, timeout) = (Arc::new(client_config), Duration::from_secs(5));
//! reactor.connect_tls(server.local_addr(), "localhost", client, hello, timeout);
//! reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case it fails
//! reactor.run()?;
//! assert_eq!(*answer.borrow(), b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Testing a protocol without sockets
//!
//! A protocol only ever sees a `&mut dyn Transport`, so a test can hand it
//! a [`testing::StringTransport`], which records what was written and
//! whether a close was asked for, and moves time only when told
//! ([`StringTransport::advance`](testing::StringTransport::advance)). Feed
//! the bytes split every way you like: the protocol must not care.
//! [`testing::Pipe`] connects two protocols (a client and a server, TLS
//! layers included) in memory. A protocol that uses the reactor itself
//! (`write_to` another connection, `call_later`, `listen`, `connect`,
//! `stop`) runs on a [`testing::MemoryReactor`]: connections made in
//! memory, a clock the test advances, and what was asked for recorded.
//!
//! ```
//! use std::time::Duration;
//! use reactor::framing::{LineHandler, LineReceiver, Lines};
//! use reactor::testing::{Pipe, Side, StringTransport};
//! use reactor::{Protocol, Reason, Transport};
//!
//! /// Answers `ping` with `pong`; hangs up after 30 quiet seconds.
//! struct Pong;
//! impl LineHandler for Pong {
//!     fn connection_made(&mut self, lines: &mut Lines<'_>) {
//!         lines.transport().set_idle_timeout(Some(Duration::from_secs(30)));
//!     }
//!     fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
//!         if line == b"ping" {
//!             lines.send_line(b"pong");
//!         }
//!     }
//! }
//! let pong = || LineReceiver::new(Pong).with_delimiter(b"\n");
//!
//! // One protocol, one fake transport: split input, exact output.
//! let mut transport = StringTransport::new();
//! let mut protocol = pong();
//! protocol.connection_made(&mut transport);
//! protocol.data_received(&mut transport, b"pi");
//! assert_eq!(transport.value(), b"");
//! protocol.data_received(&mut transport, b"ng\nping\n");
//! assert_eq!(transport.take(), b"pong\npong\n");
//! assert_eq!(transport.timeouts().0, Some(Duration::from_secs(30)));
//!
//! /// A client for it: pings once, hangs up on the answer.
//! struct Ping(Vec<u8>);
//! impl Protocol for Ping {
//!     fn connection_made(&mut self, t: &mut dyn Transport) {
//!         t.write(b"ping\n");
//!     }
//!     fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
//!         self.0.extend_from_slice(data);
//!         t.lose_connection();
//!     }
//! }
//!
//! // Two protocols, connected in memory.
//! let mut pipe = Pipe::new(Ping(Vec::new()), pong());
//! pipe.pump();
//! assert_eq!(pipe.client().0, b"pong\n");
//! assert_eq!(pipe.lost(Side::Client), Some(&Reason::LocalClosed));
//! assert_eq!(pipe.lost(Side::Server), Some(&Reason::PeerClosed));
//! ```
//!
//! ## The threaded model
//!
//! [`threaded`] runs the very same `Protocol`s on a thread per connection,
//! through a blocking transport: [`threaded::listen_tcp`] takes the same
//! factories (they must be `Send`, since each thread builds its own
//! protocol). It also offers Python's `socketserver`:
//! [`threaded::RequestHandler`] with `setup`, `handle` and `finish`, served
//! by [`threaded::TcpServer`] or [`threaded::ThreadingTcpServer`], where
//! `handle` may block as a Python handler does. The `compare` example
//! measures the two models against each other.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::{SocketAddr, TcpStream};
//! use reactor::threaded::{RequestHandler, ThreadingTcpServer};
//!
//! /// Python's `socketserver` handler: blocking reads and writes are fine here.
//! struct UpperHandler;
//! impl RequestHandler for UpperHandler {
//!     fn handle(&mut self, request: &mut TcpStream, _client: SocketAddr) -> std::io::Result<()> {
//!         let mut buf = [0; 1024];
//!         loop {
//!             let n = request.read(&mut buf)?;
//!             if n == 0 {
//!                 return Ok(()); // the client closed
//!             }
//!             request.write_all(&buf[..n].to_ascii_uppercase())?;
//!         }
//!     }
//! }
//!
//! let server = ThreadingTcpServer::bind("127.0.0.1:0".parse().unwrap(), || UpperHandler)?;
//! let addr = server.local_addr();
//! let handle = server.handle();
//! let serving = std::thread::spawn(move || server.serve_forever());
//!
//! let mut client = TcpStream::connect(addr)?;
//! client.write_all(b"hello")?;
//! let mut answer = [0; 5];
//! client.read_exact(&mut answer)?;
//! assert_eq!(&answer, b"HELLO");
//!
//! handle.shutdown(); // closes every connection; serve_forever returns
//! serving.join().unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Where to go next
//!
//! The repository's `examples/` directory ports every program of the
//! Python socket tutorials this crate's users come from, each runnable with
//! `cargo run --example NAME` (`-- --help` lists its flags), and its
//! `docs/from-python.md` (in Chinese: `docs/from-python.zh.md`) puts each
//! Python program beside its port. From here, the reference: [`Reactor`]
//! for everything a program can ask of the loop (standard input and output
//! as a connection: [`Reactor::open_stdio`]), [`Protocol`] and
//! [`Transport`] for a connection's two sides, [`framing`], [`producer`],
//! [`reconnect`] for clients that connect again, [`threaded`], [`tls`] and
//! [`testing`]. UNIX sockets: [`Reactor::listen_unix`] and
//! [`Reactor::connect_unix`]; host names: [`Reactor::connect_tcp`] takes
//! `"host:port"`. Past one core, [`ReactorPool`] runs a reactor per core on
//! one port ([`multicore`]); past one machine, [`proxy`] reads the PROXY
//! header a load balancer sends.

mod address;
mod buffer;
pub mod endpoint;
pub mod framing;
pub mod multicore;
mod panic;
pub mod producer;
mod protocol;
pub mod protocols;
pub mod proxy;
mod reactor;
mod reason;
pub mod reconnect;
mod resolve;
pub mod restart;
mod rules;
mod stdio;
mod tcp;
pub mod testing;
pub mod threaded;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
mod udp;
mod unix;

pub use crate::address::{Address, UnixAddress};
pub use crate::multicore::{ReactorPool, Siblings};
pub use crate::protocol::{
    client_factory, ClientFactory, ClientFn, Factory, OnStop, Protocol, SharedFactory, Timeout,
};
pub use crate::proxy::ProxyProtocol;
pub use crate::reactor::{
    JobPanicked, PoolError, SourceEvent, SourceId, DEFAULT_POOL_QUEUE, DEFAULT_POOL_THREADS,
};
pub use crate::reactor::{LoopingCall, Reactor, ReactorHandle, Tick, DEFAULT_SHUTDOWN_GRACE};
pub use crate::reason::Reason;
pub use crate::resolve::{
    resolve_blocking, BadDestination, Destination, RESOLVER_QUEUE, RESOLVER_THREADS,
};
pub use crate::rules::{
    DEFAULT_HIGH_WATERMARK, DEFAULT_LOW_WATERMARK, DEFAULT_PROXY_HEADER_TIMEOUT,
    DEFAULT_WRITE_BUFFER_LIMIT,
};
pub use crate::tcp::{ListenOptions, ListenerHandle, ListenerStats, CONNECTION_ATTEMPT_DELAY};
pub use crate::timer::TimerId;
pub use crate::transport::{ConnectionId, Transport};
pub use crate::udp::{
    DatagramProtocol, DatagramTransport, MulticastInterface, UdpHandle, DEFAULT_SEND_QUEUE_LIMIT,
};
pub use crate::unix::PeerCredentials;

/// The README's example compiles (it is not run: it serves forever).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
