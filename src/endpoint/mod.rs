//! Endpoints: where a server listens and where a client connects, written
//! as one string (Twisted's `serverFromString` and `clientFromString`), so
//! a program's command line or configuration can say `tcp:8000`,
//! `unix:/run/app.sock`, `systemd:0` or `tls:443:cert=c.pem:key=k.pem`
//! without the program knowing each kind. Datagram programs have their
//! own two types in the same syntax, `udp:7000` and
//! `udp:host=HOST:port=7000` (an extension: Twisted has none for UDP).
//!
//! | module | job |
//! |---|---|
//! | `parse` | the syntax: splitting, escapes, checking parameters, errors, quoting |
//! | `server` | [`ServerEndpoint`], [`Listening`], [`Reactor::listen_on`](crate::Reactor::listen_on) |
//! | `client` | [`ClientEndpoint`], [`Reactor::connect_to`](crate::Reactor::connect_to) |
//! | `datagram` | [`DatagramServerEndpoint`] (`udp:PORT`), [`DatagramClientEndpoint`] (`udp:host=H:port=P`), [`Reactor::listen_datagram_on`](crate::Reactor::listen_datagram_on) |
//! | `systemd` | sockets passed by socket activation (`LISTEN_FDS`/`LISTEN_PID`) |
//!
//! # The syntax
//!
//! `TYPE:PARAMETER:PARAMETER...`: the type, then parameters separated by
//! colons, first those given by position, then `name=value` ones in any
//! order (a positional one can be named too). A backslash makes the
//! character after it plain: `\:` is a colon inside a value, `\=` an equals
//! sign in a positional value, `\\` a backslash. An IPv6 address is
//! therefore written `\:\:1`. A malformed string is an [`EndpointError`]
//! that names the part at fault:
//!
//! ```
//! use reactor::endpoint::{ClientEndpoint, ServerEndpoint};
//!
//! let err = |s: &str| s.parse::<ServerEndpoint>().unwrap_err().to_string();
//! assert!(err("tpc:80").starts_with(r#"unknown endpoint type "tpc" in "tpc:80""#));
//! assert!(err("tcp:80x").starts_with(r#"port "80x" is not a number from 0 to 65535"#));
//! assert!(err("tcp:80:backlog=5:backlog=6").starts_with(r#"parameter "backlog" given twice"#));
//! let err = "tls:host=example.com".parse::<ClientEndpoint>().unwrap_err();
//! assert!(err.to_string().starts_with(r#"missing parameter "port""#));
//! ```
//!
//! # Socket activation and inherited sockets
//!
//! A process started by systemd socket activation (or by
//! `systemd-socket-activate`, or by [`crate::restart`] handing its sockets
//! over) finds its listening sockets at descriptors 3, 4, …, announced by
//! `LISTEN_FDS` (how many) and `LISTEN_PID` (for which process). They are
//! taken once, the first time an endpoint listens: only if `LISTEN_PID` is
//! this process's pid; each is made close-on-exec; the variables are left in
//! the environment (as `sd_listen_fds(0)` leaves them: writing the
//! environment could race with other threads reading it, and a child is
//! never fooled, since `LISTEN_PID` names this process). `systemd:N` listens on socket `N`, whatever its
//! family (TCP or UNIX, found with `getsockname`). A `tcp:`, `tls:` or
//! `unix:` endpoint first looks for an inherited socket bound to the
//! address it would bind (for port 0, any port on its interface) and takes
//! it instead of binding: so a program restarted with its sockets keeps
//! its command line.

mod client;
mod datagram;
mod parse;
mod server;
pub(crate) mod systemd;

pub use self::client::ClientEndpoint;
pub use self::datagram::{DatagramClientEndpoint, DatagramServerEndpoint};
pub use self::parse::{EndpointError, Problem};
pub use self::server::{Listening, ServerEndpoint};

#[cfg(test)]
mod tests;
