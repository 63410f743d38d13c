//! How long a reconnecting client waits before each retry: Twisted's
//! `ReconnectingClientFactory.retry` as one pure function, and the random
//! numbers its jitter draws.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The schedule of a [`ReconnectingClient`](super::ReconnectingClient)'s
/// retries. [`Backoff::default`] is Twisted's: an initial delay of 1 s,
/// multiplied by e at each retry, with a jitter of 0.1196 (a standard
/// deviation of 11.96 % of the delay), capped at an hour, retrying for
/// ever.
///
/// The n-th retry after a connection was made (or since the start) waits
/// about `initial_delay × factorⁿ`: e, e², e³, … seconds by default (the
/// initial delay itself is never waited: Twisted multiplies before it
/// waits), reaching the cap at the ninth.
///
/// ```
/// use std::time::Duration;
/// use reactor::reconnect::Backoff;
///
/// let backoff = Backoff { jitter: 0.0, ..Backoff::default() };
/// let first = backoff.next_delay(backoff.initial_delay, 0.0);
/// assert_eq!(first.as_millis(), 2718); // e seconds
/// let second = backoff.next_delay(first, 0.0);
/// assert_eq!(second.as_millis(), 7389); // e² seconds
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Where the delay starts, and goes back to once a connection is made
    /// (Twisted's `initialDelay`, 1 s).
    pub initial_delay: Duration,
    /// What the delay is multiplied by at each retry (Twisted's `factor`,
    /// e = 2.718281828459045).
    pub factor: f64,
    /// The standard deviation of the delay's random variation, as a
    /// fraction of it (Twisted's `jitter`, 0.119626565582, the molar
    /// Planck constant times c in J·m/mol); 0 turns it off. Many clients
    /// cut off together (a server restart) then do not all come back in
    /// the same instant.
    pub jitter: f64,
    /// The most the delay grows to before jitter (Twisted's `maxDelay`,
    /// 3600 s).
    pub max_delay: Duration,
    /// Consecutive retries after which the client gives up (Twisted's
    /// `maxRetries`): `Some(n)` makes at most n + 1 attempts in a row
    /// without a connection; `None`, the default, retries for ever.
    pub max_retries: Option<u32>,
}

/// Twisted's `ReconnectingClientFactory.factor`: e.
///
/// ```
/// use reactor::reconnect::{Backoff, TWISTED_FACTOR};
///
/// assert_eq!(Backoff::default().factor, TWISTED_FACTOR);
/// assert_eq!(TWISTED_FACTOR, std::f64::consts::E);
/// ```
pub const TWISTED_FACTOR: f64 = std::f64::consts::E;

/// Twisted's `ReconnectingClientFactory.jitter`, as its source has it
/// today (older releases had 0.11962656472).
///
/// ```
/// use reactor::reconnect::{Backoff, TWISTED_JITTER};
///
/// assert_eq!(Backoff::default().jitter, TWISTED_JITTER);
/// ```
pub const TWISTED_JITTER: f64 = 0.119626565582;

/// How far from its nominal value jitter may take a delay, in standard
/// deviations. Twisted draws from an unbounded normal distribution; this
/// cut (0.27 % of draws reach it) keeps every delay within 64 % and 136 %
/// of its nominal value with Twisted's jitter, and never negative.
///
/// ```
/// use std::time::Duration;
/// use reactor::reconnect::{Backoff, JITTER_CUT};
///
/// let backoff = Backoff::default();
/// let one = Duration::from_secs(1);
/// // A draw past the cut waits what a draw at the cut waits.
/// assert_eq!(backoff.next_delay(one, 100.0), backoff.next_delay(one, JITTER_CUT));
/// assert_eq!(backoff.next_delay(one, -100.0), backoff.next_delay(one, -JITTER_CUT));
/// assert!(backoff.next_delay(one, -100.0) > Duration::ZERO);
/// ```
pub const JITTER_CUT: f64 = 3.0;

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_delay: Duration::from_secs(1),
            factor: TWISTED_FACTOR,
            jitter: TWISTED_JITTER,
            max_delay: Duration::from_secs(3600),
            max_retries: None,
        }
    }
}

