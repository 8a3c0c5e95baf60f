//! [`GoogCc`]: the delay-based and loss-based estimators combined, with
//! probing.

use std::time::{Duration, Instant};

use super::acked::AckedBitrate;
use super::aimd::Aimd;
use super::history::{Fate, SendHistory, Sent};
use super::inter_arrival::InterArrival;
use super::loss::LossBased;
use super::probe::{ProbeCluster, ProbeConfig, ProbeController, ProbeStats, probe_result};
use super::trendline::{BandwidthUsage, Trendline};
use super::{BandwidthEstimator, PacketResult, SentPacket};

/// Clusters whose feedback is awaited at once.
const MAX_CLUSTERS: usize = 4;
/// For this long after a probe result, the acknowledged bitrate used by
/// the rate control is at least the probe's result (the windowed
/// measurement still reflects the rate before the probe).
const PROBE_AS_THROUGHPUT_US: i64 = 1_000_000;
/// A cluster's result is taken this long after its last packet was sent,
/// whatever came back.
const CLUSTER_TIMEOUT: Duration = Duration::from_millis(1000);

/// Settings of a [`GoogCc`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoogCcConfig {
    /// Estimate before any feedback.
    pub start_bps: u64,
    /// The estimate never goes below this.
    pub min_bps: u64,
    /// Nor above this.
    pub max_bps: u64,
    /// Sent packets remembered for matching feedback.
    pub history_len: usize,
    /// Window of the acknowledged-bitrate measurement.
    pub acked_window: Duration,
    /// Probing.
    pub probe: ProbeConfig,
}

