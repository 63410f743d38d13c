//! Property tests of the framing receivers (`reactor::framing`), through the
//! public API only: whatever the split of the input into reads, the same
//! lines and frames arrive, raw sections survive, and an incomplete frame
//! costs what arrived. They live in this member, not in the root package, so
//! that trying an example of the crate does not build proptest (issue 15);
//! the deterministic framing tests stay next to the code in `src/framing`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use reactor::framing::{
    FrameCodec, FrameHandler, FrameReceiver, Frames, LengthPrefix, LengthPrefixedReceiver,
    LineHandler, LineReceiver, Lines, NetstringReceiver,
};
use reactor::testing::StringTransport;
use reactor::{Protocol, Reason};

/// The system allocator, remembering per thread the largest single request
/// since [`largest_request_during`] started watching: a carried buffer's
/// capacity is private, but it is only ever set by such a request.
struct LargestRequest;

thread_local! {
    // Const-initialized and without a destructor: reading it allocates
    // nothing, so the allocator may use it.
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every call is passed unchanged to the system allocator; the only
// addition is a thread-local counter, which allocates nothing.
unsafe impl GlobalAlloc for LargestRequest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as for `alloc`; `ptr` came from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestRequest = LargestRequest;

/// Runs `f` and returns the largest single allocation it made on this thread
/// (other tests run on other threads and are not counted).
fn largest_request_during(f: impl FnOnce()) -> usize {
    LARGEST.with(|largest| largest.set(0));
    f();
    LARGEST.with(Cell::get)
}

/// Feeds `data` to `p` in reads cut at `cuts` (sorted; clamped to `data`).
fn feed<P: Protocol + ?Sized>(p: &mut P, t: &mut StringTransport, data: &[u8], cuts: &[usize]) {
    let mut at = 0;
    for &cut in cuts {
        let cut = cut.min(data.len()).max(at);
        p.data_received(t, &data[at..cut]);
        at = cut;
    }
    p.data_received(t, &data[at..]);
}

/// Records every frame; a frame `RAW n` switches to raw mode for n bytes.
#[derive(Default)]
struct FrameCollect {
    frames: Vec<Vec<u8>>,
    raw: Vec<u8>,
    raw_wanted: usize,
    lost: Option<(Reason, Vec<u8>)>,
}

impl FrameHandler for FrameCollect {
    fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
        if let Some(n) = frame.strip_prefix(b"RAW ") {
            self.raw_wanted = std::str::from_utf8(n).unwrap().parse().unwrap();
            frames.set_raw_mode();
        }
        self.frames.push(frame.to_vec());
    }
    fn raw_data_received(&mut self, frames: &mut Frames<'_>, data: &[u8]) {
        let take = data.len().min(self.raw_wanted);
        self.raw.extend_from_slice(&data[..take]);
        self.raw_wanted -= take;
        if self.raw_wanted == 0 {
            frames.set_frame_mode_with(&data[take..]);
        }
    }
    fn connection_lost(&mut self, _f: &mut Frames<'_>, reason: &Reason, unfinished: &[u8]) {
        self.lost = Some((reason.clone(), unfinished.to_vec()));
    }
}

/// A frame receiver of any format, with its handler and encoder in reach.
trait AnyFrames: Protocol {
    fn collected(&self) -> &FrameCollect;
    fn encode(&self, payload: &[u8]) -> Vec<u8>;
}

impl<C: FrameCodec> AnyFrames for FrameReceiver<C, FrameCollect> {
    fn collected(&self) -> &FrameCollect {
        self.handler()
    }
    fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut header = [0u8; 24];
        let n = self
            .codec()
            .encode_header(payload.len(), &mut header)
            .unwrap();
        [&header[..n], payload, self.codec().trailer()].concat()
    }
}

/// Every frame format, with its default limit.
fn codecs() -> Vec<Box<dyn AnyFrames>> {
    vec![
        Box::new(LengthPrefixedReceiver::with_prefix(
            LengthPrefix::U8,
            FrameCollect::default(),
        )),
        Box::new(LengthPrefixedReceiver::with_prefix(
            LengthPrefix::U16,
            FrameCollect::default(),
        )),
        Box::new(LengthPrefixedReceiver::new(FrameCollect::default())),
        Box::new(LengthPrefixedReceiver::with_prefix(
            LengthPrefix::U32.little_endian(),
            FrameCollect::default(),
        )),
        Box::new(NetstringReceiver::new(FrameCollect::default())),
    ]
}

