//! Probing: when to send a burst above the estimate, and what its
//! feedback says (libwebrtc `ProbeController` and `ProbeBitrateEstimator`,
//! reduced to what an SFU needs).
//!
//! The controller probes at start (3× and 6× the start bitrate), keeps
//! doubling while probes succeed (result ≥ 80 % of the target and no
//! queue built, i.e. the link was not saturated; libwebrtc continues from
//! 70 %, which sends one more probe past a saturated link and provokes an
//! overuse) and the
//! sender wants more, and — before an up-switch, when the sender wants
//! more than the estimate — probes towards the wanted bitrate, backing off
//! (1 s, doubling to 2 s) while probes fail and congestion recurs; the
//! back-off ends once the link has been free of congestion for a while
//! ([`ProbeController::reset_backoff`]): a link that recovers is found
//! within about 1 s. After a cluster built a queue, the next probes go at
//! most [`PAST_QUEUED_RATE`] times the rate it measured behind the queue,
//! until one passes above it.

use std::time::{Duration, Instant};

/// How probes are shaped and paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    /// How long a cluster lasts at its target rate, at least.
    pub duration: Duration,
    /// Fewest bytes in a cluster: more than a token bucket's burst (`tbf
    /// … burst 10k` and the like), so the queue behind it shows as delay
    /// growth before the cluster ends ([`queue_built`]). A cluster whose
    /// feedback shows the queue already is cut short.
    pub min_bytes: usize,
    /// Fewest packets in a cluster.
    pub min_packets: u32,
    /// Start-up probes, as multiples of the start bitrate.
    pub initial_multipliers: [f64; 2],
    /// A probe succeeded (the link was not saturated) if its result
    /// reaches this fraction of its target.
    pub success_ratio: f64,
    /// Wait after a failed probe, doubling up to `max_interval`.
    pub min_interval: Duration,
    /// Longest wait between probes while the sender wants more.
    pub max_interval: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            duration: Duration::from_millis(30),
            min_bytes: 32_000,
            min_packets: 5,
            initial_multipliers: [3.0, 6.0],
            success_ratio: 0.8,
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(2),
        }
    }
}

/// A probe the pacer must send: at `target_bps`, at least `min_packets`
/// packets and `min_bytes` bytes, each tagged with `id`
/// ([`super::SentPacket::probe_cluster`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeCluster {
    /// Cluster id.
    pub id: u32,
    /// The total rate it tests (media and probe together).
    pub target_bps: u64,
    /// The rate to send the probe's own packets at: the target less what
    /// media already sends (all of it at start-up).
    pub pace_bps: u64,
    /// Fewest packets.
    pub min_packets: u32,
    /// Fewest bytes (target × duration).
    pub min_bytes: usize,
}

/// Decides when to probe. Pure logic; owns no timer of its own (see
/// [`ProbeController::poll_timeout`]).
#[derive(Debug)]
pub struct ProbeController {
    cfg: ProbeConfig,
    pending: [Option<u64>; 2],
    in_flight: [Option<(u32, u64)>; 2],
    next_id: u32,
    wanted_bps: u64,
    max_bps: u64,
    next_probe_at: Option<Instant>,
    interval: Duration,
    best_success: Option<u64>,
    /// When the last probe failed.
    last_failed: Option<Instant>,
    /// When the last probe succeeded (its result at least `success_ratio`
    /// of its target, and no queue built).
    last_succeeded: Option<Instant>,
    /// The rate the last cluster that built a queue measured behind it:
    /// the link's rate, until a probe passes above it without a queue.
    /// Probes go at most [`PAST_QUEUED_RATE`] above it meanwhile.
    queued_at_bps: Option<u64>,
}

/// How far above the rate a queued cluster measured the next probes go
/// (while a probe towards the wanted rate would go further): enough to
/// find a lifted limit (a success climbs on at once), little enough that
/// a limit still there fills its queue slowly. Probes at twice a 800
/// kbit/s link's rate every 2 s, each cut short only after 8–18 kB,
/// overflowed a 2 kB bucket's queue: 5 % of the media lost, 360p at 15
/// fps.
pub const PAST_QUEUED_RATE: f64 = 1.3;

