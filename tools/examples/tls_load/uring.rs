//! `tls_load --io-uring`: the ping-pong with rustls working in memory and
//! io_uring moving the ciphertext, so that the load costs less CPU per
//! message than the server it measures (the reason is the one given in
//! `examples/echo_load/uring.rs`: a load as costly as the server runs in
//! step with it, and then measures itself).
//!
//! The handshakes are made first, one connection at a time, on blocking
//! sockets (`ClientConnection::complete_io`). Then each connection keeps one
//! `recv` queued in the ring and at most one `send` of what rustls has
//! encrypted; sends and receives for every ready connection go in with one
//! `io_uring_enter`. Received ciphertext is fed to rustls from the buffer
//! (`read_tls` from a slice), the plaintext checked byte for byte against
//! the message sent, and the next message is written to rustls once the
//! whole echo is in and the kernel has taken the last send. Messages are
//! stamped as in `echo_load --io-uring` (a hash of the connection and the
//! sequence number over the first bytes of a fixed pattern). Whatever else
//! rustls has to send (a key update) goes out the same way. It needs
//! Linux 6.1 or later; where io_uring is unavailable it says so and exits 1.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};
use tokio_rustls::rustls::ClientConnection;

use crate::common::load::{until_unix_time, Histogram};
use crate::{first_message, stamp, Failures, Report, Settings};

/// The most connections one ring serves: two entries each, and a ring has
/// at most 32,768.
const MAX_CONNS: u32 = 16_384;

/// Bytes one `recv` may take: a whole TLS record of the largest size
/// (16 KiB of plaintext and up to 256 bytes of expansion, plus the header).
const RECV_BUFFER: usize = (16 << 10) + 256 + 5;

/// `user_data` of a completion: connection index, and which operation.
const RECV: u64 = 1;

fn send_tag(idx: usize) -> u64 {
    (idx as u64) << 1
}

fn recv_tag(idx: usize) -> u64 {
    (idx as u64) << 1 | RECV
}

/// One connection's message in flight.
struct Conn {
    stream: TcpStream,
    tls: ClientConnection,
    /// The message being echoed (plaintext; rustls copies it).
    msg: Vec<u8>,
    /// Plaintext bytes of the echo checked so far.
    got: usize,
    seq: u64,
    sent_at: Instant,
    /// Ciphertext the kernel is sending. Leaked, as `inbuf` is: the kernel
    /// may read it until its send completes, and sends still queued when
    /// the run ends are never waited for. Refilled only between sends.
    out: &'static mut Vec<u8>,
    /// Bytes of `out` the kernel has taken.
    put: usize,
    /// A send of `out` is queued.
    sending: bool,
    /// Where the kernel receives ciphertext; a recv is always queued on it.
    inbuf: &'static mut [u8],
    /// Some byte of this echo differed.
    bad: bool,
    /// Still counted: not lost.
    live: bool,
}

