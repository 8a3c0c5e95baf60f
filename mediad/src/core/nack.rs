//! NACK and RTX, both ways. Downstream: a receiver's NACK is answered
//! with exactly the packet it lost — found through the leg's log of what
//! each output number was — on its RTX stream when it accepted one
//! (RFC 4588), within bounds: a packet goes again at most once per round
//! trip and three times in all, not when it belongs to a layer the
//! receiver is leaving, and only while the receiver's retransmission
//! budget (a share of its bandwidth estimate) lasts — so a lossy link is
//! not pushed further into loss, and a hostile NACK cannot amplify.
//! Upstream: a gap in a publisher's video numbering is NACKed,
//! and its RTX retransmission is forwarded as the packet it repairs.
//! The caches NACKs are answered from are sized here, on the report
//! timer, to the rate of their stream (`Worker::size_rtx_caches`).

use std::time::{Duration, Instant};

use salon_io::TxQueue;
use salon_proto::rtcp;
use salon_proto::rtp::RtpHeader;
use salon_proto::vp8::Vp8Descriptor;

use super::forward::{LegOut, OutPacket, VideoLeg, send_or_hold};
use super::ids::{LayerIdx, TrackId, TransportId};
use super::rtx_budget::Resend;
use super::sent_log::{NoResend, Sent};
use super::track::Legs;
use super::{OUT_PT_VP8_RTX, Worker, rtx_cache};
use crate::control::MediaKind;
use crate::metrics::Metrics;

/// Most sequence numbers one NACK to a publisher asks for: a larger jump in
/// its numbering is a restart or a long outage, not loss worth repairing.
const MAX_NACK_GAP: u16 = 16;

/// The leg a retransmission goes out on.
enum LegRef<'a> {
    Audio(&'a LegOut),
    Video(&'a mut VideoLeg),
}

/// What output packet `out_seq` of stream `ssrc` was, if it may be sent
/// again now (counted when not). Video legs log what each output number
/// was sent as (layer, input packet, offsets), so a retransmission is what
/// was lost even after a switch, a dropped temporal-layer packet or a
/// probe; the log also says how often and when it was sent again. Audio
/// legs map back through the rewriter: only packets sent since the last
/// resume.
fn what_was_sent<'a>(
    legs: &'a mut Legs,
    ssrc: u32,
    out_seq: u16,
    now: Instant,
    interval: Duration,
    metrics: &Metrics,
) -> Option<(Sent, LegRef<'a>)> {
    match legs {
        Legs::Video(legs) => {
            let leg = legs.iter_mut().find(|l| l.out.ssrc == ssrc)?;
            let sent = match leg.sent.take_for_resend(out_seq, now, interval) {
                Ok(s) => s,
                Err(why) => {
                    match why {
                        NoResend::Unknown => metrics.nack_unanswerable.inc(),
                        NoResend::TooSoon => metrics.nack_too_soon.inc(),
                        NoResend::TooMany => metrics.nack_too_many.inc(),
                    }
                    return None;
                }
            };
            // A layer being left: its key frame replaces all this.
            if leg.sel.is_waiting() && sent.layer != leg.sel.target().as_u8() {
                metrics.nack_stale_layer.inc();
                return None;
            }
            Some((sent, LegRef::Video(leg)))
        }
        Legs::Audio(legs) => {
            let leg = legs.iter_mut().find(|l| l.out.ssrc == ssrc)?;
            let sent = leg
                .started
                .then(|| leg.out.seq.unmap_checked(out_seq))
                .flatten()
                .map(|in_seq| Sent {
                    layer: 0,
                    in_seq,
                    ts_offset: leg.out.ts_offset,
                    vp8: None,
                    key: false,
                });
            let Some(sent) = sent else {
                metrics.nack_unanswerable.inc();
                return None;
            };
            Some((sent, LegRef::Audio(&leg.out)))
        }
    }
}

