//! The framing receivers on the reactor, over real loopback sockets: exact
//! callback order, exact bytes, and what a hostile length costs.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};

use common::{assert_quiet, client, listening, next, pattern};
use reactor::framing::{
    FrameHandler, Frames, LengthPrefix, LengthPrefixedReceiver, LineHandler, LineReceiver, Lines,
    NetstringReceiver,
};
use reactor::{Protocol, Reason, Transport};

/// The system allocator, remembering the largest single request it saw and
/// how many bytes are allocated now.
struct MeasuredAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Bytes allocated and not yet freed, by every thread of the process.
/// Reserved memory counts whether or not it was touched, which resident
/// size (`/proc/self/statm`) would not show.
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed unchanged to the system allocator; the only
// additions are atomic counters, which allocate nothing.
unsafe impl GlobalAlloc for MeasuredAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as for `alloc`; `ptr` came from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: MeasuredAllocation = MeasuredAllocation;

/// Reports each callback on a channel and echoes every frame back.
struct FrameRecorder(Sender<String>);

impl FrameHandler for FrameRecorder {
    fn connection_made(&mut self, _frames: &mut Frames<'_>) {
        let _ = self.0.send("made".into());
    }
    fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
        let _ = self.0.send(format!("frame:{}", frame.len()));
        frames
            .send_frame(frame)
            .expect("an echo fits its own prefix");
    }
    fn connection_lost(&mut self, _f: &mut Frames<'_>, reason: &Reason, unfinished: &[u8]) {
        let _ = self
            .0
            .send(format!("lost:{reason}:{} unfinished", unfinished.len()));
    }
}

#[test]
fn length_prefixed_frames_echo_in_order_however_the_bytes_are_split() {
    let (tx, rx) = channel();
    let server = listening(move || LengthPrefixedReceiver::new(FrameRecorder(tx.clone())));
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "made");
    let payloads = [
        pattern(70_000, 1),
        Vec::new(),
        pattern(3, 2),
        pattern(99_999, 3),
    ];
    let mut stream = Vec::new();
    for p in &payloads {
        stream.extend_from_slice(&(p.len() as u32).to_be_bytes());
        stream.extend_from_slice(p);
    }
    // Split at awkward places: inside a prefix, inside a payload.
    for piece in [
        &stream[..2],
        &stream[2..40_001],
        &stream[40_001..70_006],
        &stream[70_006..],
    ] {
        s.write_all(piece).unwrap();
    }
    let mut echoed = vec![0; stream.len()];
    s.read_exact(&mut echoed).unwrap();
    assert!(echoed == stream, "the echo differs from what was sent");
    for p in &payloads {
        assert_eq!(next(&rx), format!("frame:{}", p.len()));
    }
    // Half a frame, then a clean close: reported, not dropped.
    s.write_all(&[0, 0, 0, 9, b'h', b'a']).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(
        next(&rx),
        "lost:connection closed cleanly by the peer:6 unfinished"
    );
    assert_quiet(&rx);
}

#[test]
fn a_declared_length_of_four_gibibytes_is_refused_without_allocating_it() {
    let (tx, rx) = channel();
    let server = listening(move || LengthPrefixedReceiver::new(FrameRecorder(tx.clone())));
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "made");
    let before = LARGEST.load(Ordering::Relaxed);
    s.write_all(&[0xff, 0xff, 0xff, 0xff, b'x']).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing is echoed");
    assert_eq!(
        next(&rx),
        "lost:closed by us on bad input: frame of 4294967295 bytes exceeds the 99999 byte limit:0 unfinished"
    );
    let largest = LARGEST.load(Ordering::Relaxed);
    // The reactor's own buffers were allocated before `before` was read; the
    // test harness itself allocates at most a few KiB at a time.
    assert!(
        largest <= before.max(1 << 20),
        "an allocation of {largest} bytes was made"
    );
    // Whereas a frame that is accepted is buffered whole (the check can fail).
    assert!(before < u32::MAX as usize);
}

/// Reports `made`, and how many bytes it has read (`read:N`) after every
/// read, around the protocol it wraps.
struct CountReads<P> {
    inner: P,
    read: usize,
    tx: Sender<String>,
}

impl<P: Protocol> Protocol for CountReads<P> {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        self.inner.connection_made(transport);
        let _ = self.tx.send("made".into());
    }
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        self.inner.data_received(transport, data);
        self.read += data.len();
        let _ = self.tx.send(format!("read:{}", self.read));
    }
    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        self.inner.connection_lost(transport, reason);
    }
}

/// Expects frames that never come.
struct NoFrames;

