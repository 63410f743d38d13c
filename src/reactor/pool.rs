//! Blocking work off the loop: [`Reactor::run_in_thread`] (Twisted's
//! `deferToThread`) and the bounded pool of threads behind it.
//!
//! The reactor side keeps, per job, its `on_done` (which need not be `Send`:
//! it never leaves the reactor thread); the workers see only the `work`. A
//! worker hands its result back through the reactor's cross-thread queue
//! ([`ReactorHandle::call_from_thread`](crate::ReactorHandle::call_from_thread)),
//! so `on_done` runs in a turn of the loop like any queued call.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, error, warn};

use super::{Reactor, ReactorHandle};

/// Threads [`Reactor::run_in_thread`] may use unless
/// [`set_thread_pool_limits`](Reactor::set_thread_pool_limits) says
/// otherwise: enough to overlap a few disk operations, small enough not to
/// compete with the loop for cores.
///
/// ```
/// let mut reactor = reactor::Reactor::new()?;
/// // Twice the default, for a disk that likes more requests in flight.
/// reactor.set_thread_pool_limits(2 * reactor::DEFAULT_POOL_THREADS, reactor::DEFAULT_POOL_QUEUE);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const DEFAULT_POOL_THREADS: usize = 4;

/// Jobs that may wait for a thread, beyond those running, unless
/// [`set_thread_pool_limits`](Reactor::set_thread_pool_limits) says otherwise.
///
/// ```
/// let mut reactor = reactor::Reactor::new()?;
/// // Refuse sooner: a client told "busy" beats one kept waiting.
/// reactor.set_thread_pool_limits(reactor::DEFAULT_POOL_THREADS, reactor::DEFAULT_POOL_QUEUE / 16);
/// # Ok::<(), std::io::Error>(())
/// ```
pub const DEFAULT_POOL_QUEUE: usize = 1024;

/// How long closing the pool waits for its idle threads to notice and exit
/// (they do at once; the bound is against a thread that never gets the CPU).
/// Threads still running a job are not waited for here: the stop's drain
/// already gave them the shutdown grace.
const IDLE_EXIT_WAIT: Duration = Duration::from_secs(1);

/// What `on_done` gets instead of a value when `work` panicked. The worker
/// thread survives it and takes the next job.
///
/// ```
/// let mut reactor = reactor::Reactor::new()?;
/// reactor.run_in_thread(
///     || -> u32 { panic!("disk on fire") },
///     |reactor, result| {
///         let err = result.unwrap_err();
///         assert_eq!(err.message(), "disk on fire");
///         reactor.stop();
///     },
/// )?;
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobPanicked {
    message: String,
}

impl JobPanicked {
    /// The text the job panicked with (or a placeholder for a panic with a
    /// payload that is not text).
    ///
    /// ```
    /// # let mut reactor = reactor::Reactor::new()?;
    /// reactor.run_in_thread(|| -> () { panic!("no") }, |r, result| {
    ///     assert_eq!(result.unwrap_err().message(), "no");
    ///     r.stop();
    /// })?;
    /// # reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for JobPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the job panicked: {}", self.message)
    }
}

impl std::error::Error for JobPanicked {}

/// Why [`Reactor::run_in_thread`] refused a job. Neither `work` nor
/// `on_done` runs then; both are dropped. Converts into an [`io::Error`],
/// so `?` works in a function returning `io::Result`.
///
/// ```
/// use reactor::{PoolError, Reactor};
///
/// let mut reactor = Reactor::new()?;
/// reactor.set_thread_pool_limits(1, 0);
/// let (release, gate) = std::sync::mpsc::channel::<()>();
/// // One job runs; with no room to queue, the next is refused.
/// reactor.run_in_thread(move || gate.recv().ok(), |_, _| {})?;
/// let refused = reactor.run_in_thread(|| (), |_, _| {});
/// assert!(matches!(refused, Err(PoolError::Full { in_flight: 1 })));
/// release.send(()).unwrap();
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError {
    /// As many jobs as the pool's threads and queue hold are in flight
    /// (accepted, and their `on_done` not yet run).
    Full {
        /// The jobs in flight.
        in_flight: usize,
    },
    /// No thread could be started for the job and none is running.
    Spawn(io::Error),
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Full { in_flight } => {
                write!(f, "the thread pool is full ({in_flight} jobs in flight)")
            }
            PoolError::Spawn(e) => write!(f, "cannot start a pool thread: {e}"),
        }
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PoolError::Full { .. } => None,
            PoolError::Spawn(e) => Some(e),
        }
    }
}

