//! The audio forwarding policy: every packet to every live receiver, from
//! the first one on (audio can start anywhere).

use salon_proto::rtp::RtpHeader;

use super::{Egress, LegOut, OutPacket, send_rtp};
use crate::core::track::PacketView;

/// One receiver of an audio track.
#[derive(Debug)]
pub struct AudioLeg {
    pub out: LegOut,
    /// A packet was forwarded (sender reports and NACKs refer to it).
    pub started: bool,
}

impl AudioLeg {
    /// A leg not yet answered.
    pub fn new(out: LegOut) -> Self {
        Self {
            out,
            started: false,
        }
    }
}

/// Forward one audio packet to every live leg.
#[inline]
pub(super) fn forward(
    legs: &mut [AudioLeg],
    pkt: &PacketView,
    plain: &[u8],
    hdr: &RtpHeader,
    eg: &mut Egress<'_>,
) {
    let payload = hdr.payload(plain);
    for leg in legs.iter_mut() {
        if !leg.out.live {
            continue;
        }
        if !leg.started {
            leg.out.restart(hdr.timestamp, eg.now, 48_000);
            leg.started = true;
        }
        let Some(t) = eg.transports.get_mut(leg.out.transport) else {
            continue;
        };
        if !t.can_send() {
            continue;
        }
        let Some(seq) = leg.out.seq.map(hdr.sequence) else {
            continue;
        };
        let ts = hdr.timestamp.wrapping_add(leg.out.ts_offset);
        let twcc = t.next_twcc(payload.len() + 28, eg.now);
        let Some((addr, ctx)) = t.sender() else {
            continue;
        };
        let out = OutPacket {
            ssrc: leg.out.ssrc,
            pt: leg.out.pt,
            seq,
            ts,
            twcc,
            vp8: None,
            osn: None,
        };
        if send_rtp(eg.tx, eg.metrics, ctx, addr, &out, hdr, pkt.level, payload) {
            leg.out.on_sent(ts, payload.len(), eg.now);
        }
    }
}
