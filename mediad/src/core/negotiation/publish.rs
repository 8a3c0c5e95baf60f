//! The publish side: answer a browser's offer (ICE-lite, passive DTLS,
//! the codecs and simulcast rids mediad forwards), add the tracks it
//! brings, drop those it stopped, and offer the new ones to the room.

use std::time::Instant;

use salon_sdp::{AcceptedMedia, SessionDescription};

use crate::control::{ControlError, Event, MediaKind, ParticipantId, RequestId, RoomId};
use crate::core::ids::{LayerIdx, TrackId, TransportId};
use crate::core::keyframe::KeyframeRequests;
use crate::core::rtx_cache::RtxCache;
use crate::core::sent_log::SentLog;
use crate::core::track::{InTrack, Layer, Legs};
use crate::core::transport::{RemoteFingerprint, Route};
use crate::core::{MAX_LAYERS, Worker, speaker};

/// A track the answer accepted that was not published before.
struct NewTrack {
    id: TrackId,
    kind: MediaKind,
    mid_ext_id: Option<u8>,
}

impl Worker {
    /// The browser's offer for `pid`'s publish transport.
    pub(in crate::core) fn publish_offer(
        &mut self,
        pid: ParticipantId,
        request: RequestId,
        sdp: &str,
        now: Instant,
    ) {
        let limits = self.cfg.limits;
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, Some(request), ControlError::NotJoined);
            return;
        };
        // Parsed on the media thread: a real browser's size, at a real
        // browser's rate.
        if sdp.len() > limits.max_offer_bytes {
            self.metrics.offers_too_large.inc();
            tracing::info!(participant = %pid, bytes = sdp.len(), "publish offer too large; refused");
            self.error(
                pid,
                Some(request),
                ControlError::OfferTooLarge(limits.max_offer_bytes),
            );
            return;
        }
        if !p.offers.take(limits.offer_rate, now) {
            self.metrics.offers_rate_limited.inc();
            tracing::info!(participant = %pid, "publish offers too fast; refused");
            self.error(pid, Some(request), ControlError::TooManyOffers);
            return;
        }
        let (publish, session_id, room) = (p.publish, p.sub.session_id(), p.room.clone());
        let offer = match salon_sdp::parse(sdp) {
            Ok(o) => o,
            Err(e) => {
                self.error(
                    pid,
                    Some(request),
                    ControlError::InvalidOffer(e.to_string()),
                );
                return;
            }
        };
        let make_answer = |w: &Self| {
            let local = w.local_transport(publish, 1, session_id)?;
            Some(
                salon_sdp::answer_publish_limited(
                    &offer,
                    &local,
                    salon_sdp::PublishLimits::MEETING,
                )
                .map_err(|e| ControlError::OfferNotAcceptable(e.to_string())),
            )
        };
        let answer = match make_answer(self) {
            Some(Ok(a)) => a,
            Some(Err(e)) => {
                self.error(pid, Some(request), e);
                return;
            }
            None => return,
        };
        let cost = self.publish_cost(pid, &room, &answer.accepted);
        if !self.memory.fits(cost) {
            self.metrics.publish_over_budget.inc();
            tracing::warn!(
                participant = %pid,
                cost,
                used = self.memory.used(),
                budget = self.memory.limit(),
                "publish refused: over the worker's memory budget"
            );
            self.error(pid, Some(request), ControlError::OverCapacity);
            return;
        }
        let answer = match self.set_publish_remote(publish, &offer) {
            Err(e) => {
                self.error(pid, Some(request), e);
                return;
            }
            Ok(false) => answer,
            // An ICE restart: the answer carries our new credentials.
            Ok(true) => match make_answer(self) {
                Some(Ok(a)) => a,
                Some(Err(e)) => {
                    self.error(pid, Some(request), e);
                    return;
                }
                None => return,
            },
        };
        self.drop_stopped_tracks(pid, &answer.accepted);
        let new_tracks = self.add_offered_tracks(pid, publish, &answer.accepted);
        // One transport-wide sequence space per transport (BUNDLE): the id
        // from whichever m-line negotiated it.
        let twcc_id = answer.accepted.iter().find_map(|m| m.extmap.transport_cc);
        if let Some(t) = self.transports.get_mut(publish) {
            t.set_twcc_ext_id(twcc_id);
        }
        if let Some(p) = self.participants.get_mut(&pid) {
            p.published.extend(new_tracks.iter().map(|t| t.id));
            if let Some(t) = self.transports.get_mut(publish)
                && let Some(NewTrack {
                    mid_ext_id: Some(id),
                    ..
                }) = new_tracks.first()
            {
                t.set_mid_ext_id(Some(*id));
            }
        }
        self.events.push_back(Event::PublishAnswer {
            participant: pid,
            request,
            sdp: answer.sdp,
        });
        for t in &new_tracks {
            self.events.push_back(Event::TrackPublished {
                participant: pid,
                kind: t.kind,
            });
        }
        // Offer the new tracks to everyone else in the room.
        let members: Vec<ParticipantId> = self.rooms.get(&room).cloned().unwrap_or_default();
        for other in members.into_iter().filter(|o| *o != pid) {
            if let Some(mut op) = self.participants.remove(&other) {
                for t in &new_tracks {
                    self.add_line(&mut op, other, t.id);
                }
                self.participants.insert(other, op);
                self.maybe_offer(other, now);
            }
        }
    }

    /// What the new tracks of an accepted offer may come to hold of the
    /// memory budget: a retransmission cache per video layer (allocated at
    /// its first packet) and a sent log per receiver of each video.
    fn publish_cost(&self, pid: ParticipantId, room: &RoomId, accepted: &[AcceptedMedia]) -> u64 {
        let receivers = self
            .rooms
            .get(room)
            .map_or(0, |m| m.len().saturating_sub(1)) as u64;
        accepted
            .iter()
            .filter(|m| m.receiving && m.kind == salon_sdp::MediaKind::Video)
            .filter(|m| !self.publishes_mid(pid, &m.mid))
            .map(|m| {
                let layers = m.rids.len().clamp(1, MAX_LAYERS) as u64;
                (layers * RtxCache::BYTES).saturating_add(receivers.saturating_mul(SentLog::BYTES))
            })
            .fold(0u64, u64::saturating_add)
    }

    /// Whether `pid` publishes a track on m-line `mid`.
    fn publishes_mid(&self, pid: ParticipantId, mid: &str) -> bool {
        self.participants.get(&pid).is_some_and(|p| {
            p.published
                .iter()
                .any(|&i| self.tracks.get(i).is_some_and(|t| t.mid == mid))
        })
    }

    /// The offer's ICE credentials and fingerprint onto the publish
    /// transport. New credentials from the browser are an ICE restart: ours
    /// change too (the answer carries them). A new certificate on a
    /// transport that has one is a new connection, refused.
    fn set_publish_remote(
        &mut self,
        publish: TransportId,
        offer: &SessionDescription,
    ) -> Result<bool, ControlError> {
        let fingerprint = RemoteFingerprint {
            algorithm: offer.fingerprint.algorithm.to_ascii_lowercase(),
            bytes: offer.fingerprint.bytes.clone(),
        };
        let Some(t) = self.transports.get(publish) else {
            return Ok(false);
        };
        if t.remote_fingerprint().is_some_and(|f| *f != fingerprint) {
            return Err(ControlError::CertificateChanged);
        }
        let restart = t
            .remote_ufrag()
            .is_some_and(|u| u != offer.ice_ufrag.as_str());
        if restart {
            self.restart_ice(publish);
        }
        if let Some(t) = self.transports.get_mut(publish) {
            let _ = t.set_remote(offer.ice_ufrag.clone(), fingerprint);
        }
        Ok(restart)
    }

    /// Tracks whose m-line the browser stopped or rejected go away.
    fn drop_stopped_tracks(&mut self, pid: ParticipantId, accepted: &[AcceptedMedia]) {
        let stale: Vec<TrackId> = self
            .participants
            .get(&pid)
            .map(|p| {
                p.published
                    .iter()
                    .copied()
                    .filter(|&ti| {
                        self.tracks.get(ti).is_some_and(|t| {
                            !accepted.iter().any(|m| m.receiving && m.mid == t.mid)
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        for ti in stale {
            self.remove_track(ti);
        }
    }

    /// A track for each receiving m-line not published yet.
    fn add_offered_tracks(
        &mut self,
        pid: ParticipantId,
        publish: TransportId,
        accepted: &[AcceptedMedia],
    ) -> Vec<NewTrack> {
        let mut new_tracks = Vec::new();
        for m in accepted.iter().filter(|m| m.receiving) {
            if self.publishes_mid(pid, &m.mid) {
                continue;
            }
            let (track, ssrc, rtx_ssrc) = self.new_track(pid, publish, m);
            let kind = track.kind;
            let id = self.tracks.insert(track);
            if let Some(t) = self.transports.get_mut(publish) {
                if let Some(s) = ssrc {
                    t.add_route(s, Route::Track(id, LayerIdx::BASE));
                }
                if let Some(s) = rtx_ssrc {
                    t.add_route(s, Route::Rtx(id, LayerIdx::BASE));
                }
            }
            new_tracks.push(NewTrack {
                id,
                kind,
                mid_ext_id: m.extmap.mid,
            });
        }
        new_tracks
    }

    /// The track for accepted m-line `m`, with the SSRC and RTX SSRC the
    /// SDP lists (without simulcast; with it they are learnt from the rid
    /// header extension).
    fn new_track(
        &self,
        pid: ParticipantId,
        publish: TransportId,
        m: &AcceptedMedia,
    ) -> (InTrack, Option<u32>, Option<u32>) {
        let kind = match m.kind {
            salon_sdp::MediaKind::Audio => MediaKind::Audio,
            salon_sdp::MediaKind::Video => MediaKind::Video,
        };
        let ssrc = if m.rids.is_empty() {
            m.ssrcs.first().copied()
        } else {
            None
        };
        let rtx_ssrc = ssrc.and_then(|primary| {
            m.ssrc_groups
                .iter()
                .find(|g| g.semantics == "FID" && g.ssrcs.first() == Some(&primary))
                .and_then(|g| g.ssrcs.get(1).copied())
        });
        let layers: Vec<Layer> = if m.rids.is_empty() {
            vec![Layer::new(kind, None, ssrc)]
        } else {
            m.rids
                .iter()
                .take(MAX_LAYERS)
                .map(|r| Layer::new(kind, Some(r.clone()), None))
                .collect()
        };
        let p = self.participants.get(&pid);
        let track = InTrack {
            publisher: pid,
            transport: publish,
            kind,
            mid: m.mid.clone(),
            keyframes: KeyframeRequests::new(layers.len()),
            layers,
            audio_level_id: m.extmap.audio_level,
            rid_ext_id: m.extmap.rtp_stream_id,
            repaired_rid_ext_id: m.extmap.repaired_rtp_stream_id,
            legs: Legs::for_kind(kind),
            enabled: p.is_none_or(|p| p.may_forward(kind, &m.mid)),
            screen: p.is_some_and(|p| p.screen_mid.as_deref() == Some(m.mid.as_str())),
            speech: speaker::SpeechActivity::default(),
            wanted_sent: None,
        };
        (track, ssrc, rtx_ssrc)
    }
}