impl From<PoolError> for io::Error {
    fn from(e: PoolError) -> io::Error {
        match e {
            PoolError::Spawn(e) => e,
            full => io::Error::other(full),
        }
    }
}

/// What a worker runs: the user's `work`, its value boxed.
type Work = Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>;

/// What a job came to, on its way back to the reactor.
type Outcome = Result<Box<dyn Any + Send>, JobPanicked>;

/// The user's `on_done`, taking the boxed value.
type OnDone = Box<dyn FnOnce(&mut Reactor, Outcome)>;

struct Job {
    id: u64,
    work: Work,
}

/// Which of the reactor's two pools: the same machinery, kept apart so a
/// slow name lookup never holds a thread `run_in_thread`'s jobs wait for,
/// and a stop's drain never waits for a lookup nobody needs any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoolKind {
    /// [`Reactor::run_in_thread`]'s jobs.
    Jobs,
    /// Host-name lookups for connects by name (`crate::resolve`).
    Resolver,
}

impl PoolKind {
    /// The prefix of its threads' names.
    fn thread_name(self) -> &'static str {
        match self {
            PoolKind::Jobs => "reactor-pool",
            PoolKind::Resolver => "reactor-resolver",
        }
    }
}

/// What the reactor and its workers share.
struct Shared {
    /// Which pool, so results go back to it.
    kind: PoolKind,
    state: Mutex<State>,
    /// Workers wait on it for a job, a lower thread limit, or closing.
    work_ready: Condvar,
    /// Closing waits on it for the idle workers to exit.
    exited: Condvar,
    /// Where workers send results.
    reactor: ReactorHandle,
}

struct State {
    queue: VecDeque<Job>,
    max_threads: usize,
    /// Workers started and not yet exited.
    alive: usize,
    /// The numbers of the workers running a job now.
    busy: Vec<u64>,
    /// The pool is closed: workers exit after their current job and send
    /// no more results.
    closing: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so a poisoned lock can only come from
        // a panic in this module's own bookkeeping, which leaves the state
        // whole: carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The reactor's side of the pool: limits, the jobs in flight with their
/// `on_done`, and the workers started.
pub(crate) struct Pool {
    threads: usize,
    queue: usize,
    next_job: u64,
    next_worker: u64,
    in_flight: HashMap<u64, OnDone>,
    /// Created with the first job after the reactor was made or stopped.
    shared: Option<Arc<Shared>>,
    workers: Vec<(u64, JoinHandle<()>)>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool::new(DEFAULT_POOL_THREADS, DEFAULT_POOL_QUEUE)
    }
}

impl Pool {
    /// A pool of at most `threads` threads and `queue` waiting jobs; no
    /// thread starts before the first job.
    pub(crate) fn new(threads: usize, queue: usize) -> Pool {
        Pool {
            threads: threads.max(1),
            queue,
            next_job: 0,
            next_worker: 0,
            in_flight: HashMap::new(),
            shared: None,
            workers: Vec::new(),
        }
    }