impl FrameHandler for NoFrames {
    fn frame_received(&mut self, _f: &mut Frames<'_>, frame: &[u8]) {
        panic!("no frame is complete here, yet one of {} came", frame.len());
    }
}

#[test]
fn headers_that_declare_large_frames_cost_what_arrived_not_what_they_declare() {
    const CONNECTIONS: usize = 200;
    const MAX: usize = 1 << 20;
    let (tx, rx) = channel();
    let server = listening(move || CountReads {
        inner: LengthPrefixedReceiver::new(NoFrames).with_max_length(MAX),
        read: 0,
        tx: tx.clone(),
    });
    let mut clients: Vec<_> = (0..CONNECTIONS).map(|_| client(server.addr)).collect();
    for _ in 0..CONNECTIONS {
        assert_eq!(next(&rx), "made");
    }
    let before = LIVE.load(Ordering::Relaxed);
    // Each declares the largest frame allowed and sends ten bytes of it.
    let mut start = (MAX as u32).to_be_bytes().to_vec();
    start.extend_from_slice(b"0123456789");
    for s in &mut clients {
        s.write_all(&start).unwrap();
    }
    let mut done = 0;
    while done < CONNECTIONS {
        if next(&rx) == format!("read:{}", start.len()) {
            done += 1;
        }
    }
    let grown = LIVE.load(Ordering::Relaxed) - before;
    // Reserving each declared length would be 200 MiB; other tests in this
    // binary run alongside and hold a few hundred KiB at most.
    assert!(
        grown < 16 << 20,
        "{CONNECTIONS} headers and 10 bytes each grew the heap by {grown} bytes"
    );
    drop(clients);
}

#[test]
fn a_malformed_netstring_closes_with_a_reason_and_later_frames_are_ignored() {
    let (tx, rx) = channel();
    let server = listening(move || NetstringReceiver::new(FrameRecorder(tx.clone())));
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "made");
    s.write_all(b"3:abc,3:abcd,2:ok,").unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"3:abc,");
    assert_eq!(next(&rx), "frame:3");
    assert_eq!(
        next(&rx),
        "lost:closed by us on bad input: malformed frame: netstring does not end with ',':0 unfinished"
    );
    assert_quiet(&rx);
}

/// A header line `SIZE n`, then n raw bytes, then lines again: the shape of
/// the seeds' file transfer, on the line receiver.
struct Upload {
    tx: Sender<String>,
    remaining: usize,
    received: Vec<u8>,
}

impl LineHandler for Upload {
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let line = String::from_utf8_lossy(line).into_owned();
        if let Some(n) = line.strip_prefix("SIZE ") {
            self.remaining = n.parse().unwrap();
            lines.set_raw_mode();
        }
        let _ = self.tx.send(format!("line:{line}"));
    }
    fn raw_data_received(&mut self, lines: &mut Lines<'_>, data: &[u8]) {
        let take = data.len().min(self.remaining);
        self.received.extend_from_slice(&data[..take]);
        self.remaining -= take;
        if self.remaining == 0 {
            lines.send_line(format!("got {}", self.received.len()).as_bytes());
            lines.set_line_mode_with(&data[take..]);
        }
    }
}

#[test]
fn line_mode_raw_mode_and_back_within_one_read() {
    let (tx, rx) = channel();
    let server = listening(move || {
        LineReceiver::new(Upload {
            tx: tx.clone(),
            remaining: 0,
            received: Vec::new(),
        })
    });
    let mut s = client(server.addr);
    // Header, body with line breaks inside, and the next line: one write.
    s.write_all(b"SIZE 6\r\nab\r\ncdafter\r\n").unwrap();
    assert_eq!(next(&rx), "line:SIZE 6");
    assert_eq!(next(&rx), "line:after");
    let mut reply = [0; 7];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"got 6\r\n");
}

#[test]
fn an_eight_bit_prefix_refuses_to_send_what_it_cannot_declare() {
    struct Big(Sender<String>);
    impl FrameHandler for Big {
        fn connection_made(&mut self, frames: &mut Frames<'_>) {
            let refused = frames.send_frame(&[0; 300]).unwrap_err();
            let _ = self.0.send(refused.to_string());
            frames.send_frame(b"fits").unwrap();
            frames.transport().lose_connection();
        }
        fn frame_received(&mut self, _f: &mut Frames<'_>, _frame: &[u8]) {}
    }
    let (tx, rx) = channel();
    let server =
        listening(move || LengthPrefixedReceiver::with_prefix(LengthPrefix::U8, Big(tx.clone())));
    let mut s = client(server.addr);
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"\x04fits");
    assert_eq!(
        next(&rx),
        "a frame of 300 bytes does not fit a header that declares at most 255"
    );
}
