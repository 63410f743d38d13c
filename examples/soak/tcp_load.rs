//! The TCP echo load: churners, idle connections, slow readers, writers
//! that never read, and ping-pong traffic. Every byte that should come back
//! is checked against the stream it was cut from.

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::counters::{Counters, Kind};
use crate::load::{Ctx, Pacer, RETRY_PAUSE};
use crate::pattern::{self, Rng};

/// Connections each churner opens and closes per second.
const CHURN_PER_SEC: u32 = 50;
/// Largest churn message.
const CHURN_MAX: usize = 16 * 1024;

/// Connections held open for the whole run.
pub const IDLE_CONNS: usize = 64;

/// Bytes a slow reader sends per connection.
const SLOW_ROUND: u64 = 2 << 20;
/// A slow reader reads this much, then pauses for [`SLOW_PAUSE`]: about
/// 1.6 MB/s, far slower than the loopback could deliver.
const SLOW_READ: usize = 16 * 1024;
const SLOW_PAUSE: Duration = Duration::from_millis(10);

/// How long a non-reader keeps writing into its connection before it
/// closes it and opens another; and how long one of its writes may block,
/// which is how it notices the server pushing back.
const NON_READER_LIFE: Duration = Duration::from_secs(3);
const NON_READER_WRITE_TIMEOUT: Duration = Duration::from_millis(250);

/// Messages each ping-pong connection exchanges per second, and the largest.
const ECHO_PER_SEC: u32 = 200;
const ECHO_MAX: usize = 32 * 1024;

/// Connect, one message of random size, its echo, a clean close; again.
pub fn churn(ctx: &Ctx, index: usize) {
    let mut rng = Rng::new(0x100 + index as u64);
    let mut pacer = Pacer::new(CHURN_PER_SEC);
    let mut buf = Vec::new();
    while pacer.wait(ctx.deadline) {
        let Some(mut stream) = ctx.connect(ctx.addrs.echo, "churn") else {
            continue;
        };
        let len = rng.between(1, CHURN_MAX);
        if ctx.exchange(&mut stream, (ctx.seed(), 0), len, &mut buf, "churn") {
            ctx.finish(stream, "churn");
            ctx.counters.worked(Kind::Churn);
        }
    }
}

/// Opens [`IDLE_CONNS`] connections, leaves them quiet until the deadline,
/// then checks each is still served.
pub fn idle(ctx: &Ctx) {
    let conns: Vec<TcpStream> = (0..IDLE_CONNS)
        .filter_map(|_| ctx.connect(ctx.addrs.echo, "idle"))
        .collect();
    while ctx.running() {
        thread::sleep(ctx.deadline.saturating_duration_since(Instant::now()));
    }
    let mut buf = Vec::new();
    for mut stream in conns {
        if ctx.exchange(&mut stream, (ctx.seed(), 0), 16, &mut buf, "idle") {
            ctx.finish(stream, "idle");
            ctx.counters.worked(Kind::Idle);
        }
    }
}

/// Sends [`SLOW_ROUND`] bytes per connection from one thread while reading
/// the echo back slowly on another: the server must pause reading it rather
/// than buffer, and still return every byte.
pub fn slow_reader(ctx: &Ctx, index: usize) {
    let mut rng = Rng::new(0x300 + index as u64);
    while ctx.running() {
        let Some(stream) = ctx.connect(ctx.addrs.echo, "slow reader") else {
            thread::sleep(RETRY_PAUSE);
            continue;
        };
        let seed = ctx.seed();
        let writer = match stream.try_clone() {
            Ok(writer) => writer,
            Err(e) => return ctx.counters.error(format_args!("slow reader: clone: {e}")),
        };
        let (sent, received) = thread::scope(|scope| {
            let sending = scope.spawn(|| send_round(ctx, writer, seed, &mut rng));
            let received = read_slowly(ctx, stream, seed);
            (sending.join().unwrap_or(0), received)
        });
        if received < sent {
            ctx.counters.error(format_args!(
                "slow reader: {received} of {sent} bytes came back"
            ));
            Counters::add(&ctx.counters.lost, sent - received);
        } else if received > sent {
            ctx.counters.error(format_args!(
                "slow reader: {received} bytes came back for {sent} sent"
            ));
            Counters::add(&ctx.counters.corrupt, received - sent);
        }
        ctx.counters.worked(Kind::SlowReader);
    }
}

