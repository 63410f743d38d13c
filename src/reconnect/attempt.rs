//! One attempt of a reconnecting client, as the reactor sees it: the
//! [`Attempt`] factory that passes every hook on to the user's factory and
//! reports the attempt's end, and the protocol wrapper that reports the
//! connection made.

use std::net::SocketAddr;
use std::rc::Rc;

use super::cycle::{self, Shared};
use crate::protocol::{ClientFactory, Factory, OnStop, Protocol, Timeout};
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::transport::Transport;

/// The factory of one attempt of a [`ReconnectingClient`](super::ReconnectingClient): what its
/// connector hands the reactor's connect. Every hook goes to the user's
/// factory; the protocol it builds is wrapped to tell the client when the
/// connection is made.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::protocols::Echo;
/// use reactor::reconnect::{Attempt, ReconnectingClient};
/// use reactor::{Protocol, Reactor, Transport};
///
/// /// Stops the reactor once connected.
/// struct Connected(Rc<Cell<bool>>);
/// impl Protocol for Connected {
///     fn connection_made(&mut self, t: &mut dyn Transport) {
///         self.0.set(true);
///         t.reactor().unwrap().stop();
///     }
///     fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
/// }
///
/// // An abstract UNIX name: no file to create or clean up.
/// let name = format!("@reactor-doc-attempt-{}", std::process::id());
/// let mut reactor = Reactor::new()?;
/// reactor.listen_unix(&name, || Echo)?;
/// let connected = Rc::new(Cell::new(false));
/// let kept = connected.clone();
/// let client = ReconnectingClient::new(move || Connected(kept.clone()));
/// // Each attempt's factory goes to whatever connects: here, over UNIX.
/// client.connect_with(&mut reactor, move |reactor, attempt: Attempt| {
///     reactor.connect_unix(&name, attempt, Duration::from_secs(5))
/// });
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
/// reactor.run()?;
/// assert!(connected.get());
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Attempt {
    shared: Rc<Shared>,
}

impl Attempt {
    /// An attempt of the client that `shared` is.
    pub(super) fn new(shared: Rc<Shared>) -> Attempt {
        Attempt { shared }
    }
}

impl Factory for Attempt {
    fn build_protocol(&mut self, peer: SocketAddr) -> Box<dyn Protocol> {
        let inner = self.shared.factory.borrow_mut().build_protocol(peer);
        Box::new(Tracked {
            inner,
            shared: Rc::clone(&self.shared),
        })
    }
}

impl ClientFactory for Attempt {
    fn started_connecting(&mut self, reactor: &mut Reactor) {
        self.shared.factory.borrow_mut().started_connecting(reactor);
    }

    fn client_connection_failed(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let heard = crate::panic::catch(|| {
            let mut factory = self.shared.factory.borrow_mut();
            factory.client_connection_failed(reactor, reason);
        });
        if let Err(why) = heard {
            log::error!("client_connection_failed panicked: {why}");
        }
        // Whatever the user's hook did, the client goes on.
        cycle::ended(&self.shared, reactor, reason, false);
    }

    fn client_connection_lost(&mut self, reactor: &mut Reactor, reason: &Reason) {
        let heard = crate::panic::catch(|| {
            let mut factory = self.shared.factory.borrow_mut();
            factory.client_connection_lost(reactor, reason);
        });
        if let Err(why) = heard {
            log::error!("client_connection_lost panicked: {why}");
        }
        cycle::ended(&self.shared, reactor, reason, true);
    }
}

/// The user's protocol, which tells the client when its connection is
/// made (and so resets the delay) before it hears `connection_made`.
struct Tracked {
    inner: Box<dyn Protocol>,
    shared: Rc<Shared>,
}

impl Protocol for Tracked {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.shared.state.borrow_mut().connected(transport.id());
        self.inner.connection_made(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        self.inner.data_received(transport, data);
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        self.inner.connection_lost(transport, reason);
    }

    fn timeout_connection(&mut self, transport: &mut dyn Transport, timeout: Timeout) {
        self.inner.timeout_connection(transport, timeout);
    }

    fn allows_half_close(&self) -> bool {
        self.inner.allows_half_close()
    }

    fn read_connection_lost(&mut self, transport: &mut dyn Transport) {
        self.inner.read_connection_lost(transport);
    }

    fn pause_producing(&mut self, transport: &mut dyn Transport) {
        self.inner.pause_producing(transport);
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.inner.resume_producing(transport);
    }

    fn stopping(&mut self, transport: &mut dyn Transport) -> OnStop {
        self.inner.stopping(transport)
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        self.inner.timer_fired(transport, tag);
    }
}
