//! The broadcast load: members that talk and read everything the others
//! say (every line checked, each sender's lines in sequence with none
//! missing, through to each sender's last line), and deaf members that talk
//! but never read, which the server must cut off rather than buffer for.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::counters::{Counters, Kind};
use crate::load::{Ctx, Pacer, IO_TIMEOUT, RETRY_PAUSE};
use crate::pattern;

/// Lines each reading member sends per second.
const LINES_PER_SEC: u32 = 100;

/// Lines each deaf member sends per second.
const DEAF_LINES_PER_SEC: u32 = 20;

/// A deaf member's receive buffer, kept small so that what the server
/// sends it backs up into the server soon rather than into the kernel.
const DEAF_RCVBUF: usize = 4096;

/// How often a reading member wakes to see whether it has everything.
const POLL: Duration = Duration::from_millis(200);

/// How long after the deadline a member waits for the others' last lines.
const TAIL_WAIT: Duration = Duration::from_secs(10);

/// Member ids, unique in the run (each deaf reconnection gets a new one).
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// What each reading member says about itself, for the others to know
/// when they have heard all of it.
pub struct Finals(Vec<Final>);

#[derive(Default)]
struct Final {
    id: AtomicU32,
    /// Lines sent, once `finished`.
    sent: AtomicU64,
    finished: AtomicBool,
}

impl Finals {
    /// Room for `members` reading members, none finished yet.
    pub fn new(members: usize) -> Self {
        Finals((0..members).map(|_| Final::default()).collect())
    }

    fn finish(&self, index: usize, sent: u64) {
        self.0[index].sent.store(sent, SeqCst);
        self.0[index].finished.store(true, SeqCst);
    }

    /// The other members' last lines that `me` has not seen yet, as
    /// (sender, first missing, lines sent); `None` while one still talks.
    fn missing(&self, me: usize, last: &HashMap<u32, u64>) -> Option<Vec<(u32, u64, u64)>> {
        let mut missing = Vec::new();
        for (_, other) in self.0.iter().enumerate().filter(|&(j, _)| j != me) {
            if !other.finished.load(SeqCst) {
                return None;
            }
            let (id, sent) = (other.id.load(SeqCst), other.sent.load(SeqCst));
            let next = last.get(&id).map_or(0, |&seen| seen + 1);
            if next < sent {
                missing.push((id, next, sent));
            }
        }
        Some(missing)
    }
}

/// A reading member: talks on one thread, reads and checks on another,
/// until the deadline and then until every other member's last line is in.
pub fn member(ctx: &Ctx, finals: &Finals, index: usize) {
    let id = NEXT_ID.fetch_add(1, SeqCst);
    finals.0[index].id.store(id, SeqCst);
    let Some(mut stream) = ctx.connect(ctx.addrs.broadcast, "member") else {
        return finals.finish(index, 0);
    };
    let writer = stream.set_read_timeout(Some(POLL)).and_then(|()| {
        stream.write_all(format!("reader {id:x}\n").as_bytes())?;
        stream.try_clone()
    });
    let writer = match writer {
        Ok(writer) => writer,
        Err(e) => {
            ctx.counters.error(format_args!("member: {e}"));
            return finals.finish(index, 0);
        }
    };
    thread::scope(|scope| {
        scope.spawn(|| finals.finish(index, talk(ctx, writer, id)));
        listen(ctx, stream, finals, index);
    });
}

/// Sends this member's lines until the deadline; returns how many went out.
fn talk(ctx: &Ctx, mut stream: TcpStream, id: u32) -> u64 {
    let mut pacer = Pacer::new(LINES_PER_SEC);
    let mut line = Vec::new();
    let mut seq = 0;
    while pacer.wait(ctx.deadline) {
        pattern::line(id, seq, &mut line);
        if let Err(e) = stream.write_all(&line) {
            ctx.counters.error(format_args!("member {id}: write: {e}"));
            break;
        }
        seq += 1;
    }
    seq
}

