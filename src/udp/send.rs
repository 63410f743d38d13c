//! Handing an endpoint's datagrams to the kernel in batches: the loop the
//! outbox (what callbacks wrote) and the send queue (what the kernel pushed
//! back on) share, how runs of equal datagrams become GSO messages, and
//! what each error counts as.
//!
//! Every error is about the first message of the call that failed (the
//! kernel stops a batch at an error and reports it only when it took
//! nothing), so it is handled exactly as one `send_to` of that datagram
//! would have been, and the loop goes on from there.

use std::io;
use std::net::SocketAddr;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;

use log::{debug, warn};
use mio::net::UdpSocket;

use super::batch::{Message, SendBatch, BATCH};
#[cfg(target_os = "linux")]
use super::mmsg;

/// Datagrams in one GSO message at most: the kernel's `UDP_MAX_SEGMENTS`
/// (64 from Linux 4.18; later kernels allow more). The outbox holds fewer
/// ([`BATCH`]), so this bounds the send queue's runs, which are not GSO'd,
/// only in principle.
const GSO_MAX_SEGMENTS: usize = 64;

/// Bytes of one GSO message at most: the largest UDP payload over IPv4
/// (one IP packet's 65,535 bytes less the IPv4 and UDP headers), the
/// kernel's limit for the message before it is cut.
const GSO_MAX_BYTES: usize = 65_507;

/// Datagrams waiting to be sent, oldest first.
pub(super) trait Pending {
    fn len(&self) -> usize;

    /// Datagram `i`: its destination (`None`: the connected address) and bytes.
    fn get(&self, i: usize) -> (Option<SocketAddr>, &[u8]);

    /// Datagrams `first..first + count` as one slice, if they lie back to
    /// back in memory (a GSO message is one buffer).
    fn contiguous(&self, first: usize, count: usize) -> Option<&[u8]>;
}

/// Whether an endpoint sends runs of equal datagrams to one destination as
/// one GSO message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gso {
    /// Not asked yet: asked at the first run (a getsockopt), not before, so
    /// endpoints that never send runs never ask.
    Untried,
    /// The kernel knows UDP GSO; runs go as one message each.
    On,
    /// The kernel does not know it, or refused a GSO message on this
    /// endpoint's route: one message per datagram from now on.
    Off,
}

/// What sending found that its endpoint keeps.
#[derive(Debug)]
pub(super) struct SendState {
    /// Datagrams dropped: the kernel refused them for good (network
    /// unreachable, too large, broadcast not allowed), or (counted by the
    /// endpoint) the queue was full or `write` had no address.
    pub(super) dropped: u64,
    /// A send reported an ICMP refusal not yet passed to the protocol.
    pub(super) refused: bool,
    pub(super) gso: Gso,
}

impl SendState {
    pub(super) fn new() -> SendState {
        SendState {
            dropped: 0,
            refused: false,
            gso: Gso::Untried,
        }
    }

    /// Whether runs may go as GSO messages (asking the kernel the first
    /// time).
    fn gso_on(&mut self, socket: &UdpSocket) -> bool {
        if self.gso == Gso::Untried {
            self.gso = if probe_gso(socket) { Gso::On } else { Gso::Off };
        }
        self.gso == Gso::On
    }
}

#[cfg(target_os = "linux")]
fn probe_gso(socket: &UdpSocket) -> bool {
    mmsg::gso_supported(socket.as_raw_fd())
}

#[cfg(not(target_os = "linux"))]
fn probe_gso(_: &UdpSocket) -> bool {
    false
}

/// How an endpoint's datagrams go to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// One datagram per call, as plain sends would: a connected socket,
    /// whose every send may report an earlier datagram's ICMP error (see
    /// `endpoint`).
    OneByOne,
    /// Up to a batch of messages per call, runs of equal datagrams to one
    /// destination as one GSO message each.
    Batched,
}

