//! What UNIX sockets need beyond what TCP has: binding a socket file (its
//! mode, stale files, removal) and the peer's credentials (a connection's,
//! or each datagram sender's). The reactor's and the threaded model's UNIX
//! listeners and connections share these; the rules are set out on
//! [`Reactor::listen_unix`](crate::Reactor::listen_unix).
//!
//! | module | job |
//! |---|---|
//! | `listen` | binding: the socket file's mode, stale files, removal on close |
//! | `credentials` | `PeerCredentials`: a connection's peer (SO_PEERCRED); a datagram's sender (SO_PASSCRED, SCM_CREDENTIALS) |
//! | `queued` | input waiting unread (FIONREAD), which decides what a close tells the peer |

mod credentials;
mod listen;
mod queued;

pub use self::credentials::PeerCredentials;
pub(crate) use self::credentials::{pass_credentials, recv_with_credentials};
pub(crate) use self::listen::{listen, SocketFile};
pub(crate) use self::queued::queued_input;
