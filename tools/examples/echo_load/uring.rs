//! `echo_load --io-uring`: the same ping-pong, driven through io_uring
//! instead of the reactor, so that the load costs less CPU per message than
//! the server it measures.
//!
//! Why it exists: on a machine where the load and the server get one core
//! each, a load that costs as much per message as the server cannot keep it
//! busy. The server then finds a few replies per `epoll_wait` instead of
//! many, and the leaner the server, the more wake-ups it makes: its
//! syscalls per message measure the load's speed, not its own. Each
//! connection here keeps one `recv` queued in the ring; sends and receives
//! for every ready connection go in with one `io_uring_enter`, and with
//! `DEFER_TASKRUN` the server's writes do not interrupt this process to
//! finish them. Its sockets use reno and a fixed receive buffer (see
//! `connect`). It needs Linux 6.1 or later; where io_uring is unavailable
//! it says so and exits 1 (`bench/echo.sh` then falls back to the reactor
//! load).
//!
//! Each message is checked byte for byte and timed as in the reactor engine,
//! but filled more cheaply: the body is the connection's own pseudo-random
//! pattern, written once, and each message stamps a hash of the connection
//! and its sequence number over the first bytes (see `stamp`), so a stale,
//! misrouted or corrupted echo still fails the comparison while the
//! per-message work stays a few nanoseconds.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

use crate::common::load::{fill_message, until_unix_time, Histogram};
use crate::Outcome;

/// What a run needs to know; the rest of `echo_load`'s flags do not apply.
pub struct Settings {
    pub addr: SocketAddr,
    pub conns: u32,
    pub size: usize,
    pub secs: f64,
    pub connect_timeout: Duration,
    pub start_at: Option<f64>,
}

/// One connection's message in flight.
struct Conn {
    stream: TcpStream,
    /// The message being echoed; the kernel reads it while a send is queued.
    sent: &'static mut [u8],
    /// Where the echo is received; the kernel writes it while a recv is
    /// queued. One byte longer than a message, so that a server sending
    /// more than it was sent is seen at once.
    echo: &'static mut [u8],
    /// Bytes of the echo received so far.
    got: usize,
    /// Bytes of the message the kernel has taken so far.
    put: usize,
    seq: u64,
    sent_at: Instant,
    /// The kernel has not yet taken the whole message.
    sending: bool,
    /// Some byte of this echo differed.
    bad: bool,
    /// Still counted: not lost, not failed.
    live: bool,
}

/// The most connections one ring serves: two entries each, and a ring has
/// at most 32,768.
pub const MAX_CONNS: u32 = 16_384;

/// `user_data` of a completion: connection index, and which operation.
const RECV: u64 = 1;

fn send_tag(idx: usize) -> u64 {
    (idx as u64) << 1
}

fn recv_tag(idx: usize) -> u64 {
    (idx as u64) << 1 | RECV
}