impl Worker {
    /// A receiver on transport `idx` lost output packet `out_seq` of its
    /// stream `media_ssrc`: send it again.
    pub(super) fn retransmit(
        &mut self,
        idx: TransportId,
        media_ssrc: u32,
        out_seq: u16,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(t) = self.transports.get(idx) else {
            return;
        };
        let Some(ti) = t.out_track(media_ssrc) else {
            return;
        };
        let interval = t.resend_interval();
        let Some(track) = self.tracks.get_mut(ti) else {
            return;
        };
        let Some((sent, mut leg)) = what_was_sent(
            &mut track.legs,
            media_ssrc,
            out_seq,
            now,
            interval,
            &self.metrics,
        ) else {
            return;
        };
        let Some(packet) = track
            .layers
            .get(usize::from(sent.layer))
            .and_then(|l| l.cache.as_ref())
            .and_then(|c| c.get(sent.in_seq))
        else {
            self.metrics.nack_unanswerable.inc();
            return;
        };
        let Ok(hdr) = RtpHeader::parse(packet) else {
            return;
        };
        let payload = hdr.payload(packet);
        // Video is VP8 (the only codec Salon negotiates): its descriptor,
        // read once, serves the rewrite and the budget's order below.
        let vp8 = matches!(&leg, LegRef::Video(_))
            .then(|| Vp8Descriptor::parse(payload).ok())
            .flatten();
        let vp8_out = sent.vp8.and_then(|m| vp8.map(|d| (d, m)));
        let (transport, ssrc, pt) = match &leg {
            LegRef::Video(v) => (v.out.transport, v.out.ssrc, v.out.pt),
            LegRef::Audio(o) => (o.transport, o.ssrc, o.pt),
        };
        let Some(t) = self.transports.get_mut(transport) else {
            return;
        };
        if t.addr().is_none() {
            return;
        }
        let has_rtx = matches!(&leg, LegRef::Video(v) if v.rtx.is_some());
        let rtx_overhead = if has_rtx { 2 } else { 0 };
        let size = payload.len() + rtx_overhead + 28;
        // What the decoder loses without it: upper temporal layers are
        // refused first.
        let what = if sent.key {
            Resend::Key
        } else if vp8.is_some_and(|d| d.tid.is_some_and(|tid| tid > 0)) {
            Resend::Upper
        } else {
            Resend::Base
        };
        if !t.spend_retransmit(size, what, now) {
            self.metrics.nack_over_budget.inc();
            return;
        }
        // In the pacer's line with the media (a burst of NACKs answered
        // at once would be a burst on the link).
        let slot = t.pace(size, false, now);
        let twcc = t.twcc_for(slot, size, now);
        // On the RTX stream when the receiver accepted one (its own
        // numbering, the lost number first in the payload), else again on
        // the media stream under the lost number.
        let rtx = match &mut leg {
            LegRef::Video(v) => v.next_rtx(),
            LegRef::Audio(_) => None,
        };
        let (ssrc, pt, seq, osn) = match rtx {
            Some((rtx_ssrc, seq)) => (rtx_ssrc, OUT_PT_VP8_RTX, seq, Some(out_seq)),
            None => (ssrc, pt, out_seq, None),
        };
        let out = OutPacket {
            ssrc,
            pt,
            seq,
            ts: hdr.timestamp.wrapping_add(sent.ts_offset),
            twcc,
            vp8: vp8_out,
            osn,
        };
        if send_or_hold(tx, &self.metrics, t, slot, &out, &hdr, None, payload, now) {
            self.metrics.nack_answered.inc();
            self.metrics.rtx_bytes_sent.add(size as u64);
        }
    }

    /// Video packet `seq` of layer `li` of track `ti` arrived: if it
    /// skips a few numbers past the highest so far, ask the publisher for
    /// them (generic NACK; a larger jump is a restart, not loss). Its
    /// browser resends on its RTX stream ([`Worker::on_publisher_rtx`]).
    pub(super) fn nack_gap(
        &mut self,
        ti: TrackId,
        li: LayerIdx,
        seq: u16,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(track) = self.tracks.get(ti) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(layer) = track.layer(li) else {
            return;
        };
        let (Some(highest), Some(media_ssrc)) = (layer.stats.max_seq(), layer.ssrc) else {
            return;
        };
        let gap = seq.wrapping_sub(highest);
        if (MAX_NACK_GAP + 2..0x8000).contains(&gap) {
            // Too much lost to repair (the publisher's network went away):
            // every receiver of this layer will need a key frame; ask now
            // rather than after their own timeouts.
            self.metrics.upstream_gaps.inc();
            self.request_keyframe(ti, li, now, tx);
            return;
        }
        if !(2..=MAX_NACK_GAP + 1).contains(&gap) {
            return;
        }
        let mut lost = [0u16; MAX_NACK_GAP as usize];
        let n = usize::from(gap - 1);
        for (i, l) in lost.iter_mut().take(n).enumerate() {
            *l = highest.wrapping_add(1 + i as u16);
        }
        let transport = track.transport;
        let sent = self.send_rtcp(tx, transport, |buf, sender| {
            let h = rtcp::write_receiver_report(buf, sender, &[]).ok()?;
            let m = rtcp::write_nack(buf.get_mut(h..)?, sender, media_ssrc, lost.get(..n)?).ok()?;
            Some(h + m)
        });
        if sent {
            self.metrics.nack_sent.add(n as u64);
        }
    }

