//! The frame receivers' tests: splits of the input, limits, raw mode. The
//! property tests (any split, raw sections, large frames in small pieces)
//! are in `tools/tests/framing_properties.rs`, so that the root package does
//! not depend on proptest.

use std::time::Duration;

use super::*;
use crate::framing::{LengthPrefix, LengthPrefixedReceiver, Netstring, NetstringReceiver};
use crate::testing::StringTransport;
use crate::Protocol;

/// Records everything; a frame `RAW n` switches to raw mode for n bytes.
#[derive(Default)]
struct Collect {
    frames: Vec<Vec<u8>>,
    raw: Vec<u8>,
    raw_wanted: usize,
    exceeded: Vec<u64>,
    malformed: Vec<String>,
    keep_open: bool,
    lost: Option<(Reason, Vec<u8>)>,
}

impl FrameHandler for Collect {
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
    fn length_limit_exceeded(&mut self, frames: &mut Frames<'_>, declared: u64) {
        self.exceeded.push(declared);
        if !self.keep_open {
            frames.close_because(format!("{declared} is too long"));
        }
    }
    fn frame_malformed(&mut self, frames: &mut Frames<'_>, what: &str) {
        self.malformed.push(what.to_string());
        frames.close_because(what.to_string());
    }
    fn connection_lost(&mut self, _f: &mut Frames<'_>, reason: &Reason, unfinished: &[u8]) {
        self.lost = Some((reason.clone(), unfinished.to_vec()));
    }
}

/// The formats under test, as `(name, encoder, receiver)`.
fn codecs() -> Vec<Box<dyn Fn() -> Box<dyn Receiver>>> {
    vec![
        Box::new(|| {
            Box::new(LengthPrefixedReceiver::with_prefix(
                LengthPrefix::U8,
                Collect::default(),
            ))
        }),
        Box::new(|| {
            Box::new(LengthPrefixedReceiver::with_prefix(
                LengthPrefix::U16,
                Collect::default(),
            ))
        }),
        Box::new(|| Box::new(LengthPrefixedReceiver::new(Collect::default()))),
        Box::new(|| {
            Box::new(LengthPrefixedReceiver::with_prefix(
                LengthPrefix::U32.little_endian(),
                Collect::default(),
            ))
        }),
        Box::new(|| Box::new(NetstringReceiver::new(Collect::default()))),
    ]
}

/// A receiver of any format, with its handler and encoder in reach.
trait Receiver: Protocol {
    fn collected(&self) -> &Collect;
    fn encode(&self, payload: &[u8]) -> Vec<u8>;
    /// Bytes of header before a payload of `len` bytes.
    fn header_len(&self, len: usize) -> usize;
    /// The capacity of the buffer that carries an incomplete frame.
    fn carried_capacity(&self) -> usize;
}

