//! Clients that reconnect, with an exponential back-off: Twisted's
//! `ReconnectingClientFactory`.
//!
//! | module | job |
//! |---|---|
//! | `client` | [`ReconnectingClient`], the handle: built around a user's `ClientFactory`, configured, started (`connect_with`), stopped (`stop_trying`), queried |
//! | `state` | `Phase`, the one enum of where a client is (unstarted, starting, trying, waiting for a retry, ending after `stop_trying`, stopped, done), and its pure transitions |
//! | `cycle` | the steps that act on the reactor and the user's code: make an attempt, hear its end, schedule the retry or give up, `stop_factory` once done |
//! | `attempt` | [`Attempt`], each attempt's factory, and the protocol wrapper that reports the connection made |
//! | `backoff` | `Backoff` and its one pure function (`next_delay`); the random source of its jitter |
//!
//! A [`ReconnectingClient`] wraps any [`ClientFactory`](crate::ClientFactory). Each attempt gets
//! a factory of its own ([`Attempt`]) that passes every hook on to the
//! user's factory and, once the attempt failed or its connection ended,
//! schedules the next one with [`Reactor::call_later`](crate::Reactor::call_later). The rules are
//! Twisted's:
//!
//! - After a failed attempt *or a lost connection*, whatever the reason,
//!   the client retries after [`Backoff::next_delay`] (about e, e², e³, …
//!   seconds), unless [`stop_trying`](ReconnectingClient::stop_trying) was
//!   called or [`max_retries`](Backoff::max_retries) consecutive retries
//!   failed: then it gives up, and the give-up hook
//!   ([`on_give_up`](ReconnectingClient::on_give_up)) runs once.
//! - The delay and the retry count go back to the start once a connection
//!   is made: **automatically, when the connection's protocol is told
//!   `connection_made`** (after a TLS handshake, for TLS). Twisted leaves
//!   that to the user (`resetDelay`, which its documentation calls from
//!   `buildProtocol`); here every protocol is wrapped so it cannot be
//!   forgotten. A client that should count a connection as good only
//!   later (after a login, say) turns that off
//!   ([`reset_on_connect(false)`](ReconnectingClient::reset_on_connect))
//!   and calls [`reset_delay`](ReconnectingClient::reset_delay) itself.
//! - `stop_trying` cancels a pending retry and aborts an attempt under
//!   way (its factory hears `client_connection_failed` with
//!   [`Reason::Aborted`](crate::Reason::Aborted)); a connection already made stays open, and is
//!   not replaced when it ends.
//! - A reactor that is stopping makes no new attempts: a retry that
//!   comes due during its graceful stop ends the client instead.
//! - The user's factory hears `start_factory` once, before the first
//!   attempt, and `stop_factory` once, when the client is done for good
//!   (Twisted calls them around every attempt).
//!
//! Where to connect is the user's closure ([`connect_with`](ReconnectingClient::connect_with)),
//! given the reactor and the attempt's factory: `connect_tcp` to an
//! address, `connect_tls`, or any other way of connecting there is.

mod attempt;
mod backoff;
mod client;
mod cycle;
mod state;

pub use self::attempt::Attempt;
pub use self::backoff::{
    Backoff, RandomSource, XorShift, JITTER_CUT, TWISTED_FACTOR, TWISTED_JITTER,
};
pub use self::client::ReconnectingClient;