/// Payloads accepted by the large-frame property: far above what one read
/// brings.
const LARGE: usize = 1 << 20;

/// The formats that can declare [`LARGE`] payloads, accepting them.
fn large_codecs() -> Vec<Box<dyn AnyFrames>> {
    vec![
        Box::new(LengthPrefixedReceiver::new(FrameCollect::default()).with_max_length(LARGE)),
        Box::new(
            LengthPrefixedReceiver::with_prefix(
                LengthPrefix::U32.little_endian(),
                FrameCollect::default(),
            )
            .with_max_length(LARGE),
        ),
        Box::new(NetstringReceiver::new(FrameCollect::default()).with_max_length(LARGE)),
    ]
}

/// Deterministic bytes, so a failing case reproduces.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

proptest! {
    #[test]
    fn any_split_gives_the_same_frames(
        // Tiny frames too, so that several fit in one carried header's worth.
        frames in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..4),
                prop::collection::vec(any::<u8>(), 0..255),
            ],
            0..16,
        ),
        tail_len in 0usize..5,
        mut cuts in prop::collection::vec(0usize..3200, 0..40),
    ) {
        cuts.sort_unstable();
        for mut p in codecs() {
            let mut stream = Vec::new();
            for f in &frames {
                stream.extend(p.encode(f));
            }
            // An incomplete frame at the end is reported, not dropped.
            let tail = p.encode(b"unfinished");
            let tail = &tail[..tail_len.min(tail.len() - 1)];
            stream.extend_from_slice(tail);
            let mut t = StringTransport::new();
            feed(&mut *p, &mut t, &stream, &cuts);
            prop_assert_eq!(&p.collected().frames, &frames);
            p.connection_lost(&mut t, &Reason::PeerClosed);
            prop_assert_eq!(
                p.collected().lost.clone(),
                Some((Reason::PeerClosed, tail.to_vec()))
            );
        }
    }

    #[test]
    fn raw_sections_between_frames_survive_any_split(
        raw in prop::collection::vec(any::<u8>(), 0..300),
        mut cuts in prop::collection::vec(0usize..400, 0..30),
    ) {
        cuts.sort_unstable();
        for mut p in codecs() {
            let announce = format!("RAW {}", raw.len()).into_bytes();
            let mut stream = p.encode(b"first");
            stream.extend(p.encode(&announce));
            stream.extend_from_slice(&raw);
            stream.extend(p.encode(b"after"));
            stream.extend(p.encode(b""));
            let mut t = StringTransport::new();
            feed(&mut *p, &mut t, &stream, &cuts);
            let expected = [b"first".to_vec(), announce, b"after".to_vec(), Vec::new()];
            prop_assert_eq!(&p.collected().frames, &expected);
            prop_assert_eq!(&p.collected().raw, &raw);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The carried buffer's capacity is private; every capacity it takes is
    /// an allocation request made while a read is handled, so the largest
    /// such request bounds it. Within a read the handler also copies each
    /// complete frame (at most what has arrived), which the bound allows.
    #[test]
    fn large_frames_in_small_pieces_arrive_whole_and_reserve_only_what_came(
        lens in prop::collection::vec(0usize..150_000, 1..4),
        seed in any::<u64>(),
        pieces in prop::collection::vec(1usize..3000, 1..50),
    ) {
        for mut p in large_codecs() {
            let frames: Vec<Vec<u8>> = lens
                .iter()
                .enumerate()
                .map(|(i, &len)| pattern(len, seed.wrapping_add(i as u64)))
                .collect();
            let stream: Vec<u8> = frames.iter().flat_map(|f| p.encode(f)).collect();
            let mut t = StringTransport::new();
            let mut fed = 0;
            for &size in pieces.iter().cycle() {
                if fed == stream.len() {
                    break;
                }
                let end = (fed + size).min(stream.len());
                let reserved = largest_request_during(|| p.data_received(&mut t, &stream[fed..end]));
                fed = end;
                prop_assert!(
                    reserved <= 2 * fed + 64,
                    "{} reserved after {} bytes",
                    reserved,
                    fed
                );
            }
            prop_assert!(p.collected().frames == frames, "the frames differ");
        }
    }
}

/// Records every line; a line `RAW n` switches to raw mode for n bytes.
#[derive(Default)]
struct LineCollect {
    lines: Vec<Vec<u8>>,
    raw: Vec<u8>,
    raw_wanted: usize,
    lost: Option<Vec<u8>>,
}

impl LineHandler for LineCollect {
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        if let Some(n) = line.strip_prefix(b"RAW ") {
            self.raw_wanted = std::str::from_utf8(n).unwrap().parse().unwrap();
            lines.set_raw_mode();
        }
        self.lines.push(line.to_vec());
    }
    fn raw_data_received(&mut self, lines: &mut Lines<'_>, data: &[u8]) {
        let take = data.len().min(self.raw_wanted);
        self.raw.extend_from_slice(&data[..take]);
        self.raw_wanted -= take;
        if self.raw_wanted == 0 {
            lines.set_line_mode_with(&data[take..]);
        }
    }
    fn connection_lost(&mut self, _lines: &mut Lines<'_>, _reason: &Reason, unfinished: &[u8]) {
        self.lost = Some(unfinished.to_vec());
    }
}