impl<C: FrameCodec> Receiver for FrameReceiver<C, Collect> {
    fn collected(&self) -> &Collect {
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
    fn header_len(&self, len: usize) -> usize {
        self.codec().encode_header(len, &mut [0; 24]).unwrap()
    }
    fn carried_capacity(&self) -> usize {
        self.carry.capacity()
    }
}

fn feed(p: &mut dyn Receiver, t: &mut StringTransport, data: &[u8], cuts: &[usize]) {
    let mut at = 0;
    for &cut in cuts {
        let cut = cut.min(data.len()).max(at);
        p.data_received(t, &data[at..cut]);
        at = cut;
    }
    p.data_received(t, &data[at..]);
}

/// Payloads accepted by the large-frame tests: far above what one read brings.
const LARGE: usize = 1 << 20;

/// The formats that can declare [`LARGE`] payloads, accepting them.
fn large_codecs() -> Vec<Box<dyn Receiver>> {
    vec![
        Box::new(LengthPrefixedReceiver::new(Collect::default()).with_max_length(LARGE)),
        Box::new(
            LengthPrefixedReceiver::with_prefix(
                LengthPrefix::U32.little_endian(),
                Collect::default(),
            )
            .with_max_length(LARGE),
        ),
        Box::new(NetstringReceiver::new(Collect::default()).with_max_length(LARGE)),
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

#[test]
fn a_declared_length_reserves_nothing_before_its_bytes_arrive() {
    for mut p in large_codecs() {
        let payload = pattern(LARGE, 9);
        let stream = p.encode(&payload);
        let header = p.header_len(payload.len());
        let mut t = StringTransport::new();
        // The header and ten bytes of body: what they cost is what came.
        p.data_received(&mut t, &stream[..header + 10]);
        assert!(
            p.carried_capacity() < 1024,
            "a header and 10 bytes reserved {}",
            p.carried_capacity()
        );
        // The rest in reads of 1,000 bytes: the carry grows with them,
        // and the frame arrives whole.
        let mut fed = header + 10;
        for piece in stream[fed..].chunks(1000) {
            p.data_received(&mut t, piece);
            fed += piece.len();
            assert!(
                p.carried_capacity() <= 2 * fed + 64,
                "{} reserved after {fed} bytes",
                p.carried_capacity()
            );
        }
        assert!(p.collected().frames == [payload], "the frame differs");
    }
}

#[test]
fn an_oversized_frame_closes_with_the_stated_reason_and_nothing_after_it_arrives() {
    // The same for every format, with a limit of 100.
    let check = |p: &mut dyn Receiver, stream: &[u8]| {
        let mut t = StringTransport::new();
        p.data_received(&mut t, stream);
        assert_eq!(p.collected().frames, [b"ok".to_vec()]);
        assert_eq!(p.collected().exceeded, [200]);
        assert!(t.is_disconnecting());
        p.connection_lost(&mut t, &Reason::LocalClosed);
        let (reason, _) = p.collected().lost.clone().unwrap();
        assert_eq!(reason, Reason::BadInput("200 is too long".into()));
    };
    let mut p = LengthPrefixedReceiver::new(Collect::default()).with_max_length(100);
    let stream = [p.encode(b"ok"), p.encode(&[7; 200]), p.encode(b"never")].concat();
    check(&mut p, &stream);
    let mut p = NetstringReceiver::new(Collect::default()).with_max_length(100);
    let stream = [p.encode(b"ok"), p.encode(&[7; 200]), p.encode(b"never")].concat();
    check(&mut p, &stream);
}

#[test]
fn the_default_limit_hook_closes_with_a_reason_that_says_why() {
    struct Plain;
    impl FrameHandler for Plain {
        fn frame_received(&mut self, _f: &mut Frames<'_>, _frame: &[u8]) {
            panic!("no frame is under the limit here");
        }
        fn connection_lost(&mut self, _f: &mut Frames<'_>, reason: &Reason, _u: &[u8]) {
            assert_eq!(
                reason,
                &Reason::BadInput("frame of 1000 bytes exceeds the 10 byte limit".into())
            );
        }
    }
    let mut p = NetstringReceiver::new(Plain).with_max_length(10);
    let mut t = StringTransport::new();
    p.data_received(&mut t, b"1000:");
    assert!(t.is_disconnecting());
    p.connection_lost(&mut t, &Reason::LocalClosed);
}

#[test]
fn a_four_gibibyte_declared_length_allocates_nothing_big() {
    let mut p = LengthPrefixedReceiver::new(Collect::default());
    let mut t = StringTransport::new();
    p.data_received(&mut t, &[0xff, 0xff]);
    p.data_received(&mut t, &[0xff, 0xff, 1, 2, 3]);
    assert_eq!(p.handler().exceeded, [u32::MAX as u64]);
    assert!(t.is_disconnecting());
    assert!(
        p.carry.capacity() < 64,
        "carry grew to {}",
        p.carry.capacity()
    );
    // A netstring's digits are refused as soon as they pass the limit.
    let mut p = NetstringReceiver::new(Collect::default());
    let mut t = StringTransport::new();
    p.data_received(&mut t, b"4294967");
    p.data_received(&mut t, b"296:abc");
    assert_eq!(p.handler().exceeded, [4_294_967_296]);
    assert!(
        p.carry.capacity() < 64,
        "carry grew to {}",
        p.carry.capacity()
    );
}

#[test]
fn a_handler_that_keeps_the_connection_skips_the_oversized_frame() {
    for make in [
        |c| Box::new(LengthPrefixedReceiver::new(c).with_max_length(10)) as Box<dyn Receiver>,
        |c| Box::new(NetstringReceiver::new(c).with_max_length(10)) as Box<dyn Receiver>,
    ] {
        let mut p = make(Collect {
            keep_open: true,
            ..Collect::default()
        });
        let stream = [p.encode(b"a"), p.encode(&[b'x'; 50]), p.encode(b"b")].concat();
        let mut t = StringTransport::new();
        for byte in stream.chunks(3) {
            p.data_received(&mut t, byte);
        }
        assert_eq!(p.collected().frames, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(p.collected().exceeded, [50]);
        assert!(!t.is_disconnecting());
    }
}

#[test]
fn malformed_netstrings_close_with_a_reason_that_says_what_was_wrong() {
    for (input, what) in [
        (&b"5:hello;"[..], "netstring does not end with ','"),
        (
            b"x:",
            "netstring length is not a decimal number followed by ':'",
        ),
        (
            b"12a:",
            "netstring length is not a decimal number followed by ':'",
        ),
        (b"012:", "netstring length has a leading zero"),
        (b":", "netstring has no length"),
    ] {
        let mut p = NetstringReceiver::new(Collect::default());
        let mut t = StringTransport::new();
        // Whole and byte by byte alike.
        for byte in input.chunks(1) {
            p.data_received(&mut t, byte);
        }
        p.data_received(&mut t, b"2:ok,");
        assert_eq!(p.handler().malformed, [what], "{input:?}");
        assert!(p.handler().frames.is_empty());
        assert!(t.is_disconnecting());
        p.connection_lost(&mut t, &Reason::LocalClosed);
        assert_eq!(
            p.handler().lost.as_ref().unwrap().0,
            Reason::BadInput(what.to_string())
        );
    }
}

#[test]
fn send_frame_writes_each_format_and_refuses_what_the_prefix_cannot_declare() {
    struct Sender;
    impl FrameHandler for Sender {
        fn connection_made(&mut self, frames: &mut Frames<'_>) {
            frames.send_frame(b"hi").unwrap();
            let too_big = frames.send_frame(&[0; 256]);
            if frames.max_length() == 1 {
                assert_eq!(too_big, Err(FrameTooLarge { len: 256, max: 255 }));
            }
        }
        fn frame_received(&mut self, _f: &mut Frames<'_>, _frame: &[u8]) {}
    }
    let sent = |mut p: Box<dyn Protocol>| {
        let mut t = StringTransport::new();
        p.connection_made(&mut t);
        t.value().to_vec()
    };
    let u8_prefix =
        LengthPrefixedReceiver::with_prefix(LengthPrefix::U8, Sender).with_max_length(1);
    assert_eq!(sent(Box::new(u8_prefix)), b"\x02hi");
    let le16 = LengthPrefixedReceiver::with_prefix(LengthPrefix::U16.little_endian(), Sender);
    let written = sent(Box::new(le16));
    assert_eq!(&written[..4], b"\x02\0hi");
    assert_eq!(&written[4..6], b"\0\x01");
    let netstring = sent(Box::new(NetstringReceiver::new(Sender)));
    assert!(netstring.starts_with(b"2:hi,256:\0"));
    assert!(netstring.ends_with(b"\0,"));
    let _ = Netstring;
}

#[test]
fn bytes_handed_back_outside_a_read_are_delivered_at_once_and_first() {
    /// Holds raw bytes until its timer fires, then hands them back.
    #[derive(Default)]
    struct Later {
        held: Vec<u8>,
        frames: Vec<Vec<u8>>,
    }
    impl FrameHandler for Later {
        fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
            if frame == b"hold" {
                frames.set_raw_mode();
                frames.call_later(Duration::from_secs(1), 0);
            }
            self.frames.push(frame.to_vec());
        }
        fn raw_data_received(&mut self, _frames: &mut Frames<'_>, data: &[u8]) {
            self.held.extend_from_slice(data);
        }
        fn timer_fired(&mut self, frames: &mut Frames<'_>, _tag: u64) {
            let held = std::mem::take(&mut self.held);
            frames.set_frame_mode_with(&held);
        }
    }
    let mut p = NetstringReceiver::new(Later::default());
    let mut t = StringTransport::new();
    p.data_received(&mut t, b"4:hold,1:a,1:");
    t.advance(Duration::from_secs(1), &mut p);
    assert_eq!(p.handler().frames, [b"hold".to_vec(), b"a".to_vec()]);
    p.data_received(&mut t, b"b,");
    assert_eq!(
        p.handler().frames,
        [b"hold".to_vec(), b"a".to_vec(), b"b".to_vec()]
    );
}

#[test]
fn raw_sections_survive_every_split_into_three() {
    // Exhaustive where the property test samples: short raw sections, where a
    // carried netstring header's worth reaches past the raw bytes.
    for raw_len in 0..5 {
        let raw = vec![0u8; raw_len];
        for make in codecs() {
            let p = make();
            let announce = format!("RAW {raw_len}").into_bytes();
            let mut stream = p.encode(b"first");
            stream.extend(p.encode(&announce));
            stream.extend_from_slice(&raw);
            stream.extend(p.encode(b"after"));
            stream.extend(p.encode(b""));
            let expected = [
                b"first".to_vec(),
                announce.clone(),
                b"after".to_vec(),
                Vec::new(),
            ];
            for a in 0..=stream.len() {
                for b in a..=stream.len() {
                    let mut p = make();
                    let mut t = StringTransport::new();
                    feed(&mut *p, &mut t, &stream, &[a, b]);
                    assert_eq!(p.collected().frames, expected, "cuts {a} {b}");
                    assert_eq!(p.collected().raw, raw, "cuts {a} {b}");
                }
            }
        }
    }
}