impl Backoff {
    /// The delay before the next retry, given the delay before the last
    /// one (or [`initial_delay`](Backoff::initial_delay) for the first
    /// retry) and `normal`, a draw from the standard normal distribution
    /// ([`RandomSource::standard_normal`]). Twisted's `retry`:
    /// `delay = min(delay × factor, max_delay)`, then
    /// `delay = normalvariate(delay, delay × jitter)`, the draw cut at
    /// [`JITTER_CUT`] standard deviations. The jittered delay is what the
    /// next retry multiplies, as in Twisted, and may pass `max_delay` by
    /// its jitter.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::reconnect::Backoff;
    ///
    /// let backoff = Backoff::default();
    /// let capped = backoff.next_delay(Duration::from_secs(3000), 0.0);
    /// assert_eq!(capped, Duration::from_secs(3600));
    /// // Three standard deviations up, at most: 3600 × (1 + 3 × 0.1196…).
    /// let high = backoff.next_delay(Duration::from_secs(3000), 10.0);
    /// assert_eq!(high.as_secs(), 4891);
    /// ```
    pub fn next_delay(&self, previous: Duration, normal: f64) -> Duration {
        let max = self.max_delay.as_secs_f64();
        let grown = (previous.as_secs_f64() * self.factor).min(max);
        let normal = if normal.is_nan() {
            0.0
        } else {
            normal.clamp(-JITTER_CUT, JITTER_CUT)
        };
        let jittered = grown + grown * self.jitter * normal;
        // A factor or jitter that makes no sense (NaN, negative) must not
        // panic the reactor: such a delay is the cap.
        if jittered.is_finite() && jittered >= 0.0 {
            Duration::try_from_secs_f64(jittered).unwrap_or(self.max_delay)
        } else {
            self.max_delay
        }
    }
}

/// Where a [`ReconnectingClient`](super::ReconnectingClient) draws its
/// jitter from: uniform numbers in `[0, 1)`. [`XorShift`] is the default;
/// a test injects a seeded one, or its own sequence.
///
/// ```
/// use std::time::Duration;
/// use reactor::reconnect::{Backoff, RandomSource};
///
/// /// Always a quarter: the Box–Muller draw is then exactly 0 (cos π/2).
/// struct Quarter;
/// impl RandomSource for Quarter {
///     fn uniform(&mut self) -> f64 {
///         0.25
///     }
/// }
///
/// let normal = Quarter.standard_normal();
/// assert!(normal.abs() < 1e-12);
/// let delay = Backoff::default().next_delay(Duration::from_secs(1), normal);
/// assert_eq!(delay.as_millis(), 2718); // no jitter at all
/// ```
pub trait RandomSource {
    /// A number drawn uniformly from `[0, 1)`.
    fn uniform(&mut self) -> f64;

    /// A draw from the standard normal distribution (mean 0, standard
    /// deviation 1), by the Box–Muller transform of two uniform draws.
    fn standard_normal(&mut self) -> f64 {
        // 1 - u is in (0, 1], where ln is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// A small xorshift64* generator: enough to spread reconnecting clients
/// apart, not for anything secret.
///
/// ```
/// use reactor::reconnect::{RandomSource, XorShift};
///
/// let mut a = XorShift::seeded(7);
/// let mut b = XorShift::seeded(7);
/// assert_eq!(a.uniform(), b.uniform()); // a seed makes it reproducible
/// assert!((0.0..1.0).contains(&a.uniform()));
/// ```
#[derive(Debug, Clone)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A generator whose sequence `seed` decides, for tests.
    ///
    /// ```
    /// use reactor::reconnect::{RandomSource, XorShift};
    ///
    /// let draws = |seed| {
    ///     let mut random = XorShift::seeded(seed);
    ///     [random.uniform(), random.uniform(), random.uniform()]
    /// };
    /// assert_eq!(draws(1), draws(1));
    /// assert_ne!(draws(1), draws(2)); // nearby seeds draw apart
    /// ```
    pub fn seeded(seed: u64) -> XorShift {
        // splitmix64 spreads nearby seeds apart and never yields the one
        // state xorshift cannot leave (zero) for long: it is replaced.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift {
            state: if z == 0 { 0x2545_f491_4f6c_dd1d } else { z },
        }
    }

