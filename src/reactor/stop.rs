//! Running and stopping: `run`, a graceful stop's drain, shutdown hooks,
//! signals, and closing up what is left.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, warn};
use mio::{Events, Interest};

use super::{Reactor, Source, SIGNAL_TOKEN};
use crate::rules::deadline_after;

/// Where a run is with stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopPhase {
    /// Serving.
    NotAsked,
    /// `stop()` was called (perhaps before `run`): the current callback is
    /// the last one of the turn.
    Asked,
    /// The graceful part: protocols were told, listeners are closed, and
    /// the loop serves the connections that remain until they are done or
    /// the grace period ends.
    Draining,
}

impl Reactor {
    /// Runs the loop until [`stop`](Reactor::stop) is called, then stops
    /// gracefully.
    ///
    /// Each turn: wait for readiness (no longer than the next timer), serve
    /// every ready socket, serve sockets left over by the fairness cap or
    /// the turn's time budget, then fire the timers that were due when the
    /// phase began. Calls other threads queued while no `run` was under way
    /// run first.
    ///
    /// A stop: the shutdown hooks run ([`add_shutdown_hook`](Reactor::add_shutdown_hook)),
    /// listening sockets close, connects under way fail, and each
    /// connection's protocol is asked ([`Protocol::stopping`](crate::Protocol::stopping)):
    /// by default it is flushed and closed. The loop then serves what stays
    /// open (I/O, timers, calls from threads) until every connection is
    /// done or the grace period ([`set_shutdown_grace`](Reactor::set_shutdown_grace))
    /// ends; what is left is closed then (reset, if bytes would be lost).
    /// Every connection gets `connection_lost`, every listener's factory
    /// `stop_factory`, every UDP endpoint `stop_protocol`; pending timers
    /// are dropped without running. The reactor can run again afterwards.
    ///
    /// Errors only if the poll itself fails, or if called from inside a
    /// callback (or on a [`MemoryReactor`](crate::testing::MemoryReactor),
    /// which its test drives instead).
    pub fn run(&mut self) -> io::Result<()> {
        if self.running {
            error!("Reactor::run called from inside a callback; ignored");
            return Err(io::Error::other("the reactor is already running"));
        }
        if self.memory.is_some() {
            return Err(io::Error::other(
                "a reactor in memory is not run: its test advances it",
            ));
        }
        self.running = true;
        self.wake_for_queued_calls();
        let mut events = Events::with_capacity(1024);
        let mut result = Ok(());
        // A stop() asked for before run() (from a start hook, say) is honoured:
        // the loop below does not start.
        while self.stop == StopPhase::NotAsked {
            if let Err(e) = self.turn(&mut events, None) {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() {
            result = self.drain(&mut events);
        }
        self.shutdown();
        self.running = false;
        self.stop = StopPhase::NotAsked;
        result
    }

    /// Asks the loop to stop: no further callback of this turn runs after
    /// the current one returns, and the graceful stop begins (see
    /// [`run`](Reactor::run)). Called before `run`, it makes `run` close up
    /// at once. Once the stop has begun, `connect_tcp` fails and `listen_*`
    /// return an error.
    ///
    /// On a [`MemoryReactor`](crate::testing::MemoryReactor) a stop is
    /// recorded ([`stop_requested`](crate::testing::MemoryReactor::stop_requested)),
    /// not begun: the test decides what follows.
    pub fn stop(&mut self) {
        if let Some(memory) = &mut self.memory {
            memory.stop_requested = true;
            return;
        }
        if self.stop == StopPhase::NotAsked {
            self.stop = StopPhase::Asked;
        }
    }

    /// Whether [`stop`](Reactor::stop) has been called during this run.
    pub fn is_stopping(&self) -> bool {
        self.stop != StopPhase::NotAsked
    }

    /// The error `listen_*` return while the reactor stops.
    pub(crate) fn refuse_while_stopping(&self) -> io::Result<()> {
        if self.is_stopping() {
            return Err(io::Error::other("the reactor is stopping: no new listener"));
        }
        Ok(())
    }

    /// How long a graceful stop lets connections finish (flush what they
    /// buffered, or the work of those that stay open) before it closes them
    /// regardless (default [`DEFAULT_SHUTDOWN_GRACE`](crate::DEFAULT_SHUTDOWN_GRACE);
    /// zero closes at once; `Duration::MAX`, or anything past what the clock
    /// holds, waits for ever).
    pub fn set_shutdown_grace(&mut self, grace: Duration) {
        self.shutdown_grace = grace;
    }

    /// Runs `hook` when a graceful stop begins, before listeners close and
    /// protocols are asked (Twisted's `addSystemEventTrigger('before',
    /// 'shutdown', f)`). Hooks run once, in the order added.
    ///
    /// ```
    /// let mut reactor = reactor::Reactor::new()?;
    /// reactor.add_shutdown_hook(|_| eprintln!("stopping"));
    /// reactor.stop();
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_shutdown_hook(&mut self, hook: impl FnOnce(&mut Reactor) + 'static) {
        self.shutdown_hooks.push(Box::new(hook));
    }

    /// Makes SIGINT and SIGTERM stop the reactor gracefully, as the seeds'
    /// servers catch `KeyboardInterrupt`; a second signal exits the process
    /// at once with status 1. Replaces those signals' default action for the
    /// whole process, so call it from applications, not libraries.
    pub fn stop_on_signals(&mut self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use std::sync::atomic::AtomicBool;
        if self.signals.is_some() {
            return Ok(());
        }
        let again = Arc::new(AtomicBool::new(false));
        for signal in [SIGINT, SIGTERM] {
            // Registered first, so the first signal finds the flag false and
            // only sets it; the second finds it set and exits.
            signal_hook::flag::register_conditional_shutdown(signal, 1, again.clone())?;
            signal_hook::flag::register(signal, again.clone())?;
        }
        let mut signals = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        self.poll
            .registry()
            .register(&mut signals, SIGNAL_TOKEN, Interest::READABLE)?;
        self.signals = Some(signals);
        Ok(())
    }

    pub(crate) fn signalled(&mut self) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        if let Some(signal) = signals.pending().next() {
            let name = match signal {
                signal_hook::consts::SIGINT => "SIGINT",
                _ => "SIGTERM",
            };
            warn!(
                "{name} received: stopping, finishing for at most {:?} (again to exit now)",
                self.shutdown_grace
            );
            self.stop();
        }
    }

    /// The graceful part of a stop: hooks, listeners, protocols told; then
    /// turns as usual until no connection is left or the grace ends.
    fn drain(&mut self, events: &mut Events) -> io::Result<()> {
        self.stop = StopPhase::Draining;
        for hook in std::mem::take(&mut self.shutdown_hooks) {
            if let Err(why) = crate::panic::catch(|| hook(self)) {
                error!("a shutdown hook panicked: {why}");
            }
            self.apply_closes();
        }
        // Connections already closed and lingering delivered their data;
        // waiting for their peers' FINs would only delay the stop.
        for id in self.slot_ids(|s| matches!(s, Source::Lingering(_))) {
            self.end_linger(id, "reactor stopping");
        }
        self.close_listening_sockets();
        self.stop_connections();
        self.apply_closes();
        let deadline = deadline_after(Instant::now(), self.shutdown_grace);
        // Jobs of the thread pool are waited for like connections: their
        // on_done may still answer one.
        while self.pool.in_flight() > 0
            || self
                .slots
                .iter()
                .any(|(_, s)| matches!(s.source, Source::Conn(_) | Source::Lingering(_)))
        {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                debug!("shutdown grace of {:?} over", self.shutdown_grace);
                break;
            }
            self.turn(events, deadline)?;
        }
        Ok(())
    }

