//! How much a receiver may get retransmitted: a token bucket filled at a
//! share of its bandwidth estimate, and the order in which resends are
//! refused when it runs short (`docs/layers.md`, "Retransmissions inside
//! bounds").

use std::time::{Duration, Instant};

/// Share of a receiver's bandwidth estimate retransmissions may use: past
/// it, NACKs go unanswered rather than push the link further into loss.
pub const RTX_SHARE: f64 = 0.2;

/// What a retransmitted packet is to the receiver's decoder, most needed
/// first: the budget refuses the upper temporal layers' resends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A key frame's packet: it ends a freeze or a switch.
    Key,
    /// A frame the next ones refer to (VP8 temporal layer 0, or a stream
    /// without temporal layers, or audio).
    Base,
    /// A frame of an upper temporal layer: lost, only that frame is
    /// (the decoder skips it; nothing refers to it but higher layers
    /// until the next base frame).
    Upper,
}

/// Bytes of retransmission a receiver may get: a token bucket filled at
/// [`RTX_SHARE`] of its estimate, holding a round trip's worth.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RetransmitBudget {
    tokens: f64,
    last: Option<Instant>,
}

impl RetransmitBudget {
    /// Whether `bytes` of retransmission go now (spent if so). A key
    /// frame's packet always goes, charged: it is what ends the
    /// receiver's freeze, so the delta frames' resends are refused first
    /// (the debt it leaves, at most two bursts, is repaid before they
    /// go again). An upper temporal layer's packet goes only while half
    /// the burst is left after it: the rest is kept for the base layer,
    /// whose loss stops every frame after it until a key frame (behind an
    /// 800 kbit/s / 10 kB bucket a Chromium receiver froze 3.1 s, until
    /// its own key frame request, after 60 resends were refused in no
    /// order: docs/layers.md, fourth round in the browser, run 4).
    pub(super) fn spend(
        &mut self,
        bytes: usize,
        what: Resend,
        now: Instant,
        estimate_bps: u64,
        rtt: Duration,
    ) -> bool {
        let rate = estimate_bps as f64 * RTX_SHARE / 8.0;
        let burst = (rate * rtt.as_secs_f64().max(0.05)).max(3000.0);
        let refill = self.last.map_or(burst, |at| {
            rate * now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + refill).min(burst);
        self.last = Some(now);
        let cost = bytes as f64;
        let keep = match what {
            Resend::Key => {
                self.tokens = (self.tokens - cost).max(-2.0 * burst);
                return true;
            }
            Resend::Base => 0.0,
            Resend::Upper => burst / 2.0,
        };
        if self.tokens - cost < keep {
            return false;
        }
        self.tokens -= cost;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_get_a_fifth_of_the_estimate_with_a_round_trip_of_burst() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut b = RetransmitBudget::default();
        // 1 Mbit/s: a fifth is 25 kB/s; a round trip's burst 2.5 kB, 3 kB
        // at least.
        for _ in 0..3 {
            assert!(b.spend(1000, Resend::Base, t0, 1_000_000, rtt));
        }
        assert!(
            !b.spend(1000, Resend::Base, t0, 1_000_000, rtt),
            "the burst is spent"
        );
        let t1 = t0 + Duration::from_millis(40);
        assert!(
            b.spend(1000, Resend::Base, t1, 1_000_000, rtt),
            "1 kB back in 40 ms"
        );
        assert!(!b.spend(1000, Resend::Base, t1, 1_000_000, rtt));
        // A long pause refills to the burst, no more.
        let t2 = t1 + Duration::from_secs(10);
        let mut n = 0;
        while b.spend(1000, Resend::Base, t2, 1_000_000, rtt) {
            n += 1;
        }
        assert_eq!(n, 3);
    }

    /// A key frame's packet (the frame a receiver switching layers waits
    /// for) is resent even when the budget is spent, and its cost is
    /// taken from the delta frames' resends that follow.
    #[test]
    fn a_key_frame_is_resent_over_the_budget_and_delta_frames_wait() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut b = RetransmitBudget::default();
        for _ in 0..3 {
            assert!(b.spend(1000, Resend::Base, t0, 1_000_000, rtt));
        }
        assert!(
            !b.spend(1000, Resend::Base, t0, 1_000_000, rtt),
            "the burst is spent"
        );
        assert!(
            b.spend(1000, Resend::Key, t0, 1_000_000, rtt),
            "a key frame's packet goes"
        );
        assert!(b.spend(1000, Resend::Key, t0, 1_000_000, rtt));
        // 40 ms refill 1 kB: a delta frame's resend still waits (2 kB owed).
        let t1 = t0 + Duration::from_millis(40);
        assert!(!b.spend(1000, Resend::Base, t1, 1_000_000, rtt));
        // The debt is bounded (two bursts): repaid within 0.4 s.
        let mut t = t1;
        for _ in 0..100 {
            assert!(b.spend(1000, Resend::Key, t, 1_000_000, rtt));
        }
        t += Duration::from_millis(400);
        assert!(b.spend(1000, Resend::Base, t, 1_000_000, rtt));
    }

    /// The base temporal layer's resends are kept half the burst: an upper
    /// layer's go only while that half is left, the base layer's down to
    /// the last byte.
    #[test]
    fn the_base_temporal_layer_is_resent_before_the_upper_ones() {
        let t0 = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut b = RetransmitBudget::default();
        // A 3 kB burst at 1 Mbit/s: 1 kB of upper layer leaves 2 kB
        // (≥ 1.5 kB kept), a second would leave 1 kB: refused.
        assert!(b.spend(1000, Resend::Upper, t0, 1_000_000, rtt));
        assert!(
            !b.spend(1000, Resend::Upper, t0, 1_000_000, rtt),
            "half the burst is kept for the base layer"
        );
        assert!(b.spend(1000, Resend::Base, t0, 1_000_000, rtt));
        assert!(b.spend(1000, Resend::Base, t0, 1_000_000, rtt));
        assert!(!b.spend(1000, Resend::Base, t0, 1_000_000, rtt), "spent");
        // Refilled, the upper layers get theirs again.
        let t1 = t0 + Duration::from_secs(1);
        assert!(b.spend(1000, Resend::Upper, t1, 1_000_000, rtt));
    }
}