proptest! {
    #[test]
    fn any_split_gives_the_same_lines(
        lines in prop::collection::vec(prop::collection::vec(prop::sample::select(b"ab\r\n".to_vec()), 0..20), 0..20),
        ending in 0..3u8,
        crlf_after in prop::collection::vec(any::<bool>(), 20),
        mut cuts in prop::collection::vec(0usize..400, 0..30),
    ) {
        // The default (each line ended by `\n` or `\r\n`, at random),
        // or exactly `\r\n`, or exactly `\n`.
        let exact: Option<&[u8]> = match ending {
            0 => None,
            1 => Some(b"\r\n"),
            _ => Some(b"\n"),
        };
        // Lines must not contain a `\n`; they may hold a `\r`, but not
        // as their last byte where it would be read as part of the ending.
        let lines: Vec<Vec<u8>> = lines
            .into_iter()
            .map(|l| l.into_iter().filter(|&b| b != b'\n').collect::<Vec<u8>>())
            .map(|mut l| { if exact != Some(b"\n") { while l.last() == Some(&b'\r') { l.pop(); } } l })
            .collect();
        let mut stream = Vec::new();
        for (l, &crlf) in lines.iter().zip(&crlf_after) {
            stream.extend_from_slice(l);
            stream.extend_from_slice(exact.unwrap_or(if crlf { b"\r\n" } else { b"\n" }));
        }
        stream.extend_from_slice(b"tail\r");
        cuts.sort_unstable();
        let mut p = LineReceiver::new(LineCollect::default());
        if let Some(delimiter) = exact {
            p = p.with_delimiter(delimiter);
        }
        let mut t = StringTransport::new();
        feed(&mut p, &mut t, &stream, &cuts);
        prop_assert_eq!(&p.handler().lines, &lines);
        p.connection_lost(&mut t, &Reason::PeerClosed);
        prop_assert_eq!(p.handler().lost.as_deref(), Some(&b"tail\r"[..]));
    }

    #[test]
    fn raw_sections_between_lines_survive_any_split(
        raw in prop::collection::vec(any::<u8>(), 0..300),
        mut cuts in prop::collection::vec(0usize..400, 0..30),
    ) {
        let mut stream = format!("first\r\nRAW {}\r\n", raw.len()).into_bytes();
        stream.extend_from_slice(&raw);
        stream.extend_from_slice(b"after\r\nlast\r\n");
        cuts.sort_unstable();
        let mut p = LineReceiver::new(LineCollect::default());
        let mut t = StringTransport::new();
        feed(&mut p, &mut t, &stream, &cuts);
        let raw_line = format!("RAW {}", raw.len()).into_bytes();
        let expected = [b"first".to_vec(), raw_line, b"after".to_vec(), b"last".to_vec()];
        prop_assert_eq!(&p.handler().lines, &expected);
        prop_assert_eq!(&p.handler().raw, &raw);
    }
}
