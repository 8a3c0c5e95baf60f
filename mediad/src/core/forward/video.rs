//! The video forwarding policy: each receiver gets one layer, chosen by
//! the allocator and switched by its [`LayerSelector`]; numbering,
//! timestamps and VP8 picture ids stay continuous across switches, and a
//! log of what each output number was keeps NACKs answerable.

use salon_proto::rtp::RtpHeader;

use super::{Decision, Egress, LayerSelector, LegOut};
use crate::core::sent_log::{Sent, SentLog};
use crate::core::track::PacketView;
use crate::core::vp8::Vp8Map;

/// One receiver of a video track.
#[derive(Debug)]
pub struct VideoLeg {
    pub out: LegOut,
    /// Which layer, and which temporal layers.
    pub sel: LayerSelector,
    /// Largest height the receiver's tile shows.
    pub max_height: Option<u16>,
    /// Nothing is sent (audio-only receiver).
    pub paused: bool,
    /// The allocator gives this receiver nothing of this track (outside
    /// last-N, or no budget for even the lowest layer).
    pub alloc_paused: bool,
    /// VP8 picture id and TL0PICIDX continuity across switches.
    pub vp8: Vp8Map,
    /// What each recent output sequence number was, so NACKs stay
    /// answerable across switches, skipped packets and probes.
    pub sent: SentLog,
    /// RTX stream (RFC 4588) for retransmissions and probe padding, once
    /// the receiver's answer accepted it: (SSRC, next sequence number).
    pub rtx: Option<(u32, u16)>,
    /// The RTP timestamp of the key frame that started the layer being
    /// forwarded (a switch, a start) or that the receiver asked for (a
    /// PLI: it froze): its packets are logged as a key frame's, resent
    /// over the budget ([`crate::core::nack`]).
    pub key_ts: Option<u32>,
    /// The receiver asked for a key frame: the next one is its `key_ts`.
    pub wants_key: bool,
}

impl VideoLeg {
    /// A leg not yet answered, aiming at `sel`'s target.
    pub fn new(out: LegOut, sel: LayerSelector, paused: bool) -> Self {
        Self {
            out,
            sel,
            max_height: None,
            paused,
            alloc_paused: false,
            vp8: Vp8Map::default(),
            sent: SentLog::new(),
            rtx: None,
            key_ts: None,
            wants_key: false,
        }
    }

    /// Whether anything may be sent to this receiver now.
    pub fn is_receiving(&self) -> bool {
        self.out.live && !self.paused && !self.alloc_paused
    }

    /// A receiving leg that waits for a key frame of its target.
    pub fn waits_for_keyframe(&self) -> bool {
        self.is_receiving() && self.sel.is_waiting()
    }

    /// The RTX stream's SSRC and next sequence number (taken), if the
    /// receiver accepted RTX.
    pub fn next_rtx(&mut self) -> Option<(u32, u16)> {
        let (ssrc, next) = self.rtx.as_mut()?;
        let seq = *next;
        *next = next.wrapping_add(1);
        Some((*ssrc, seq))
    }

    /// Stop forwarding until the next key frame (moderation, audio-only
    /// off, allocator pause): numbering resumes after the last packet.
    pub fn hold(&mut self) {
        self.sel.reset();
        self.out.seq.pause();
    }
}

/// Forward one video packet to every leg whose selector takes it.
#[inline]
pub(super) fn forward(
    legs: &mut [VideoLeg],
    pkt: &PacketView,
    plain: &[u8],
    hdr: &RtpHeader,
    eg: &mut Egress<'_>,
) {
    let payload = hdr.payload(plain);
    let layer_sync = pkt.desc.is_some_and(|d| d.layer_sync);
    for leg in legs.iter_mut() {
        if !leg.is_receiving() {
            continue;
        }
        let had_layer = leg.sel.current().is_some();
        let (switched_to, skip) = match leg.sel.decide(pkt, layer_sync) {
            Decision::Drop => continue,
            Decision::SkipTemporal { switched_to } => (switched_to, true),
            Decision::Forward { switched_to } => (switched_to, false),
        };
        if let Some(layer) = switched_to {
            tracing::debug!(
                layer = layer.as_u8(),
                ssrc = leg.out.ssrc,
                "layer switched at its key frame"
            );
            leg.out.restart(hdr.timestamp, eg.now, 90_000);
            leg.vp8.resync();
            leg.key_ts = Some(hdr.timestamp);
            // A switch's key frame goes now: probes wait until it has
            // passed the receiver's bottleneck. Not the first layer's: the
            // start-up probes go with it, as libwebrtc's initial probes go
            // with the first media (they find the link's rate; held, they
            // thinned `layers_sim`'s screen share to 10 fps).
            if had_layer && let Some(t) = eg.transports.get_mut(leg.out.transport) {
                t.hold_probes(eg.now + super::KEYFRAME_PROBE_HOLD);
            }
        }
        if skip {
            leg.out.seq.skip(hdr.sequence);
            if let Some(d) = pkt.desc.as_ref() {
                leg.vp8.skip(d);
            }
            continue;
        }
        if pkt.keyframe && std::mem::take(&mut leg.wants_key) {
            leg.key_ts = Some(hdr.timestamp);
        }
        let vp8 = &mut leg.vp8;
        let desc = pkt.desc;
        let sent = eg.send(&mut leg.out, hdr, payload, pkt.level, false, || {
            desc.and_then(|d| vp8.map(&d).map(|m| (d, m)))
        });
        if let Some((seq, vp8)) = sent {
            leg.sent.record(
                seq,
                Sent {
                    layer: pkt.layer.as_u8(),
                    in_seq: hdr.sequence,
                    ts_offset: leg.out.ts_offset,
                    vp8,
                    key: leg.key_ts == Some(hdr.timestamp),
                },
                eg.memory,
            );
        }
    }
}
