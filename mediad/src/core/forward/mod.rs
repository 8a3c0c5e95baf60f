//! Forwarding: one decrypted packet in, one rewritten and re-encrypted
//! packet out per receiver that should get it. One leg type per
//! forwarding policy — [`AudioLeg`] forwards everything, [`VideoLeg`]
//! asks its [`LayerSelector`] (drop, skip a temporal layer, forward, or
//! switch at this key frame) — and the common output state ([`LegOut`]:
//! numbering, timestamps, counters) beside them. Nothing here allocates.

mod audio;
mod egress;
mod selector;
mod video;

use std::time::{Duration, Instant};

pub use audio::AudioLeg;
pub use egress::{OutPacket, send_or_hold, send_rtp, write_rtp};
pub use selector::{Decision, LayerSelector};
pub use video::VideoLeg;

use salon_io::TxQueue;
use salon_proto::rtp::RtpHeader;
use salon_proto::vp8::Vp8Descriptor;

use super::Worker;
use super::ids::{LayerIdx, Table, TransportId};
use super::rewrite::SeqRewriter;
use super::track::{Ingest, Legs, PacketView};
use super::transport::Transport;
use super::vp8::Vp8Out;
use crate::control::ParticipantId;
use crate::metrics::Metrics;

/// What any leg keeps of what it sent: the receiver's stream identity,
/// numbering and timestamps, and the counters its sender reports carry.
#[derive(Debug)]
pub struct LegOut {
    pub receiver: ParticipantId,
    pub transport: TransportId,
    pub ssrc: u32,
    pub pt: u8,
    pub seq: SeqRewriter,
    /// The receiver's answer accepted this stream.
    pub live: bool,
    /// Added to the publisher's timestamps, so a layer switch keeps the
    /// receiver's clock continuous.
    pub ts_offset: u32,
    pub last_ts_out: Option<u32>,
    pub last_sent_at: Option<Instant>,
    pub packets: u32,
    pub octets: u32,
}

impl LegOut {
    /// A stream not yet answered, numbered from `first_seq`.
    pub fn new(
        receiver: ParticipantId,
        transport: TransportId,
        ssrc: u32,
        pt: u8,
        first_seq: u16,
    ) -> Self {
        Self {
            receiver,
            transport,
            ssrc,
            pt,
            seq: SeqRewriter::new(first_seq),
            live: false,
            ts_offset: 0,
            last_ts_out: None,
            last_sent_at: None,
            packets: 0,
            octets: 0,
        }
    }

    /// Start (or resume) from a packet with timestamp `in_ts`: after
    /// something was sent, numbering continues after the last packet and
    /// the timestamps advance by the time that has passed.
    pub fn restart(&mut self, in_ts: u32, now: Instant, clock: u32) {
        if let (Some(last), Some(at)) = (self.last_ts_out, self.last_sent_at) {
            self.seq.pause();
            let elapsed = now.saturating_duration_since(at);
            let step = (elapsed.as_micros() * u128::from(clock) / 1_000_000)
                .clamp(1, u128::from(u32::MAX >> 1)) as u32;
            self.ts_offset = last.wrapping_add(step).wrapping_sub(in_ts);
        }
    }

    /// Count a packet sent with number `seq` and timestamp `ts`.
    #[inline]
    pub fn on_sent(&mut self, ts: u32, payload_len: usize, now: Instant) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        self.last_ts_out = Some(ts);
        self.last_sent_at = Some(now);
    }
}

/// After a layer switch's key frame is forwarded, no probe towards its
/// receiver for this long: the key frame's burst leaves the bottleneck's
/// queue first (6 kB at 400 kbit/s: 120 ms).
pub const KEYFRAME_PROBE_HOLD: Duration = Duration::from_millis(300);

/// What a leg needs to send: the transports, the counters, the queue.
#[allow(missing_debug_implementations)]
pub struct Egress<'a> {
    pub transports: &'a mut Table<TransportId, Transport>,
    pub metrics: &'a Metrics,
    /// Where a leg's sent log is charged when its first packet goes.
    pub memory: &'a crate::core::limits::MemoryBudget,
    pub tx: &'a mut TxQueue,
    pub now: Instant,
}

impl Egress<'_> {
    /// Send one packet on leg `out`: its number, timestamp and a
    /// transport-wide number, encrypted into the send queue — or into the
    /// receiver's pacer until its turn (`urgent`: audio, never held). `vp8` gives
    /// the rewritten VP8 descriptor, asked only once the packet is sure to
    /// go. Returns the number sent and the VP8 rewrite, when sent.
    #[inline]
    pub fn send(
        &mut self,
        out: &mut LegOut,
        hdr: &RtpHeader,
        payload: &[u8],
        level: Option<u8>,
        urgent: bool,
        vp8: impl FnOnce() -> Option<(Vp8Descriptor, Vp8Out)>,
    ) -> Option<(u16, Option<Vp8Out>)> {
        let t = self.transports.get_mut(out.transport)?;
        if !t.can_send() {
            return None;
        }
        let seq = out.seq.map(hdr.sequence)?;
        let ts = hdr.timestamp.wrapping_add(out.ts_offset);
        let size = payload.len() + 28;
        // Audio is never held by the pacer, only charged to it.
        let slot = t.pace(size, urgent, self.now);
        let twcc = t.twcc_for(slot, size, self.now);
        let packet = OutPacket {
            ssrc: out.ssrc,
            pt: out.pt,
            seq,
            ts,
            twcc,
            vp8: vp8(),
            osn: None,
        };
        if !send_or_hold(
            self.tx,
            self.metrics,
            t,
            slot,
            &packet,
            hdr,
            level,
            payload,
            self.now,
        ) {
            return None;
        }
        out.on_sent(ts, payload.len(), self.now);
        Some((seq, packet.vp8.map(|(_, m)| m)))
    }
}

impl Worker {
    /// Send one decrypted packet of layer `li` of track `ti` to every live
    /// receiver that gets that layer, or switches to it at this key frame.
    #[inline]
    pub(super) fn forward(
        &mut self,
        ti: super::ids::TrackId,
        li: LayerIdx,
        plain: &[u8],
        hdr: &RtpHeader,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let since_epoch = now.saturating_duration_since(self.epoch);
        let Some(track) = self.tracks.get_mut(ti) else {
            return;
        };
        if !track.ensure_cache(li, &self.memory) {
            self.metrics.rtx_cache_over_budget.inc();
            tracing::warn!(publisher = %track.publisher, "memory budget spent: a video layer goes without a retransmission cache");
        }
        let pkt: PacketView = match track.ingest(li, plain, hdr, since_epoch, now) {
            Ingest::Media(p) => p,
            Ingest::Muted => {
                self.metrics.drop_muted.inc();
                return;
            }
            Ingest::Padding | Ingest::Unknown => return,
        };
        let mut out = Egress {
            transports: &mut self.transports,
            metrics: &self.metrics,
            memory: &self.memory,
            tx,
            now,
        };
        match &mut track.legs {
            Legs::Audio(legs) => audio::forward(legs, &pkt, plain, hdr, &mut out),
            Legs::Video(legs) => video::forward(legs, &pkt, plain, hdr, &mut out),
        }
    }
}