/// After a probe succeeded, a rise of what the sender wants (the allocator
/// stepped up, the next step is dearer) is probed for at once within this
/// long, not after the interval (libwebrtc probes when the max allocated
/// bitrate rises): 720p came 1 s later than it could after a lifted limit.
const WANTED_RISE_AFTER_SUCCESS: Duration = Duration::from_secs(3);

impl ProbeController {
    /// A controller that will probe at start from `start_bps`, never above
    /// `max_bps`. Until told otherwise the sender wants `max_bps`.
    pub fn new(cfg: ProbeConfig, start_bps: u64, max_bps: u64) -> Self {
        let [a, b] = cfg.initial_multipliers;
        let target = |m: f64| ((start_bps as f64 * m) as u64).min(max_bps);
        Self {
            cfg,
            pending: [Some(target(a)), Some(target(b))],
            in_flight: [None; 2],
            next_id: 1,
            wanted_bps: max_bps,
            max_bps,
            next_probe_at: None,
            interval: cfg.min_interval,
            best_success: None,
            last_failed: None,
            last_succeeded: None,
            queued_at_bps: None,
        }
    }

    /// The sender would like `wanted_bps` (the allocator's next step up).
    pub fn set_wanted(&mut self, wanted_bps: u64, now: Instant) {
        let wanted = wanted_bps.min(self.max_bps);
        let fresh_success = self.last_succeeded.is_some_and(|s| {
            now.saturating_duration_since(s) < WANTED_RISE_AFTER_SUCCESS
                && self.last_failed.is_none_or(|f| s > f)
        });
        // A real step (a tenth more), not a meter's wobble.
        let rose = wanted.saturating_mul(10) > self.wanted_bps.saturating_mul(11);
        if rose && fresh_success {
            self.next_probe_at = Some(self.next_probe_at.map_or(now, |t| t.min(now)));
        }
        self.wanted_bps = wanted;
    }

    /// The target of the next probe towards `wanted` from `estimate`; at
    /// most [`PAST_QUEUED_RATE`] times the rate a queued cluster last
    /// measured (or 1.2 × the estimate if more).
    fn target(&self, estimate: u64) -> u64 {
        let e = estimate as f64;
        let mut t = (3.0 * e).min((self.wanted_bps as f64).max(1.2 * e));
        if let Some(q) = self.queued_at_bps {
            t = t.min((PAST_QUEUED_RATE * q as f64).max(1.2 * e));
        }
        (t as u64).min(self.max_bps)
    }

    fn wants_more(&self, estimate: u64) -> bool {
        self.wanted_bps as f64 > 1.1 * estimate as f64
    }

