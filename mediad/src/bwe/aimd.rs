//! AIMD rate control (libwebrtc `AimdRateControl`, draft-ietf-rmcat-gcc-02
//! §5.5): increase multiplicatively (8 %/s) far from the last known link
//! capacity and additively (about one packet per response time) near it;
//! on overuse, drop to 0.85 × the acknowledged bitrate.

use super::trendline::BandwidthUsage;

/// Multiplicative decrease factor.
const BETA: f64 = 0.85;
/// Multiplicative increase per second.
const ALPHA_PER_S: f64 = 1.08;
/// Additive increase floor (bit/s per second).
const MIN_ADDITIVE_BPS_PER_S: f64 = 4_000.0;
/// Link capacity estimate smoothing and variance clamp.
const CAPACITY_ALPHA: f64 = 0.05;
const CAPACITY_VAR_MIN: f64 = 0.4;
const CAPACITY_VAR_MAX: f64 = 2.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Hold,
    Increase,
    Decrease,
}

/// The link capacity seen at past overuses, in kbit/s with a normalized
/// variance (libwebrtc `LinkCapacityEstimator`).
#[derive(Debug, Default, Clone, Copy)]
struct LinkCapacity {
    estimate_kbps: Option<f64>,
    var: f64,
}

impl LinkCapacity {
    fn deviation(&self, est: f64) -> f64 {
        (self.var * est).sqrt()
    }
    fn upper_bps(&self) -> Option<f64> {
        self.estimate_kbps
            .map(|e| (e + 3.0 * self.deviation(e)) * 1000.0)
    }
    fn lower_bps(&self) -> Option<f64> {
        self.estimate_kbps
            .map(|e| (e - 3.0 * self.deviation(e)).max(0.0) * 1000.0)
    }
    fn on_overuse(&mut self, acked_bps: f64) {
        let sample = acked_bps / 1000.0;
        let est = match self.estimate_kbps {
            None => sample,
            Some(e) => (1.0 - CAPACITY_ALPHA) * e + CAPACITY_ALPHA * sample,
        };
        let norm = est.max(1.0);
        let err = est - sample;
        self.var = ((1.0 - CAPACITY_ALPHA) * self.var + CAPACITY_ALPHA * err * err / norm)
            .clamp(CAPACITY_VAR_MIN, CAPACITY_VAR_MAX);
        self.estimate_kbps = Some(est);
    }
}

#[derive(Debug)]
pub(crate) struct Aimd {
    current: f64,
    min: f64,
    max: f64,
    state: State,
    capacity: LinkCapacity,
    last_change_us: Option<i64>,
    last_decrease_us: Option<i64>,
}

impl Aimd {
    pub fn new(start_bps: u64, min_bps: u64, max_bps: u64) -> Self {
        Self {
            current: start_bps as f64,
            min: min_bps as f64,
            max: max_bps as f64,
            state: State::Hold,
            capacity: LinkCapacity::default(),
            last_change_us: None,
            last_decrease_us: None,
        }
    }

    pub fn bitrate_bps(&self) -> u64 {
        self.current as u64
    }

    /// Force the estimate (a probe result).
    pub fn set_estimate(&mut self, bps: u64, now_us: i64) {
        self.current = (bps as f64).clamp(self.min, self.max);
        self.last_change_us = Some(now_us);
    }

    /// Whether another decrease is allowed: once per RTT (10..200 ms), or
    /// at once when the acknowledged rate is below half the estimate.
    fn time_to_reduce_further(&self, now_us: i64, acked: Option<f64>, rtt_us: i64) -> bool {
        let interval = rtt_us.clamp(10_000, 200_000);
        if self.last_decrease_us.is_none_or(|t| now_us - t >= interval) {
            return true;
        }
        acked.is_some_and(|a| a < 0.5 * self.current)
    }