    /// A generator seeded from the clock and the process id, so clients
    /// started together still draw apart.
    ///
    /// ```
    /// use reactor::reconnect::{RandomSource, XorShift};
    ///
    /// let mut random = XorShift::from_time();
    /// assert!((0.0..1.0).contains(&random.uniform()));
    /// ```
    pub fn from_time() -> XorShift {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        XorShift::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }
}

impl RandomSource for XorShift {
    fn uniform(&mut self) -> f64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let bits = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn without_jitter_the_delays_are_e_to_the_n_seconds_capped_at_an_hour() {
        let backoff = Backoff::default();
        let mut delay = backoff.initial_delay;
        let mut seen = Vec::new();
        for _ in 0..11 {
            delay = backoff.next_delay(delay, 0.0);
            seen.push(secs(delay));
        }
        let e = std::f64::consts::E;
        let expected = [
            e,
            e * e,
            e.powi(3),
            e.powi(4),
            e.powi(5),
            e.powi(6),
            e.powi(7),
            e.powi(8), // 2980.96 s
            3600.0,
            3600.0,
            3600.0,
        ];
        for (n, (got, want)) in seen.iter().zip(expected).enumerate() {
            assert!(
                (got - want).abs() < 1e-6 * want,
                "retry {}: {got} s, not {want} s",
                n + 1
            );
        }
        assert_eq!(Duration::from_secs_f64(seen[0]).as_millis(), 2718);
        assert_eq!(Duration::from_secs_f64(seen[1]).as_millis(), 7389);
        assert_eq!(Duration::from_secs_f64(seen[2]).as_millis(), 20085);
    }

    #[test]
    fn jitter_moves_a_delay_by_its_standard_deviations_up_to_the_cut() {
        let backoff = Backoff::default();
        let one = Duration::from_secs(1);
        let e = std::f64::consts::E;
        let at = |normal: f64| secs(backoff.next_delay(one, normal));
        assert!((at(1.0) - e * (1.0 + TWISTED_JITTER)).abs() < 1e-9);
        assert!((at(-2.0) - e * (1.0 - 2.0 * TWISTED_JITTER)).abs() < 1e-9);
        let high = e * (1.0 + JITTER_CUT * TWISTED_JITTER);
        let low = e * (1.0 - JITTER_CUT * TWISTED_JITTER);
        assert!((at(3.0) - high).abs() < 1e-9);
        assert!((at(50.0) - high).abs() < 1e-9, "cut at three deviations");
        assert!((at(-50.0) - low).abs() < 1e-9);
        assert!((at(f64::NAN) - e).abs() < 1e-9);
        // The jittered delay is what the next retry grows from (Twisted).
        let jittered = backoff.next_delay(one, 1.0);
        let next = backoff.next_delay(jittered, 0.0);
        assert!((secs(next) - secs(jittered) * e).abs() < 1e-9);
    }

    #[test]
    fn seeded_draws_repeat_and_look_normal() {
        let mut a = XorShift::seeded(42);
        let mut b = XorShift::seeded(42);
        let draws: Vec<f64> = (0..10_000).map(|_| a.standard_normal()).collect();
        assert!(draws.iter().all(|&z| z == b.standard_normal()));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / draws.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!(
            (var.sqrt() - 1.0).abs() < 0.05,
            "standard deviation {}",
            var.sqrt()
        );
        let mut c = XorShift::seeded(43);
        assert_ne!(c.uniform(), XorShift::seeded(42).uniform());
    }

    #[test]
    fn nonsense_settings_give_the_cap_rather_than_a_panic() {
        let backoff = Backoff {
            factor: f64::NAN,
            ..Backoff::default()
        };
        assert_eq!(
            backoff.next_delay(Duration::from_secs(1), 0.0),
            Duration::from_secs(3600)
        );
        let backoff = Backoff {
            jitter: -5.0,
            ..Backoff::default()
        };
        assert_eq!(
            backoff.next_delay(Duration::from_secs(1), 3.0),
            Duration::from_secs(3600)
        );
    }
}