/// Reads and checks every line until the others' last lines are all in
/// (or [`TAIL_WAIT`] after the deadline, counting what is missing as lost).
fn listen(ctx: &Ctx, stream: TcpStream, finals: &Finals, me: usize) {
    let mut reader = BufReader::new(stream);
    let mut last: HashMap<u32, u64> = HashMap::new();
    let (mut line, mut scratch) = (Vec::new(), Vec::new());
    loop {
        if !ctx.running() {
            match finals.missing(me, &last) {
                Some(missing) if missing.is_empty() => return,
                Some(missing) if Instant::now() > ctx.deadline + TAIL_WAIT => {
                    for (sender, from, to) in missing {
                        ctx.counters.error(format_args!(
                            "member: lines {from}..{to} of member {sender} never came"
                        ));
                        let bytes = (from..to).map(|seq| pattern::line_len(sender, seq)).sum();
                        Counters::add(&ctx.counters.lost, bytes);
                    }
                    return;
                }
                None if Instant::now() > ctx.deadline + TAIL_WAIT => {
                    return ctx.counters.error("member: another member never finished");
                }
                _ => {}
            }
        }
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => {
                return ctx
                    .counters
                    .error("member: the server closed the connection")
            }
            Ok(_) if line.ends_with(b"\n") => {
                check(ctx, &line, &mut last, &mut scratch);
                line.clear();
            }
            // A partial line before end-of-file: the next read says so.
            Ok(_) => {}
            // Partial lines stay in `line` across timeouts.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ctx.counters.error(format_args!("member: read: {e}")),
        }
    }
}

/// Checks one received line: intact, and next in its sender's sequence.
fn check(ctx: &Ctx, line: &[u8], last: &mut HashMap<u32, u64>, scratch: &mut Vec<u8>) {
    let counters = &ctx.counters;
    let Some((sender, seq)) = pattern::parse_line(line, scratch) else {
        log::warn!("member: damaged line of {} bytes", line.len());
        return Counters::add(&counters.corrupt, line.len() as u64);
    };
    Counters::add(&counters.relayed, line.len() as u64);
    counters.worked(Kind::Member);
    let next = last.get(&sender).map_or(seq, |&seen| seen + 1);
    if seq < next {
        log::warn!("member: line {seq} of member {sender} again or out of order");
        return Counters::add(&counters.corrupt, line.len() as u64);
    }
    if seq > next {
        log::warn!("member: lines {next}..{seq} of member {sender} missing");
        let bytes = (next..seq).map(|s| pattern::line_len(sender, s)).sum();
        Counters::add(&counters.lost, bytes);
    }
    last.insert(sender, seq);
}

/// A deaf member: says its lines and never reads. The server must cut it
/// off once it holds too much for it (the member's next write fails), and
/// then it joins again as a new member.
pub fn deaf(ctx: &Ctx, _index: usize) {
    let mut line = Vec::new();
    while ctx.running() {
        let id = NEXT_ID.fetch_add(1, SeqCst);
        let mut stream = match connect_deaf(ctx, id) {
            Ok(stream) => stream,
            Err(e) => {
                ctx.counters.error(format_args!("deaf member: {e}"));
                thread::sleep(RETRY_PAUSE);
                continue;
            }
        };
        ctx.counters.worked(Kind::Deaf);
        let mut pacer = Pacer::new(DEAF_LINES_PER_SEC);
        let mut seq = 0;
        while pacer.wait(ctx.deadline) {
            pattern::line(id, seq, &mut line);
            match stream.write_all(&line) {
                Ok(()) => seq += 1,
                // Part of a line may have gone: start over as a new member
                // (the server drops the partial line with the connection).
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionReset
                            | io::ErrorKind::BrokenPipe
                            | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    Counters::add(&ctx.counters.deaf_cut, 1);
                    break;
                }
                Err(e) => {
                    ctx.counters.error(format_args!("deaf member: write: {e}"));
                    break;
                }
            }
        }
    }
}

/// A connection to the broadcast service with a small receive buffer,
/// named as deaf member `id`.
fn connect_deaf(ctx: &Ctx, id: u32) -> io::Result<TcpStream> {
    let addr = ctx.addrs.broadcast;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_recv_buffer_size(DEAF_RCVBUF)?;
    socket.connect_timeout(&addr.into(), IO_TIMEOUT)?;
    let mut stream = TcpStream::from(socket);
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.write_all(format!("deaf {id:x}\n").as_bytes())?;
    Ok(stream)
}