    /// Jobs accepted whose `on_done` has not run yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

impl Reactor {
    /// Runs `work` on a thread of the reactor's pool, then `on_done` with
    /// its value on the reactor thread (Twisted's `deferToThread`): for
    /// blocking calls (disk, a blocking library, a long computation) that
    /// must not stall the loop.
    ///
    /// - **Pool**: at most `threads` jobs run at once (default
    ///   [`DEFAULT_POOL_THREADS`]); threads start when a job finds none
    ///   idle, are named `reactor-pool-N`, and stay until the reactor stops.
    ///   Jobs start in the order they were accepted.
    /// - **Full**: at most `threads + queue` jobs are in flight (accepted,
    ///   `on_done` not yet run; default queue [`DEFAULT_POOL_QUEUE`]). One
    ///   more is refused with [`PoolError::Full`] rather than waited for:
    ///   waiting would block the loop, the very thing the pool is there to
    ///   avoid, and an unbounded queue would hide an overload until memory
    ///   runs out. The caller decides: answer "busy", retry with
    ///   [`call_later`](Reactor::call_later), or pause reading.
    /// - **Panics**: a panic in `work` reaches `on_done` as `Err(`[`JobPanicked`]`)`;
    ///   the thread goes on with the next job. `on_done` runs under the
    ///   reactor's panic guard, as every callback does.
    /// - **Stopping**: the graceful stop's drain waits for the jobs in
    ///   flight (queued ones included) as it waits for connections, within
    ///   the same [shutdown grace](Reactor::set_shutdown_grace), and their
    ///   `on_done` run. When the drain ends, jobs still queued never run,
    ///   and jobs still running are left to finish on their threads, which
    ///   are not waited for (a blocked job cannot hang the stop); the
    ///   `on_done` of both are dropped without running, and so is what the
    ///   late jobs return. Idle threads are joined. A job accepted while no
    ///   `run` is under way runs at once; its `on_done` runs in the next
    ///   `run`.
    ///
    /// `work` and its value cross to another thread, so they are `Send`;
    /// `on_done` never leaves the reactor thread and need not be.
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    ///
    /// let mut reactor = reactor::Reactor::new()?;
    /// let total = Rc::new(Cell::new(0)); // not Send: on_done stays home
    /// let seen = total.clone();
    /// reactor.run_in_thread(
    ///     || (1..=10u64).sum::<u64>(), // say, a blocking read
    ///     move |reactor, sum| {
    ///         seen.set(sum.unwrap());
    ///         reactor.stop();
    ///     },
    /// )?;
    /// reactor.run()?;
    /// assert_eq!(total.get(), 55);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_in_thread<T, W, D>(&mut self, work: W, on_done: D) -> Result<(), PoolError>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(&mut Reactor, Result<T, JobPanicked>) + 'static,
    {
        self.submit(PoolKind::Jobs, work, on_done)
    }

    /// The pool `kind` names.
    fn pool_of(&mut self, kind: PoolKind) -> &mut Pool {
        match kind {
            PoolKind::Jobs => &mut self.pool,
            PoolKind::Resolver => &mut self.resolver_pool,
        }
    }

