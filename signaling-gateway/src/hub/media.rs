//! The media plane: events from mediad routed to their participant's socket
//! (or the room), and the commands a member's own media requests become
//! (SDP, audio-only, screen share, video constraints, media settings).
//!
//! What a member's toggles cost others is bounded: `media-state` and
//! `screen` only record the member's latest wish ([`Wanted`]); the room
//! (and mediad, for a share) hears of it at most once per
//! `HubLimits::state_interval`, the latest state winning, so a flood of
//! toggles reaches each other member as a few messages and the final state
//! always arrives. `video-constraints` are coalesced the same way per
//! track on their way to mediad ([`Constraints`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use salon_plugins::{Identity, MediaLimits, Role};

use super::limits::{Pace, Pacer};
use super::timers::Timer;
use super::{Hub, Now, Output};
use crate::control::{Command, Event, ParticipantId, RequestId, RoomId};
use crate::protocol::{DisplayName, ErrorCode, ServerMessage, VideoConstraint};

/// The most video tracks one publisher sends (camera and screen share:
/// mediad's `PublishLimits::MEETING`); `video-constraints` hold at most
/// this many entries per other member of the room.
pub const MAX_VIDEO_TRACKS_PER_PUBLISHER: usize = 2;

/// A member's latest `media-state` and `screen`, as it asked; what the
/// room was told is `Member::{self_audio, self_video, screen_mid}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    pub(super) audio: bool,
    pub(super) video: bool,
    pub(super) screen: Option<String>,
}

impl Default for Wanted {
    /// As a member starts: microphone and camera on, no share.
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            screen: None,
        }
    }
}

/// A member's `video-constraints` not yet sent to mediad: the latest height
/// per track (publisher, mid).
#[derive(Debug, Default)]
pub(super) struct Constraints {
    pending: BTreeMap<(ParticipantId, String), Option<u16>>,
    pacer: Pacer,
}

impl Hub {
    /// An event from the media plane: route it to its participant's socket.
    pub fn handle_media_event(&mut self, event: Event) {
        if self.probe_event(&event) {
            return;
        }
        let (to, msg) = match event {
            Event::PublishAnswer {
                participant, sdp, ..
            } => (participant, ServerMessage::PublishAnswer { sdp }),
            Event::SubscribeOffer { participant, sdp } => {
                (participant, ServerMessage::SubscribeOffer { sdp })
            }
            Event::Connected {
                participant,
                transport,
            } => (
                participant,
                ServerMessage::Connected {
                    transport: transport.into(),
                },
            ),
            Event::Error {
                participant,
                request,
                error,
            } => {
                let room = self.room_of(participant).map(|r| r.0.clone());
                tracing::info!(%participant, room = room.as_deref().unwrap_or("-"), request = ?request, %error, "media plane refused a command");
                (
                    participant,
                    ServerMessage::Error {
                        code: ErrorCode::Media,
                        message: error.to_string(),
                    },
                )
            }
            Event::TrackPublished { participant, kind } => {
                tracing::debug!(%participant, ?kind, "track published");
                return;
            }
            Event::TransportLost {
                participant,
                transport,
            } => {
                // The browser closed the connection (a reload, a page
                // left) or its network went away (no consent checks for
                // 30 s); the signaling socket decides whether it left (and
                // its grace period whether it comes back: `reconnect`).
                tracing::info!(%participant, ?transport, "media transport lost (closed, or no consent)");
                return;
            }
            Event::LayersWanted {
                participant,
                mid,
                active,
            } => (participant, ServerMessage::LayersWanted { mid, active }),
            Event::DominantSpeaker { room, participant } => {
                // Only if that participant is still in that room.
                if self.room_of(participant) == Some(&room) {
                    self.broadcast(&room, &ServerMessage::DominantSpeaker { id: participant.0 });
                }
                return;
            }
            // `Event` is `#[non_exhaustive]` in mediad (another crate): an
            // event this gateway does not know is logged and dropped.
            #[allow(unreachable_patterns)]
            other => {
                tracing::debug!(?other, "media event not forwarded");
                return;
            }
        };
        // Only participants still in a room get media events: a late event
        // for someone who left (or a stranger id) is dropped.
        if self.member(to).is_some() {
            self.outputs.push_back(Output::Send { to, msg });
        } else {
            tracing::debug!(participant = %to, "media event for absent participant dropped");
        }
    }

