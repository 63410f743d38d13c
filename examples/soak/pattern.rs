//! What the load sends, made so that every byte can be checked where it
//! comes back: a keyed byte stream for the TCP echoes and UDP datagrams, and
//! self-describing lines for the broadcast service. Plus the small random
//! number generator that picks sizes.

use std::io::Write;

/// splitmix64's finalizer: neighbouring inputs give unrelated outputs.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xorshift64*: sizes and jitter, reproducible from a seed.
pub struct Rng(u64);

impl Rng {
    /// A generator whose numbers follow from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(mix(seed) | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
}

/// Fills `buf` with bytes `offset..offset + buf.len()` of stream `seed`.
/// Byte `i` depends only on the seed and `i`, so a stream can be produced
/// and checked in pieces of any size, and a byte that comes back at the
/// wrong offset or from another stream does not match.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let key = mix(seed);
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(key ^ (pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// How many bytes of `got` differ from stream `seed` at `offset`.
pub fn mismatches(seed: u64, offset: u64, got: &[u8]) -> u64 {
    let mut expected = [0u8; 4096];
    let mut bad = 0;
    for (k, piece) in got.chunks(expected.len()).enumerate() {
        let want = &mut expected[..piece.len()];
        fill(seed, offset + (k * 4096) as u64, want);
        bad += piece
            .iter()
            .zip(want.iter())
            .filter(|(a, b)| a != b)
            .count() as u64;
    }
    bad
}

/// Longest payload of a broadcast line.
pub const MAX_PAYLOAD: u64 = 4096;

/// Broadcast line `seq` of member `sender`:
/// `SENDER SEQ PAYLOAD\n` (hexadecimal numbers, lower-case letters whose
/// length and content follow from both), written into `out`.
pub fn line(sender: u32, seq: u64, out: &mut Vec<u8>) {
    out.clear();
    let _ = write!(out, "{sender:x} {seq:x} ");
    let key = mix(u64::from(sender) << 40 ^ seq);
    let len = key % (MAX_PAYLOAD + 1);
    let mut x = key | 1;
    for _ in 0..len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.push(b'a' + (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 59) as u8 % 26);
    }
    out.push(b'\n');
}

/// The length of [`line`]`(sender, seq)`, newline included.
pub fn line_len(sender: u32, seq: u64) -> u64 {
    let digits = |v: u64| (64 - v.leading_zeros()).div_ceil(4).max(1) as u64;
    let payload = mix(u64::from(sender) << 40 ^ seq) % (MAX_PAYLOAD + 1);
    digits(u64::from(sender)) + 1 + digits(seq) + 1 + payload + 1
}

/// The sender and sequence number of a broadcast line (newline included),
/// if it is exactly the line those name; `None` for anything damaged.
pub fn parse_line(got: &[u8], scratch: &mut Vec<u8>) -> Option<(u32, u64)> {
    let text = std::str::from_utf8(got).ok()?;
    let mut fields = text.splitn(3, ' ');
    let sender = u32::from_str_radix(fields.next()?, 16).ok()?;
    let seq = u64::from_str_radix(fields.next()?, 16).ok()?;
    line(sender, seq, scratch);
    (scratch.as_slice() == got).then_some((sender, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_made_in_pieces_is_the_stream_made_at_once() {
        let mut whole = vec![0; 10_000];
        fill(7, 3, &mut whole);
        let mut pieces = vec![0; 10_000];
        let (a, b) = pieces.split_at_mut(13);
        fill(7, 3, a);
        fill(7, 16, b);
        assert_eq!(whole, pieces);
        assert_eq!(mismatches(7, 3, &whole), 0);
        whole[5_000] ^= 1;
        assert_eq!(mismatches(7, 3, &whole), 1);
        assert!(mismatches(8, 3, &pieces) > 9_900);
        // Shifted by a byte, the stream does not match itself.
        assert!(mismatches(7, 4, &pieces[..100]) > 90);
    }

    #[test]
    fn lines_parse_back_and_their_length_is_known() {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        for (sender, seq) in [(0, 0), (1, 15), (0xabc, 0x1_0000), (u32::MAX, u64::MAX)] {
            line(sender, seq, &mut out);
            assert_eq!(out.len() as u64, line_len(sender, seq));
            assert_eq!(parse_line(&out, &mut scratch), Some((sender, seq)));
            let last = out.len() - 2;
            out[last] = if out[last] == b'a' { b'b' } else { b'a' };
            assert_eq!(parse_line(&out, &mut scratch), None);
        }
    }
}
