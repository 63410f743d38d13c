//! A single-threaded, callback-based networking reactor over mio, in the
//! style of Python's Twisted.
//!
//! A [`Reactor`] owns every socket and timer. A [`Factory`] builds a
//! [`Protocol`] for each connection; the reactor calls its `connection_made`,
//! `data_received` and `connection_lost`, handing it a [`Transport`] to write
//! through. Callbacks never block, and from any of them a program can write
//! to other connections, schedule timers, listen, connect, or stop.
//!
//! The same protocols run over TLS ([`Reactor::listen_tls`],
//! [`Reactor::connect_tls`], [`Transport::start_tls`]; the [`tls`] module),
//! on a thread per connection ([`threaded`]), and in memory for tests
//! ([`testing`]).
//!
//! # Example: an echo server and a client talking to it
//!
//! ```
//! use std::time::Duration;
//! use reactor::{Protocol, Reactor, Reason, Transport};
//!
//! /// Sends back whatever arrives.
//! struct Echo;
//! impl Protocol for Echo {
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         transport.write(data);
//!     }
//! }
//!
//! /// Says hello, checks the echo, then hangs up.
//! struct Hello;
//! impl Protocol for Hello {
//!     fn connection_made(&mut self, transport: &mut dyn Transport) {
//!         transport.write(b"hello");
//!     }
//!     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
//!         assert_eq!(data, b"hello");
//!         transport.lose_connection();
//!     }
//!     fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
//!         assert!(reason.is_clean());
//!         transport.reactor().unwrap().stop();
//!     }
//! }
//!
//! let mut reactor = Reactor::new()?;
//! let server = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Echo)?;
//! reactor.connect_tcp(server.local_addr(), || Hello, Duration::from_secs(5));
//! reactor.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod buffer;
pub mod framing;
mod panic;
pub mod producer;
mod protocol;
pub mod protocols;
mod reactor;
mod reason;
mod rules;
mod tcp;
pub mod testing;
pub mod threaded;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
mod transport;
mod udp;

pub use crate::protocol::{ClientFactory, Factory, OnStop, Protocol, SharedFactory, Timeout};
pub use crate::reactor::{Reactor, ReactorHandle, DEFAULT_SHUTDOWN_GRACE};
pub use crate::reason::Reason;
pub use crate::rules::{DEFAULT_HIGH_WATERMARK, DEFAULT_LOW_WATERMARK, DEFAULT_WRITE_BUFFER_LIMIT};
pub use crate::tcp::{ListenOptions, ListenerHandle, ListenerStats};
pub use crate::timer::TimerId;
pub use crate::transport::{ConnectionId, Transport};
pub use crate::udp::{
    DatagramProtocol, DatagramTransport, MulticastInterface, UdpHandle, DEFAULT_SEND_QUEUE_LIMIT,
};

/// The README's example compiles (it is not run: it serves forever).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExample;