    /// The next cluster to send, if one is due.
    pub fn poll_probe(&mut self, estimate_bps: u64, now: Instant) -> Option<ProbeCluster> {
        let free = self.in_flight.iter().position(Option::is_none)?;
        let target = if let Some(t) = self.pending.iter_mut().find_map(Option::take) {
            t
        } else if self.in_flight.iter().all(Option::is_none)
            && self.wants_more(estimate_bps)
            && self.next_probe_at.is_some_and(|t| now >= t)
        {
            self.next_probe_at = None;
            self.target(estimate_bps)
        } else {
            return None;
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        if let Some(slot) = self.in_flight.get_mut(free) {
            *slot = Some((id, target));
        }
        let min_bytes = ((target as f64 * self.cfg.duration.as_secs_f64() / 8.0) as usize)
            .max(self.cfg.min_bytes);
        Some(ProbeCluster {
            id,
            target_bps: target,
            pace_bps: target,
            min_packets: self.cfg.min_packets,
            min_bytes,
        })
    }

    /// The link has been free of congestion for a while: the next probe
    /// comes at most `min_interval` after the last one failed, and the
    /// back-off starts over (a limit lifted is found in about 1 s, not
    /// after a back-off grown while the limit held).
    pub fn reset_backoff(&mut self) {
        if self.interval <= self.cfg.min_interval {
            return;
        }
        self.interval = self.cfg.min_interval;
        if let (Some(at), Some(failed)) = (self.next_probe_at.as_mut(), self.last_failed) {
            *at = (*at).min(failed + self.cfg.min_interval);
        }
    }

    /// The result of cluster `id` (`None`: too little feedback to tell).
    /// `queued`: its feedback showed a queue building; the link was
    /// saturated whatever the result, which is then the rate behind the
    /// queue (the probe failed). `estimate_bps` is the estimate after the
    /// result was applied.
    pub fn on_probe_result(
        &mut self,
        id: u32,
        result_bps: Option<u64>,
        queued: bool,
        estimate_bps: u64,
        now: Instant,
    ) {
        let Some(slot) = self
            .in_flight
            .iter_mut()
            .find(|s| s.is_some_and(|(i, _)| i == id))
        else {
            return;
        };
        let target = slot.map_or(0, |(_, t)| t);
        *slot = None;
        if queued {
            if let Some(r) = result_bps {
                self.queued_at_bps = Some(r);
            }
        } else if let Some(r) = result_bps
            && r as f64 >= self.cfg.success_ratio * target as f64
        {
            self.best_success = Some(self.best_success.map_or(r, |b| b.max(r)));
            // Past the rate a queue once showed: the limit is gone.
            if self.queued_at_bps.is_some_and(|q| r > q) {
                self.queued_at_bps = None;
            }
        }
        if self.in_flight.iter().any(Option::is_some) || self.pending.iter().any(Option::is_some) {
            return;
        }
        match self.best_success.take() {
            Some(best) if self.wants_more(best.max(estimate_bps)) => {
                // Keep climbing at once.
                self.last_succeeded = Some(now);
                self.interval = self.cfg.min_interval;
                let from = best.max(estimate_bps);
                let next = self.target(from);
                if let Some(p) = self.pending.first_mut() {
                    *p = Some(next);
                }
            }
            Some(_) => {
                self.last_succeeded = Some(now);
                self.interval = self.cfg.min_interval;
                self.next_probe_at = Some(now + self.interval);
            }
            None => {
                self.last_failed = Some(now);
                self.next_probe_at = Some(now + self.interval);
                self.interval = (self.interval * 2).min(self.cfg.max_interval);
            }
        }
    }

    /// When a periodic probe becomes due: only while nothing is pending
    /// or in flight and the sender wants more than `estimate_bps`, so a
    /// driver that calls [`ProbeController::poll_probe`] after each timeout
    /// never spins on a past deadline.
    pub fn poll_timeout(&self, estimate_bps: u64) -> Option<Instant> {
        let idle =
            self.pending.iter().all(Option::is_none) && self.in_flight.iter().all(Option::is_none);
        self.next_probe_at
            .filter(|_| idle && self.wants_more(estimate_bps))
    }
}

/// What came back of one cluster: first and last send and arrival times
/// (µs) with the sizes the rate computation excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeStats {
    /// Packets received.
    pub received: u32,
    /// Bytes received, all packets.
    pub bytes: u64,
    /// Earliest and latest send time of the received packets.
    pub first_send_us: i64,
    /// Latest send time.
    pub last_send_us: i64,
    /// Size of the packet sent last (excluded from the send rate).
    pub last_send_size: u32,
    /// Earliest arrival.
    pub first_arrival_us: i64,
    /// Size of the packet that arrived first (excluded from the receive rate).
    pub first_arrival_size: u32,
    /// Latest arrival.
    pub last_arrival_us: i64,
    /// Arrival minus send time of the packet sent first (one-way delay up
    /// to a constant clock offset).
    pub first_send_delay_us: i64,
    /// The same of the packet sent last.
    pub last_send_delay_us: i64,
    /// Packets that arrived queued (delay above the first packet's by more
    /// than [`MAX_PROBE_DELAY_GROWTH_US`]): they left the bottleneck back
    /// to back, so their spacing is its rate — the rate behind a token
    /// bucket's burst. Count, bytes, first arrival (and its size), last.
    pub queued: u32,
    /// Bytes of the queued packets.
    pub queued_bytes: u64,
    /// First queued arrival.
    pub queued_first_us: i64,
    /// Its size (excluded from the rate).
    pub queued_first_size: u32,
    /// Last queued arrival.
    pub queued_last_us: i64,
}

