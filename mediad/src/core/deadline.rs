//! The worker's next deadline, with the reason it was set: the driver only
//! needs the instant, but a test (or a trace) can ask why the worker wants
//! to wake up.

use std::time::Instant;

/// Why the worker wants [`super::Worker::handle_timeout`] to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Receiver reports to publishers ([`super::rtcp`]).
    ReceiverReports,
    /// The rooms' dominant speakers are reconsidered.
    DominantSpeaker,
    /// A layer allocation round ([`super::allocation`]).
    Allocation,
    /// A DTLS flight must be retransmitted.
    DtlsRetransmit,
    /// The next packet of a bandwidth probe ([`super::probe`]).
    Probe,
    /// A packet the pacer held is due ([`super::pacer`]).
    Pacer,
    /// Transport-wide feedback to a publisher is due.
    PublisherFeedback,
    /// A bandwidth estimator's own timer.
    BandwidthEstimator,
    /// A receiver still waits for a key frame: ask again
    /// ([`super::keyframe`]).
    KeyframeRetry,
    /// A key frame request held back by the rate limit may go now.
    KeyframeDeferred,
    /// A transport's consent expires unless a check renews it.
    ConsentExpiry,
    /// A subscribe offer has waited too long for its answer
    /// ([`super::negotiation::OFFER_TIMEOUT`]).
    OfferUnanswered,
}

/// An instant and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// When.
    pub at: Instant,
    /// Why.
    pub reason: Reason,
}

/// The earliest of several candidate deadlines (the first one offered
/// wins a tie).
#[derive(Debug, Clone, Copy, Default)]
pub struct Earliest(Option<Deadline>);

impl Earliest {
    /// Consider `at` (if any) for `reason`.
    pub fn offer(&mut self, at: Option<Instant>, reason: Reason) {
        let Some(at) = at else {
            return;
        };
        if self.0.is_none_or(|d| at < d.at) {
            self.0 = Some(Deadline { at, reason });
        }
    }

    /// The earliest offered.
    pub fn get(self) -> Option<Deadline> {
        self.0
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_earliest_wins_and_keeps_its_reason() {
        let t0 = Instant::now();
        let mut e = Earliest::default();
        e.offer(Some(t0 + Duration::from_millis(100)), Reason::Allocation);
        e.offer(None, Reason::Probe);
        e.offer(Some(t0 + Duration::from_millis(20)), Reason::KeyframeRetry);
        e.offer(Some(t0 + Duration::from_millis(20)), Reason::Probe);
        assert_eq!(
            e.get(),
            Some(Deadline {
                at: t0 + Duration::from_millis(20),
                reason: Reason::KeyframeRetry
            })
        );
    }
}
