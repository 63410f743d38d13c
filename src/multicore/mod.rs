//! Past one core: [`ReactorPool`] runs N reactors on N threads, each with
//! its own listening socket on the same address (SO_REUSEPORT), so one
//! port is served from N cores.
//!
//! | module | job |
//! |---|---|
//! | here | the pool: its threads, calls into its reactors, stopping, waiting |
//! | `listen` | one listener per reactor on one address; port 0 |
//! | `siblings` | [`Siblings`]: a reactor's index and its siblings' handles |
//!
//! Not to be confused with the thread pool of
//! [`Reactor::run_in_thread`]: that one runs *blocking jobs* for one
//! reactor, whose results come back to that reactor's thread; this one runs
//! *whole reactors*, each its own event loop, and no job moves between them.
//!
//! # Shared nothing
//!
//! Each reactor is the single-threaded reactor of the rest of the crate:
//! its sockets, timers, factories and protocols never leave its thread, so
//! protocols need not be `Send`, and the hot path takes no lock. A
//! connection stays on the reactor that accepted it for its whole life.
//! What the reactors share is what the program gives them explicitly:
//!
//! - the *builder* given to [`ReactorPool::listen_tcp`] and its kin is
//!   `Fn(&Siblings) -> F + Send + Sync`: it is called once per reactor, on
//!   that reactor's thread, and what it captures (an `Arc<AtomicU64>`
//!   counter, an `Arc<Mutex<…>>` table, a `rustls` configuration) is
//!   shared by every reactor, in the open; the factory it returns is that
//!   reactor's alone, and need not be `Send`;
//! - [`Siblings`] gives code on one reactor a [`ReactorHandle`] on each of
//!   the others, to queue a closure there
//!   ([`call_from_thread`](ReactorHandle::call_from_thread)): a chat room
//!   spread over reactors forwards a message to each reactor, which writes
//!   it to its own members.
//!
//! # Who hands out connections
//!
//! The kernel does. Every reactor listens on its own socket bound to the
//! same address with SO_REUSEPORT, and Linux picks the socket for each new
//! connection by a hash of its addresses and ports. Nothing is handed from
//! thread to thread (no accept thread, no channel), and a reactor that is
//! busy does not slow the others' accepts.
//!
//! The hash spreads *connections*, not work. Many short connections end up
//! even; a few long-lived ones may not (four connections on two reactors
//! land 3–1 or 4–0 more often than not), and a connection never moves, so
//! a reactor can be busy while another idles. Only a program that opens
//! enough connections for the counts to even out gets all the cores
//! (throughput adds up as long as every reactor has enough connections to
//! stay busy; a reactor with more connections than its share gives each a
//! slower turn). Steering by the CPU that took the packet
//! (SO_INCOMING_CPU) or by a program of one's own (a reuseport BPF
//! program) is out of scope.
//!
//! tokio's multi-thread runtime, the comparison point, does the opposite:
//! one listening socket, and tasks that any worker may run (work
//! stealing), so a busy worker's connections are picked up by idle ones.
//! The price is that every task and what it holds must be `Send`, state
//! shared between tasks needs locks or atomics, and a connection's data
//! moves between cores' caches. The pool keeps the reactor's model
//! (nginx's workers and seastar's shards do the same): no balancing once a
//! connection is placed, and no cost for it either. Twisted has no
//! equivalent: it runs one reactor per process, and more cores mean more
//! processes.
//!
//! # Stopping
//!
//! [`ReactorPool::stop`] (or the first SIGINT/SIGTERM under
//! [`ReactorPool::stop_on_signals`], or a `stop()` on any one reactor)
//! stops every reactor: a reactor whose stop begins asks every sibling to
//! stop too, so the pool stops as one. Each stops by the rules of one
//! reactor ([`Reactor::run`]): shutdown hooks, listeners closed, protocols
//! asked, the drain within its own shutdown grace
//! ([`ReactorPool::set_shutdown_grace`] sets every reactor's).
//!
//! A listening socket that closes resets the connections waiting in its
//! accept queue (handshake done, not yet accepted). With SO_REUSEPORT each
//! reactor has its own queue, and the kernel does not move those
//! connections to a sibling (unless the `net.ipv4.tcp_migrate_req` sysctl
//! is on, Linux 5.14+). So every listener, at a stop, first accepts what
//! its queue holds, then closes: those connections join the stop like every
//! open connection, and get what the protocol's
//! [`stopping`](crate::Protocol::stopping) decides. With the default
//! (`OnStop::Close`), a client that sent nothing gets a clean close (a FIN,
//! no reset); one whose request no protocol read is reset, as an open
//! connection's would be; a protocol that keeps connections open to finish
//! (`OnStop::KeepOpen`) answers them. No order between reactors is needed:
//! a closed listener leaves the reuseport group at once, so connections
//! arriving later go to the listeners still open, which accept them in turn
//! before they close. What is left is a handshake still in flight at the
//! instant the last listener closes, which is reset as by any server that
//! closes its port.
//!
//! # What a user does
//!
//! ```no_run
//! use reactor::protocols::Echo;
//! use reactor::ReactorPool;
//!
//! fn main() -> std::io::Result<()> {
//!     let pool = ReactorPool::per_core()?; // or ReactorPool::new(4)
//!     let addr = pool.listen_tcp("0.0.0.0:7000".parse().unwrap(), |_siblings| || Echo)?;
//!     println!("listening on {addr}");
//!     pool.stop_on_signals()?; // Ctrl-C: every reactor stops gracefully
//!     pool.wait() // returns once every reactor has stopped
//! }
//! ```