impl ProbeStats {
    /// Add a received packet of the cluster.
    pub fn add(&mut self, send_us: i64, arrival_us: i64, size: u32) {
        if self.received == 0 {
            *self = Self {
                received: 1,
                bytes: u64::from(size),
                first_send_us: send_us,
                last_send_us: send_us,
                last_send_size: size,
                first_arrival_us: arrival_us,
                first_arrival_size: size,
                last_arrival_us: arrival_us,
                first_send_delay_us: arrival_us.saturating_sub(send_us),
                last_send_delay_us: arrival_us.saturating_sub(send_us),
                ..Self::default()
            };
            return;
        }
        self.received += 1;
        self.bytes += u64::from(size);
        let delay = arrival_us.saturating_sub(send_us);
        if delay.saturating_sub(self.first_send_delay_us) > MAX_PROBE_DELAY_GROWTH_US {
            if self.queued == 0 {
                self.queued_first_us = arrival_us;
                self.queued_first_size = size;
                self.queued_last_us = arrival_us;
            }
            self.queued += 1;
            self.queued_bytes += u64::from(size);
            self.queued_first_us = self.queued_first_us.min(arrival_us);
            self.queued_last_us = self.queued_last_us.max(arrival_us);
        }
        if send_us < self.first_send_us {
            self.first_send_us = send_us;
            self.first_send_delay_us = arrival_us.saturating_sub(send_us);
        }
        if send_us >= self.last_send_us {
            self.last_send_us = send_us;
            self.last_send_size = size;
            self.last_send_delay_us = arrival_us.saturating_sub(send_us);
        }
        if arrival_us < self.first_arrival_us {
            self.first_arrival_us = arrival_us;
            self.first_arrival_size = size;
        }
        self.last_arrival_us = self.last_arrival_us.max(arrival_us);
    }
}

/// How much the one-way delay may grow from a cluster's first packet to
/// its last before the cluster counts as having filled a queue.
pub const MAX_PROBE_DELAY_GROWTH_US: i64 = 10_000;

/// Whether a cluster's feedback shows a queue building: the packet sent
/// last took more than [`MAX_PROBE_DELAY_GROWTH_US`] longer to arrive than
/// the one sent first. A token-bucket shaper (`tbf`) passes a burst at line
/// rate, so a short cluster's arrival spacing can show any rate; over a
/// cluster longer than the burst lasts, the queue behind the bucket shows
/// as delay growth even when every packet arrives.
pub fn queue_built(stats: &ProbeStats) -> bool {
    stats.received >= 2
        && stats
            .last_send_delay_us
            .saturating_sub(stats.first_send_delay_us)
            > MAX_PROBE_DELAY_GROWTH_US
}