    /// [`run_in_thread`](Reactor::run_in_thread) on the pool `kind` names:
    /// the same limits, refusal and panic rules.
    pub(crate) fn submit<T, W, D>(
        &mut self,
        kind: PoolKind,
        work: W,
        on_done: D,
    ) -> Result<(), PoolError>
    where
        T: Send + 'static,
        W: FnOnce() -> T + Send + 'static,
        D: FnOnce(&mut Reactor, Result<T, JobPanicked>) + 'static,
    {
        let pool = self.pool_of(kind);
        let limit = pool.threads.saturating_add(pool.queue);
        if pool.in_flight.len() >= limit {
            let in_flight = pool.in_flight.len();
            crate::panic::drop_caught((work, on_done), "a refused job");
            return Err(PoolError::Full { in_flight });
        }
        let shared = match self.pool_shared(kind) {
            Ok(shared) => shared,
            Err(e) => {
                crate::panic::drop_caught((work, on_done), "a refused job");
                return Err(PoolError::Spawn(e));
            }
        };
        let pool = self.pool_of(kind);
        let id = pool.next_job;
        pool.next_job += 1;
        let on_done: OnDone = Box::new(move |reactor, outcome| match outcome {
            Ok(value) => match value.downcast::<T>() {
                Ok(value) => on_done(reactor, Ok(*value)),
                // Cannot happen: a job's value and its on_done are paired
                // by id, and ids are never reused.
                Err(_) => error!("a job's value is not of its on_done's type; dropped"),
            },
            Err(panicked) => on_done(reactor, Err(panicked)),
        });
        let job = Job {
            id,
            work: Box::new(move || Box::new(work()) as Box<dyn Any + Send>),
        };
        let mut state = shared.lock();
        state.queue.push_back(job);
        let idle = state.alive - state.busy.len();
        let spawn = state.queue.len() > idle && state.alive < state.max_threads;
        if spawn {
            state.alive += 1;
        }
        drop(state);
        shared.work_ready.notify_one();
        self.pool_of(kind).in_flight.insert(id, on_done);
        if spawn {
            if let Err(e) = self.spawn_worker(kind, &shared) {
                let mut state = shared.lock();
                state.alive -= 1;
                if state.alive == 0 {
                    // Nobody will take it: take it back.
                    state.queue.retain(|job| job.id != id);
                    drop(state);
                    let on_done = self.pool_of(kind).in_flight.remove(&id);
                    crate::panic::drop_caught(on_done, "a refused job's on_done");
                    return Err(PoolError::Spawn(e));
                }
                warn!("cannot start another pool thread ({e}); the job waits for a running one");
            }
        }
        Ok(())
    }

    /// Sets how many threads [`run_in_thread`](Reactor::run_in_thread) may
    /// use (at least 1; default [`DEFAULT_POOL_THREADS`]) and how many jobs
    /// may wait for one (default [`DEFAULT_POOL_QUEUE`]). A lower thread
    /// count lets surplus threads exit once their current job is done; the
    /// limits apply to jobs accepted from now on (those in flight are not
    /// refused after the fact).
    ///
    /// ```
    /// let mut reactor = reactor::Reactor::new()?;
    /// reactor.set_thread_pool_limits(2, 100); // 2 at once, 100 more waiting
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_thread_pool_limits(&mut self, threads: usize, queue: usize) {
        self.pool.threads = threads.max(1);
        self.pool.queue = queue;
        if let Some(shared) = &self.pool.shared {
            shared.lock().max_threads = self.pool.threads;
            shared.work_ready.notify_all();
        }
    }

    /// Jobs given to [`run_in_thread`](Reactor::run_in_thread) whose
    /// `on_done` has not run yet (queued, running, or finished and waiting
    /// for the loop).
    ///
    /// ```
    /// let mut reactor = reactor::Reactor::new()?;
    /// assert_eq!(reactor.jobs_in_flight(), 0);
    /// reactor.run_in_thread(|| 6 * 7, |r, _| r.stop())?;
    /// assert_eq!(reactor.jobs_in_flight(), 1);
    /// reactor.run()?;
    /// assert_eq!(reactor.jobs_in_flight(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn jobs_in_flight(&self) -> usize {
        self.pool.in_flight()
    }

    /// The pool's shared state, created (with the reactor's handle) for the
    /// first job since the reactor was made or last stopped.
    fn pool_shared(&mut self, kind: PoolKind) -> io::Result<Arc<Shared>> {
        if let Some(shared) = &self.pool_of(kind).shared {
            return Ok(shared.clone());
        }
        let reactor = self.handle()?;
        let pool = self.pool_of(kind);
        let shared = Arc::new(Shared {
            kind,
            state: Mutex::new(State {
                queue: VecDeque::new(),
                max_threads: pool.threads,
                alive: 0,
                busy: Vec::new(),
                closing: false,
            }),
            work_ready: Condvar::new(),
            exited: Condvar::new(),
            reactor,
        });
        pool.shared = Some(shared.clone());
        Ok(shared)
    }

