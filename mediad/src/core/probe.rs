//! Bandwidth probes towards receivers: when an estimator asks for a probe
//! cluster, padding goes out at the cluster's rate on a video stream the
//! receiver is getting — on its RTX stream when it accepted one (the media
//! numbering is untouched), else as padding-only packets slipped into the
//! media numbering — each with a transport-wide sequence number.

use std::time::{Duration, Instant};

use salon_io::TxQueue;
use salon_proto::rtp::{self, RtpFields};

use super::ids::TransportId;
use super::transport::{ProbeState, Transport};
use super::{OUT_EXT_TRANSPORT_CC, OUT_PT_VP8_RTX, Worker};
use crate::bwe::ProbeCluster;
use crate::control::TransportKind;
use crate::metrics::Metrics;

/// Count and log the probe clusters transport `t`'s estimator has
/// finished (call after feedback and after its timer). True when one
/// raised the estimate without building a queue (the transport remembers
/// it for the next allocation round: [`Transport::take_probe_proven`]).
pub(super) fn note_probe_outcomes(t: &mut Transport, metrics: &Metrics) -> bool {
    let mut proven = false;
    while let Some(o) = t.poll_probe_outcome() {
        if o.raised && !o.queue_built {
            proven = true;
            t.set_probe_proven();
        }
        if o.raised {
            metrics.probes_raised.inc();
        } else if o.queue_built {
            metrics.probes_queue_built.inc();
        } else {
            metrics.probes_not_raised.inc();
        }
        tracing::debug!(
            participant = %t.participant(),
            cluster = o.cluster,
            result_bps = ?o.result_bps,
            queue_built = o.queue_built,
            raised = o.raised,
            estimate_bps = o.estimate_bps,
            "probe cluster finished"
        );
    }
    proven
}

/// How long a probe cluster with no stream to carry it waits to retry.
const PROBE_WAIT: Duration = Duration::from_millis(250);
/// Largest padding in one probe packet (the RTP padding count is a byte).
const PROBE_PADDING: usize = 255;

impl Worker {
    /// Send due probe padding on each subscribe transport, and start the
    /// clusters the estimators ask for.
    pub(super) fn run_probes(&mut self, now: Instant, tx: &mut TxQueue) {
        for idx in self.transports.handles() {
            let Some(t) = self.transports.get_mut(idx) else {
                continue;
            };
            if t.kind() != TransportKind::Subscribe || !t.bwe_fed() {
                continue;
            }
            if t.probe().is_none()
                && let Some(cluster) = t.poll_probe_cluster(now)
            {
                t.set_probe(Some(ProbeState {
                    cluster,
                    started: now,
                    packets: 0,
                    bytes: 0,
                    next_at: now,
                }));
                self.metrics.probes.inc();
                tracing::debug!(
                    participant = %t.participant(),
                    cluster = cluster.id,
                    target_bps = cluster.target_bps,
                    pace_bps = cluster.pace_bps,
                    estimate_bps = ?t.estimate_bps(),
                    "probe cluster started"
                );
            }
            if let Some(p) = t.probe()
                && t.probe_saturated(p.cluster.id)
            {
                // Its feedback shows a queue: cut it short.
                t.set_probe(None);
                self.metrics.probes_cut.inc();
                tracing::debug!(
                    participant = %t.participant(),
                    cluster = p.cluster.id,
                    sent_bytes = p.bytes,
                    "probe cluster cut short: a queue built"
                );
                continue;
            }
            let Some(probe) = t.probe().filter(|p| now >= p.next_at) else {
                continue;
            };
            let next = self.probe_step(idx, probe, now, tx);
            if let Some(t) = self.transports.get_mut(idx) {
                t.set_probe(next);
            }
        }
    }