/// The link rate a cluster's feedback shows, in bit/s: the send rate
/// (bytes but the last packet's over the send spread) and the receive rate
/// (bytes but the first packet's over the arrival spread); if the receive
/// rate is under 90 % of the send rate the link was saturated and the
/// result is 95 % of the receive rate, else the lower of the two. `None`
/// with fewer than 80 % of `min_packets` received or a spread outside
/// (0, 1 s]. When a queue built during the cluster ([`queue_built`]) the
/// arrival spacing of the whole cluster means nothing (a token bucket
/// passed its first packets at line rate): the result is the rate of the
/// packets that arrived queued — the bottleneck's own rate — or `None`
/// with fewer than three of them.
pub fn probe_result(stats: &ProbeStats, min_packets: u32) -> Option<u64> {
    if f64::from(stats.received) < 0.8 * f64::from(min_packets) || stats.received < 2 {
        return None;
    }
    let send_span = stats.last_send_us.saturating_sub(stats.first_send_us);
    let recv_span = stats.last_arrival_us.saturating_sub(stats.first_arrival_us);
    if !(1..=1_000_000).contains(&send_span) || !(1..=1_000_000).contains(&recv_span) {
        return None;
    }
    if queue_built(stats) {
        let spread = stats.queued_last_us.saturating_sub(stats.queued_first_us);
        if stats.queued < 3 || !(1..=1_000_000).contains(&spread) {
            return None;
        }
        let bytes = stats.queued_bytes - u64::from(stats.queued_first_size);
        return Some((bytes as f64 * 8e6 / spread as f64) as u64);
    }

    let send_rate = (stats.bytes - u64::from(stats.last_send_size)) as f64 * 8e6 / send_span as f64;
    let recv_rate =
        (stats.bytes - u64::from(stats.first_arrival_size)) as f64 * 8e6 / recv_span as f64;
    let r = if recv_rate < 0.9 * send_rate {
        0.95 * recv_rate
    } else {
        send_rate.min(recv_rate)
    };
    Some(r as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(n: u32, send_gap_us: i64, recv_gap_us: i64) -> ProbeStats {
        let mut s = ProbeStats::default();
        for i in 0..i64::from(n) {
            s.add(i * send_gap_us, 40_000 + i * recv_gap_us, 1000);
        }
        s
    }

    #[test]
    fn unsaturated_and_saturated_results() {
        // 1000 bytes every 2 ms = 4 Mbit/s, received at the same spacing.
        assert_eq!(probe_result(&stats(10, 2000, 2000), 5), Some(4_000_000));
        // Received every 4 ms: a queue builds; the queued packets' spacing
        // is the bottleneck's rate, 2 Mbit/s.
        assert_eq!(probe_result(&stats(10, 2000, 4000), 5), Some(2_000_000));
        // A little slower than sent, no queue to speak of: 95 % of receive.
        assert_eq!(probe_result(&stats(10, 2000, 2500), 5), Some(3_040_000));
        // Slight compression (received faster): the send rate bounds it.
        assert_eq!(probe_result(&stats(10, 2000, 1900), 5), Some(4_000_000));
        // Too few packets, or no spread.
        assert_eq!(probe_result(&stats(3, 2000, 2000), 5), None);
        assert_eq!(probe_result(&stats(10, 0, 2000), 5), None);
    }

    /// Through a token bucket: the first packets pass at line rate (the
    /// burst), the rest queue. Arrival spacing alone would say the link
    /// carries the probe; the delay growth says it does not.
    #[test]
    fn a_queue_behind_a_burst_fails_the_probe() {
        let mut s = ProbeStats::default();
        // 100 packets of 1000 B every 1 ms (8 Mbit/s); the first 10 pass
        // at once, then one every 2 ms (4 Mbit/s): the last waits 80 ms
        // longer than the first.
        for i in 0..100i64 {
            let arrival = if i < 10 {
                i * 1000
            } else {
                10_000 + (i - 10) * 2000
            };
            s.add(i * 1000, 40_000 + arrival, 1000);
        }
        assert!(queue_built(&s));
        // The rate behind the burst: 1000 B every 2 ms.
        assert_eq!(probe_result(&s, 5), Some(4_000_000));
        // The same first 10 only (a short cluster): the burst looks fine.
        let mut short = ProbeStats::default();
        for i in 0..10i64 {
            short.add(i * 1000, 40_000 + i * 1000, 1000);
        }
        assert!(!queue_built(&short));
        assert!(probe_result(&short, 5).is_some());
    }

    /// After a probe succeeded, the allocator steps up and wants the next
    /// step: probed at once, not a second later. After a failure, not.
    #[test]
    fn a_rise_of_the_wanted_rate_after_a_success_is_probed_at_once() {
        let t0 = Instant::now();
        let mut p = ProbeController::new(ProbeConfig::default(), 300_000, 5_000_000);
        p.set_wanted(600_000, t0);
        let a = p.poll_probe(300_000, t0).unwrap();
        let b = p.poll_probe(300_000, t0).unwrap();
        p.on_probe_result(a.id, Some(a.target_bps), false, 600_000, t0);
        p.on_probe_result(b.id, Some(b.target_bps), false, 900_000, t0);
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(p.poll_probe(900_000, t1), None, "nothing more wanted");
        p.set_wanted(2_000_000, t1);
        let c = p.poll_probe(900_000, t1).expect("probed at once");
        // A failure: the next rise waits for the interval.
        p.on_probe_result(c.id, None, false, 900_000, t1);
        let t2 = t1 + Duration::from_millis(100);
        p.set_wanted(3_000_000, t2);
        assert_eq!(p.poll_probe(900_000, t2), None);
    }

    /// A cluster that filled a queue measured the link: the next probes go
    /// at most 1.3 × that rate, not to the wanted 1.9 Mbit/s, until one
    /// passes above it without a queue; then the climb goes on at once.
    #[test]
    fn after_a_queue_probes_stay_near_the_measured_rate() {
        let t0 = Instant::now();
        let mut p = ProbeController::new(ProbeConfig::default(), 300_000, 5_000_000);
        p.set_wanted(1_900_000, t0);
        let a = p.poll_probe(300_000, t0).unwrap();
        let b = p.poll_probe(300_000, t0).unwrap();
        p.on_probe_result(a.id, Some(a.target_bps), false, 900_000, t0);
        p.on_probe_result(b.id, Some(b.target_bps), false, 1_800_000, t0);
        let t1 = t0 + Duration::from_secs(5);
        // The link narrowed to 800 kbit/s; the estimate followed.
        let c = p.poll_probe(600_000, t1).unwrap();
        assert_eq!(
            c.target_bps, 1_800_000,
            "3 × the estimate, under the wanted rate"
        );
        // Its queue measured 850 kbit/s: a failure, however near the target.
        p.on_probe_result(c.id, Some(850_000), true, 600_000, t1);
        let t2 = t1 + Duration::from_secs(1);
        let d = p.poll_probe(600_000, t2).expect("after the back-off");
        assert_eq!(d.target_bps, 1_105_000, "1.3 × the measured rate");
        // Still the same link: the rate behind the queue is kept.
        p.on_probe_result(d.id, Some(800_000), true, 600_000, t2);
        let t3 = t2 + Duration::from_secs(2);
        let e = p.poll_probe(600_000, t3).unwrap();
        assert_eq!(e.target_bps, 1_040_000);
        // The limit lifted: it passes without a queue, and the climb goes
        // on towards the wanted rate at once.
        p.on_probe_result(e.id, Some(1_040_000), false, 1_040_000, t3);
        let f = p.poll_probe(1_040_000, t3).expect("climbing on");
        assert_eq!(f.target_bps, 1_900_000);
        // An estimate above the measured rate probes at 1.2 × itself.
        p.on_probe_result(f.id, Some(700_000), true, 1_040_000, t3);
        let g = p
            .poll_probe(1_000_000, t3 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(g.target_bps, 1_200_000);
    }

    #[test]
    fn start_up_then_exponential_then_backoff() {
        let t0 = Instant::now();
        let mut p = ProbeController::new(ProbeConfig::default(), 300_000, 5_000_000);
        let a = p.poll_probe(300_000, t0).unwrap();
        let b = p.poll_probe(300_000, t0).unwrap();
        assert_eq!((a.target_bps, b.target_bps), (900_000, 1_800_000));
        assert_eq!(a.min_bytes, 32_000, "more than a token bucket's burst");
        assert_eq!(b.min_bytes, 32_000);
        assert_eq!(p.poll_probe(300_000, t0), None);
        p.on_probe_result(a.id, Some(880_000), false, 880_000, t0);
        assert_eq!(p.poll_probe(880_000, t0), None); // b still out
        p.on_probe_result(b.id, Some(1_750_000), false, 1_750_000, t0);
        // Towards the wanted 5 Mbit/s (under 3× the estimate).
        let c = p.poll_probe(1_750_000, t0).unwrap();
        assert_eq!(c.target_bps, 5_000_000);
        // Saturated at 2.85 Mbit/s (< 80 % of 5): stop climbing; wait 1 s,
        // then 2 s, then 2 s.
        p.on_probe_result(c.id, Some(2_850_000), false, 2_850_000, t0);
        assert_eq!(p.poll_timeout(2_850_000), Some(t0 + Duration::from_secs(1)));
        assert_eq!(
            p.poll_probe(2_850_000, t0 + Duration::from_millis(999)),
            None
        );
        let t1 = t0 + Duration::from_secs(1);
        let e = p.poll_probe(2_850_000, t1).unwrap();
        assert_eq!(p.poll_timeout(2_850_000), None); // e in flight
        p.on_probe_result(e.id, None, false, 2_850_000, t1);
        assert_eq!(p.poll_timeout(2_850_000), Some(t1 + Duration::from_secs(2)));
        let t2 = t1 + Duration::from_secs(2);
        let f = p.poll_probe(2_850_000, t2).unwrap();
        p.on_probe_result(f.id, None, false, 2_850_000, t2);
        assert_eq!(p.poll_timeout(2_850_000), Some(t2 + Duration::from_secs(2)));
        // The link free of congestion for a while: 1 s after the failure.
        p.reset_backoff();
        assert_eq!(p.poll_timeout(2_850_000), Some(t2 + Duration::from_secs(1)));
        // Wanting no more than the estimate: no probe even when due.
        p.set_wanted(2_000_000, t0);
        assert_eq!(p.poll_probe(2_850_000, t2 + Duration::from_secs(6)), None);
        // Before an up-switch to 3.2 Mbit/s: probe at 1.2 × estimate.
        p.set_wanted(3_200_000, t0);
        let g = p
            .poll_probe(2_850_000, t2 + Duration::from_secs(6))
            .unwrap();
        assert_eq!(g.target_bps, 3_420_000);
    }
}
