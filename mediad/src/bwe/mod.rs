//! Send-side bandwidth estimation, sans-IO.
//!
//! The forwarding core tells an estimator what it sent
//! ([`BandwidthEstimator::on_packet_sent`], with the transport-wide
//! sequence number unwrapped to 64 bits) and what the receiver's
//! transport-cc feedback said ([`BandwidthEstimator::on_feedback`]); the
//! estimator answers with a target bitrate ([`BandwidthEstimator::estimate_bps`])
//! and, when it wants to test a higher rate, a probe cluster for the pacer
//! ([`BandwidthEstimator::poll_probe`]). Time comes in as `now`; nothing
//! here reads the clock, allocates per packet or does IO.
//!
//! [`GoogCc`] follows Google Congestion Control as described in
//! draft-ietf-rmcat-gcc-02 and as implemented in libwebrtc's
//! `modules/congestion_controller/goog_cc` (2024): a delay-based part
//! (inter-group delay variation, `TrendlineEstimator`, adaptive-threshold
//! overuse detector, `AimdRateControl`) and the classic loss-based part of
//! `SendSideBandwidthEstimation`. `docs/bwe.md` lists the equations and
//! constants.

mod acked;
mod aimd;
mod goog_cc;
mod history;
mod inter_arrival;
mod loss;
mod media_meter;
pub mod probe;
mod queued_rates;
mod trendline;

#[cfg(test)]
mod sim;

use std::time::Instant;

pub use goog_cc::{GoogCc, GoogCcConfig};
pub use probe::{ProbeCluster, ProbeConfig, ProbeController};
pub use trendline::BandwidthUsage;

/// A packet handed to the network, as the estimator needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// Transport-wide sequence number, unwrapped.
    pub seq: u64,
    /// Size on the wire in bytes (RTP header and payload; the estimator
    /// does not add IP/UDP overhead).
    pub size: usize,
    /// The probe cluster this packet belongs to, if any.
    pub probe_cluster: Option<u32>,
}

/// What transport-cc feedback says about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketResult {
    /// Transport-wide sequence number, unwrapped.
    pub seq: u64,
    /// Arrival time in the receiver's time base (µs; only differences
    /// matter), or `None` if reported lost.
    pub arrival_us: Option<i64>,
}

/// What a finished probe cluster showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// The cluster.
    pub cluster: u32,
    /// The rate it measured, if it was valid (enough feedback, no queue
    /// built).
    pub result_bps: Option<u64>,
    /// The one-way delay grew across the cluster: a queue built (a
    /// token bucket's burst ran out).
    pub queue_built: bool,
    /// It raised the estimate.
    pub raised: bool,
    /// The estimate after it.
    pub estimate_bps: u64,
}

/// A send-side bandwidth estimator. Object safe: the core holds a
/// `Box<dyn BandwidthEstimator>` per subscribe transport.
pub trait BandwidthEstimator {
    /// A packet left (the pacer handed it to the socket).
    fn on_packet_sent(&mut self, sent: SentPacket, now: Instant);
    /// Transport-cc feedback arrived; `results` in feedback order.
    fn on_feedback(&mut self, results: &[PacketResult], now: Instant);
    /// The current target bitrate in bit/s.
    fn estimate_bps(&self) -> u64;
    /// Time passed (call at [`BandwidthEstimator::poll_timeout`]).
    fn handle_timeout(&mut self, now: Instant);
    /// When to call [`BandwidthEstimator::handle_timeout`] next.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// The bitrate the sender would like to use (the allocator's next
    /// step up): an estimator may probe towards it.
    fn set_wanted_bps(&mut self, _wanted_bps: u64, _now: Instant) {}
    /// A probe cluster the pacer should send now, if any. Call it after
    /// every [`BandwidthEstimator::on_feedback`] and
    /// [`BandwidthEstimator::handle_timeout`], and when the pacer is idle.
    fn poll_probe(&mut self, _now: Instant) -> Option<ProbeCluster> {
        None
    }
    /// The ceiling held after a congestion episode, if one holds.
    fn ceiling_bps(&self) -> Option<u64> {
        None
    }
    /// The sender is switching layers: the new layer's key frame is on its
    /// way, or has just gone. No probe cluster starts before `until` (which
    /// replaces an earlier hold: the key frame's ends the switch's) — sent
    /// with the key frame a probe would fill the queue both need, fail, and
    /// bring the estimate (and the layer) back down.
    fn hold_probes(&mut self, _until: Instant) {}
    /// The feedback of cluster `cluster`, still being sent, already shows
    /// a queue building: stop sending it (it has failed; going on would
    /// only overflow the queue).
    fn probe_saturated(&self, _cluster: u32) -> bool {
        false
    }
    /// A finished probe cluster's outcome (for metrics and logs), oldest
    /// first. Poll after [`BandwidthEstimator::on_feedback`] and
    /// [`BandwidthEstimator::handle_timeout`].
    fn poll_probe_outcome(&mut self) -> Option<ProbeOutcome> {
        None
    }
}
