//! Ingress: SRTP and SRTCP from browsers. One prelude for both (the
//! latched, connected transport of the source; decryption in place once),
//! then RTP goes to its track — learning simulcast
//! SSRCs from the mid and rid header extensions — and RTCP to
//! [`super::rtcp`].

use std::net::SocketAddr;
use std::time::Instant;

use salon_io::TxQueue;
use salon_proto::rtp::{self, RtpHeader};

use super::Worker;
use super::ids::{LayerIdx, TransportId};
use super::track::Layer;
use super::transport::Route;

/// SRTP or SRTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Rtp,
    Rtcp,
}

impl Worker {
    /// The transport latched to `src`, if it is connected (counted drop
    /// otherwise).
    fn connected_transport(&mut self, src: SocketAddr) -> Option<TransportId> {
        let Some(idx) = self.ice.latched(src) else {
            self.metrics.drop_unlatched.inc();
            return None;
        };
        match self.transports.get(idx) {
            Some(t) if t.is_connected() => Some(idx),
            _ => {
                self.metrics.drop_not_connected.inc();
                None
            }
        }
    }

    /// The ingress prelude: find the connected transport of `src` and
    /// decrypt `data` in place. Returns it with the plaintext length.
    #[inline]
    fn unprotect(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        proto: Protocol,
    ) -> Option<(TransportId, usize)> {
        let idx = self.connected_transport(src)?;
        let t = self.transports.get_mut(idx)?;
        let ctx = t.srtp_in()?;
        let n = match proto {
            Protocol::Rtp => ctx.unprotect_rtp(data),
            Protocol::Rtcp => ctx.unprotect_rtcp(data),
        };
        let Ok(n) = n else {
            self.metrics.drop_srtp_auth.inc();
            return None;
        };
        match proto {
            Protocol::Rtp => self.metrics.rx_rtp.inc(),
            Protocol::Rtcp => self.metrics.rx_rtcp.inc(),
        }
        Some((idx, n))
    }

    /// One SRTP datagram.
    pub(super) fn handle_srtp(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some((idx, n)) = self.unprotect(src, data, Protocol::Rtp) else {
            return;
        };
        let Some(plain) = data.get(..n) else {
            return;
        };
        let Ok(hdr) = RtpHeader::parse(plain) else {
            self.metrics.drop_rtp_malformed.inc();
            return;
        };
        let at = now.saturating_duration_since(self.epoch).as_micros();
        let at = i64::try_from(at).unwrap_or(i64::MAX);
        let Some(t) = self.transports.get_mut(idx) else {
            return;
        };
        t.record_arrival(plain, &hdr, at, now);
        let mid_ext_id = t.mid_ext_id();
        let route = match t.route(hdr.ssrc) {
            Some(r) => Some(r),
            None => self.learn_ssrc(idx, plain, &hdr, mid_ext_id),
        };
        match route {
            Some(Route::Track(ti, li)) => {
                self.nack_gap(ti, li, hdr.sequence, now, tx);
                self.forward(ti, li, plain, &hdr, now, tx);
            }
            Some(Route::Rtx(ti, li)) => self.on_publisher_rtx(ti, li, plain, &hdr, now, tx),
            Some(Route::Out(_)) | None => self.metrics.drop_rtp_unknown_ssrc.inc(),
        }
    }

    /// One SRTCP datagram.
    pub(super) fn handle_srtcp(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some((idx, n)) = self.unprotect(src, data, Protocol::Rtcp) else {
            return;
        };
        let Some(kind) = self.transports.get(idx).map(|t| t.kind()) else {
            return;
        };
        let Some(plain) = data.get(..n) else {
            return;
        };
        self.on_rtcp(idx, kind, plain, now, tx);
    }

    /// An SSRC the SDP did not list: bind it, through the mid header
    /// extension, to a track of this transport and, through the rid (or
    /// repaired rid) extension, to one of its layers. A rid that was not
    /// negotiated binds nothing.
    fn learn_ssrc(
        &mut self,
        idx: TransportId,
        plain: &[u8],
        hdr: &RtpHeader,
        mid_ext_id: Option<u8>,
    ) -> Option<Route> {
        let ext = |id: Option<u8>| {
            let id = id?;
            rtp::extensions(plain, hdr)
                .find(|(i, _)| *i == id)
                .map(|(_, d)| d)
        };
        let mid = ext(mid_ext_id)?;
        let t = self.transports.get(idx)?;
        let p = self.participants.get(&t.participant())?;
        let ti = p.published.iter().copied().find(|&ti| {
            self.tracks
                .get(ti)
                .is_some_and(|tr| tr.mid.as_bytes() == mid)
        })?;
        let track = self.tracks.get_mut(ti)?;
        let is_rid = |l: &Layer, rid: &[u8]| l.rid.as_deref().map(str::as_bytes) == Some(rid);
        let route = if let Some(rrid) = ext(track.repaired_rid_ext_id) {
            let li = track.layers.iter().position(|l| is_rid(l, rrid))?;
            Route::Rtx(ti, LayerIdx::new(li))
        } else if let Some(rid) = ext(track.rid_ext_id) {
            let li = track
                .layers
                .iter()
                .position(|l| l.ssrc.is_none() && is_rid(l, rid))?;
            Route::Track(ti, LayerIdx::new(li))
        } else if let [only] = track.layers.as_slice()
            && only.rid.is_none()
            && only.ssrc.is_none()
        {
            Route::Track(ti, LayerIdx::BASE)
        } else {
            return None;
        };
        if let Route::Track(_, li) = route
            && let Some(layer) = track.layers.get_mut(li.index())
        {
            layer.ssrc = Some(hdr.ssrc);
        }
        if let Some(t) = self.transports.get_mut(idx) {
            t.add_route(hdr.ssrc, route);
        }
        Some(route)
    }
}
