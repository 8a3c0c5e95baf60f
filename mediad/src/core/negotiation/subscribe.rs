//! The subscribe side, as the worker drives it: give a receiver an m-line
//! and a leg for each remote track, offer when the set changes, and make
//! the legs live when the browser answers.

use std::time::Instant;

use rand::Rng as _;
use salon_io::TxQueue;

use super::NewLine;
use crate::control::{ControlError, Event, MediaKind, ParticipantId, RequestId};
use crate::core::forward::{AudioLeg, LayerSelector, LegOut, VideoLeg};
use crate::core::ids::{LayerIdx, TrackId};
use crate::core::participant::Participant;
use crate::core::track::Legs;
use crate::core::transport::{DtlsProgress, RemoteFingerprint, Route};
use crate::core::{OUT_PT_OPUS, OUT_PT_VP8, Worker, select};

impl Worker {
    /// Give participant `p` (id `pid`) an m-line for `track` and a leg on it.
    pub(in crate::core) fn add_line(
        &mut self,
        p: &mut Participant,
        pid: ParticipantId,
        track_idx: TrackId,
    ) {
        let Some(track) = self.tracks.get_mut(track_idx) else {
            return;
        };
        // A random SSRC no line of this receiver uses (nor `also`).
        let mut fresh = |also: u32| loop {
            let s = self.rng.random::<u32>();
            if s != 0 && s != also && !p.sub.uses_ssrc(s) {
                break s;
            }
        };
        let ssrc = fresh(0);
        let rtx_ssrc = (track.kind == MediaKind::Video).then(|| fresh(ssrc));
        let pt = match track.kind {
            MediaKind::Audio => OUT_PT_OPUS,
            MediaKind::Video => OUT_PT_VP8,
        };
        let reused = p.sub.add_line(NewLine {
            track: track_idx,
            kind: track.kind,
            ssrc,
            rtx_ssrc,
            stream_id: track.publisher.0.to_string(),
            track_id: format!("{}-{}", track.publisher.0, track.mid),
        });
        if reused {
            self.metrics.lines_recycled.inc();
        }
        let first_seq = self.rng.random::<u16>() & 0x7fff;
        let out = LegOut::new(pid, p.subscribe, ssrc, pt, first_seq);
        match &mut track.legs {
            Legs::Audio(legs) => legs.push(AudioLeg::new(out)),
            Legs::Video(legs) => {
                let target = LayerIdx::new(select::initial_layer(track.layers.len()));
                legs.push(VideoLeg::new(out, LayerSelector::new(target), p.audio_only));
            }
        }
        if let Some(t) = self.transports.get_mut(p.subscribe) {
            t.add_route(ssrc, Route::Out(track_idx));
        }
    }

