//! The loss-based controller (draft-ietf-rmcat-gcc-02 §6, libwebrtc
//! `SendSideBandwidthEstimation`, classic): loss below 2 % → +8 %/s;
//! 2–10 % → hold; above 10 % → × (1 − 0.5·loss), at most once per
//! (300 ms + RTT). Loss is measured over at least 20 reported packets.

const LOW_LOSS: f64 = 0.02;
const HIGH_LOSS: f64 = 0.10;
const INCREASE_PER_S: f64 = 1.08;
const MIN_PACKETS: u32 = 20;
const DECREASE_INTERVAL_US: i64 = 300_000;

#[derive(Debug)]
pub(crate) struct LossBased {
    bitrate: f64,
    lost: u32,
    expected: u32,
    last_update_us: Option<i64>,
    last_decrease_us: Option<i64>,
    last_loss: f64,
}

impl LossBased {
    pub fn new(start_bps: u64) -> Self {
        Self {
            bitrate: start_bps as f64,
            lost: 0,
            expected: 0,
            last_update_us: None,
            last_decrease_us: None,
            last_loss: 0.0,
        }
    }

    pub fn bitrate_bps(&self) -> u64 {
        self.bitrate as u64
    }

    pub fn loss_fraction(&self) -> f64 {
        self.last_loss
    }

    pub fn set(&mut self, bps: u64) {
        self.bitrate = bps as f64;
    }

    /// Account `lost` of `expected` newly reported packets; updates the
    /// estimate once 20 have accumulated. True when it decreased (a loss
    /// episode).
    pub fn on_report(&mut self, lost: u32, expected: u32, rtt_us: i64, now_us: i64) -> bool {
        self.lost += lost;
        self.expected += expected;
        if self.expected < MIN_PACKETS {
            return false;
        }
        let loss = f64::from(self.lost) / f64::from(self.expected);
        self.lost = 0;
        self.expected = 0;
        self.last_loss = loss;
        let last = *self.last_update_us.get_or_insert(now_us);
        let dt_s = ((now_us - last) as f64 / 1e6).clamp(0.0, 1.0);
        self.last_update_us = Some(now_us);
        if loss < LOW_LOSS {
            self.bitrate = self.bitrate * INCREASE_PER_S.powf(dt_s) + 1000.0 * dt_s;
        } else if loss > HIGH_LOSS
            && self
                .last_decrease_us
                .is_none_or(|t| now_us - t >= DECREASE_INTERVAL_US + rtt_us)
        {
            self.bitrate *= 1.0 - 0.5 * loss;
            self.last_decrease_us = Some(now_us);
            return true;
        }
        false
    }

    /// Keep the loss-based estimate from running ahead of `cap` (the
    /// delay-based estimate): the combined estimate is their minimum.
    pub fn cap(&mut self, cap: u64) {
        self.bitrate = self.bitrate.min(cap as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_regimes() {
        let mut l = LossBased::new(1_000_000);
        l.on_report(0, 20, 0, 0);
        l.on_report(0, 20, 0, 1_000_000);
        assert_eq!(l.bitrate_bps(), 1_081_000);
        l.on_report(1, 20, 0, 2_000_000); // 5 %: hold
        assert_eq!(l.bitrate_bps(), 1_081_000);
        l.on_report(4, 20, 0, 3_000_000); // 20 %: × 0.9
        assert_eq!(l.bitrate_bps(), 972_900);
        l.on_report(4, 20, 100_000, 3_200_000); // too soon
        assert_eq!(l.bitrate_bps(), 972_900);
        l.on_report(2, 10, 100_000, 3_400_000); // 10 more needed
        assert_eq!(l.bitrate_bps(), 972_900);
        l.on_report(2, 10, 100_000, 3_500_000);
        assert_eq!(l.bitrate_bps(), 875_610);
        assert!((l.loss_fraction() - 0.2).abs() < 1e-9);
    }
}
