//! The client side: how many load threads of each kind run, what they
//! share, and the checked exchange most of them are built on. Every thread
//! uses plain blocking sockets with timeouts, so none can hang, and stops
//! by itself at the deadline.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::broadcast_load::{self, Finals};
use crate::counters::{Counters, Kind};
use crate::pattern;
use crate::server::Addrs;
use crate::tcp_load;
use crate::udp_load;

/// Threads of each kind (idle is one thread holding [`tcp_load::IDLE_CONNS`]).
const ROSTER: [(Kind, usize); 8] = [
    (Kind::Churn, 4),
    (Kind::Idle, 1),
    (Kind::SlowReader, 2),
    (Kind::NonReader, 2),
    (Kind::Echo, 4),
    (Kind::Member, 3),
    (Kind::Deaf, 2),
    (Kind::Udp, 2),
];

/// How long a connect, a read or a write of a well-behaved client may take
/// before it counts as an error.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a thread whose connection failed (an error, counted) waits
/// before it tries again, so a dead server does not make it spin.
pub const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What every load thread shares.
pub struct Ctx {
    /// Where everything is counted.
    pub counters: Arc<Counters>,
    /// The services to load.
    pub addrs: Addrs,
    /// When the load stops.
    pub deadline: Instant,
    next_seed: AtomicU64,
    /// Set by `--inject corrupt-byte`: the next checked echo has one byte
    /// flipped before the check, so the verdict must say FAIL.
    corrupt_next: AtomicBool,
}

impl Ctx {
    /// The load against `addrs` until `deadline`; `corrupt` plants one
    /// flipped byte (`--inject corrupt-byte`).
    pub fn new(counters: Arc<Counters>, addrs: Addrs, deadline: Instant, corrupt: bool) -> Self {
        Ctx {
            counters,
            addrs,
            deadline,
            next_seed: AtomicU64::new(1),
            corrupt_next: AtomicBool::new(corrupt),
        }
    }

    /// Whether the load should go on.
    pub fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    /// A seed no other stream in this run uses.
    pub fn seed(&self) -> u64 {
        self.next_seed.fetch_add(1, Relaxed)
    }

    /// A connection to `addr` with [`IO_TIMEOUT`] on reads and writes;
    /// `None` (an error, counted) if it cannot be made.
    pub fn connect(&self, addr: SocketAddr, who: &str) -> Option<TcpStream> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).and_then(|s| {
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.set_nodelay(true)?;
            Ok(s)
        });
        stream
            .map_err(|e| self.counters.error(format_args!("{who}: connect: {e}")))
            .ok()
    }

    /// Sends `len` bytes of stream `seed` from `offset` and reads exactly
    /// as many back, counting what did not come back as lost and what
    /// came back wrong as corrupt. False if the connection failed.
    pub fn exchange(
        &self,
        stream: &mut TcpStream,
        (seed, offset): (u64, u64),
        len: usize,
        buf: &mut Vec<u8>,
        who: &str,
    ) -> bool {
        buf.resize(len, 0);
        pattern::fill(seed, offset, buf);
        if let Err(e) = stream.write_all(buf) {
            self.counters.error(format_args!("{who}: write: {e}"));
            return false;
        }
        if let Err((got, e)) = read_exact(stream, buf) {
            self.counters
                .error(format_args!("{who}: {got} of {len} bytes back, then {e}"));
            Counters::add(&self.counters.lost, (len - got) as u64);
            return false;
        }
        if self.corrupt_next.swap(false, Relaxed) {
            buf[0] ^= 0xff;
        }
        Counters::add(
            &self.counters.corrupt,
            pattern::mismatches(seed, offset, buf),
        );
        Counters::add(&self.counters.echoed, len as u64);
        true
    }

    /// Ends a connection whose echoes are all in: half-closes, then
    /// expects the server's clean end with nothing more before it (a
    /// surplus byte counts as corrupt).
    pub fn finish(&self, mut stream: TcpStream, who: &str) {
        if let Err(e) = stream.shutdown(Shutdown::Write) {
            return self.counters.error(format_args!("{who}: shutdown: {e}"));
        }
        let mut rest = [0u8; 4096];
        loop {
            match stream.read(&mut rest) {
                Ok(0) => return,
                Ok(n) => {
                    self.counters
                        .error(format_args!("{who}: {n} bytes more than were sent"));
                    Counters::add(&self.counters.corrupt, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.counters.error(format_args!("{who}: at the end: {e}")),
            }
        }
    }
}

/// Fills `buf` from `stream`; on failure, how many bytes came and why not more.
pub fn read_exact(stream: &mut TcpStream, buf: &mut [u8]) -> Result<(), (usize, io::Error)> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err((got, io::ErrorKind::UnexpectedEof.into())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((got, e)),
        }
    }
    Ok(())
}

/// Spaces actions out to `per_sec` a second, without catching up after a
/// stall (the load is a steady trickle, not a benchmark).
pub struct Pacer {
    period: Duration,
    next: Instant,
}

impl Pacer {
    /// A pacer whose first slot is now.
    pub fn new(per_sec: u32) -> Self {
        Pacer {
            period: Duration::from_secs(1) / per_sec,
            next: Instant::now(),
        }
    }

    /// Waits for the next slot; false once `deadline` has passed.
    pub fn wait(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if self.next > now {
            thread::sleep(self.next.min(deadline).saturating_duration_since(now));
        }
        self.next = self.next.max(now) + self.period;
        Instant::now() < deadline
    }
}

/// One load thread.
pub struct Worker {
    /// What load it runs.
    pub kind: Kind,
    handle: JoinHandle<()>,
}

/// Starts every load thread of [`ROSTER`].
pub fn start(ctx: &Arc<Ctx>) -> Result<Vec<Worker>, String> {
    let members = ROSTER
        .iter()
        .find(|(kind, _)| *kind == Kind::Member)
        .map_or(0, |&(_, n)| n);
    let finals = Arc::new(Finals::new(members));
    let mut workers = Vec::new();
    for (kind, count) in ROSTER {
        for index in 0..count {
            let ctx = Arc::clone(ctx);
            let finals = Arc::clone(&finals);
            let run = move || match kind {
                Kind::Churn => tcp_load::churn(&ctx, index),
                Kind::Idle => tcp_load::idle(&ctx),
                Kind::SlowReader => tcp_load::slow_reader(&ctx, index),
                Kind::NonReader => tcp_load::non_reader(&ctx, index),
                Kind::Echo => tcp_load::echo(&ctx, index),
                Kind::Member => broadcast_load::member(&ctx, &finals, index),
                Kind::Deaf => broadcast_load::deaf(&ctx, index),
                Kind::Udp => udp_load::run(&ctx, index),
            };
            let handle = thread::Builder::new()
                .name(format!("{}-{index}", kind.name()))
                .spawn(run)
                .map_err(|e| format!("cannot start a load thread: {e}"))?;
            workers.push(Worker { kind, handle });
        }
    }
    Ok(workers)
}

/// Waits until every worker has finished or `until` has passed, joining
/// the finished ones (a panic counts as an error); returns the kinds of
/// those still running.
pub fn finish(workers: Vec<Worker>, until: Instant, counters: &Counters) -> Vec<Kind> {
    while Instant::now() < until && workers.iter().any(|w| !w.handle.is_finished()) {
        thread::sleep(Duration::from_millis(20));
    }
    let mut stuck = Vec::new();
    for worker in workers {
        if !worker.handle.is_finished() {
            stuck.push(worker.kind);
        } else if worker.handle.join().is_err() {
            counters.error(format_args!("a {} thread panicked", worker.kind.name()));
        }
    }
    stuck
}