    /// Offer `pid` its subscribe m-lines if they changed and no offer is
    /// out.
    pub(in crate::core) fn maybe_offer(&mut self, pid: ParticipantId, now: Instant) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        let Some((version, tracks)) = p.sub.poll_offer(now) else {
            return;
        };
        let (sub, session_id) = (p.subscribe, p.sub.session_id());
        let Some(local) = self.local_transport(sub, version, session_id) else {
            return;
        };
        let sdp = match salon_sdp::offer_subscribe(&tracks, &local) {
            Ok(sdp) => sdp,
            Err(e) => {
                tracing::error!(error = %e, "cannot write a subscribe offer");
                return;
            }
        };
        self.events.push_back(Event::SubscribeOffer {
            participant: pid,
            sdp,
        });
    }

    /// The browser's answer to `pid`'s outstanding subscribe offer.
    pub(in crate::core) fn subscribe_answer(
        &mut self,
        pid: ParticipantId,
        request: RequestId,
        sdp: &str,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let limits = self.cfg.limits;
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, Some(request), ControlError::NotJoined);
            return;
        };
        let answered = p
            .sub
            .parse_answer(sdp, &limits)
            .and_then(|a| p.sub.on_answer(&a).map(|lines| (a, lines)));
        let (answer, lines) = match answered {
            Ok(x) => x,
            Err(ControlError::NoOfferPending) => {
                self.error(pid, Some(request), ControlError::NoOfferPending);
                return;
            }
            Err(e) => {
                if matches!(e, ControlError::AnswerTooLarge(_)) {
                    self.metrics.offers_too_large.inc();
                }
                // Never wedge: forget the offer and send a fresh one.
                tracing::info!(participant = %pid, error = %e, "subscribe answer refused; offering again");
                self.metrics.negotiation_failed.inc();
                p.sub.refuse(now);
                self.error(pid, Some(request), e);
                self.maybe_offer(pid, now);
                return;
            }
        };
        let sub = p.subscribe;
        let mut progress = DtlsProgress::None;
        if let Some(t) = self.transports.get_mut(sub) {
            progress = t.set_remote(
                answer.ice_ufrag.clone(),
                RemoteFingerprint {
                    algorithm: answer.fingerprint.algorithm.to_ascii_lowercase(),
                    bytes: answer.fingerprint.bytes.clone(),
                },
            );
        }
        for (ti, rtx) in lines {
            self.make_live(ti, pid, rtx);
        }
        self.after_progress(sub, progress, now, tx);
        // Newly answered legs on an already connected transport need a key frame.
        if progress == DtlsProgress::None
            && self.transports.get(sub).is_some_and(|t| t.is_connected())
        {
            self.request_keyframes_for(pid, now, tx);
        }
        self.maybe_offer(pid, now);
    }

    /// An ICE restart of `pid`'s subscribe transport: new credentials,
    /// offered at once (or after the outstanding offer's answer).
    pub(in crate::core) fn restart_subscribe_ice(&mut self, pid: ParticipantId, now: Instant) {
        let Some(sub) = self.participants.get(&pid).map(|p| p.subscribe) else {
            self.error(pid, None, ControlError::NotJoined);
            return;
        };
        self.restart_ice(sub);
        if let Some(p) = self.participants.get_mut(&pid) {
            p.sub.renegotiate();
        }
        self.maybe_offer(pid, now);
    }

    /// Offers unanswered for too long: offered again.
    pub(in crate::core) fn expire_offers(&mut self, now: Instant) {
        let expired: Vec<ParticipantId> = self
            .participants
            .iter_mut()
            .filter_map(|(pid, p)| p.sub.expire(now).then_some(*pid))
            .collect();
        for pid in expired {
            tracing::info!(participant = %pid, "subscribe offer unanswered; offering again");
            self.metrics.offer_timeouts.inc();
            self.maybe_offer(pid, now);
        }
        // Fresh offers held back after refused answers.
        let held: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter_map(|(pid, p)| p.sub.hold_over(now).then_some(*pid))
            .collect();
        for pid in held {
            self.maybe_offer(pid, now);
        }
    }

    /// `receiver`'s legs of track `ti` were answered: live, with RTX on
    /// `rtx` if the answer kept it.
    fn make_live(&mut self, ti: TrackId, receiver: ParticipantId, rtx: Option<u32>) {
        let Some(track) = self.tracks.get_mut(ti) else {
            return;
        };
        match &mut track.legs {
            Legs::Audio(legs) => {
                for leg in legs.iter_mut().filter(|l| l.out.receiver == receiver) {
                    leg.out.live = true;
                }
            }
            Legs::Video(legs) => {
                for leg in legs.iter_mut().filter(|l| l.out.receiver == receiver) {
                    leg.out.live = true;
                    match (rtx, leg.rtx) {
                        (Some(ssrc), Some((on, _))) if ssrc == on => {}
                        (Some(ssrc), _) => {
                            leg.rtx = Some((ssrc, self.rng.random::<u16>() & 0x7fff))
                        }
                        (None, _) => leg.rtx = None,
                    }
                }
            }
        }
    }
}