/// Sends datagrams from the first of `pending` on, as `mode` says, until all
/// are taken or the kernel pushes back. Returns how many were taken: sent, or failed
/// for good and counted in `state.dropped`. The rest, from there on, met
/// `WouldBlock` and wait for writability.
pub(super) fn send_pending(
    socket: &UdpSocket,
    io: &mut SendBatch,
    pending: &dyn Pending,
    mode: Mode,
    state: &mut SendState,
    local: SocketAddr,
) -> usize {
    let mut next = 0;
    // The datagram whose send already met an ICMP refusal: a second one on
    // the same datagram is its own error.
    let mut refused_at = None;
    // A GSO run that failed for a reason of its own datagrams is sent
    // again one datagram per message up to here, so each gets its verdict.
    let mut split_until = 0;
    let mut messages = [Message::NONE; BATCH];
    let mut counts = [0usize; BATCH];
    while next < pending.len() {
        let batched = mode == Mode::Batched && SendBatch::batched();
        let (per_call, gso) = if batched {
            (BATCH, state.gso != Gso::Off && next >= split_until)
        } else {
            (1, false)
        };
        let n = plan(
            pending,
            next,
            per_call,
            gso,
            &mut || state.gso_on(socket),
            &mut messages,
            &mut counts,
        );
        let e = match io.send(socket, &messages[..n]) {
            Ok(taken) => {
                next += counts[..taken.min(n)].iter().sum::<usize>();
                continue;
            }
            Err(e) => e,
        };
        let first = messages[0];
        match e.kind() {
            io::ErrorKind::WouldBlock => return next,
            io::ErrorKind::Interrupted => {}
            // An earlier datagram's ICMP error, reported (and cleared) by
            // this send, which did not happen: note it and send again.
            io::ErrorKind::ConnectionRefused if refused_at != Some(next) => {
                refused_at = Some(next);
                state.refused = true;
            }
            _ if first.segment.is_some() && gso_refused(&e) => {
                warn!(
                    "UDP {local}: the kernel refused a GSO send to {:?} ({e}); \
                     this endpoint sends one datagram per message from now on",
                    first.to
                );
                state.gso = Gso::Off;
            }
            // Any other error of a run: its datagrams go again one by one.
            _ if first.segment.is_some() => split_until = next + counts[0],
            _ if call_refused(&e) => {}
            _ if first.segment.is_none() && call_maybe_refused(&e) => {
                match send_one(socket, &first) {
                    Ok(()) => {
                        // Alone, it went: the batched call is what was refused.
                        refuse_batching(&e);
                        next += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return next,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        refused_at = Some(next);
                        state.refused = true;
                    }
                    Err(e) => {
                        debug!("UDP {local}: send to {:?} failed: {e}", first.to);
                        state.dropped += 1;
                        next += 1;
                    }
                }
            }
            _ => {
                // Unreachable network, too large, broadcast not allowed: that
                // datagram only is lost.
                debug!("UDP {local}: send to {:?} failed: {e}", first.to);
                state.dropped += 1;
                next += 1;
            }
        }
    }
    next
}

/// One datagram with one `send_to`/`send`.
fn send_one(socket: &UdpSocket, message: &Message<'_>) -> io::Result<()> {
    match message.to {
        Some(to) => socket.send_to(message.data, to),
        None => socket.send(message.data),
    }
    .map(drop)
}

/// Whether `e`, from a GSO message, is the kernel or device refusing GSO.
fn gso_refused(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    return mmsg::is_gso_refusal(e);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = e;
        false
    };
}

/// Whether `e` says the batched call itself is missing; if so, it is
/// turned off (and the loop sends again, one datagram per call).
fn call_refused(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    if mmsg::available() && e.raw_os_error() == Some(libc::ENOSYS) {
        mmsg::refuse(e);
        return true;
    }
    let _ = e;
    false
}

/// Whether `e`, from a batched call of plain datagrams, may be the call
/// refused rather than the datagram: the first is then tried alone.
fn call_maybe_refused(e: &io::Error) -> bool {
    #[cfg(target_os = "linux")]
    return mmsg::available() && mmsg::may_be_unsupported(e);
    #[cfg(not(target_os = "linux"))]
    return {
        let _ = e;
        false
    };
}

fn refuse_batching(e: &io::Error) {
    #[cfg(target_os = "linux")]
    mmsg::refuse(e);
    let _ = e;
}

/// Fills `messages` (and the datagrams each holds in `counts`) from
/// datagram `from` of `pending` on: at most `per_call` messages, each one
/// datagram, or, with `gso`, a run of datagrams of one size (the last may
/// be shorter) to one destination. Returns how many messages.
fn plan<'a>(
    pending: &'a dyn Pending,
    from: usize,
    per_call: usize,
    gso: bool,
    gso_on: &mut dyn FnMut() -> bool,
    messages: &mut [Message<'a>; BATCH],
    counts: &mut [usize; BATCH],
) -> usize {
    let mut next = from;
    let mut n = 0;
    while next < pending.len() && n < per_call.min(BATCH) {
        let (to, data) = pending.get(next);
        let mut message = Message {
            to,
            data,
            segment: None,
        };
        let mut count = 1;
        if gso {
            let run = run_length(pending, next);
            if run > 1 && gso_on() {
                if let Some(run_data) = pending.contiguous(next, run) {
                    message.data = run_data;
                    message.segment = u16::try_from(data.len()).ok();
                    count = run;
                }
            }
        }
        messages[n] = message;
        counts[n] = count;
        next += count;
        n += 1;
    }
    n
}

