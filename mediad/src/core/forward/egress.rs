//! Egress: one rewritten RTP packet for one receiver, written into the
//! send queue's buffer and encrypted there (no copy, no allocation).

use std::net::SocketAddr;

use salon_io::TxQueue;
use salon_proto::rtp::{self, RtpFields, RtpHeader};

use crate::core::{OUT_EXT_AUDIO_LEVEL, OUT_EXT_TRANSPORT_CC, vp8};
use crate::metrics::Metrics;

/// What changes in a packet for one receiver.
#[derive(Debug, Clone, Copy)]
pub struct OutPacket {
    pub ssrc: u32,
    pub pt: u8,
    pub seq: u16,
    pub ts: u32,
    /// Transport-wide sequence number.
    pub twcc: u16,
    /// The VP8 descriptor and its rewritten picture id / TL0PICIDX.
    pub vp8: Option<(salon_proto::vp8::Vp8Descriptor, vp8::Vp8Out)>,
    /// An RTX packet (RFC 4588): the original sequence number, written
    /// before the payload.
    pub osn: Option<u16>,
}

/// Write one rewritten RTP packet for a receiver into the send queue and
/// encrypt it there. Returns true when it was queued.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn send_rtp(
    tx: &mut TxQueue,
    metrics: &Metrics,
    ctx: &mut salon_srtp::SrtpContext,
    addr: SocketAddr,
    out: &OutPacket,
    hdr: &RtpHeader,
    audio_level: Option<u8>,
    payload: &[u8],
) -> bool {
    let Some(buf) = tx.buffer() else {
        metrics.drop_tx_full.inc();
        return false;
    };
    match write_rtp(buf, ctx, out, hdr, audio_level, payload) {
        Some(n) => {
            tx.commit(addr, n);
            metrics.tx_rtp.inc();
            true
        }
        None => false,
    }
}

/// Write one rewritten RTP packet into `buf` and encrypt it there;
/// returns its length (the caller queues or holds it).
#[inline]
pub fn write_rtp(
    buf: &mut [u8],
    ctx: &mut salon_srtp::SrtpContext,
    out: &OutPacket,
    hdr: &RtpHeader,
    audio_level: Option<u8>,
    payload: &[u8],
) -> Option<usize> {
    let fields = RtpFields {
        marker: hdr.marker,
        payload_type: out.pt,
        sequence: out.seq,
        timestamp: out.ts,
        ssrc: out.ssrc,
    };
    let twcc = out.twcc.to_be_bytes();
    let level = [audio_level.unwrap_or(0)];
    let both = [
        (OUT_EXT_TRANSPORT_CC, &twcc[..]),
        (OUT_EXT_AUDIO_LEVEL, &level[..]),
    ];
    let exts: &[(u8, &[u8])] = if audio_level.is_some() {
        &both
    } else {
        &both[..1]
    };
    let Ok(mut h) = rtp::write_header(&mut buf[..], &fields, exts) else {
        return None;
    };
    if let Some(osn) = out.osn {
        let o = buf.get_mut(h..h + 2)?;
        o.copy_from_slice(&osn.to_be_bytes());
        h += 2;
    }
    let end = h + payload.len();
    let dst = buf.get_mut(h..end)?;
    dst.copy_from_slice(payload);
    if let Some((d, m)) = &out.vp8 {
        let _ = salon_proto::vp8::set_picture_id(dst, d, m.picture_id);
        if let Some(t) = m.tl0picidx {
            let _ = salon_proto::vp8::set_tl0picidx(dst, d, t);
        }
    }
    ctx.protect_rtp(&mut buf[..], end).ok()
}

/// Send a packet now or hold it in the receiver's pacer until `slot`:
/// written and encrypted in the send queue's buffer either way, then
/// queued, or copied into the pacer (queued at once if it cannot hold it).
/// True when it went or is held.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn send_or_hold(
    tx: &mut TxQueue,
    metrics: &Metrics,
    t: &mut crate::core::transport::Transport,
    slot: crate::core::pacer::Slot,
    out: &OutPacket,
    hdr: &RtpHeader,
    audio_level: Option<u8>,
    payload: &[u8],
    now: std::time::Instant,
) -> bool {
    if slot == crate::core::pacer::Slot::FlushThenNow {
        metrics.pacer_full.add(t.flush_paced(tx, now) as u64);
    }
    let Some((addr, ctx)) = t.sender() else {
        return false;
    };
    let crate::core::pacer::Slot::Later(at) = slot else {
        return send_rtp(tx, metrics, ctx, addr, out, hdr, audio_level, payload);
    };
    let Some(buf) = tx.buffer() else {
        metrics.drop_tx_full.inc();
        return false;
    };
    let Some(n) = write_rtp(&mut buf[..], ctx, out, hdr, audio_level, payload) else {
        return false;
    };
    metrics.tx_rtp.inc();
    let held = buf
        .get(..n)
        .is_some_and(|b| t.hold_packet(at, addr, b, now));
    if held {
        metrics.paced.inc();
    } else {
        metrics.pacer_full.inc();
        tx.commit(addr, n);
    }
    true
}