    fn spawn_worker(&mut self, kind: PoolKind, shared: &Arc<Shared>) -> io::Result<()> {
        let pool = self.pool_of(kind);
        let number = pool.next_worker;
        pool.next_worker += 1;
        let shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("{}-{number}", kind.thread_name()))
            .spawn(move || work_loop(&shared, number))?;
        self.pool_of(kind).workers.push((number, thread));
        Ok(())
    }

    /// A job's result is back: its `on_done` runs (under the panic guard).
    /// An unknown id is a job abandoned by a stop: its value is dropped.
    fn job_done(&mut self, kind: PoolKind, id: u64, outcome: Outcome) {
        match self.pool_of(kind).in_flight.remove(&id) {
            Some(on_done) => {
                if let Err(why) = crate::panic::catch(|| on_done(self, outcome)) {
                    error!("a run_in_thread on_done callback panicked: {why}");
                }
            }
            None => crate::panic::drop_caught(outcome, "the value of a job abandoned by a stop"),
        }
    }

    /// Closes the pool at the end of a stop (or when the reactor is
    /// dropped): queued jobs and every `on_done` still held are dropped,
    /// idle threads exit and are joined, threads still in a job are left
    /// to finish it and exit (see [`run_in_thread`](Reactor::run_in_thread)).
    pub(crate) fn close_pool(&mut self) {
        self.close_pool_of(PoolKind::Jobs);
        self.close_pool_of(PoolKind::Resolver);
    }

    fn close_pool_of(&mut self, kind: PoolKind) {
        let Some(shared) = self.pool_of(kind).shared.take() else {
            return;
        };
        let mut state = shared.lock();
        state.closing = true;
        let queued = std::mem::take(&mut state.queue);
        shared.work_ready.notify_all();
        let deadline = Instant::now() + IDLE_EXIT_WAIT;
        while state.alive > state.busy.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                warn!("idle pool threads did not exit within {IDLE_EXIT_WAIT:?}; left running");
                break;
            }
            state = shared
                .exited
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let busy = state.busy.clone();
        drop(state);
        for (number, thread) in std::mem::take(&mut self.pool_of(kind).workers) {
            if busy.contains(&number) {
                debug!("pool thread {number} is still in a job; not waited for");
                continue;
            }
            // Past its loop already: joining is immediate.
            if thread.join().is_err() {
                error!("pool thread {number} panicked");
            }
        }
        let abandoned = queued.len() + busy.len();
        if abandoned > 0 && kind == PoolKind::Jobs {
            warn!("stopping: {abandoned} jobs of the thread pool abandoned (their on_done will not run)");
        } else if abandoned > 0 {
            // Their connects failed already (the stop failed them).
            debug!("stopping: {abandoned} host-name lookups abandoned");
        }
        crate::panic::drop_caught(queued, "jobs queued when the pool closed");
        let on_done = std::mem::take(&mut self.pool_of(kind).in_flight);
        crate::panic::drop_caught(on_done, "on_done callbacks of abandoned jobs");
    }
}

/// A worker: takes jobs in order until the pool closes or has more threads
/// than it may.
fn work_loop(shared: &Shared, number: u64) {
    let mut state = shared.lock();
    loop {
        if state.closing || state.alive > state.max_threads {
            break;
        }
        let Some(job) = state.queue.pop_front() else {
            state = shared
                .work_ready
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
            continue;
        };
        state.busy.push(number);
        drop(state);
        let outcome = crate::panic::catch(job.work).map_err(|message| JobPanicked { message });
        let closing = shared.lock().closing;
        if closing {
            crate::panic::drop_caught(outcome, "the value of a job finished after the stop");
        } else {
            let (kind, id) = (shared.kind, job.id);
            shared
                .reactor
                .call_from_thread(move |reactor| reactor.job_done(kind, id, outcome));
        }
        state = shared.lock();
        state.busy.retain(|&n| n != number);
    }
    state.alive -= 1;
    drop(state);
    shared.exited.notify_all();
}