    /// Closes what is still open when the loop ends.
    fn shutdown(&mut self) {
        // connection_lost and client factories' hooks may try to connect;
        // those attempts fail, and are reported, for a few rounds.
        for _round in 0..3 {
            for id in self.slot_ids(|s| matches!(s, Source::Conn(_))) {
                self.close_on_stop(id.into());
            }
            self.apply_closes();
            self.report_failed_connects();
            if self.failed_connects.is_empty()
                && !self
                    .slots
                    .iter()
                    .any(|(_, s)| matches!(s.source, Source::Conn(_)))
            {
                break;
            }
        }
        for id in self.slot_ids(|_| true) {
            self.remove_listener(id);
            self.remove_udp(id);
            self.end_linger(id, "reactor stopped");
            self.remove_custom(id);
        }
        let left = self.slots.len() + self.failed_connects.len();
        if left > 0 {
            warn!("{left} connections opened during shutdown were dropped without callbacks");
            for slot in self.slots.drain() {
                crate::panic::drop_caught(slot, "a connection opened during shutdown");
            }
            let failed = std::mem::take(&mut self.failed_connects);
            crate::panic::drop_caught(failed, "client factories of connects during shutdown");
        }
        self.drop_timers();
        self.again.clear();
        self.close_pool();
        debug!("reactor stopped");
    }

    /// Drops every pending timer without running it, each under the panic
    /// guard (a closure's captures may have a `Drop` that panics).
    fn drop_timers(&mut self) {
        for action in self.timers.drain() {
            crate::panic::drop_caught(action, "a pending timer's callback");
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // User values still held (registered but never run, or a reactor
        // dropped without `run`) are dropped under the panic guard too.
        if let Some(remote) = &self.remote {
            let calls =
                std::mem::take(&mut *remote.calls.lock().unwrap_or_else(|p| p.into_inner()));
            crate::panic::drop_caught(calls, "queued calls from threads");
        }
        self.close_pool();
        self.drop_timers();
        for slot in self.slots.drain() {
            crate::panic::drop_caught(slot, "a source of the reactor");
        }
        let hooks = std::mem::take(&mut self.shutdown_hooks);
        crate::panic::drop_caught(hooks, "shutdown hooks");
        let failed = std::mem::take(&mut self.failed_connects);
        crate::panic::drop_caught(failed, "client factories");
    }
}