    /// A fresh correlation id for a command to mediad.
    pub(super) fn next_request(&mut self) -> RequestId {
        let r = RequestId(self.next_request);
        self.next_request += 1;
        r
    }

    /// `publish-offer`: to mediad, with the sender's id and a fresh
    /// correlation id.
    pub(super) fn publish_offer(&mut self, id: ParticipantId, sdp: String) {
        let request = self.next_request();
        self.media(Command::PublishOffer {
            participant: id,
            request,
            sdp,
        });
    }

    /// `subscribe-answer`: to mediad, with the sender's id and a fresh
    /// correlation id.
    pub(super) fn subscribe_answer(&mut self, id: ParticipantId, sdp: String) {
        self.links.offer_answered(id);
        let request = self.next_request();
        self.media(Command::SubscribeAnswer {
            participant: id,
            request,
            sdp,
        });
    }

    /// `audio-only {on}`: recorded, and mediad stops (or resumes) video. A
    /// repeat of the current value reaches nobody.
    pub(super) fn set_audio_only(&mut self, id: ParticipantId, on: bool) {
        let Some(m) = self.member_mut(id) else {
            return;
        };
        if m.audio_only == on {
            return;
        }
        m.audio_only = on;
        self.media(Command::SetAudioOnly {
            participant: id,
            enabled: on,
        });
    }

    /// A newcomer's media settings: the room's last-N, the policy's receive
    /// cap for this participant (with its role).
    pub(super) fn send_media_settings(
        &mut self,
        id: ParticipantId,
        room: &RoomId,
        name: &DisplayName,
        identity: Option<&Arc<Identity>>,
        role: Role,
        last_n: Option<u32>,
    ) {
        if last_n.is_some() {
            self.media(Command::SetLastN {
                participant: id,
                last_n,
            });
        }
        let data = self.ctx_data(
            room,
            id,
            Some(name.as_str()),
            identity,
            Some(role),
            self.last_unix_s,
        );
        let limits = match &mut self.policy {
            Some(policy) => policy.media_limits(&data.ctx()),
            None => MediaLimits::default(),
        };
        if let Some(bps) = limits.max_receive_bps {
            self.media(Command::SetBitrateCap {
                participant: id,
                bps: Some(bps),
            });
        }
    }

    /// `screen {mid}`: recorded; the share is marked in mediad and
    /// announced to the room (newcomers learn it from `Hub::roster`) with
    /// the member's next state update.
    pub(super) fn screen(&mut self, id: ParticipantId, mid: Option<String>, now: Now) {
        let Some(m) = self.member_mut(id) else {
            return;
        };
        m.wanted.screen = mid;
        self.member_state_changed(id, now);
    }

    /// `media-state`: one's own mic/camera state, recorded; relayed to the
    /// others with the member's next state update.
    pub(super) fn media_state(&mut self, id: ParticipantId, audio: bool, video: bool, now: Now) {
        let Some(m) = self.member_mut(id) else {
            return;
        };
        m.wanted.audio = audio;
        m.wanted.video = video;
        self.member_state_changed(id, now);
    }

    /// Member `id`'s wished state changed: the room hears of it now or at
    /// the end of the interval.
    fn member_state_changed(&mut self, id: ParticipantId, now: Now) {
        let interval = self.limits.state_interval;
        let Some(m) = self.member_mut(id) else {
            return;
        };
        let announced = Wanted {
            audio: m.self_audio,
            video: m.self_video,
            screen: m.screen_mid.clone(),
        };
        if m.wanted == announced {
            return;
        }
        match m.state_pacer.change(now.mono, interval) {
            Pace::Now => self.send_member_state(id),
            Pace::At(at) => self.timers.set(at, Timer::MemberState(id)),
            Pace::Pending => {}
        }
    }

    /// Member `id`'s state update is due.
    pub(super) fn member_state_due(&mut self, id: ParticipantId, now: Now) {
        if self
            .member_mut(id)
            .is_some_and(|m| m.state_pacer.fire(now.mono))
        {
            self.send_member_state(id);
        }
    }

    /// Tells the room (and mediad, for a share) what changed between member
    /// `id`'s wished state and what the room was told.
    fn send_member_state(&mut self, id: ParticipantId) {
        let Some(m) = self.member_mut(id) else {
            return;
        };
        let Wanted {
            audio,
            video,
            screen,
        } = m.wanted.clone();
        let room = m.room.clone();
        let media_changed = m.self_audio != audio || m.self_video != video;
        m.self_audio = audio;
        m.self_video = video;
        if media_changed {
            self.broadcast_except(
                &room,
                &ServerMessage::MediaState {
                    id: id.0,
                    audio,
                    video,
                },
                Some(id),
            );
        }
        self.apply_screen(id, &room, screen);
    }

