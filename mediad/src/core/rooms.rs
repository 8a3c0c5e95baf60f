//! Room lifecycle on a worker: a participant joins (its two transports,
//! an m-line for everything already published), tracks go away, a
//! participant leaves; and each room's dominant speaker.

use std::time::Instant;

use rand::Rng as _;

use super::Worker;
use super::ids::TrackId;
use super::participant::Participant;
use super::track::Legs;
use crate::control::{ControlError, Event, MediaKind, ParticipantId, RoomId, TransportKind};

/// Recent speakers remembered per room (their cameras come next in the
/// allocation order).
const RECENT_SPEAKERS: usize = 8;

impl Worker {
    /// `pid` joins `room`.
    pub(super) fn join(&mut self, room: RoomId, pid: ParticipantId, now: Instant) {
        if self.participants.contains_key(&pid) {
            self.error(pid, None, ControlError::AlreadyJoined);
            return;
        }
        let publish = self.new_transport(pid, TransportKind::Publish, now);
        let subscribe = self.new_transport(pid, TransportKind::Subscribe, now);
        let session_id = self.rng.random::<u64>() >> 2;
        let mut p = Participant::new(room.clone(), publish, subscribe, session_id);
        // Everything already published in the room.
        let members = self.rooms.entry(room).or_default();
        let mut existing = Vec::new();
        for other in members.iter() {
            if let Some(o) = self.participants.get(other) {
                existing.extend(o.published.iter().copied());
            }
        }
        members.push(pid);
        for track in existing {
            self.add_line(&mut p, pid, track);
        }
        self.participants.insert(pid, p);
        self.maybe_offer(pid, now);
    }

    /// Stop forwarding track `ti`: its receivers' m-lines become inactive
    /// (they are re-offered), and its SSRCs leave the routes and the SRTP
    /// contexts.
    pub(super) fn remove_track(&mut self, ti: TrackId) {
        let Some(track) = self.tracks.remove(ti) else {
            return;
        };
        if let Some(t) = self.transports.get_mut(track.transport) {
            t.retain_routes(|_, route| {
                !matches!(route, super::transport::Route::Track(t, _)
                    | super::transport::Route::Rtx(t, _) if t == ti)
            });
            for ssrc in track.layers.iter().filter_map(|l| l.ssrc) {
                t.forget_ssrc_in(ssrc);
            }
        }
        // Each leg's streams (and a video leg's RTX stream) leave its
        // receiver's routes and SRTP context.
        let rtx: Vec<Option<u32>> = match &track.legs {
            Legs::Audio(a) => vec![None; a.len()],
            Legs::Video(v) => v.iter().map(|l| l.rtx.map(|r| r.0)).collect(),
        };
        for (leg, rtx) in track.legs.outs().zip(rtx) {
            if let Some(t) = self.transports.get_mut(leg.transport) {
                t.retain_routes(|s, _| s != leg.ssrc);
                t.forget_ssrc_out(leg.ssrc);
                if let Some(rtx) = rtx {
                    t.forget_ssrc_out(rtx);
                }
            }
            if let Some(rp) = self.participants.get_mut(&leg.receiver) {
                rp.sub.track_removed(ti);
            }
        }
        if let Some(p) = self.participants.get_mut(&track.publisher) {
            p.published.retain(|&x| x != ti);
        }
    }

    /// `pid` leaves: its tracks, its legs and its transports go.
    pub(super) fn leave(&mut self, pid: ParticipantId, now: Instant) {
        let Some(p) = self.participants.remove(&pid) else {
            return;
        };
        // Its tracks disappear from everyone's subscriptions.
        for &ti in &p.published {
            self.remove_track(ti);
        }
        // It stops receiving.
        for track in self.tracks.values_mut() {
            track.legs.remove_receiver(pid);
        }
        self.remove_transport(p.publish);
        self.remove_transport(p.subscribe);
        let mut members = Vec::new();
        if let Some(m) = self.rooms.get_mut(&p.room) {
            m.retain(|x| *x != pid);
            members = m.clone();
            if m.is_empty() {
                self.rooms.remove(&p.room);
                self.speakers.remove(&p.room);
            }
        }
        if let Some(d) = self.speakers.get_mut(&p.room) {
            d.remove(pid);
        }
        for other in members {
            self.maybe_offer(other, now);
        }
    }

    /// Reconsider each room's dominant speaker; tell the gateway of changes.
    pub(super) fn update_speakers(&mut self, now: Instant) {
        for (room, members) in &self.rooms {
            let scores = members.iter().filter_map(|pid| {
                let p = self.participants.get(pid)?;
                let best = p
                    .published
                    .iter()
                    .filter_map(|&ti| self.tracks.get(ti))
                    .filter(|t| t.kind == MediaKind::Audio && t.enabled)
                    .map(|t| t.speech.score_at(now))
                    .fold(0.0f32, f32::max);
                Some((*pid, best))
            });
            let dominant = self.speakers.entry(room.clone()).or_default();
            if let Some(participant) = dominant.update(scores, now) {
                let recent = self.recent.entry(room.clone()).or_default();
                recent.retain(|p| *p != participant);
                recent.insert(0, participant);
                recent.truncate(RECENT_SPEAKERS);
                self.events.push_back(Event::DominantSpeaker {
                    room: room.clone(),
                    participant,
                });
            }
        }
    }
}
