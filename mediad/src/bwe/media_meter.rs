//! The rate of media a receiver is sent, probe packets left out: what a
//! probe cluster adds its own packets to ([`super::goog_cc`]).
//!
//! Not [`crate::core::rate::RateMeter`] (a layer's price over the complete
//! 100 ms bins of the last second): that one lags by a bin and holds a
//! whole second, and with it the probes paced differently — 720p came back
//! 2.4 s later after a 400 kbit/s limit and the 800 kbit/s cases fell to
//! 23–24 fps in virtual time. This one reads the current half-second
//! window and the one before.

/// The rate of media sent (probe packets left out) over the last half
/// second or so: what a probe adds its own packets to.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct MediaMeter {
    /// Start of the current window (µs) and its bytes.
    start_us: Option<i64>,
    bytes: u64,
    /// The window before: its bytes and length (µs).
    prev_bytes: u64,
    prev_span_us: i64,
}

/// Length of one [`MediaMeter`] window.
const MEDIA_WINDOW_US: i64 = 500_000;

impl MediaMeter {
    pub(super) fn add(&mut self, bytes: u64, now_us: i64) {
        let start = *self.start_us.get_or_insert(now_us);
        let span = now_us - start;
        if span >= MEDIA_WINDOW_US {
            // A silence longer than a window forgets the one before.
            (self.prev_bytes, self.prev_span_us) = if span < 2 * MEDIA_WINDOW_US {
                (self.bytes, span)
            } else {
                (0, 0)
            };
            self.start_us = Some(now_us);
            self.bytes = 0;
        }
        self.bytes += bytes;
    }

    /// Bit/s over the current window and the one before (at least 100 ms).
    pub(super) fn rate_bps(&self, now_us: i64) -> u64 {
        let Some(start) = self.start_us else {
            return 0;
        };
        let span = (now_us - start).max(0);
        if span >= 2 * MEDIA_WINDOW_US {
            return 0;
        }
        let total_us = (self.prev_span_us + span).max(100_000);
        ((self.prev_bytes + self.bytes) as f64 * 8e6 / total_us as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The media meter counts what was sent over the last half second or
    /// so, and forgets a silence.
    #[test]
    fn media_meter_rate_and_silence() {
        let mut m = MediaMeter::default();
        assert_eq!(m.rate_bps(0), 0);
        // 1250 bytes every 10 ms: 1 Mbit/s.
        for i in 0..100 {
            m.add(1250, i * 10_000);
        }
        let r = m.rate_bps(1_000_000);
        assert!((950_000..=1_050_000).contains(&r), "{r}");
        // Two windows of silence: nothing is being sent.
        assert_eq!(m.rate_bps(2_100_000), 0);
        m.add(1250, 2_100_000);
        assert!(m.rate_bps(2_110_000) <= 100_000);
    }
}
