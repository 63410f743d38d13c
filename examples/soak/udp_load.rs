//! The UDP load: windows of numbered datagrams of random size to the UDP
//! echo, each reply checked byte for byte; a datagram with no reply within
//! [`REPLY_WAIT`] counts as lost.

use std::io;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use crate::counters::{Counters, Kind};
use crate::load::{Ctx, Pacer};
use crate::pattern::{self, Rng};

/// Datagrams sent before their replies are awaited.
const WINDOW: u64 = 16;
/// Windows per second: 800 datagrams a second per thread.
const WINDOWS_PER_SEC: u32 = 50;
/// Largest datagram (a header of 12 bytes and a payload).
const MAX_DATAGRAM: usize = 1200;
const HEADER: usize = 12;
/// How long a window's replies may take.
const REPLY_WAIT: Duration = Duration::from_secs(1);

/// Sends windows of datagrams until the deadline, checking every reply.
pub fn run(ctx: &Ctx, index: usize) {
    let socket = UdpSocket::bind((ctx.addrs.udp.ip(), 0)).and_then(|s| {
        s.connect(ctx.addrs.udp)?;
        Ok(s)
    });
    let socket = match socket {
        Ok(socket) => socket,
        Err(e) => return ctx.counters.error(format_args!("udp: {e}")),
    };
    let stream = index as u32;
    let mut rng = Rng::new(0x800 + index as u64);
    let mut pacer = Pacer::new(WINDOWS_PER_SEC);
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let mut reply = vec![0u8; MAX_DATAGRAM + 1];
    let mut next_seq = 0u64;
    while pacer.wait(ctx.deadline) {
        let first = next_seq;
        let mut lens = [0usize; WINDOW as usize];
        for len in &mut lens {
            *len = rng.between(HEADER, MAX_DATAGRAM);
            let len = *len;
            make(stream, next_seq, &mut datagram[..len]);
            if let Err(e) = socket.send(&datagram[..len]) {
                return ctx.counters.error(format_args!("udp: send: {e}"));
            }
            next_seq += 1;
            Counters::add(&ctx.counters.udp_sent, 1);
            ctx.counters.worked(Kind::Udp);
        }
        let answered = match collect(ctx, &socket, (stream, first), &lens, &mut reply) {
            Ok(answered) => answered,
            Err(e) => return ctx.counters.error(format_args!("udp: receive: {e}")),
        };
        Counters::add(&ctx.counters.udp_lost, WINDOW - answered);
    }
}

/// Datagram `seq` of stream `stream`: the stream, the number, then the
/// stream's bytes for that number.
fn make(stream: u32, seq: u64, buf: &mut [u8]) {
    buf[..4].copy_from_slice(&stream.to_be_bytes());
    buf[4..HEADER].copy_from_slice(&seq.to_be_bytes());
    pattern::fill(u64::from(stream) << 48 ^ seq, 0, &mut buf[HEADER..]);
}

/// Receives the replies to the window of datagrams of `stream` numbered
/// from `first`, of lengths `lens`, for up to [`REPLY_WAIT`]; returns how
/// many of them came back intact. A late reply to an earlier window is
/// skipped (it was counted lost already); a damaged one counts as bad.
fn collect(
    ctx: &Ctx,
    socket: &UdpSocket,
    (stream, first): (u32, u64),
    lens: &[usize; WINDOW as usize],
    buf: &mut [u8],
) -> io::Result<u64> {
    let until = Instant::now() + REPLY_WAIT;
    let mut seen = [false; WINDOW as usize];
    let mut answered = 0;
    while answered < WINDOW {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        socket.set_read_timeout(Some(left))?;
        let n = match socket.recv(buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let got = &buf[..n];
        let header = (n >= HEADER).then(|| {
            let from = u32::from_be_bytes(got[..4].try_into().unwrap_or_default());
            let seq = u64::from_be_bytes(got[4..HEADER].try_into().unwrap_or_default());
            (from, seq)
        });
        let slot = |seq: u64| {
            seq.checked_sub(first)
                .filter(|&i| i < WINDOW)
                .map(|i| i as usize)
        };
        match header {
            Some((from, seq)) if from == stream && seq < first => {}
            Some((from, seq))
                if from == stream
                    && slot(seq).is_some_and(|i| !seen[i] && lens[i] == n)
                    && pattern::mismatches(u64::from(stream) << 48 ^ seq, 0, &got[HEADER..])
                        == 0 =>
            {
                if let Some(i) = slot(seq) {
                    seen[i] = true;
                }
                answered += 1;
            }
            _ => {
                log::warn!("udp: a damaged or unexpected reply of {n} bytes");
                Counters::add(&ctx.counters.udp_bad, 1);
            }
        }
    }
    Ok(answered)
}