    /// A packet on a publisher's RTX stream: a retransmission (the original
    /// sequence number, then the payload) goes on as the packet it repairs;
    /// padding (Chrome's bandwidth probes) is counted and dropped.
    pub(super) fn on_publisher_rtx(
        &mut self,
        ti: TrackId,
        li: LayerIdx,
        plain: &[u8],
        hdr: &RtpHeader,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let payload = hdr.payload(plain);
        let layer = self.tracks.get(ti).and_then(|t| t.layer(li));
        let (Some(layer), Some(&[o0, o1]), Some(body)) =
            (layer, payload.first_chunk::<2>(), payload.get(2..))
        else {
            self.metrics.drop_rtx_unused.inc();
            return;
        };
        let seq = u16::from_be_bytes([o0, o1]);
        // Only a packet that is missing and recent: Chrome also probes by
        // resending packets that arrived ("payload padding"), which would
        // reach receivers as duplicates and inflate the layer's price.
        let missing = layer.cache.as_ref().is_none_or(|c| c.get(seq).is_none());
        let held = layer
            .cache
            .as_ref()
            .map_or(rtx_cache::SLOTS, rtx_cache::RtxCache::capacity);
        let recent = layer
            .stats
            .max_seq()
            .is_some_and(|m| usize::from(m.wrapping_sub(seq)) < held);
        let Some(media_ssrc) = layer.ssrc.filter(|_| missing && recent && !body.is_empty()) else {
            self.metrics.drop_rtx_unused.inc();
            return;
        };
        // The repaired packet: the RTX header under the media SSRC and
        // number, without padding, then the original payload.
        let mut buf = [0u8; salon_io::MAX_DATAGRAM];
        let head = hdr.payload_offset;
        let len = head + body.len();
        let (Some(dst_head), Some(src_head)) = (buf.get_mut(..head), plain.get(..head)) else {
            return;
        };
        dst_head.copy_from_slice(src_head);
        // RTP fixed header: byte 0 holds the P bit, 2..4 the sequence
        // number, 8..12 the SSRC.
        let Some(fixed) = buf.first_chunk_mut::<12>() else {
            return;
        };
        fixed[0] &= !0x20;
        fixed[2..4].copy_from_slice(&[o0, o1]);
        fixed[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
        let Some(dst) = buf.get_mut(head..len) else {
            return;
        };
        dst.copy_from_slice(body);
        let Some(repaired) = buf.get(..len) else {
            return;
        };
        let Ok(rhdr) = RtpHeader::parse(repaired) else {
            return;
        };
        self.metrics.rtx_received.inc();
        self.forward(ti, li, repaired, &rhdr, now, tx);
    }
}

impl Worker {
    /// Size each retransmission cache to the packets its stream brought
    /// over the last `interval` ([`rtx_cache::RtxCache::slots_for`]),
    /// growing only, within the memory budget (a growth refused is
    /// counted). Runs on the report timer, so the packet path never
    /// allocates for it.
    pub(super) fn size_rtx_caches(&mut self, interval: Duration) {
        let secs = interval.as_secs_f64().max(0.001);
        let mut refused = 0;
        for t in self.tracks.values_mut() {
            for layer in &mut t.layers {
                let packets = std::mem::take(&mut layer.packets_since_sizing);
                let Some(cache) = layer.cache.as_mut() else {
                    continue;
                };
                let want = rtx_cache::RtxCache::slots_for(f64::from(packets) / secs);
                if want > cache.capacity() && !cache.grow_to(want, &self.memory) {
                    refused += 1;
                }
            }
        }
        if refused > 0 {
            self.metrics.rtx_cache_over_budget.add(refused);
            // Counted; at most one line a second while the budget is spent.
            tracing::debug!(
                caches = refused,
                "memory budget spent: retransmission caches not grown"
            );
        }
    }
}
