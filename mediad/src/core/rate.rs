//! The bitrate of an incoming layer over the last second, in fixed bins:
//! the allocator's price of forwarding it. No allocation, O(1) per packet.

use std::time::Duration;

const BIN_MS: u64 = 100;
const BINS: usize = 10;

/// Bytes received per 100 ms bin over the last second.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    bins: [u64; BINS],
    /// Bin number (ms since the worker's epoch / 100) of the newest bin.
    head: u64,
    /// Bin of the first byte counted.
    first: Option<u64>,
}

fn bin_of(t: Duration) -> u64 {
    u64::try_from(t.as_millis()).unwrap_or(u64::MAX) / BIN_MS
}

impl RateMeter {
    /// Count `bytes` received `t` after the worker's epoch.
    pub fn add(&mut self, bytes: usize, t: Duration) {
        let b = bin_of(t);
        self.advance(b);
        if b + (BINS as u64) <= self.head {
            return; // older than the window
        }
        if let Some(x) = self.bins.get_mut((b % BINS as u64) as usize) {
            *x = x.saturating_add(bytes as u64);
        }
        self.first.get_or_insert(b);
    }

    fn advance(&mut self, b: u64) {
        if self.first.is_none() {
            self.head = b;
            return;
        }
        if b <= self.head {
            return;
        }
        if b >= self.head + BINS as u64 {
            // Silent for a whole window: measure afresh from here.
            self.bins = [0; BINS];
            self.head = b;
            self.first = Some(b);
            return;
        }
        let from = self.head + 1;
        for i in from..=b {
            if let Some(x) = self.bins.get_mut((i % BINS as u64) as usize) {
                *x = 0;
            }
        }
        self.head = b;
    }

    /// Bits per second over the complete bins of the last second before
    /// `now` (or over the current bin while it is the only one). 0 when
    /// nothing arrived in the last second.
    pub fn bps(&self, now: Duration) -> u64 {
        let Some(first) = self.first else {
            return 0;
        };
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let b = now_ms / BIN_MS;
        if b >= self.head + BINS as u64 {
            return 0;
        }
        let get = |i: u64| {
            if i > self.head || i + (BINS as u64) <= self.head {
                0
            } else {
                self.bins
                    .get((i % BINS as u64) as usize)
                    .copied()
                    .unwrap_or(0)
            }
        };
        if b <= first {
            // Only the current bin so far.
            let elapsed = (now_ms - first * BIN_MS).max(20);
            return get(first) * 8 * 1000 / elapsed;
        }
        let lo = first.max(b.saturating_sub(BINS as u64));
        let bytes: u64 = (lo..b).map(get).sum();
        bytes * 8 * 1000 / ((b - lo) * BIN_MS)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_rate_and_silence() {
        let mut r = RateMeter::default();
        assert_eq!(r.bps(ms(0)), 0);
        // 1250 bytes every 10 ms = 1 Mbit/s.
        for t in (0..3000).step_by(10) {
            r.add(1250, ms(t));
        }
        let bps = r.bps(ms(3000));
        assert!((990_000..=1_010_000).contains(&bps), "{bps}");
        // Silence empties the window.
        assert!(r.bps(ms(3600)) < 500_000);
        assert_eq!(r.bps(ms(4100)), 0);
        // A restart is measured again at once.
        r.add(1250, ms(10_000));
        r.add(1250, ms(10_010));
        assert!(r.bps(ms(10_020)) > 500_000, "{}", r.bps(ms(10_020)));
    }

    #[test]
    fn first_bin_is_measured_early() {
        let mut r = RateMeter::default();
        for t in (0..50).step_by(10) {
            r.add(1250, ms(t));
        }
        let bps = r.bps(ms(50));
        assert!((900_000..=1_300_000).contains(&bps), "{bps}");
    }
}