/// Connects, runs the ping-pong for `secs`, and reports.
pub fn run(s: &Settings) -> ExitCode {
    let mut conns = Vec::with_capacity(s.conns as usize);
    let mut errors = 0u64;
    let mut first_failure = None;
    for _ in 0..s.conns {
        match connect(s) {
            Ok(stream) => conns.push(Conn {
                stream,
                // The buffers are leaked: the kernel may touch a buffer until
                // its operation completes, and operations still queued when
                // the run ends are never waited for. Leaked, they outlive
                // every operation; the process exits right after.
                sent: Box::leak(vec![0u8; s.size].into_boxed_slice()),
                echo: Box::leak(vec![0u8; s.size + 1].into_boxed_slice()),
                got: 0,
                put: 0,
                seq: 0,
                sent_at: Instant::now(),
                sending: false,
                bad: false,
                live: true,
            }),
            Err(e) => {
                errors += 1;
                first_failure.get_or_insert(e);
            }
        }
    }
    if conns.is_empty() {
        let why = first_failure.map_or_else(|| "no connection made".into(), |e| e.to_string());
        eprintln!("echo_load: could not connect to {}: {why}", s.addr);
        return ExitCode::FAILURE;
    }
    if let Some(e) = &first_failure {
        eprintln!(
            "echo_load: {errors} of {} connection attempts failed (first: {e})",
            s.conns
        );
    }
    // Room for one send and one recv per connection.
    let entries = (2 * conns.len()).next_power_of_two().max(8) as u32;
    let mut ring = match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
    {
        Ok(ring) => ring,
        // No io_uring (ENOSYS), forbidden (EPERM: a seccomp filter, or
        // kernel.io_uring_disabled), or a kernel older than DEFER_TASKRUN
        // (EINVAL; the size is within the limit, checked in main).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EPERM | libc::EINVAL)
            ) =>
        {
            eprintln!("echo_load: io_uring is not available here ({e}); run without --io-uring");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("echo_load: cannot set up io_uring with {entries} entries: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(at) = s.start_at {
        match until_unix_time(at) {
            Ok(wait) => std::thread::sleep(wait),
            Err(late) => eprintln!(
                "echo_load: connecting ended {:.0} ms after --start-at; the run starts late",
                late.as_secs_f64() * 1e3
            ),
        }
    }

    let mut hist = Histogram::new();
    let mut msgs = 0u64;
    let started = Instant::now();
    for (idx, conn) in conns.iter_mut().enumerate() {
        fill_message(conn.sent, idx as u32, 0);
        stamp(conn.sent, idx, 0);
        conn.sent_at = started;
        queue_message(&mut ring, conn, idx);
    }
    let end = started + Duration::from_secs_f64(s.secs);
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(entries as usize);
    let mut live = conns.len();
    let mut now = started;
    while now < end && live > 0 {
        // Waits for at least one completion, but no longer than the run.
        let timeout = types::Timespec::from(end - now);
        let wait = types::SubmitArgs::new().timespec(&timeout);
        match ring.submitter().submit_with_args(1, &wait) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("echo_load: io_uring_enter failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        now = Instant::now();
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(tag, result) in &done {
            let idx = (tag >> 1) as usize;
            let conn = &mut conns[idx];
            if !conn.live {
                continue;
            }
            let failure = if tag & RECV == 0 {
                match result {
                    r if r < 0 => {
                        Some(format!("send failed: {}", io::Error::from_raw_os_error(-r)))
                    }
                    0 => Some("send took no bytes".to_string()),
                    r => {
                        // A send may take part of the message when the socket
                        // buffer is short of room: queue the rest.
                        conn.put += r as usize;
                        if conn.put < s.size {
                            queue_send(&mut ring, conn, idx);
                        } else {
                            conn.sending = false;
                        }
                        None
                    }
                }
            } else {
                match result {
                    0 => Some("the server closed the connection".to_string()),
                    r if r < 0 => {
                        Some(format!("recv failed: {}", io::Error::from_raw_os_error(-r)))
                    }
                    r if conn.got + r as usize > s.size => {
                        Some("the server sent more than it was sent".to_string())
                    }
                    r => {
                        let n = r as usize;
                        if conn.echo[conn.got..conn.got + n] != conn.sent[conn.got..conn.got + n] {
                            conn.bad = true;
                        }
                        conn.got += n;
                        if conn.got < s.size {
                            queue_recv(&mut ring, conn, idx);
                        }
                        None
                    }
                }
            };
            if let Some(why) = failure {
                if now < end {
                    eprintln!("echo_load: connection {idx} lost: {why}");
                    errors += 1;
                }
                conn.live = false;
                live -= 1;
                continue;
            }
            // The next message goes once the echo is whole and the kernel is
            // done with the last send's buffer.
            if conn.got == s.size && !conn.sending && now < end {
                hist.record(now - conn.sent_at);
                msgs += 1;
                if conn.bad {
                    errors += 1;
                    conn.bad = false;
                }
                conn.seq += 1;
                stamp(conn.sent, idx, conn.seq);
                conn.sent_at = now;
                queue_message(&mut ring, conn, idx);
            }
        }
    }
    let elapsed = (now.min(end) - started).as_secs_f64();
    // Operations still queued hold their own references to the sockets, and
    // the buffers are leaked, so closing the sockets now is safe.
    drop(conns);
    crate::print_outcome(&Outcome {
        conns: s.conns,
        size: s.size,
        secs: s.secs,
        msgs,
        elapsed,
        hist: &hist,
        errors,
    });
    ExitCode::SUCCESS
}

/// Writes message number `seq` of connection `idx` over the first (up to 8)
/// bytes: a hash of both, so that even messages of 8 bytes or fewer differ
/// between connections and from one message to the next.
fn stamp(buf: &mut [u8], idx: usize, seq: u64) {
    let mut tag = [0u8; 8];
    fill_message(&mut tag, idx as u32, seq);
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&tag[..n]);
}

fn connect(s: &Settings) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&s.addr, s.connect_timeout)?;
    stream.set_nodelay(true)?;
    // Cheaper per message for the load, and nothing changes for the server:
    // reno instead of the system's default congestion control (BBR here
    // was 3% of the load's CPU; loopback loses nothing for it to model), and
    // a fixed receive buffer, which turns off receive-buffer autotuning (2%).
    // A kernel without reno keeps its default.
    let sock = socket2::SockRef::from(&stream);
    let _ = sock.set_tcp_congestion(b"reno");
    sock.set_recv_buffer_size(256 * 1024)?;
    Ok(stream)
}

/// Queues the send of `conn.sent` and the recv of its echo.
fn queue_message(ring: &mut IoUring, conn: &mut Conn, idx: usize) {
    conn.got = 0;
    conn.put = 0;
    conn.sending = true;
    queue_send(ring, conn, idx);
    queue_recv(ring, conn, idx);
}

/// Queues a send of the part of the message the kernel has not taken yet.
fn queue_send(ring: &mut IoUring, conn: &mut Conn, idx: usize) {
    let rest = &conn.sent[conn.put..];
    let send = opcode::Send::new(
        types::Fd(conn.stream.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(send_tag(idx));
    push(ring, &send);
}

/// Queues a recv for the rest of the echo, and one byte more.
fn queue_recv(ring: &mut IoUring, conn: &mut Conn, idx: usize) {
    let rest = &mut conn.echo[conn.got..];
    let recv = opcode::Recv::new(
        types::Fd(conn.stream.as_raw_fd()),
        rest.as_mut_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(recv_tag(idx));
    push(ring, &recv);
}

fn push(ring: &mut IoUring, entry: &io_uring::squeue::Entry) {
    // Each connection has at most one send and one recv outstanding, and
    // the queue has room for two per connection, so once the entries before
    // are submitted there is room; if the queue is full, submit first.
    loop {
        // SAFETY: the entry points into a `sent` or `echo` buffer, which is
        // leaked (never freed), and names a socket that in-flight operations
        // keep open. Each buffer has at most one operation on it at a time,
        // and nothing else touches it meanwhile: a send reads the unsent
        // part of `sent`, which is refilled only after the whole message was
        // taken; a recv writes the unfilled part of `echo`, which is read
        // only once that recv has completed.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return;
        }
        if let Err(e) = ring.submit() {
            eprintln!("echo_load: io_uring submit failed: {e}");
            std::process::exit(1);
        }
    }
}