mod listen;
mod siblings;

use std::fmt;
use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use log::error;

use crate::{Reactor, ReactorHandle};

pub use self::siblings::Siblings;

/// N reactors on N threads serving the same ports: one listening socket per
/// reactor, bound with SO_REUSEPORT, so the kernel spreads connections
/// among them (see the [module's documentation](self) for what is shared,
/// how connections are spread, and how a stop closes).
///
/// The reactors run from [`new`](Self::new) on: everything else is done by
/// queueing work on their threads ([`call_on`](Self::call_on),
/// [`call_on_each`](Self::call_on_each), the `listen_*` methods), and
/// [`wait`](Self::wait) waits until they have stopped. A stop of any one of
/// them ([`stop`](Self::stop), a signal, or `Reactor::stop` from a
/// callback) stops them all. Dropping the pool stops the reactors and waits
/// for them.
///
/// Not the thread pool of [`Reactor::run_in_thread`], which runs blocking
/// jobs for one reactor.
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use reactor::protocols::Echo;
/// use reactor::ReactorPool;
///
/// let pool = ReactorPool::new(2)?;
/// // Shared on purpose, and in the open: a counter of factories built.
/// let built = Arc::new(AtomicUsize::new(0));
/// let counter = built.clone();
/// let addr = pool.listen_tcp("127.0.0.1:0".parse().unwrap(), move |_siblings| {
///     counter.fetch_add(1, Ordering::Relaxed);
///     || Echo // this reactor's factory: it never leaves its thread
/// })?;
/// assert_eq!(built.load(Ordering::Relaxed), 2); // one per reactor
///
/// let mut client = TcpStream::connect(addr)?;
/// client.write_all(b"hello")?;
/// let mut echo = [0; 5];
/// client.read_exact(&mut echo)?;
/// assert_eq!(&echo, b"hello");
///
/// pool.stop();
/// pool.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ReactorPool {
    handles: Arc<[ReactorHandle]>,
    /// Each reactor's thread, returning what its `run` returned; empty once
    /// waited for.
    threads: Vec<JoinHandle<io::Result<()>>>,
    /// The threads' ids, to refuse blocking calls made from one of them
    /// (they would wait for themselves).
    thread_ids: Vec<ThreadId>,
}