/// How many datagrams from `first` on make one GSO run: the same
/// destination, the same size but for a shorter last one, none empty, within
/// the kernel's limits.
fn run_length(pending: &dyn Pending, first: usize) -> usize {
    let (to, data) = pending.get(first);
    let size = data.len();
    if size == 0 || u16::try_from(size).is_err() {
        return 1;
    }
    let mut count = 1;
    let mut total = size;
    while first + count < pending.len() && count < GSO_MAX_SEGMENTS {
        let (next_to, next) = pending.get(first + count);
        if next_to != to
            || next.is_empty()
            || next.len() > size
            || total + next.len() > GSO_MAX_BYTES
        {
            break;
        }
        count += 1;
        total += next.len();
        if next.len() < size {
            break; // a shorter one ends the run
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Datagrams back to back, as the outbox holds them.
    struct Packed {
        bytes: Vec<u8>,
        ends: Vec<(Option<SocketAddr>, usize)>,
    }

    impl Packed {
        fn new(datagrams: &[(Option<SocketAddr>, usize)]) -> Packed {
            let mut bytes = Vec::new();
            let mut ends = Vec::new();
            for (i, &(to, len)) in datagrams.iter().enumerate() {
                bytes.extend(std::iter::repeat(i as u8).take(len));
                ends.push((to, bytes.len()));
            }
            Packed { bytes, ends }
        }

        fn start(&self, i: usize) -> usize {
            if i == 0 {
                0
            } else {
                self.ends[i - 1].1
            }
        }
    }

    impl Pending for Packed {
        fn len(&self) -> usize {
            self.ends.len()
        }
        fn get(&self, i: usize) -> (Option<SocketAddr>, &[u8]) {
            (self.ends[i].0, &self.bytes[self.start(i)..self.ends[i].1])
        }
        fn contiguous(&self, first: usize, count: usize) -> Option<&[u8]> {
            Some(&self.bytes[self.start(first)..self.ends[first + count - 1].1])
        }
    }

    fn runs(pending: &Packed, per_call: usize, gso: bool) -> Vec<(usize, Option<u16>)> {
        let mut messages = [Message::NONE; BATCH];
        let mut counts = [0; BATCH];
        let n = plan(
            pending,
            0,
            per_call,
            gso,
            &mut || true,
            &mut messages,
            &mut counts,
        );
        (0..n).map(|i| (counts[i], messages[i].segment)).collect()
    }

    #[test]
    fn runs_are_equal_datagrams_to_one_destination_with_a_shorter_last() {
        let a = Some("127.0.0.1:1".parse().unwrap());
        let b = Some("127.0.0.1:2".parse().unwrap());
        let p = Packed::new(&[
            (a, 100),
            (a, 100),
            (a, 100),
            (a, 40), // ends the run
            (a, 100),
            (b, 100), // another destination
            (b, 100),
            (b, 0), // empty: never in a run
            (None, 7),
            (None, 7),
        ]);
        assert_eq!(
            runs(&p, BATCH, true),
            [
                (4, Some(100)),
                (1, None),
                (2, Some(100)),
                (1, None),
                (2, Some(7))
            ]
        );
        assert_eq!(runs(&p, BATCH, false), vec![(1, None); 10]);
        assert_eq!(runs(&p, 1, true), [(4, Some(100))], "one message per call");
    }

    #[test]
    fn a_run_stays_within_the_kernels_bytes_and_segments() {
        let a = Some("127.0.0.1:1".parse().unwrap());
        let p = Packed::new(&[(a, 30_000); 5]);
        assert_eq!(
            runs(&p, BATCH, true),
            [(2, Some(30_000)), (2, Some(30_000)), (1, None)]
        );
        let p = Packed::new(&[(a, 10); 70]);
        let r = runs(&p, BATCH, true);
        assert_eq!(r[0], (GSO_MAX_SEGMENTS, Some(10)));
        assert_eq!(r[1], (6, Some(10)));
    }
}