/// Connects, handshakes, runs the ping-pong for `--secs`, and reports.
pub fn run(s: &Settings) -> Result<Report, String> {
    if s.conns > MAX_CONNS {
        return Err(format!("--io-uring drives at most {MAX_CONNS} connections"));
    }
    let mut failures = Failures::default();
    let mut conns = Vec::with_capacity(s.conns as usize);
    for idx in 0..s.conns as usize {
        match connect(s) {
            Ok((stream, tls)) => conns.push(Conn {
                stream,
                tls,
                msg: first_message(s.size, idx),
                got: 0,
                seq: 0,
                sent_at: Instant::now(),
                out: Box::leak(Box::new(Vec::with_capacity(s.size + 64))),
                put: 0,
                sending: false,
                inbuf: Box::leak(vec![0u8; RECV_BUFFER].into_boxed_slice()),
                bad: false,
                live: true,
            }),
            Err(e) => failures.add(e),
        }
    }
    failures.report("connections");
    if conns.is_empty() {
        return Err(format!(
            "could not connect to {}: {}",
            s.addr,
            failures.first.as_deref().unwrap_or("no connection made")
        ));
    }
    // Room for one send and one recv per connection.
    let entries = (2 * conns.len()).next_power_of_two().max(8) as u32;
    let mut ring = match IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
    {
        Ok(ring) => ring,
        // No io_uring (ENOSYS), forbidden (EPERM), or too old a kernel (EINVAL).
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EPERM | libc::EINVAL)
            ) =>
        {
            return Err(format!(
                "io_uring is not available here ({e}); run without --io-uring"
            ))
        }
        Err(e) => {
            return Err(format!(
                "cannot set up io_uring with {entries} entries: {e}"
            ))
        }
    };
    if let Some(at) = s.start_at {
        match until_unix_time(at) {
            Ok(wait) => std::thread::sleep(wait),
            Err(late) => eprintln!(
                "tls_load: connecting ended {:.0} ms after --start-at; the run starts late",
                late.as_secs_f64() * 1e3
            ),
        }
    }

    let mut hist = Histogram::new();
    let mut msgs = 0u64;
    let mut scratch = vec![0u8; RECV_BUFFER];
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(s.secs);
    let mut live = conns.len();
    for (idx, conn) in conns.iter_mut().enumerate() {
        conn.sent_at = started;
        let first = write_message(conn).and_then(|()| flush(&mut ring, conn, idx));
        if let Err(why) = first {
            failures.add(format!("connection {idx} lost: {why}"));
            conn.live = false;
            live -= 1;
            continue;
        }
        queue_recv(&mut ring, conn, idx);
    }
    let mut done: Vec<(u64, i32)> = Vec::with_capacity(entries as usize);
    let mut now = started;
    while now < end && live > 0 {
        // Waits for at least one completion, but no longer than the run.
        let timeout = types::Timespec::from(end - now);
        let wait = types::SubmitArgs::new().timespec(&timeout);
        match ring.submitter().submit_with_args(1, &wait) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("io_uring_enter failed: {e}")),
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
            let outcome = if tag & RECV == 0 {
                sent(&mut ring, conn, idx, result)
            } else {
                received(conn, result, s.size, &mut scratch)
                    .map(|()| queue_recv(&mut ring, conn, idx))
            }
            .and_then(|()| flush(&mut ring, conn, idx));
            if let Err(why) = outcome {
                if now < end {
                    failures.add(format!("connection {idx} lost: {why}"));
                }
                conn.live = false;
                live -= 1;
                continue;
            }
            // The next message goes once the echo is whole and the kernel
            // has taken the last send.
            if conn.got == s.size && !conn.sending && now < end {
                hist.record(now - conn.sent_at);
                msgs += 1;
                if conn.bad {
                    failures.add(format!(
                        "connection {idx}: the echo of message {} differs",
                        conn.seq
                    ));
                    conn.bad = false;
                }
                conn.seq += 1;
                stamp(&mut conn.msg, idx, conn.seq);
                conn.got = 0;
                conn.sent_at = now;
                if let Err(why) = write_message(conn).and_then(|()| flush(&mut ring, conn, idx)) {
                    failures.add(format!("connection {idx} lost: {why}"));
                    conn.live = false;
                    live -= 1;
                }
            }
        }
    }
    let elapsed = (now.min(end) - started).as_secs_f64();
    failures.report("messages or connections");
    // Operations still queued hold their own references to the sockets, and
    // the buffers are leaked, so closing the sockets now is safe.
    drop(conns);
    Ok(Report {
        msgs,
        elapsed,
        hist,
        errors: failures.count,
        full_handshakes: None,
    })
}

/// Connects and completes the handshake on a blocking socket; then tunes
/// the socket as `echo_load --io-uring` does.
fn connect(s: &Settings) -> Result<(TcpStream, ClientConnection), String> {
    let mut stream = TcpStream::connect_timeout(&s.addr, s.connect_timeout)
        .map_err(|e| format!("connect: {e}"))?;
    let setup = |stream: &TcpStream, timeout: Option<Duration>| -> io::Result<()> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)
    };
    setup(&stream, Some(s.connect_timeout)).map_err(|e| format!("socket options: {e}"))?;
    let mut tls = ClientConnection::new(Arc::clone(&s.config), s.server_name.clone())
        .map_err(|e| format!("TLS: {e}"))?;
    while tls.is_handshaking() || tls.wants_write() {
        tls.complete_io(&mut stream)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    // io_uring waits for readiness itself; the timeouts were for the handshake.
    setup(&stream, None).map_err(|e| format!("socket options: {e}"))?;
    // Cheaper per message for the load, and nothing changes for the server
    // (see echo_load's uring.rs): reno, and a fixed receive buffer.
    let sock = socket2::SockRef::from(&stream);
    let _ = sock.set_tcp_congestion(b"reno");
    sock.set_recv_buffer_size(256 * 1024)
        .map_err(|e| format!("socket options: {e}"))?;
    Ok((stream, tls))
}

