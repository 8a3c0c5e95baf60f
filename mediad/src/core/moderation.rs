//! What the gateway decides about a participant's media, carried out in
//! the media plane: moderation (stop one kind, stop one track, mark a
//! screen share) and the receiver's own choices (tile sizes, audio only,
//! last-N, the operator's cap).

use std::time::Instant;

use salon_io::TxQueue;

use super::Worker;
use super::ids::TrackId;
use crate::control::{ControlError, MediaKind, ParticipantId};

impl Worker {
    /// Stop or resume forwarding one kind of `pid`'s media.
    pub(super) fn set_forwarding(
        &mut self,
        pid: ParticipantId,
        kind: MediaKind,
        enabled: bool,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, None, ControlError::NotJoined);
            return;
        };
        match kind {
            MediaKind::Audio => p.forward_audio = enabled,
            MediaKind::Video => p.forward_video = enabled,
        }
        self.apply_forwarding(pid, now, tx);
    }

    /// Stop or resume forwarding one of `pid`'s tracks.
    pub(super) fn set_track_forwarding(
        &mut self,
        pid: ParticipantId,
        mid: &str,
        enabled: bool,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, None, ControlError::NotJoined);
            return;
        };
        p.blocked_mids.retain(|m| m != mid);
        if !enabled {
            p.blocked_mids.push(mid.to_owned());
        }
        self.apply_forwarding(pid, now, tx);
    }

    /// Which of `pid`'s tracks is a screen share.
    pub(super) fn set_screen_share(&mut self, pid: ParticipantId, mid: Option<String>) {
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, None, ControlError::NotJoined);
            return;
        };
        p.screen_mid = mid;
        let published = p.published.clone();
        let screen_mid = p.screen_mid.clone();
        for ti in published {
            if let Some(t) = self.tracks.get_mut(ti) {
                t.screen = screen_mid.as_deref() == Some(t.mid.as_str());
            }
        }
    }

    /// Brings each published track's forwarding in line with the
    /// participant's moderation state: a track turned off stops at once, a
    /// video track turned back on resumes at its next key frame.
    fn apply_forwarding(&mut self, pid: ParticipantId, now: Instant, tx: &mut TxQueue) {
        let Some(p) = self.participants.get(&pid) else {
            return;
        };
        let published = p.published.clone();
        for ti in published {
            let Some(p) = self.participants.get(&pid) else {
                return;
            };
            let Some(t) = self.tracks.get_mut(ti) else {
                continue;
            };
            let enabled = p.may_forward(t.kind, &t.mid);
            if t.enabled == enabled {
                continue;
            }
            t.enabled = enabled;
            match &mut t.legs {
                super::track::Legs::Audio(legs) => {
                    for leg in legs {
                        leg.out.seq.pause();
                    }
                }
                super::track::Legs::Video(legs) => {
                    for leg in legs {
                        leg.hold();
                    }
                }
            }
            if enabled && t.kind == MediaKind::Video {
                self.request_wanted_keyframes(ti, now, tx);
            }
        }
    }

    /// What `receiver` wants of `publisher`'s video `mid`: the largest
    /// height its tile shows.
    pub(super) fn set_receive_constraints(
        &mut self,
        receiver: ParticipantId,
        publisher: ParticipantId,
        mid: &str,
        max_height: Option<u16>,
        now: Instant,
    ) {
        let track: Option<TrackId> = self.participants.get(&publisher).and_then(|p| {
            p.published.iter().copied().find(|&ti| {
                self.tracks
                    .get(ti)
                    .is_some_and(|t| t.mid == mid && t.kind == MediaKind::Video)
            })
        });
        let Some(ti) = track else {
            self.error(receiver, None, ControlError::NoSuchTrack);
            return;
        };
        let Some(t) = self.tracks.get_mut(ti) else {
            return;
        };
        let Some(leg) = t
            .legs
            .video_mut()
            .iter_mut()
            .find(|l| l.out.receiver == receiver)
        else {
            self.error(receiver, None, ControlError::NoSuchTrack);
            return;
        };
        leg.max_height = max_height;
        // At the next allocation round (at once): a storm of constraints
        // costs one round over the receivers concerned, not one per
        // message.
        self.allocate_soon(receiver, now);
    }

    /// Audio-only mode for `receiver`: no video bytes at all.
    pub(super) fn set_audio_only(
        &mut self,
        receiver: ParticipantId,
        enabled: bool,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(p) = self.participants.get_mut(&receiver) else {
            self.error(receiver, None, ControlError::NotJoined);
            return;
        };
        if p.audio_only == enabled {
            return;
        }
        p.audio_only = enabled;
        let mut resumed = Vec::new();
        for (ti, t) in self.tracks.iter_mut() {
            for leg in t
                .legs
                .video_mut()
                .iter_mut()
                .filter(|l| l.out.receiver == receiver)
            {
                leg.paused = enabled;
                if !enabled {
                    // Resume at a key frame, numbering after the last packet sent.
                    leg.hold();
                    resumed.push(ti);
                }
            }
        }
        for ti in resumed {
            self.request_wanted_keyframes(ti, now, tx);
        }
    }

    /// Last-N for `receiver`.
    pub(super) fn set_last_n(
        &mut self,
        receiver: ParticipantId,
        last_n: Option<u32>,
        now: Instant,
    ) {
        self.set_receiving(receiver, now, |p| p.last_n = last_n);
    }

    /// The operator's cap on what `receiver` gets.
    pub(super) fn set_bitrate_cap(
        &mut self,
        receiver: ParticipantId,
        bps: Option<u64>,
        now: Instant,
    ) {
        self.set_receiving(receiver, now, |p| p.cap_bps = bps);
    }

    /// Change what `receiver` should get; the next allocation round
    /// (at once) applies it.
    fn set_receiving(
        &mut self,
        receiver: ParticipantId,
        now: Instant,
        change: impl FnOnce(&mut super::participant::Participant),
    ) {
        match self.participants.get_mut(&receiver) {
            Some(p) => {
                change(p);
                self.allocate_soon(receiver, now);
            }
            None => self.error(receiver, None, ControlError::NotJoined),
        }
    }
}