    /// Makes `mid` member `id`'s running share: mediad is told, the room
    /// gets `screen-share`.
    fn apply_screen(&mut self, id: ParticipantId, room: &RoomId, mid: Option<String>) {
        let Some(member) = self.member_mut(id) else {
            return;
        };
        if member.screen_mid == mid {
            return;
        }
        member.screen_mid.clone_from(&mid);
        // A new share after a moderator stopped one: forward it again.
        let resume = if mid.is_some() {
            member.screen_stopped.take()
        } else {
            None
        };
        let msg = ServerMessage::ScreenShare {
            id: id.0,
            track_id: mid.as_ref().map(|m| format!("{}-{m}", id.0)),
        };
        if let Some(old) = resume {
            self.media(Command::SetTrackForwarding {
                participant: id,
                mid: old,
                enabled: true,
            });
        }
        self.media(Command::SetScreenShare {
            participant: id,
            mid,
        });
        self.broadcast(room, &msg);
    }

    /// `video-constraints` → `SetReceiveConstraints`, for publishers of the
    /// sender's own room only; bad entries are reported, the others kept
    /// (the latest per track) and sent to mediad at most once per
    /// `HubLimits::constraints_interval`. At most
    /// [`MAX_VIDEO_TRACKS_PER_PUBLISHER`] tracks per other member are kept:
    /// entries for more are refused like bad ones.
    pub(super) fn video_constraints(
        &mut self,
        id: ParticipantId,
        constraints: Vec<VideoConstraint>,
        mut bad: usize,
        now: Now,
    ) {
        let Some(room) = self.room_of(id).cloned() else {
            return;
        };
        let others = self
            .rooms
            .get(&room)
            .map_or(0, |r| r.members.len().saturating_sub(1));
        let cap = others * MAX_VIDEO_TRACKS_PER_PUBLISHER;
        let mut accepted = Vec::with_capacity(constraints.len().min(cap));
        for c in constraints {
            let publisher = ParticipantId(c.publisher);
            let ok = publisher != id
                && self
                    .rooms
                    .get(&room)
                    .is_some_and(|r| r.members.contains(&publisher));
            if ok {
                accepted.push(((publisher, c.mid), c.max_height));
            } else {
                bad += 1;
            }
        }
        let interval = self.limits.constraints_interval;
        let Some(m) = self.member_mut(id) else {
            return;
        };
        let pending = &mut m.constraints.pending;
        for (track, height) in accepted {
            if pending.len() < cap || pending.contains_key(&track) {
                pending.insert(track, height);
            } else {
                bad += 1;
            }
        }
        let any = !pending.is_empty();
        if bad > 0 {
            self.refuse_with(
                id,
                ErrorCode::BadMessage,
                format!(
                    "{bad} video constraint(s) refused: unknown track id, bad height, or more tracks than the room has"
                ),
            );
        }
        if !any {
            return;
        }
        let Some(m) = self.member_mut(id) else {
            return;
        };
        match m.constraints.pacer.change(now.mono, interval) {
            Pace::Now => self.send_constraints(id),
            Pace::At(at) => self.timers.set(at, Timer::Constraints(id)),
            Pace::Pending => {}
        }
    }

    /// Member `id`'s coalesced video constraints are due.
    pub(super) fn constraints_due(&mut self, id: ParticipantId, now: Now) {
        if self
            .member_mut(id)
            .is_some_and(|m| m.constraints.pacer.fire(now.mono))
        {
            self.send_constraints(id);
        }
    }

    /// Sends member `id`'s pending constraints to mediad (one command per
    /// track: mediad's control interface has no batch form), for
    /// publishers still in its room.
    fn send_constraints(&mut self, id: ParticipantId) {
        let Some(m) = self.member_mut(id) else {
            return;
        };
        let pending = std::mem::take(&mut m.constraints.pending);
        let room = m.room.clone();
        for ((publisher, mid), max_height) in pending {
            let present = self
                .rooms
                .get(&room)
                .is_some_and(|r| r.members.contains(&publisher));
            if present {
                self.media(Command::SetReceiveConstraints {
                    participant: id,
                    publisher,
                    mid,
                    max_height,
                });
            }
        }
    }
}