/// Hands the connection's message to rustls to encrypt.
fn write_message(conn: &mut Conn) -> Result<(), String> {
    conn.tls
        .writer()
        .write_all(&conn.msg)
        .map_err(|e| format!("TLS: {e}"))
}

/// Queues a send of what rustls has to send, unless a send is under way
/// (its completion comes back here).
fn flush(ring: &mut IoUring, conn: &mut Conn, idx: usize) -> Result<(), String> {
    if conn.sending || !conn.tls.wants_write() {
        return Ok(());
    }
    conn.out.clear();
    while conn.tls.wants_write() {
        conn.tls
            .write_tls(conn.out)
            .map_err(|e| format!("TLS: {e}"))?;
    }
    conn.put = 0;
    conn.sending = true;
    queue_send(ring, conn, idx);
    Ok(())
}

/// A send completed: queue the rest if the kernel took part of it.
fn sent(ring: &mut IoUring, conn: &mut Conn, idx: usize, result: i32) -> Result<(), String> {
    match result {
        r if r < 0 => Err(format!("send failed: {}", io::Error::from_raw_os_error(-r))),
        0 => Err("send took no bytes".to_string()),
        r => {
            conn.put += r as usize;
            if conn.put < conn.out.len() {
                queue_send(ring, conn, idx);
            } else {
                conn.sending = false;
            }
            Ok(())
        }
    }
}

/// A recv completed: feed the ciphertext to rustls and check the plaintext
/// against the message, through `scratch`.
fn received(conn: &mut Conn, result: i32, size: usize, scratch: &mut [u8]) -> Result<(), String> {
    let n = match result {
        0 => return Err("the server closed the connection".into()),
        r if r < 0 => return Err(format!("recv failed: {}", io::Error::from_raw_os_error(-r))),
        r => r as usize,
    };
    let mut data: &[u8] = &conn.inbuf[..n];
    while !data.is_empty() {
        let took = conn
            .tls
            .read_tls(&mut data)
            .map_err(|e| format!("TLS: {e}"))?;
        let state = conn
            .tls
            .process_new_packets()
            .map_err(|e| format!("TLS: {e}"))?;
        if took == 0 || state.peer_has_closed() {
            return Err("the server closed the TLS session".into());
        }
        loop {
            match conn.tls.reader().read(scratch) {
                Ok(0) => return Err("the server closed the TLS session".into()),
                Ok(k) => {
                    if conn.got + k > size {
                        return Err("the server sent more than it was sent".into());
                    }
                    if scratch[..k] != conn.msg[conn.got..conn.got + k] {
                        conn.bad = true;
                    }
                    conn.got += k;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(format!("TLS: {e}")),
            }
        }
    }
    Ok(())
}

/// Queues a send of the part of `out` the kernel has not taken yet.
fn queue_send(ring: &mut IoUring, conn: &mut Conn, idx: usize) {
    let rest = &conn.out[conn.put..];
    let send = opcode::Send::new(
        types::Fd(conn.stream.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(send_tag(idx));
    push(ring, &send);
}

/// Queues a recv into `inbuf`.
fn queue_recv(ring: &mut IoUring, conn: &mut Conn, idx: usize) {
    let recv = opcode::Recv::new(
        types::Fd(conn.stream.as_raw_fd()),
        conn.inbuf.as_mut_ptr(),
        conn.inbuf.len() as u32,
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
        // SAFETY: the entry points into an `out` or `inbuf` buffer, which is
        // leaked (never freed), and names a socket that in-flight operations
        // keep open. Each buffer has at most one operation on it at a time,
        // and nothing else touches it meanwhile: `out` is refilled (and may
        // move) only when no send is queued; `inbuf` is read only once its
        // recv has completed, before the next recv is queued.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return;
        }
        if let Err(e) = ring.submit() {
            eprintln!("tls_load: io_uring submit failed: {e}");
            std::process::exit(1);
        }
    }
}
