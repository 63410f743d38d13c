//! A reconnecting client's cycle, against the reactor and the user's code:
//! start, make an attempt with the user's connect closure, hear its end,
//! schedule the next one or give up, stop trying, and tell the user's
//! factory `stop_factory` once done. Each step asks the client's
//! [`State`] what to do, then does it.

use std::cell::RefCell;
use std::rc::Rc;

use log::{info, warn};

use super::attempt::Attempt;
use super::state::{AfterEnd, Start, State, StopTrying};
use crate::protocol::ClientFactory;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::transport::ConnectionId;

/// How an attempt is made: the reactor and the attempt's factory in, the
/// connection's id out.
pub(super) type Connector = Box<dyn FnMut(&mut Reactor, Attempt) -> ConnectionId>;

/// What runs when the client gives up.
pub(super) type GiveUp = Box<dyn FnMut(&mut Reactor, &Reason)>;

/// What every clone of a client and every one of its attempts share.
/// Four cells, never borrowed across a call into user code but the
/// factory's (whose hooks can only reach the others).
pub(super) struct Shared {
    pub(super) factory: RefCell<Box<dyn ClientFactory>>,
    pub(super) connector: RefCell<Option<Connector>>,
    pub(super) give_up: RefCell<Option<GiveUp>>,
    pub(super) state: RefCell<State>,
}

/// `connect_with`: starts the user's factory and makes the first attempt
/// with `connect`, unless the client was started already.
pub(super) fn start(shared: &Rc<Shared>, reactor: &mut Reactor, connect: Connector) {
    if shared.state.borrow_mut().start() == Start::AlreadyStarted {
        warn!("a reconnecting client was asked to connect twice; the second is ignored");
        return;
    }
    *shared.connector.borrow_mut() = Some(connect);
    let started = crate::panic::catch(|| shared.factory.borrow_mut().start_factory());
    if let Err(why) = started {
        log::error!("start_factory panicked: {why}");
    }
    attempt(shared, reactor);
}

/// `stop_trying`: cancels a pending retry, or aborts an attempt under way.
pub(super) fn stop_trying(shared: &Shared, reactor: &mut Reactor) {
    let then = shared.state.borrow_mut().stop_trying();
    match then {
        StopTrying::Nothing => {}
        StopTrying::Abort(id) => reactor.lose_connection(id),
        StopTrying::CancelAndFinish(timer) => {
            reactor.cancel(timer);
            finish(shared);
        }
        StopTrying::Finish => finish(shared),
    }
}

/// Makes one attempt with the user's connector, unless the client stopped
/// trying or the reactor is stopping: then the client is done.
fn attempt(shared: &Rc<Shared>, reactor: &mut Reactor) {
    if !shared
        .state
        .borrow_mut()
        .begin_attempt(reactor.is_stopping())
    {
        finish(shared);
        return;
    }
    let Some(mut connect) = shared.connector.borrow_mut().take() else {
        // Only while the connector itself runs, which makes no attempt.
        log::error!("a reconnecting client's attempt was due while its connect closure ran");
        shared.state.borrow_mut().attempt_panicked();
        finish(shared);
        return;
    };
    let attempt = Attempt::new(Rc::clone(shared));
    let id = crate::panic::catch(|| connect(reactor, attempt));
    *shared.connector.borrow_mut() = Some(connect);
    let Ok(id) = id else {
        log::error!("a reconnecting client's connect closure panicked; it stops trying");
        shared.state.borrow_mut().attempt_panicked();
        finish(shared);
        return;
    };
    if shared.state.borrow_mut().attempt_started(id) {
        // `stop_trying` ran while the connect was being started.
        reactor.lose_connection(id);
    }
}

/// An attempt failed (`made` false) or its connection ended: the next
/// attempt is scheduled, or the client gives up or is done.
pub(super) fn ended(shared: &Rc<Shared>, reactor: &mut Reactor, reason: &Reason, made: bool) {
    let after = shared.state.borrow_mut().ended(reactor.is_stopping());
    match after {
        AfterEnd::Nothing => {}
        AfterEnd::Finish => finish(shared),
        AfterEnd::GiveUp(attempts) => {
            let hook = shared.give_up.borrow_mut().take();
            match hook {
                Some(mut hook) => {
                    if let Err(why) = crate::panic::catch(|| hook(reactor, reason)) {
                        log::error!("a reconnecting client's give-up hook panicked: {why}");
                    }
                }
                None => warn!("giving up after {attempts} attempts in a row: {reason}"),
            }
            finish(shared);
        }
        AfterEnd::Retry(delay) => {
            let what = if made {
                "connection lost"
            } else {
                "cannot connect"
            };
            info!("{what} ({reason}); retrying in {delay:.1?}");
            let next = Rc::clone(shared);
            let timer = reactor.call_later(delay, move |reactor| attempt(&next, reactor));
            shared.state.borrow_mut().retry_scheduled(timer);
        }
    }
}

/// The client stopped, with nothing under way: the user's factory hears
/// `stop_factory`, once.
fn finish(shared: &Shared) {
    if !shared.state.borrow_mut().finish() {
        return;
    }
    let stopped = crate::panic::catch(|| shared.factory.borrow_mut().stop_factory());
    if let Err(why) = stopped {
        log::error!("stop_factory panicked: {why}");
    }
}