impl ReactorPool {
    /// Starts `reactors` reactors, each running on a thread of its own named
    /// `reactor-INDEX`, with nothing to serve yet. Fails if `reactors` is 0,
    /// or if a reactor or its thread cannot be created (the ones already
    /// started are ended then).
    ///
    /// ```
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(2)?;
    /// let name = pool.call_on(1, |_, _| std::thread::current().name().map(String::from))?;
    /// assert_eq!(name.as_deref(), Some("reactor-1"));
    /// assert!(ReactorPool::new(0).is_err());
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(reactors: usize) -> io::Result<ReactorPool> {
        if reactors == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a reactor pool needs at least one reactor",
            ));
        }
        let mut threads = Vec::with_capacity(reactors);
        let mut starts = Vec::with_capacity(reactors);
        let mut handles = Vec::with_capacity(reactors);
        for index in 0..reactors {
            let (ready_tx, ready_rx) = mpsc::channel();
            let (start_tx, start_rx) = mpsc::channel();
            let started = thread::Builder::new()
                .name(format!("reactor-{index}"))
                .spawn(move || reactor_thread(index, ready_tx, start_rx))
                .and_then(|thread| {
                    threads.push(thread);
                    starts.push(start_tx);
                    ready_rx.recv().unwrap_or_else(|_| {
                        Err(io::Error::other(format!(
                            "reactor {index} ended before it started"
                        )))
                    })
                });
            match started {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // Without their start, the threads end without running.
                    drop(starts);
                    for thread in threads {
                        let _ = thread.join();
                    }
                    return Err(e);
                }
            }
        }
        let handles: Arc<[ReactorHandle]> = handles.into();
        for start in starts {
            let _ = start.send(handles.clone());
        }
        let thread_ids = threads.iter().map(|t| t.thread().id()).collect();
        Ok(ReactorPool {
            handles,
            threads,
            thread_ids,
        })
    }

    /// A reactor per core: as many as [`std::thread::available_parallelism`]
    /// says this process may use (it counts `taskset` and cgroup limits).
    ///
    /// ```
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::per_core()?;
    /// assert_eq!(pool.count(), std::thread::available_parallelism()?.get());
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn per_core() -> io::Result<ReactorPool> {
        ReactorPool::new(thread::available_parallelism()?.get())
    }

    /// How many reactors the pool runs.
    ///
    /// ```
    /// let pool = reactor::ReactorPool::new(3)?;
    /// assert_eq!(pool.count(), 3);
    /// # pool.stop();
    /// # pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Every reactor's handle, in index order. Stopping any one of them
    /// stops the pool.
    ///
    /// ```
    /// let pool = reactor::ReactorPool::new(2)?;
    /// assert_eq!(pool.handles().len(), 2);
    /// pool.handles()[1].stop(); // reactor 1's stop stops reactor 0 too
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handles(&self) -> &[ReactorHandle] {
        &self.handles
    }

    /// Runs `f` on reactor `index` at its next turn and returns its result,
    /// blocking until it has run. Fails if there is no such reactor, if it
    /// has stopped, if `f` panicked, or if called from one of the pool's
    /// own reactors (it would wait for itself: queue a closure on a sibling
    /// with [`Siblings`] instead).
    ///
    /// ```
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(2)?;
    /// let (index, count) = pool.call_on(1, |_reactor, siblings| {
    ///     (siblings.index(), siblings.count())
    /// })?;
    /// assert_eq!((index, count), (1, 2));
    /// assert!(pool.call_on(2, |_, _| ()).is_err()); // no reactor 2
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_on<R: Send + 'static>(
        &self,
        index: usize,
        f: impl FnOnce(&mut Reactor, &Siblings) -> R + Send + 'static,
    ) -> io::Result<R> {
        self.refuse_own_thread()?;
        if index >= self.handles.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no reactor {index}: the pool has {}", self.handles.len()),
            ));
        }
        self.send_to(index, f).recv().map_err(|_| no_answer(index))
    }

    /// Runs `f` on every reactor at once (each at its next turn, on its own
    /// thread) and returns the results in index order, blocking until all
    /// have run. Fails as [`call_on`](Self::call_on) does, naming the first
    /// reactor that did not answer.
    ///
    /// ```
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(3)?;
    /// let names = pool.call_on_each(|_reactor, _| {
    ///     std::thread::current().name().map(String::from)
    /// })?;
    /// let names: Vec<_> = names.iter().map(|name| name.as_deref().unwrap()).collect();
    /// assert_eq!(names, ["reactor-0", "reactor-1", "reactor-2"]);
    /// pool.stop();
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn call_on_each<R: Send + 'static>(
        &self,
        f: impl Fn(&mut Reactor, &Siblings) -> R + Send + Sync + 'static,
    ) -> io::Result<Vec<R>> {
        self.refuse_own_thread()?;
        let f = Arc::new(f);
        let answers: Vec<Receiver<R>> = (0..self.handles.len())
            .map(|index| {
                let f = f.clone();
                self.send_to(index, move |reactor, siblings| f(reactor, siblings))
            })
            .collect();
        answers
            .into_iter()
            .enumerate()
            .map(|(index, answer)| answer.recv().map_err(|_| no_answer(index)))
            .collect()
    }

    /// Queues `f` on reactor `index`; its result arrives on the receiver
    /// (which disconnects if `f` never runs or panics).
    fn send_to<R: Send + 'static>(
        &self,
        index: usize,
        f: impl FnOnce(&mut Reactor, &Siblings) -> R + Send + 'static,
    ) -> Receiver<R> {
        let (tx, rx) = mpsc::channel();
        let siblings = Siblings::new(index, self.handles.clone());
        self.handles[index].call_from_thread(move |reactor| {
            let _ = tx.send(f(reactor, &siblings));
        });
        rx
    }

    /// Stops every reactor gracefully (see [`Reactor::run`] for what a stop
    /// does), without waiting: [`wait`](Self::wait) does.
    ///
    /// ```
    /// use std::net::TcpStream;
    /// use reactor::protocols::Echo;
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(2)?;
    /// let addr = pool.listen_tcp("127.0.0.1:0".parse().unwrap(), |_| || Echo)?;
    /// pool.stop(); // returns at once
    /// pool.wait()?; // every reactor has stopped, and its listener closed
    /// assert!(TcpStream::connect(addr).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(&self) {
        for handle in self.handles.iter() {
            handle.stop();
        }
    }

    /// Makes SIGINT and SIGTERM stop the pool gracefully, as
    /// [`Reactor::stop_on_signals`] does for one reactor (it is registered
    /// on reactor 0, whose stop stops the others); a second signal exits the
    /// process at once.
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// use std::time::Duration;
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(2)?;
    /// pool.stop_on_signals()?;
    /// // Hear reactor 1 begin its stop, though the signal goes to reactor 0.
    /// let (stopping, stopped) = channel();
    /// pool.call_on(1, move |reactor, _| {
    ///     reactor.add_shutdown_hook(move |_| stopping.send(()).unwrap());
    /// })?;
    /// signal_hook::low_level::raise(signal_hook::consts::SIGTERM)?; // as `kill` does
    /// stopped.recv_timeout(Duration::from_secs(10)).expect("the signal stops the pool");
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_on_signals(&self) -> io::Result<()> {
        self.call_on(0, |reactor, _| reactor.stop_on_signals())?
    }

    /// Sets every reactor's shutdown grace ([`Reactor::set_shutdown_grace`]):
    /// each drains its own connections within it, all at the same time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(2)?;
    /// assert!(pool.set_shutdown_grace(Duration::from_secs(2)).is_ok());
    /// pool.stop(); // every reactor's connections get 2 s to finish
    /// pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_shutdown_grace(&self, grace: Duration) -> io::Result<()> {
        self.call_on_each(move |reactor, _| reactor.set_shutdown_grace(grace))
            .map(drop)
    }

    /// Waits until every reactor has stopped (after [`stop`](Self::stop), a
    /// signal, or a stop of any one of them) and its thread has ended.
    /// Returns the first error a reactor's `run` returned. Must not be
    /// called from one of the pool's own reactors.
    ///
    /// ```
    /// use reactor::ReactorPool;
    ///
    /// let pool = ReactorPool::new(2)?;
    /// // A stop from a callback on any one reactor ends the wait too.
    /// pool.call_on(1, |reactor, _| reactor.stop())?;
    /// assert!(pool.wait().is_ok());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait(mut self) -> io::Result<()> {
        self.refuse_own_thread()?;
        self.join_all()
    }

    fn join_all(&mut self) -> io::Result<()> {
        let mut result = Ok(());
        for (index, thread) in self.threads.drain(..).enumerate() {
            let ended = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other(format!("reactor {index} panicked"))));
            if let (Err(e), Ok(())) = (ended, &result) {
                result = Err(e);
            }
        }
        result
    }

    fn refuse_own_thread(&self) -> io::Result<()> {
        if self.thread_ids.contains(&thread::current().id()) {
            return Err(io::Error::other(
                "called from one of the pool's own reactors, it would wait for itself",
            ));
        }
        Ok(())
    }
}