    /// Send what cluster `probe` owes by now on transport `idx`; returns
    /// its state after (or `None` when it is done).
    fn probe_step(
        &mut self,
        idx: TransportId,
        mut probe: ProbeState,
        now: Instant,
        tx: &mut TxQueue,
    ) -> Option<ProbeState> {
        // Bytes due by now at the cluster's rate (one packet at least).
        let elapsed = now.saturating_duration_since(probe.started).as_secs_f64();
        let due = ((probe.cluster.pace_bps as f64 * elapsed / 8.0) as usize)
            .max(probe.bytes + 1)
            .min(probe.cluster.min_bytes);
        let mut sent_any = false;
        while probe.bytes < due || probe.packets < probe.cluster.min_packets {
            if !self.send_padding(idx, probe.cluster, now, tx) {
                break;
            }
            sent_any = true;
            probe.packets += 1;
            probe.bytes += PROBE_PADDING + 12;
            if probe.bytes >= due && probe.packets >= 1 {
                break;
            }
        }
        if !sent_any && probe.packets == 0 {
            // No stream to carry it yet (the receiver's video has not
            // started): the cluster waits, so the estimator does not
            // count it in flight for nothing.
            probe.started = now + PROBE_WAIT;
            probe.next_at = now + PROBE_WAIT;
            return Some(probe);
        }
        let done = !sent_any
            || (probe.bytes >= probe.cluster.min_bytes
                && probe.packets >= probe.cluster.min_packets);
        if done {
            return None;
        }
        // Next packet at the cluster's rate.
        let per_packet = Duration::from_secs_f64(
            ((PROBE_PADDING + 12) * 8) as f64 / probe.cluster.pace_bps.max(1) as f64,
        );
        probe.next_at = now + per_packet.max(Duration::from_millis(1));
        Some(probe)
    }

    /// One padding-only packet on a video stream subscribe transport `idx`
    /// is forwarding. False when there is none.
    fn send_padding(
        &mut self,
        idx: TransportId,
        cluster: ProbeCluster,
        now: Instant,
        tx: &mut TxQueue,
    ) -> bool {
        let found = self.tracks.values_mut().find_map(|t| {
            t.legs.video_mut().iter_mut().find(|l| {
                l.out.transport == idx
                    && l.is_receiving()
                    && l.sel.current().is_some()
                    && l.out.last_ts_out.is_some()
            })
        });
        let Some(leg) = found else {
            return false;
        };
        let Some(t) = self.transports.get_mut(idx) else {
            return false;
        };
        if !t.can_send() {
            return false;
        }
        // On the RTX stream if there is one: the media numbering is left
        // alone. Else a number slipped into the media stream.
        let (ssrc, pt, seq) = match leg.next_rtx() {
            Some((rtx_ssrc, seq)) => (rtx_ssrc, OUT_PT_VP8_RTX, seq),
            None => {
                let Some(seq) = leg.out.seq.insert() else {
                    return false;
                };
                (leg.out.ssrc, leg.out.pt, seq)
            }
        };
        // Padding keeps its own pace (the cluster's), outside the pacer:
        // queued behind media there, or charged to it, the clusters
        // measured less than the link and recovery after a limit slowed
        // from 3 s to 7–8 s (tests/layers_real_link.rs).
        let twcc = t.next_twcc_in(PROBE_PADDING + 12, Some(cluster.id), now);
        let Some((addr, ctx)) = t.sender() else {
            return false;
        };
        let Some(buf) = tx.buffer() else {
            self.metrics.drop_tx_full.inc();
            return false;
        };
        let fields = RtpFields {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: leg.out.last_ts_out.unwrap_or(0),
            ssrc,
        };
        let twcc = twcc.to_be_bytes();
        let Ok(h) = rtp::write_header(&mut buf[..], &fields, &[(OUT_EXT_TRANSPORT_CC, &twcc[..])])
        else {
            return false;
        };
        let end = h + PROBE_PADDING;
        let Some(pad) = buf.get_mut(h..end) else {
            return false;
        };
        pad.fill(0);
        if let Some(last) = pad.last_mut() {
            *last = PROBE_PADDING as u8;
        }
        if let Some(b0) = buf.first_mut() {
            *b0 |= 0x20; // P: the payload is all padding
        }
        let Ok(n) = ctx.protect_rtp(&mut buf[..], end) else {
            return false;
        };
        self.metrics.tx_padding.inc();
        tx.commit(addr, n);
        true
    }
}
