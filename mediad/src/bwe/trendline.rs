//! The trendline filter and overuse detector (libwebrtc
//! `TrendlineEstimator`): a least-squares slope over the last 20
//! smoothed accumulated delay samples, compared with an adaptive threshold.

/// Window of (arrival time, smoothed accumulated delay) samples.
const WINDOW: usize = 20;
/// Exponential smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// Gain applied to the slope before comparing with the threshold.
const THRESHOLD_GAIN: f64 = 4.0;
/// Cap on the number of deltas multiplying the slope.
const MAX_DELTAS: f64 = 60.0;
/// Threshold adaptation: rise and fall rates (per ms).
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
/// Samples further than this above the threshold do not adapt it.
const MAX_ADAPT_OFFSET_MS: f64 = 15.0;
/// Overuse must last this long (ms) before it is signalled.
const OVERUSE_TIME_MS: f64 = 10.0;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const THRESHOLD_INIT: f64 = 12.5;

/// What the delay-based detector concludes about the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BandwidthUsage {
    /// Queues are stable.
    Normal,
    /// Queues grow: send less.
    Overusing,
    /// Queues drain: hold.
    Underusing,
}

#[derive(Debug)]
pub(crate) struct Trendline {
    samples: [(f64, f64); WINDOW],
    count: usize,
    next: usize,
    first_arrival_ms: Option<f64>,
    accumulated_ms: f64,
    smoothed_ms: f64,
    num_deltas: f64,
    trend: f64,
    prev_trend: f64,
    threshold: f64,
    last_threshold_update_ms: Option<f64>,
    time_over_using_ms: f64,
    overuse_counter: u32,
    state: BandwidthUsage,
}

impl Default for Trendline {
    fn default() -> Self {
        Self {
            samples: [(0.0, 0.0); WINDOW],
            count: 0,
            next: 0,
            first_arrival_ms: None,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            num_deltas: 0.0,
            trend: 0.0,
            prev_trend: 0.0,
            threshold: THRESHOLD_INIT,
            last_threshold_update_ms: None,
            time_over_using_ms: -1.0,
            overuse_counter: 0,
            state: BandwidthUsage::Normal,
        }
    }
}

impl Trendline {
    pub fn state(&self) -> BandwidthUsage {
        self.state
    }

    /// One inter-group delta: returns the detector's state after it.
    pub fn update(
        &mut self,
        send_delta_ms: f64,
        arrival_delta_ms: f64,
        arrival_ms: f64,
    ) -> BandwidthUsage {
        let delta = arrival_delta_ms - send_delta_ms;
        self.num_deltas = (self.num_deltas + 1.0).min(1000.0);
        let first = *self.first_arrival_ms.get_or_insert(arrival_ms);
        self.accumulated_ms += delta;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        if let Some(s) = self.samples.get_mut(self.next) {
            *s = (arrival_ms - first, self.smoothed_ms);
        }
        self.next = (self.next + 1) % WINDOW;
        self.count = (self.count + 1).min(WINDOW);
        if self.count == WINDOW
            && let Some(slope) = linear_fit_slope(&self.samples)
            && slope.is_finite()
        {
            self.trend = slope;
        }
        self.detect(send_delta_ms, arrival_ms);
        self.state
    }

    fn detect(&mut self, send_delta_ms: f64, now_ms: f64) {
        let modified = self.num_deltas.min(MAX_DELTAS) * self.trend * THRESHOLD_GAIN;
        if modified > self.threshold {
            if self.time_over_using_ms < 0.0 {
                self.time_over_using_ms = send_delta_ms / 2.0;
            } else {
                self.time_over_using_ms += send_delta_ms;
            }
            self.overuse_counter += 1;
            if self.time_over_using_ms > OVERUSE_TIME_MS
                && self.overuse_counter > 1
                && self.trend >= self.prev_trend
            {
                self.time_over_using_ms = 0.0;
                self.overuse_counter = 0;
                self.state = BandwidthUsage::Overusing;
            }
        } else if modified < -self.threshold {
            self.time_over_using_ms = -1.0;
            self.overuse_counter = 0;
            self.state = BandwidthUsage::Underusing;
        } else {
            self.time_over_using_ms = -1.0;
            self.overuse_counter = 0;
            self.state = BandwidthUsage::Normal;
        }
        self.prev_trend = self.trend;
        self.adapt_threshold(modified, now_ms);
    }

    fn adapt_threshold(&mut self, modified: f64, now_ms: f64) {
        if !modified.is_finite() || !now_ms.is_finite() {
            return;
        }
        let last = *self.last_threshold_update_ms.get_or_insert(now_ms);
        if modified.abs() > self.threshold + MAX_ADAPT_OFFSET_MS {
            self.last_threshold_update_ms = Some(now_ms);
            return;
        }
        let k = if modified.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let dt = (now_ms - last).clamp(0.0, 100.0);
        self.threshold += k * (modified.abs() - self.threshold) * dt;
        self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
        self.last_threshold_update_ms = Some(now_ms);
    }
}

/// Least-squares slope of y over x; `None` if x does not vary.
fn linear_fit_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        let pts: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 3.0 * i as f64 + 1.0)).collect();
        assert!((linear_fit_slope(&pts).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(linear_fit_slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn growing_queue_is_overuse_and_flat_is_normal() {
        let mut t = Trendline::default();
        // Groups every 10 ms; arrival spacing 10 ms: no queueing.
        for i in 0..100 {
            let s = t.update(10.0, 10.0, 100.0 + 10.0 * i as f64);
            assert_eq!(s, BandwidthUsage::Normal);
        }
        // Now each group arrives 2 ms later than sent spacing.
        let mut over = None;
        for i in 0..100 {
            if t.update(10.0, 12.0, 1100.0 + 12.0 * i as f64) == BandwidthUsage::Overusing {
                over = Some(i);
                break;
            }
        }
        assert!(over.is_some_and(|i| i < 30), "{over:?}");
        // Draining queue: underuse.
        let mut under = false;
        for i in 0..100 {
            under |= t.update(10.0, 6.0, 2000.0 + 6.0 * i as f64) == BandwidthUsage::Underusing;
        }
        assert!(under);
    }
}
