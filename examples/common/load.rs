//! What the load generators (`echo_load`, `udp_load`) share: a latency
//! histogram that never allocates while recording, deterministic message
//! contents that can be checked byte for byte, and the options that time a
//! run.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Messages per second over `elapsed` seconds (0 for an empty interval).
pub fn rate(msgs: u64, elapsed: f64) -> f64 {
    if elapsed > 0.0 {
        msgs as f64 / elapsed
    } else {
        0.0
    }
}

/// Parses a positive number of seconds.
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(v)
    } else {
        Err("must be a positive number of seconds".into())
    }
}

/// Parses a UNIX time in seconds (fractions allowed), for `--start-at`.
pub fn parse_unix_time(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 && v < 1e11 {
        Ok(v)
    } else {
        Err("must be a UNIX time in seconds".into())
    }
}

/// How long until UNIX time `at` (seconds): `Ok(wait)`, or `Err(late)` by how
/// much it has passed. Lets load processes started together time the same
/// window (`--start-at`).
pub fn until_unix_time(at: f64) -> Result<Duration, Duration> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if at >= now {
        Ok(Duration::from_secs_f64(at - now))
    } else {
        Err(Duration::from_secs_f64(now - at))
    }
}

/// A log-linear latency histogram over nanoseconds: exact below 64 ns, then
/// 64 buckets per power of two (under 1.6% error). Fixed size, so recording
/// never allocates.
pub struct Histogram {
    counts: Box<[u64; Histogram::BUCKETS]>,
    total: u64,
}

impl Histogram {
    const SUB_BITS: u32 = 6;
    const SUB: usize = 1 << Self::SUB_BITS;
    const BUCKETS: usize = (64 - Self::SUB_BITS as usize + 1) * Self::SUB;

    pub fn new() -> Self {
        Histogram {
            counts: Box::new([0; Self::BUCKETS]),
            total: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < Self::SUB as u64 {
            return v as usize;
        }
        let msb = 63 - v.leading_zeros();
        let shift = msb - Self::SUB_BITS;
        (shift as usize) * Self::SUB + (v >> shift) as usize
    }

    /// The middle of bucket `i`'s value range.
    fn midpoint(i: usize) -> f64 {
        if i < Self::SUB {
            return i as f64;
        }
        let shift = i / Self::SUB - 1;
        let mantissa = (Self::SUB + i % Self::SUB) as u64;
        let low = mantissa << shift;
        let width = 1u64 << shift;
        low as f64 + (width - 1) as f64 / 2.0
    }

    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }

    /// The value at quantile `q` (0..=1), in nanoseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::midpoint(i);
            }
        }
        Self::midpoint(Self::BUCKETS - 1)
    }
}

/// Fills `buf` with message number `seq` of client `client`: xorshift64*
/// output seeded from both, so every message differs and a stale, misrouted
/// or corrupted echo does not compare equal.
pub fn fill_message(buf: &mut [u8], client: u32, seq: u64) {
    // splitmix64 of the seed, so neighbouring seeds give unrelated streams.
    let mut z = (u64::from(client) << 40 ^ seq).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let mut x = (z ^ (z >> 31)) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let word = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_contiguous_and_close() {
        let mut last = 0;
        for v in (0..1_000_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i >= last && i < Histogram::BUCKETS, "v={v} i={i}");
            last = i;
            let mid = Histogram::midpoint(i);
            assert!((mid - v as f64).abs() <= v as f64 / 60.0 + 0.5, "v={v}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::new();
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5) / 1000.0;
        let p99 = h.quantile(0.99) / 1000.0;
        assert!((49.0..=51.0).contains(&p50), "{p50}");
        assert!((98.0..=100.5).contains(&p99), "{p99}");
    }

    #[test]
    fn unix_times() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let wait = until_unix_time(now + 10.0).unwrap();
        assert!(wait > Duration::from_secs(9) && wait <= Duration::from_secs(10));
        let late = until_unix_time(now - 10.0).unwrap_err();
        assert!(late >= Duration::from_secs(10) && late < Duration::from_secs(11));
        assert!(parse_unix_time("1700000000.25").is_ok());
        assert!(parse_unix_time("-1").is_err());
        assert!(parse_secs("0").is_err());
        assert_eq!(parse_secs("0.5"), Ok(0.5));
    }

    #[test]
    fn messages_differ() {
        let (mut a, mut b) = (vec![0; 13], vec![0; 13]);
        fill_message(&mut a, 0, 0);
        fill_message(&mut b, 0, 1);
        assert_ne!(a, b);
        fill_message(&mut b, 1, 0);
        assert_ne!(a, b);
        let mut c = vec![0; 13];
        fill_message(&mut c, 0, 0);
        assert_eq!(a, c);
    }
}