    /// Apply the detector's state. `acked_bps`: the acknowledged bitrate.
    pub fn update(
        &mut self,
        usage: BandwidthUsage,
        acked_bps: Option<u64>,
        rtt_us: i64,
        now_us: i64,
    ) {
        let acked = acked_bps.map(|a| a as f64);
        match usage {
            BandwidthUsage::Overusing => {
                if !self.time_to_reduce_further(now_us, acked, rtt_us) {
                    return;
                }
                self.state = State::Decrease;
            }
            BandwidthUsage::Underusing => self.state = State::Hold,
            BandwidthUsage::Normal => {
                if self.state != State::Increase {
                    self.state = State::Increase;
                    self.last_change_us = Some(now_us);
                }
            }
        }
        let last = *self.last_change_us.get_or_insert(now_us);
        let dt_s = ((now_us - last) as f64 / 1e6).clamp(0.0, 1.0);
        let mut new = self.current;
        match self.state {
            State::Hold => {}
            State::Increase => {
                if let (Some(a), Some(upper)) = (acked, self.capacity.upper_bps())
                    && a > upper
                {
                    self.capacity = LinkCapacity::default();
                }
                let inc = if self.capacity.estimate_kbps.is_some() {
                    self.near_max_increase_bps_per_s(rtt_us) * dt_s
                } else {
                    (self.current * (ALPHA_PER_S.powf(dt_s) - 1.0)).max(1000.0 * dt_s)
                };
                new = self.current + inc;
                self.last_change_us = Some(now_us);
            }
            State::Decrease => {
                let mut dec = BETA * acked.unwrap_or(self.current);
                if dec > self.current
                    && let Some(c) = self.capacity.estimate_kbps
                {
                    dec = BETA * c * 1000.0;
                }
                if dec < self.current {
                    new = dec;
                }
                if let Some(a) = acked {
                    if self.capacity.lower_bps().is_some_and(|l| a < l) {
                        self.capacity = LinkCapacity::default();
                    }
                    self.capacity.on_overuse(a);
                }
                self.state = State::Hold;
                self.last_change_us = Some(now_us);
                self.last_decrease_us = Some(now_us);
            }
        }
        // Never run far ahead of what gets through.
        if let Some(a) = acked
            && new > self.current
        {
            new = new.min((1.5 * a + 10_000.0).max(self.current));
        }
        self.current = new.clamp(self.min, self.max);
    }

    /// About one average packet per response time (RTT + 100 ms), with
    /// packets of at most 1200 bytes at 30 frames per second.
    fn near_max_increase_bps_per_s(&self, rtt_us: i64) -> f64 {
        let bits_per_frame = self.current / 30.0;
        let packets_per_frame = (bits_per_frame / (1200.0 * 8.0)).ceil().max(1.0);
        let avg_packet_bits = bits_per_frame / packets_per_frame;
        let response_s = (rtt_us as f64 / 1e6) + 0.1;
        (avg_packet_bits / response_s).max(MIN_ADDITIVE_BPS_PER_S)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increases_about_eight_percent_per_second() {
        let mut a = Aimd::new(1_000_000, 10_000, 10_000_000);
        for i in 0..=20 {
            a.update(BandwidthUsage::Normal, None, 100_000, i * 50_000);
        }
        let r = a.bitrate_bps();
        assert!((1_070_000..=1_090_000).contains(&r), "{r}");
    }

    #[test]
    fn overuse_drops_to_085_of_acked_then_additive() {
        let mut a = Aimd::new(2_000_000, 10_000, 10_000_000);
        a.update(BandwidthUsage::Overusing, Some(1_000_000), 100_000, 0);
        assert_eq!(a.bitrate_bps(), 850_000);
        // A second overuse within the RTT does nothing...
        a.update(BandwidthUsage::Overusing, Some(900_000), 100_000, 50_000);
        assert_eq!(a.bitrate_bps(), 850_000);
        // ...unless the acked rate collapsed.
        a.update(BandwidthUsage::Overusing, Some(300_000), 100_000, 60_000);
        assert_eq!(a.bitrate_bps(), 255_000);
        // Near the known capacity: additive increase, one average packet
        // (255 kbit/s / 30 fps = 8500 bits) per response time (100 ms RTT
        // + 100 ms): about 42.5 kbit/s per second (multiplicative: 20).
        let before = a.bitrate_bps();
        for i in 1..=20 {
            a.update(
                BandwidthUsage::Normal,
                Some(300_000),
                100_000,
                60_000 + i * 50_000,
            );
        }
        let gained = a.bitrate_bps() - before;
        assert!((35_000..=45_000).contains(&gained), "{gained}");
    }

    #[test]
    fn capped_by_acked_rate() {
        let mut a = Aimd::new(1_000_000, 10_000, 10_000_000);
        for i in 0..200 {
            a.update(BandwidthUsage::Normal, Some(200_000), 100_000, i * 50_000);
        }
        assert_eq!(a.bitrate_bps(), 1_000_000); // no increase, no decrease
    }
}
