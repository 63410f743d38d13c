//! Stream connections, TCP and UNIX: listening, connecting, and each
//! connection's life.
//!
//! | module | job |
//! |---|---|
//! | `state` | a connection's state: one `ConnState`, and the orthogonal read pause, flow and deadline |
//! | `connection` | `Conn`, the read path, callbacks under the panic guard |
//! | `close` | queued closes, and how a descriptor ends (reset, lingering, plain) |
//! | `write` | the write path: coalescing a callback's writes, the buffer and its cap, flushing |
//! | `flow` | watermarks and the cap, producers (`register_producer`), read pauses |
//! | `transport` | `ConnTransport`, the reactor's `Transport` |
//! | `lent` | a connection's protocol lent to a callback, alone or inside its TLS layer |
//! | `tls` | `listen_tls`, `connect_tls`, `start_tls`; plaintext written to a TLS connection |
//! | `listener` | a listener: what its slot keeps; `ListenOptions`, `ListenerStats`, `ListenerHandle` |
//! | `listen` | binding and registering listeners (`listen_tcp`, `add_listener`), looking one up |
//! | `accept` | the accept loop: bursts of `accept`, each connection admitted, the back-off when `accept` fails |
//! | `listener_stop` | stopping listeners: `stop_listening`, and on a reactor stop each queue accepted before its socket closes |
//! | `memory_listener` | listeners of a reactor in memory: no socket, protocols built under the same limits |
//! | `admission` | a listener's counts: admitting a connection against its limits, releasing it |
//! | `accepted` | making an accepted connection: its slot, protocol and TLS layer |
//! | `proxy` | accepted connections waiting for their PROXY protocol header |
//! | `connector` | `connect_tcp`, finishing or failing a connect |
//! | `happy` | dials by name or to several addresses: Happy Eyeballs (RFC 8305) |
//! | `unix` | `listen_unix`, `connect_unix` (and their TLS forms): UNIX sockets on the same machinery |
//! | `stream` | what a connection reads and writes (a TCP or UNIX socket, or stdin and stdout) and what a listener accepts on (`Stream`, `ListeningSocket`) |
//! | `peer` | `Peer`, a connection's other end as kept; `PeerKey`, whom per-peer limits count |
//! | `linger` | lingering clean closes |
//! | `timeouts` | idle timeouts and deadlines |
//! | `stop` | what a stop does to each connection |

mod accept;
mod accepted;
mod admission;
mod close;
mod connection;
mod connector;
mod flow;
mod happy;
mod lent;
mod linger;
mod listen;
mod listener;
mod listener_stop;
mod memory_listener;
mod peer;
mod proxy;
mod state;
mod stop;
mod stream;
mod timeouts;
#[cfg(feature = "tls")]
pub(crate) mod tls;
mod transport;
mod unix;
mod write;

pub(crate) use self::close::QueuedClose;
pub(crate) use self::connection::Conn;
// The in-memory connections of `testing::MemoryReactor` keep the same state
// and are served through the same transport.
pub(crate) use self::admission::Admission;
pub(crate) use self::connection::{ClientOrigin, Origin};
pub(crate) use self::connector::{FailedConnect, DEAD_ID};
pub(crate) use self::flow::{Producers, WriteLimits};
pub use self::happy::CONNECTION_ATTEMPT_DELAY;
pub(crate) use self::linger::Lingering;
pub use self::listener::{ListenOptions, ListenerHandle, ListenerStats};
pub(crate) use self::listener::{Listener, ListenerTls};
pub(crate) use self::peer::Peer;
pub(crate) use self::state::{ConnState, Deadline, Ending, Flow, ReadPause, ReadSide, WriteSide};
pub(crate) use self::stream::{ListeningSocket, Stream, WriteWatch};
pub(crate) use self::transport::ConnTransport;
pub(crate) use self::write::Stage;