impl Default for GoogCcConfig {
    fn default() -> Self {
        Self {
            start_bps: 300_000,
            min_bps: 30_000,
            max_bps: 20_000_000,
            history_len: 4096,
            acked_window: Duration::from_millis(500),
            probe: ProbeConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Cluster {
    id: u32,
    min_packets: u32,
    sent: u32,
    accounted: u32,
    last_sent: Instant,
    stats: ProbeStats,
}

/// Google Congestion Control, send side (see the module doc and
/// `docs/bwe.md`). All buffers are allocated in [`GoogCc::new`].
#[derive(Debug)]
pub struct GoogCc {
    cfg: GoogCcConfig,
    base: Option<Instant>,
    history: SendHistory,
    acked: AckedBitrate,
    inter_arrival: InterArrival,
    trendline: Trendline,
    aimd: Aimd,
    loss: LossBased,
    probes: ProbeController,
    clusters: [Option<Cluster>; MAX_CLUSTERS],
    rtt_us: i64,
    /// The last probe result and when it came (µs): a throughput sample
    /// fresher than the acknowledged-bitrate window right after a probe.
    last_probe: Option<(u64, i64)>,
}

impl GoogCc {
    /// A new estimator at `cfg.start_bps`.
    pub fn new(cfg: GoogCcConfig) -> Self {
        let start = cfg.start_bps.clamp(cfg.min_bps, cfg.max_bps);
        Self {
            cfg,
            base: None,
            history: SendHistory::new(cfg.history_len),
            acked: AckedBitrate::new(cfg.history_len, cfg.acked_window.as_micros() as i64),
            inter_arrival: InterArrival::default(),
            trendline: Trendline::default(),
            aimd: Aimd::new(start, cfg.min_bps, cfg.max_bps),
            loss: LossBased::new(start),
            probes: ProbeController::new(cfg.probe, start, cfg.max_bps),
            clusters: [None; MAX_CLUSTERS],
            rtt_us: 200_000,
            last_probe: None,
        }
    }

    fn us(&mut self, now: Instant) -> i64 {
        let base = *self.base.get_or_insert(now);
        now.saturating_duration_since(base).as_micros() as i64
    }

    /// The delay-based part's estimate.
    pub fn delay_based_bps(&self) -> u64 {
        self.aimd.bitrate_bps()
    }

    /// The loss-based part's estimate.
    pub fn loss_based_bps(&self) -> u64 {
        self.loss.bitrate_bps()
    }

    /// The last loss fraction measured.
    pub fn loss_fraction(&self) -> f64 {
        self.loss.loss_fraction()
    }

    /// The delay detector's state.
    pub fn usage(&self) -> BandwidthUsage {
        self.trendline.state()
    }

    /// Smoothed feedback round-trip time (send to feedback arrival).
    pub fn rtt(&self) -> Duration {
        Duration::from_micros(self.rtt_us.max(0) as u64)
    }

    fn finish_cluster(&mut self, i: usize, now: Instant) {
        let Some(c) = self.clusters.get_mut(i).and_then(Option::take) else {
            return;
        };
        let result = probe_result(&c.stats, c.min_packets);
        if let Some(r) = result {
            let now_us = self.us(now);
            self.last_probe = Some((r, now_us));
        }
        if let Some(r) = result
            && self.trendline.state() != BandwidthUsage::Overusing
            && r > self.aimd.bitrate_bps()
        {
            let now_us = self.us(now);
            self.aimd.set_estimate(r, now_us);
            self.loss.set(r.max(self.loss.bitrate_bps()));
        }
        let estimate = self.estimate_bps();
        self.probes.on_probe_result(c.id, result, estimate, now);
    }
}

impl BandwidthEstimator for GoogCc {
    fn on_packet_sent(&mut self, sent: SentPacket, now: Instant) {
        let send_us = self.us(now);
        self.history.insert(Sent {
            seq: sent.seq,
            size: sent.size.min(u32::MAX as usize) as u32,
            send_us,
            probe: sent.probe_cluster,
            fate: Fate::Unreported,
        });
        if let Some(id) = sent.probe_cluster {
            let existing = self
                .clusters
                .iter()
                .position(|c| c.is_some_and(|c| c.id == id));
            let slot = existing.or_else(|| self.clusters.iter().position(Option::is_none));
            if let Some(c) = slot.and_then(|i| self.clusters.get_mut(i)) {
                let cl = c.get_or_insert(Cluster {
                    id,
                    min_packets: self.cfg.probe.min_packets,
                    sent: 0,
                    accounted: 0,
                    last_sent: now,
                    stats: ProbeStats::default(),
                });
                cl.sent += 1;
                cl.last_sent = now;
            }
        }
    }

    fn on_feedback(&mut self, results: &[PacketResult], now: Instant) {
        let now_us = self.us(now);
        let (mut lost, mut expected) = (0u32, 0u32);
        let mut latest_send: Option<i64> = None;
        for r in results {
            let Some(e) = self.history.get_mut(r.seq) else {
                continue;
            };
            let first_report = e.fate == Fate::Unreported;
            let (send_us, size, probe) = (e.send_us, e.size, e.probe);
            match r.arrival_us {
                None => {
                    if first_report {
                        e.fate = Fate::Lost;
                        lost += 1;
                        expected += 1;
                    }
                }
                Some(arrival) => {
                    if e.fate == Fate::Received {
                        continue;
                    }
                    e.fate = Fate::Received;
                    if first_report {
                        expected += 1;
                    }
                    self.acked.on_received(arrival, size);
                    if let Some(d) = self.inter_arrival.add(send_us, arrival) {
                        self.trendline
                            .update(d.send_delta_ms, d.arrival_delta_ms, d.arrival_ms);
                    }
                    latest_send = Some(latest_send.map_or(send_us, |l| l.max(send_us)));
                }
            }
            if let Some(id) = probe
                && let Some(c) = self.clusters.iter_mut().flatten().find(|c| c.id == id)
            {
                if first_report {
                    c.accounted += 1;
                }
                if let Some(arrival) = r.arrival_us {
                    c.stats.add(send_us, arrival, size);
                }
            }
        }
        if let Some(s) = latest_send {
            let sample = now_us - s;
            self.rtt_us = (self.rtt_us * 7 + sample) / 8;
        }
        // Probe clusters fully reported.
        for i in 0..MAX_CLUSTERS {
            let done = self.clusters.get(i).copied().flatten().is_some_and(|c| {
                c.accounted >= c.sent && c.sent >= c.min_packets && now > c.last_sent
            });
            if done {
                self.finish_cluster(i, now);
            }
        }
        let mut acked = self.acked.bitrate_bps();
        if let Some((p, at)) = self.last_probe
            && now_us - at < PROBE_AS_THROUGHPUT_US
        {
            acked = Some(acked.map_or(p, |a| a.max(p)));
        }
        self.aimd
            .update(self.trendline.state(), acked, self.rtt_us, now_us);
        self.loss.on_report(lost, expected, self.rtt_us, now_us);
        self.loss.cap(self.aimd.bitrate_bps());
    }

    fn estimate_bps(&self) -> u64 {
        self.aimd
            .bitrate_bps()
            .min(self.loss.bitrate_bps())
            .clamp(self.cfg.min_bps, self.cfg.max_bps)
    }

    fn handle_timeout(&mut self, now: Instant) {
        for i in 0..MAX_CLUSTERS {
            let expired = self
                .clusters
                .get(i)
                .copied()
                .flatten()
                .is_some_and(|c| now >= c.last_sent + CLUSTER_TIMEOUT);
            if expired {
                self.finish_cluster(i, now);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let cluster = self
            .clusters
            .iter()
            .flatten()
            .map(|c| c.last_sent + CLUSTER_TIMEOUT)
            .min();
        match (cluster, self.probes.poll_timeout(self.estimate_bps())) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn set_wanted_bps(&mut self, wanted_bps: u64, _now: Instant) {
        self.probes.set_wanted(wanted_bps);
    }

    fn poll_probe(&mut self, now: Instant) -> Option<ProbeCluster> {
        let estimate = self.estimate_bps();
        self.probes.poll_probe(estimate, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Garbage feedback (unknown, repeated, reordered sequence numbers,
    /// absurd arrival times) neither panics nor leaves the bounds.
    #[test]
    fn hostile_feedback_keeps_the_estimate_in_bounds() {
        let cfg = GoogCcConfig {
            history_len: 256,
            ..GoogCcConfig::default()
        };
        let mut cc = GoogCc::new(cfg);
        let t0 = Instant::now();
        let mut x = 0x0123_4567_89ab_cdefu64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut results = Vec::new();
        for step in 0..20_000u64 {
            let now = t0 + Duration::from_micros(step * 500 + rnd() % 400);
            let seq = if rnd() % 10 == 0 {
                rnd() % 100_000
            } else {
                step
            };
            let probe = (rnd() % 20 == 0).then(|| (rnd() % 8) as u32);
            cc.on_packet_sent(
                SentPacket {
                    seq,
                    size: (rnd() % 1500) as usize,
                    probe_cluster: probe,
                },
                now,
            );
            if step % 7 == 0 {
                results.clear();
                for _ in 0..rnd() % 60 {
                    let arrival = match rnd() % 5 {
                        0 => None,
                        1 => Some(rnd() as i64),
                        _ => Some((step * 500 + rnd() % 100_000) as i64),
                    };
                    results.push(PacketResult {
                        seq: step.saturating_sub(rnd() % 300),
                        arrival_us: arrival,
                    });
                }
                cc.on_feedback(&results, now);
            }
            if cc.poll_timeout().is_some_and(|t| t <= now) {
                cc.handle_timeout(now);
            }
            let _ = cc.poll_probe(now);
            let e = cc.estimate_bps();
            assert!((cfg.min_bps..=cfg.max_bps).contains(&e), "{e}");
        }
    }

    #[test]
    fn object_safe() {
        let mut b: Box<dyn BandwidthEstimator> = Box::new(GoogCc::new(GoogCcConfig::default()));
        let now = Instant::now();
        b.set_wanted_bps(1_000_000, now);
        assert_eq!(b.estimate_bps(), 300_000);
        assert!(b.poll_probe(now).is_some()); // start-up probe
    }
}