impl Drop for ReactorPool {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop();
        if self.refuse_own_thread().is_ok() {
            let _ = self.join_all();
        }
    }
}

impl fmt::Debug for ReactorPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorPool")
            .field("reactors", &self.handles.len())
            .field("running", &!self.threads.is_empty())
            .finish()
    }
}

/// The error of a call whose reactor never answered.
fn no_answer(index: usize) -> io::Error {
    io::Error::other(format!(
        "reactor {index} did not answer: it has stopped, or the call panicked"
    ))
}

/// Asks every reactor but `index` to stop (a stop already under way is
/// left as it is).
fn stop_others(handles: &[ReactorHandle], index: usize) {
    for (other, handle) in handles.iter().enumerate() {
        if other != index {
            handle.stop();
        }
    }
}

/// The body of reactor `index`'s thread: make the reactor, hand its handle
/// over (`ready`), wait for every sibling's (`start`), then run. A stop of
/// this reactor stops its siblings (a shutdown hook), and so does a `run`
/// that ended on an error (which skips the hooks).
fn reactor_thread(
    index: usize,
    ready: Sender<io::Result<ReactorHandle>>,
    start: Receiver<Arc<[ReactorHandle]>>,
) -> io::Result<()> {
    let made = Reactor::new().and_then(|mut reactor| {
        let handle = reactor.handle()?;
        Ok((reactor, handle))
    });
    let mut reactor = match made {
        Ok((reactor, handle)) => {
            let _ = ready.send(Ok(handle));
            reactor
        }
        Err(e) => {
            // `new` reports it.
            let _ = ready.send(Err(e));
            return Ok(());
        }
    };
    drop(ready);
    let Ok(handles) = start.recv() else {
        // A sibling could not start: the pool was never made.
        return Ok(());
    };
    let siblings = handles.clone();
    reactor.add_shutdown_hook(move |_| stop_others(&siblings, index));
    let result = reactor.run();
    if let Err(e) = &result {
        error!("reactor {index} failed: {e}; stopping the pool");
    }
    stop_others(&handles, index);
    result
}
