//! The rates the last probe clusters that built a queue measured behind
//! it: what the gradual increase of the estimate stops at
//! ([`super::goog_cc`], `docs/bwe.md`). Each alone is noisy (218–1048
//! kbit/s behind an 800 kbit/s bucket in the browser); their median is not.

/// How many rates the median is of.
const QUEUED_RATES: usize = 5;
/// How long they count after the last of them (µs).
const QUEUED_RATES_FRESH_US: i64 = 10_000_000;

/// A ring of the last [`QUEUED_RATES`] rates and when the last came (µs).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct QueuedRates {
    rates: [u64; QUEUED_RATES],
    count: usize,
    last_us: i64,
}

impl QueuedRates {
    /// A cluster that built a queue measured `r` behind it.
    pub(super) fn note(&mut self, r: u64, now_us: i64) {
        // Rates gone stale do not come back with one new one.
        if now_us - self.last_us > QUEUED_RATES_FRESH_US {
            self.count = 0;
        }
        if let Some(slot) = self.rates.get_mut(self.count % QUEUED_RATES) {
            *slot = r;
        }
        self.count += 1;
        self.last_us = now_us;
    }

    /// Forget them (a probe passed above their median without a queue:
    /// the limit is gone).
    pub(super) fn clear(&mut self) {
        self.count = 0;
    }

    /// Their median, once there are three, while the last is under
    /// [`QUEUED_RATES_FRESH_US`] old.
    pub(super) fn median_bps(&self, now_us: i64) -> Option<u64> {
        let n = self.count.min(QUEUED_RATES);
        if n < 3 || now_us - self.last_us > QUEUED_RATES_FRESH_US {
            return None;
        }
        let mut r = self.rates;
        let r = r.get_mut(..n)?;
        r.sort_unstable();
        r.get(n / 2).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The median of the last five rates (one wild measure does not move
    /// it), once three came, for 10 s after the last; stale rates do not
    /// come back with a new one.
    #[test]
    fn the_median_needs_three_and_goes_stale() {
        let mut q = QueuedRates::default();
        // Rates measured behind an 800 kbit/s bucket in the browser.
        q.note(1_048_298, 0);
        q.note(671_746, 100);
        assert_eq!(q.median_bps(200), None, "two say nothing yet");
        for (i, r) in [718_381, 974_442, 376_040, 218_403, 727_972]
            .into_iter()
            .enumerate()
        {
            q.note(r, 1_000 * (i as i64 + 1));
        }
        // The last five: 718, 974, 376, 218, 728.
        assert_eq!(q.median_bps(10_000), Some(718_381));
        let stale = 5_000 + QUEUED_RATES_FRESH_US + 1;
        assert_eq!(q.median_bps(stale), None, "stale");
        // One new rate after that: alone, it says nothing.
        q.note(900_000, stale);
        assert_eq!(q.median_bps(stale), None, "the old four are gone");
        q.note(800_000, stale + 1);
        q.note(700_000, stale + 2);
        assert_eq!(q.median_bps(stale + 2), Some(800_000));
        q.clear();
        assert_eq!(q.median_bps(stale + 2), None, "cleared");
    }
}
