//! The audio forwarding policy: every packet to every live receiver, from
//! the first one on (audio can start anywhere).

use salon_proto::rtp::RtpHeader;

use super::{Egress, LegOut};
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
        eg.send(&mut leg.out, hdr, payload, pkt.level, true, || None);
    }
}
