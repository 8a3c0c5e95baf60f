//! What one worker allows a participant and holds for all of them: the
//! size and rate of SDP it parses, and a memory budget for its big
//! per-track and per-leg buffers.
//!
//! SDP is parsed on the media thread, so a participant's offers are
//! capped in size ([`WorkerLimits::max_offer_bytes`]) and rate (a token
//! bucket per participant, [`OfferRate`]). Subscribe answers answer
//! mediad's own offers, one at a time, so their rate follows mediad's
//! (which backs off while answers keep being refused:
//! [`super::negotiation::REFUSED_BACKOFF`]); their size is capped relative
//! to the offer they answer.
//!
//! The [`MemoryBudget`] accounts for what grows with what participants
//! publish and receive — a retransmission cache per incoming video layer
//! (~94 KiB at the layer's first packet, grown to its rate up to ~750 KiB:
//! [`super::rtx_cache`]), a sent log per video
//! leg (8 KiB, allocated at the leg's first packet) — through [`Charge`]s
//! the buffers hold and give back when they are dropped, so the account
//! cannot drift. A publish whose buffers
//! would not fit is refused (priced at full caches); a cache that would not
//! fit at its first packet is not created, one whose growth would not fit
//! stays as it is (the layer is forwarded, older NACKs go unanswered), and
//! both are counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// A worker's limits (part of [`super::WorkerConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorkerLimits {
    /// Bytes the worker's big buffers (retransmission caches, sent logs)
    /// may hold in all.
    pub memory_budget_bytes: u64,
    /// Largest publish offer parsed. A browser's offer with a microphone,
    /// a camera and a screen share in three simulcast layers is 6–10 KB.
    pub max_offer_bytes: usize,
    /// Publish offers a participant may make: a sustained rate and a burst.
    pub offer_rate: OfferRate,
    /// The worker's ICE-TCP listener: connections in all and per IP, the
    /// deadline of a connection's first valid check, its idle timeout,
    /// its send buffer (enforced by the io driver, `salon_io::tcp`).
    pub tcp: salon_io::TcpLimits,
    /// Pace what goes to each receiver ([`super::pacer`]). Off by default:
    /// measured in virtual time it does not yet make an 800 kbit/s link
    /// with a 2 kB bucket carry 360p at full rate, and it thins a screen
    /// share behind an 800 kbit/s link to its lowest temporal layer
    /// (docs/layers.md, "The pacer").
    pub pacing: bool,
}

impl WorkerLimits {
    /// 512 MiB of buffers per worker: ~690 incoming video layers with
    /// their caches — 20 rooms of 10 people each sending a three-layer
    /// camera, with their receivers' sent logs.
    pub const DEFAULT_MEMORY_BUDGET: u64 = 512 << 20;
    /// 64 KiB: six to ten times a real browser's offer.
    pub const DEFAULT_MAX_OFFER: usize = 64 << 10;
    /// The bytes of a subscribe answer allowed per m-line of the offer it
    /// answers, on top of [`WorkerLimits::max_offer_bytes`] (a browser's
    /// answer is ~600 bytes per line).
    pub const ANSWER_BYTES_PER_LINE: usize = 2 << 10;

    /// The largest subscribe answer to an offer of `lines` m-lines.
    pub fn max_answer_bytes(&self, lines: usize) -> usize {
        self.max_offer_bytes
            .saturating_add(lines.saturating_mul(Self::ANSWER_BYTES_PER_LINE))
    }
}

impl Default for WorkerLimits {
    fn default() -> Self {
        Self {
            memory_budget_bytes: Self::DEFAULT_MEMORY_BUDGET,
            max_offer_bytes: Self::DEFAULT_MAX_OFFER,
            offer_rate: OfferRate::default(),
            tcp: salon_io::TcpLimits::default(),
            pacing: false,
        }
    }
}

/// How many publish offers a participant may make: `per_second` on
/// average, `burst` at once (a browser makes one per join, per camera or
/// screen share toggled, per ICE restart).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OfferRate {
    /// Sustained rate.
    pub per_second: f64,
    /// Offers allowed at once.
    pub burst: u32,
}

impl Default for OfferRate {
    fn default() -> Self {
        Self {
            per_second: 2.0,
            burst: 5,
        }
    }
}

/// Sequence numbers one receiver's NACKs may make mediad look up: a
/// receiver at 2.5 Mbit/s (~250 packets/s) losing a fifth, each number
/// asked three times, asks ~150 a second; one back from a 5 s outage asks
/// ~1,000 at once. Past it the rest of the NACK is not read (a ~1.5 kB
/// NACK can name ~6,000 numbers: a flood of them cost a worker most of a
/// core in lookups, though the retransmission budget bounded what went
/// out).
pub const NACK_ITEMS: OfferRate = OfferRate {
    per_second: 2_000.0,
    burst: 4_000,
};

