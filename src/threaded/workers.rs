//! The registry of a threaded server's worker threads: one per connection
//! (or per datagram), each tracked from spawn to exit so that `shutdown` can
//! wake every one of them and join them all.

use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mio::Waker;

use super::stream::BlockingStream;

/// Names one worker thread in its server's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WorkerId(u64);

impl WorkerId {
    /// The number behind the id, unique for the server's lifetime.
    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

/// One live worker.
struct Worker {
    /// A second descriptor for the worker's connection, kept so that
    /// `close_all` can shut the socket down: that wakes a read or write the
    /// worker is blocked in, which nothing else can interrupt.
    stream: Option<BlockingStream>,
    /// `None` until `spawn` has the handle, or once `join_all` took it.
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Registry {
    /// Set by `close_all`: no worker may start after it.
    closed: bool,
    next_id: u64,
    live: HashMap<WorkerId, Worker>,
    /// Handles of workers that have returned (or are about to), to be joined.
    exited: Vec<JoinHandle<()>>,
}

/// The worker threads of one server.
pub(crate) struct Workers {
    registry: Mutex<Registry>,
    name: String,
    stack_size: usize,
    /// Wakes the loop that spawns the workers (the accept or receive loop)
    /// when one has returned, so that it joins the thread at once rather
    /// than at the next connection or datagram: until it is joined, a
    /// finished thread's stack stays mapped.
    reaper: Arc<Waker>,
}

impl Workers {
    /// An empty registry whose threads will be called `name` and get
    /// `stack_size` bytes of stack; `reaper` wakes the loop that calls
    /// [`reap`](Workers::reap).
    pub(crate) fn new(name: String, stack_size: usize, reaper: Arc<Waker>) -> Self {
        Workers {
            registry: Mutex::new(Registry::default()),
            name,
            stack_size,
            reaper,
        }
    }

    /// The registry, also after a panic elsewhere: no code panics while
    /// holding the lock (it only moves handles and descriptors around), so
    /// its contents are consistent whatever the poison flag says.
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts `body` on a new thread, registered until it returns. `stream`
    /// is a clone of the connection the thread serves, if any: `close_all`
    /// shuts it down. Fails when the server is shutting down or the system
    /// refuses another thread; `body` is then dropped unrun.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        stream: Option<BlockingStream>,
        body: impl FnOnce(WorkerId) + Send + 'static,
    ) -> io::Result<()> {
        let id = self.track(stream)?;
        let workers = Arc::clone(self);
        let spawned = thread::Builder::new()
            .name(self.name.clone())
            .stack_size(self.stack_size)
            .spawn(move || {
                // Bodies catch their handlers' panics themselves; this one
                // guards the bookkeeping, so a worker is always forgotten.
                if let Err(why) = crate::panic::catch(|| body(id)) {
                    log::error!("a worker thread panicked: {why}");
                }
                workers.exited(id);
            });
        let mut registry = self.lock();
        match spawned {
            Ok(handle) => {
                // `close_all` may have run before the handle was here to be
                // unparked; a worker that parks must still see it.
                if registry.closed {
                    handle.thread().unpark();
                }
                match registry.live.get_mut(&id) {
                    Some(worker) => worker.thread = Some(handle),
                    // It has already returned.
                    None => registry.exited.push(handle),
                }
                Ok(())
            }
            Err(e) => {
                registry.live.remove(&id);
                Err(e)
            }
        }
    }

    /// Registers a worker: a thread `spawn` is about to start, or a
    /// connection served on the calling thread (a one-at-a-time server),
    /// whose `stream` `close_all` will shut down. A connection registered
    /// here directly is forgotten with [`untrack`](Workers::untrack).
    pub(crate) fn track(&self, stream: Option<BlockingStream>) -> io::Result<WorkerId> {
        let mut registry = self.lock();
        if registry.closed {
            return Err(io::Error::other("the server is shutting down"));
        }
        let id = WorkerId(registry.next_id);
        registry.next_id += 1;
        registry.live.insert(
            id,
            Worker {
                stream,
                thread: None,
            },
        );
        Ok(id)
    }

    /// Forgets a connection registered with [`track`](Workers::track).
    pub(crate) fn untrack(&self, id: WorkerId) {
        self.lock().live.remove(&id);
    }

    /// A worker's last act: forgets it (closing the registry's descriptor),
    /// queues its handle for joining and wakes the loop that joins it. A
    /// worker whose handle `spawn` has not stored yet is queued by `spawn`
    /// instead, on the spawning loop's thread, which reaps after spawning.
    fn exited(&self, id: WorkerId) {
        let queued = {
            let mut registry = self.lock();
            match registry.live.remove(&id).and_then(|worker| worker.thread) {
                Some(handle) => {
                    registry.exited.push(handle);
                    true
                }
                None => false,
            }
        };
        if queued {
            if let Err(e) = self.reaper.wake() {
                // Joined at the next wake-up or at shutdown instead.
                log::debug!("cannot wake the loop to join a finished worker: {e}");
            }
        }
    }

    /// Closes the registry's descriptor for worker `id`'s connection, so
    /// that the worker's own close is the last one: a reset (SO_LINGER 0)
    /// is sent only when the last descriptor of a socket closes.
    pub(crate) fn release_stream(&self, id: WorkerId) {
        let stream = self
            .lock()
            .live
            .get_mut(&id)
            .and_then(|worker| worker.stream.take());
        drop(stream);
    }

    /// Refuses new workers from now on and wakes every live one: its socket
    /// is shut down in both directions (a blocked read returns end-of-file,
    /// a blocked write fails) and its thread is unparked.
    pub(crate) fn close_all(&self) {
        let mut registry = self.lock();
        registry.closed = true;
        for worker in registry.live.values() {
            if let Some(stream) = &worker.stream {
                // Fails only if the socket is already gone, which is the goal.
                let _ = stream.shutdown(Shutdown::Both);
            }
            if let Some(handle) = &worker.thread {
                handle.thread().unpark();
            }
        }
    }

    /// Joins the workers that have already returned, so their handles and
    /// stacks do not pile up in a long-running server. The spawning loop
    /// calls it after each spawn and whenever it wakes, which a returning
    /// worker causes.
    pub(crate) fn reap(&self) {
        let exited = std::mem::take(&mut self.lock().exited);
        for handle in exited {
            // A worker catches its protocol's panics; a panic in the
            // bookkeeping around them has been reported by the panic hook.
            let _ = handle.join();
        }
    }

    /// Waits until every worker has returned. Call after `close_all` and
    /// after the thread that spawns workers has stopped.
    pub(crate) fn join_all(&self) {
        loop {
            let (handles, unjoinable) = {
                let mut registry = self.lock();
                let mut handles = std::mem::take(&mut registry.exited);
                handles.extend(registry.live.values_mut().filter_map(|w| w.thread.take()));
                (handles, registry.live.len())
            };
            if handles.is_empty() {
                if unjoinable == 0 {
                    return;
                }
                // A worker whose handle `spawn` has not stored yet: only
                // while a spawning thread still runs, which callers avoid.
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            for handle in handles {
                let _ = handle.join();
            }
        }
    }

    /// Workers still running.
    pub(crate) fn live(&self) -> usize {
        self.lock().live.len()
    }
}
