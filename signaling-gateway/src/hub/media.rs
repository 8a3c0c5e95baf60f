//! The media plane: events from mediad routed to their participant's socket
//! (or the room), and the commands a member's own media requests become
//! (SDP, audio-only, screen share, video constraints, media settings).

use std::sync::Arc;

use salon_plugins::{Identity, MediaLimits, Role};

use super::{Hub, Output};
use crate::control::{Command, Event, ParticipantId, RequestId, RoomId};
use crate::protocol::{DisplayName, ErrorCode, ServerMessage, VideoConstraint};

impl Hub {
    /// An event from the media plane: route it to its participant's socket.
    pub fn handle_media_event(&mut self, event: Event) {
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
                // The browser's network went away (no consent checks for
                // 30 s); the signaling socket decides whether it left (and
                // its grace period whether it comes back: `reconnect`).
                tracing::info!(%participant, ?transport, "media transport lost (no consent)");
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
    fn next_request(&mut self) -> RequestId {
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
        let request = self.next_request();
        self.media(Command::SubscribeAnswer {
            participant: id,
            request,
            sdp,
        });
    }

    /// `audio-only {on}`: recorded, and mediad stops (or resumes) video.
    pub(super) fn set_audio_only(&mut self, id: ParticipantId, on: bool) {
        if let Some(m) = self.member_mut(id) {
            m.audio_only = on;
        }
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

    /// `screen {mid}`: the share is marked in mediad and announced to the
    /// room (newcomers learn it from `Hub::roster`).
    pub(super) fn screen(&mut self, id: ParticipantId, mid: Option<String>) {
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
        let room = member.room.clone();
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
        self.broadcast(&room, &msg);
    }

    /// `media-state`: one's own mic/camera state, relayed to the others.
    pub(super) fn media_state(&mut self, id: ParticipantId, audio: bool, video: bool) {
        let Some(m) = self.member_mut(id) else {
            return;
        };
        if m.self_audio == audio && m.self_video == video {
            return;
        }
        m.self_audio = audio;
        m.self_video = video;
        let room = m.room.clone();
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

    /// `video-constraints` → `SetReceiveConstraints`, for publishers of the
    /// sender's own room only; bad entries are reported, the others applied.
    pub(super) fn video_constraints(
        &mut self,
        id: ParticipantId,
        constraints: Vec<VideoConstraint>,
        mut bad: usize,
    ) {
        let Some(room) = self.room_of(id).cloned() else {
            return;
        };
        for c in constraints {
            let publisher = ParticipantId(c.publisher);
            let ok = publisher != id
                && self
                    .rooms
                    .get(&room)
                    .is_some_and(|r| r.members.contains(&publisher));
            if !ok {
                bad += 1;
                continue;
            }
            self.media(Command::SetReceiveConstraints {
                participant: id,
                publisher,
                mid: c.mid,
                max_height: c.max_height,
            });
        }
        if bad > 0 {
            self.refuse_with(
                id,
                ErrorCode::BadMessage,
                format!("{bad} video constraint(s) refused: unknown track id or bad height"),
            );
        }
    }
}