/// A token bucket of [`OfferRate`], in the worker's (virtual) time (also
/// [`NACK_ITEMS`]).
#[derive(Debug, Clone, Copy)]
pub struct OfferBucket {
    tokens: f64,
    last: Option<Instant>,
}

impl Default for OfferBucket {
    fn default() -> Self {
        Self {
            tokens: f64::INFINITY,
            last: None,
        }
    }
}

impl OfferBucket {
    /// Take one offer's token at `now`; false when the participant is
    /// over its rate.
    pub fn take(&mut self, rate: OfferRate, now: Instant) -> bool {
        let burst = f64::from(rate.burst.max(1));
        let refill = self.last.map_or(burst, |at| {
            rate.per_second * now.saturating_duration_since(at).as_secs_f64()
        });
        self.tokens = (self.tokens + refill).min(burst);
        self.last = Some(now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// When the next token is there (for an error's detail and tests).
    pub fn next_in(&self, rate: OfferRate) -> Duration {
        if self.tokens >= 1.0 || rate.per_second <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / rate.per_second)
    }
}

/// The worker's account of its big buffers, against its budget. Cloned
/// into nothing: the worker owns it and hands out [`Charge`]s.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    metrics: Arc<Metrics>,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, its use kept in `metrics` (the gauges
    /// `memory_used_bytes` and `memory_budget_bytes`).
    pub fn new(limit: u64, metrics: Arc<Metrics>) -> Self {
        metrics.memory_budget_bytes.set(limit);
        Self { limit, metrics }
    }

    /// The budget.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.metrics.memory_used_bytes.get()
    }

    /// Whether `bytes` more would fit.
    pub fn fits(&self, bytes: u64) -> bool {
        self.used().saturating_add(bytes) <= self.limit
    }

    /// `bytes` charged if they fit.
    pub fn try_charge(&self, bytes: u64) -> Option<Charge> {
        self.fits(bytes).then(|| self.charge(bytes))
    }

    /// `bytes` charged whether they fit or not (sent logs: counted in a
    /// publish's admission, never refused to a receiver's leg).
    pub fn charge(&self, bytes: u64) -> Charge {
        self.metrics.memory_used_bytes.add(bytes);
        Charge {
            bytes,
            metrics: self.metrics.clone(),
        }
    }
}

/// Bytes a buffer holds of the worker's [`MemoryBudget`], given back when
/// it is dropped.
pub struct Charge {
    bytes: u64,
    metrics: Arc<Metrics>,
}

impl Charge {
    /// A charge against nothing (tests and buffers outside a worker).
    pub fn untracked() -> Self {
        Self {
            bytes: 0,
            metrics: Arc::new(Metrics::default()),
        }
    }

    /// Its bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// `bytes` more on this charge, if they fit in `memory` (the budget it
    /// was taken from).
    pub fn try_add(&mut self, memory: &MemoryBudget, bytes: u64) -> bool {
        if !memory.fits(bytes) {
            return false;
        }
        self.metrics.memory_used_bytes.add(bytes);
        self.bytes += bytes;
        true
    }
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Charge")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.metrics.memory_used_bytes.sub(self.bytes);
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn offers_pass_at_the_rate_and_the_burst() {
        let rate = OfferRate {
            per_second: 2.0,
            burst: 5,
        };
        let t0 = Instant::now();
        let mut b = OfferBucket::default();
        for i in 0..5 {
            assert!(b.take(rate, t0), "offer {i} of the burst");
        }
        assert!(!b.take(rate, t0), "the sixth at once");
        assert!(b.next_in(rate) > Duration::ZERO);
        assert!(!b.take(rate, t0 + Duration::from_millis(400)));
        assert!(b.take(rate, t0 + Duration::from_millis(900)), "refilled");
    }

    #[test]
    fn charges_are_given_back_when_dropped() {
        let m = Arc::new(Metrics::default());
        let budget = MemoryBudget::new(1000, m.clone());
        let a = budget.try_charge(600).expect("fits");
        assert_eq!(budget.used(), 600);
        assert!(budget.try_charge(500).is_none(), "over the budget");
        let b = budget.charge(500);
        assert_eq!(budget.used(), 1100);
        drop(a);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert_eq!(m.memory_budget_bytes.get(), 1000);
    }
}