/// Writes one slow reader's round (less if the deadline comes), then
/// half-closes; returns how many bytes went out.
fn send_round(ctx: &Ctx, mut stream: TcpStream, seed: u64, rng: &mut Rng) -> u64 {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < SLOW_ROUND && ctx.running() {
        let len = rng.between(1, buf.len()).min((SLOW_ROUND - sent) as usize);
        pattern::fill(seed, sent, &mut buf[..len]);
        if let Err(e) = stream.write_all(&buf[..len]) {
            // How much of this write went out is unknown: count none of it,
            // and let the reader's surplus say if some did.
            ctx.counters
                .error(format_args!("slow reader: write after {sent} bytes: {e}"));
            break;
        }
        sent += len as u64;
    }
    if let Err(e) = stream.shutdown(Shutdown::Write) {
        ctx.counters
            .error(format_args!("slow reader: shutdown: {e}"));
    }
    sent
}

/// Reads to end-of-file, slowly until the deadline and at full speed
/// after it, checking every byte; returns how many came.
fn read_slowly(ctx: &Ctx, mut stream: TcpStream, seed: u64) -> u64 {
    let mut buf = vec![0u8; SLOW_READ];
    let mut received = 0u64;
    loop {
        match io::Read::read(&mut stream, &mut buf) {
            Ok(0) => return received,
            Ok(n) => {
                Counters::add(
                    &ctx.counters.corrupt,
                    pattern::mismatches(seed, received, &buf[..n]),
                );
                Counters::add(&ctx.counters.echoed, n as u64);
                received += n as u64;
                if ctx.running() {
                    thread::sleep(SLOW_PAUSE);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                ctx.counters.error(format_args!(
                    "slow reader: read after {received} bytes: {e}"
                ));
                return received;
            }
        }
    }
}

/// Writes to the echo as fast as it can and never reads. The server must
/// stop reading it once its echo backs up, so the writes block: each
/// connection must see that within [`NON_READER_LIFE`], then is dropped
/// (with unread bytes, so the server gets a reset) for a new one.
pub fn non_reader(ctx: &Ctx, index: usize) {
    let chunk = vec![0x5a_u8; 64 * 1024];
    while ctx.running() {
        let Some(mut stream) = ctx.connect(ctx.addrs.sink, "non-reader") else {
            thread::sleep(RETRY_PAUSE);
            continue;
        };
        if let Err(e) = stream.set_write_timeout(Some(NON_READER_WRITE_TIMEOUT)) {
            return ctx.counters.error(format_args!("non-reader: {e}"));
        }
        let born = Instant::now();
        let mut pushed_back = false;
        while born.elapsed() < NON_READER_LIFE && ctx.running() {
            match stream.write(&chunk) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !pushed_back {
                        pushed_back = true;
                        Counters::add(&ctx.counters.pushed_back, 1);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    ctx.counters.error(format_args!("non-reader: write: {e}"));
                    break;
                }
            }
        }
        if !pushed_back && born.elapsed() >= NON_READER_LIFE {
            ctx.counters.error(format_args!(
                "non-reader {index}: wrote for {NON_READER_LIFE:?} without being pushed back"
            ));
        }
        ctx.counters.worked(Kind::NonReader);
    }
}

/// Ping-pong: messages of random size on one long-lived connection, each
/// echo read back whole and checked before the next goes out.
pub fn echo(ctx: &Ctx, index: usize) {
    let mut rng = Rng::new(0x500 + index as u64);
    let mut pacer = Pacer::new(ECHO_PER_SEC);
    let mut buf = Vec::new();
    while ctx.running() {
        let Some(mut stream) = ctx.connect(ctx.addrs.echo, "echo") else {
            thread::sleep(RETRY_PAUSE);
            continue;
        };
        let (seed, mut offset) = (ctx.seed(), 0);
        let mut healthy = true;
        while healthy && pacer.wait(ctx.deadline) {
            let len = rng.between(1, ECHO_MAX);
            healthy = ctx.exchange(&mut stream, (seed, offset), len, &mut buf, "echo");
            offset += len as u64;
            ctx.counters.worked(Kind::Echo);
        }
        if healthy {
            ctx.finish(stream, "echo");
        }
    }
}
