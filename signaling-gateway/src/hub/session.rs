//! One socket's session: idle, waiting in a lobby, in a room, or left.
//! `join` checks the token, the bans and the policy, then puts the session
//! in its room ([`Hub::admit`]) or its lobby; leaving a room turns it back
//! into an idle session.

use std::sync::Arc;

use salon_plugins::{FAIL_CLOSED_REASON, Identity, JoinDecision, Role, Verdict};

use super::bans::{PeerKey, Until, check_keys};
use super::chat::Bucket;
use super::gestures::GestureBuckets;
use super::limits::Pacer;
use super::lobby::Waiting;
use super::media::{Constraints, Wanted};
use super::{Hub, Now, Output, PadConnId};
use crate::control::{Command, ParticipantId, RoomId};
use crate::protocol::{DisplayName, ErrorCode, JoinToken, ServerMessage, name_from_token};

#[derive(Debug)]
pub(super) enum SessionState {
    /// Socket open, not in a room (may `join`).
    Idle,
    /// In a room's lobby.
    Waiting(Box<Waiting>),
    /// In a room.
    Joined(Box<Member>),
    /// Sent `leave`; the socket may stay open but cannot join again.
    Left,
}

impl SessionState {
    pub(super) fn member(&self) -> Option<&Member> {
        match self {
            Self::Joined(m) => Some(m),
            Self::Idle | Self::Waiting(_) | Self::Left => None,
        }
    }

    pub(super) fn member_mut(&mut self) -> Option<&mut Member> {
        match self {
            Self::Joined(m) => Some(m),
            Self::Idle | Self::Waiting(_) | Self::Left => None,
        }
    }

    pub(super) fn waiting(&self) -> Option<&Waiting> {
        match self {
            Self::Waiting(w) => Some(w),
            Self::Idle | Self::Joined(_) | Self::Left => None,
        }
    }

    pub(super) fn waiting_mut(&mut self) -> Option<&mut Waiting> {
        match self {
            Self::Waiting(w) => Some(w),
            Self::Idle | Self::Joined(_) | Self::Left => None,
        }
    }
}

/// What the bans of a room say of someone who joins or knocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BanCheck {
    /// Not banned.
    Clear,
    /// Banned until the room ends: refused (`banned` was sent).
    Refused,
    /// Kicked less than the kick ban ago: may wait in the lobby, and enters
    /// only when a moderator admits it (the policy is not asked).
    Held,
}

/// A session in a room.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) room: RoomId,
    pub(super) name: DisplayName,
    pub(super) role: Role,
    pub(super) identity: Option<Arc<Identity>>,
    pub(super) pad_token: String,
    pub(super) pad_conn: Option<PadConnId>,
    pub(super) screen_mid: Option<String>,
    pub(super) audio_only: bool,
    pub(super) chat: Bucket,
    /// Audio forwarding stopped by a moderator.
    pub(super) audio_muted: bool,
    /// Camera forwarding stopped by a moderator.
    pub(super) video_stopped: bool,
    /// The screen-share mid whose forwarding a moderator stopped.
    pub(super) screen_stopped: Option<String>,
    /// Own mic/camera state (`media-state`, display only) as the room was
    /// last told.
    pub(super) self_audio: bool,
    pub(super) self_video: bool,
    /// The network address it joined from (bans of anonymous guests).
    pub(super) peer: Option<PeerKey>,
    /// Its latest `media-state` and `screen`, not yet told to the room.
    pub(super) wanted: Wanted,
    /// Paces what the room is told of `wanted`.
    pub(super) state_pacer: Pacer,
    /// Its `video-constraints`, coalesced on their way to mediad.
    pub(super) constraints: Constraints,
    /// When its TURN credentials are refreshed next (`None`: no TURN).
    pub(super) turn_refresh_at: Option<std::time::Instant>,
    /// Its hand toggles and reactions, rate-limited.
    pub(super) gestures: GestureBuckets,
}

impl Hub {
    pub(super) fn member(&self, id: ParticipantId) -> Option<&Member> {
        self.sessions.get(&id).and_then(SessionState::member)
    }

    pub(super) fn member_mut(&mut self, id: ParticipantId) -> Option<&mut Member> {
        self.sessions
            .get_mut(&id)
            .and_then(SessionState::member_mut)
    }

    pub(super) fn room_of(&self, id: ParticipantId) -> Option<&RoomId> {
        self.member(id).map(|m| &m.room)
    }

    /// `join`: token, bans, then the policy (`on_join`, `on_room_create`).
    pub(super) fn join(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        jwt: Option<JoinToken>,
        lobby_token: Option<String>,
        now: Now,
    ) {
        let now_s = now.unix_ms / 1000;
        let Ok(identity) = self.verify_token(id, &room, jwt, now_s) else {
            return;
        };
        // A token holder is shown under the token's name, whatever it typed.
        let name = identity
            .as_ref()
            .and_then(|i| i.name.as_deref())
            .and_then(name_from_token)
            .unwrap_or(name);
        let peer = self.peers.get(&id).copied();
        let ban = self.ban_check(&room, id, identity.as_deref(), peer, now);
        if ban == BanCheck::Refused {
            return;
        }
        // A reload (or a new socket) of a guest still waiting in the lobby,
        // within the grace period: the same place in the queue.
        if self.lobby_resume(id, &room, identity.as_deref(), lobby_token.as_deref(), now) {
            return;
        }
        if ban == BanCheck::Held {
            // Kicked a moment ago: back only through a moderator's admit.
            self.enter_lobby(id, room, name, identity, peer, lobby_token.as_deref(), now);
            return;
        }
        let data = self.ctx_data(
            &room,
            id,
            Some(name.as_str()),
            identity.as_ref(),
            None,
            now_s,
        );
        let decision = match &mut self.policy {
            Some(policy) => policy.on_join(&data.ctx()),
            // The open rules: the first one in moderates.
            None => JoinDecision::Allow {
                role: if data.exists {
                    Role::Participant
                } else {
                    Role::Moderator
                },
            },
        };
        match decision {
            JoinDecision::Allow { role } => {
                if data.locked && role != Role::Moderator {
                    self.refuse(id, ErrorCode::RoomLocked);
                    return;
                }
                if !data.exists
                    && let Some(policy) = &mut self.policy
                    && let Verdict::Deny { reason } = policy.on_room_create(&data.ctx())
                {
                    self.refuse_with(id, ErrorCode::Denied, reason);
                    return;
                }
                self.admit(id, room, name, identity, peer, role, now);
            }
            JoinDecision::Lobby => {
                self.enter_lobby(id, room, name, identity, peer, lobby_token.as_deref(), now)
            }
            JoinDecision::Deny { reason } => self.refuse_with(id, ErrorCode::Denied, reason),
            // `JoinDecision` is `#[non_exhaustive]` in salon-plugins: an
            // outcome this gateway does not know refuses (fail closed).
            _ => self.refuse_with(id, ErrorCode::Denied, FAIL_CLOSED_REASON),
        }
    }

    /// The identity of a `join` token (`Ok(None)`: no token). A refused
    /// token is answered with `auth-failed` and gives `Err(())`.
    fn verify_token(
        &mut self,
        id: ParticipantId,
        room: &RoomId,
        jwt: Option<JoinToken>,
        now_s: u64,
    ) -> Result<Option<Arc<Identity>>, ()> {
        let token = match jwt {
            None => return Ok(None),
            // Checked by the socket's task, for this room.
            Some(JoinToken::Verified(identity)) => return Ok(Some(identity)),
            Some(JoinToken::Raw(token)) => token,
        };
        let Some(auth) = &self.auth else {
            self.refuse_with(id, ErrorCode::AuthFailed, "this server accepts no tokens");
            return Err(());
        };
        match auth.verify(&token, &room.0, now_s) {
            Ok(identity) => Ok(Some(Arc::new(identity))),
            Err(e) => {
                tracing::info!(participant = %id, error = %e, "token refused");
                self.refuse_with(id, ErrorCode::AuthFailed, e.to_string());
                Err(())
            }
        }
    }

    /// Whether `room` banned `id` (its token identity; an anonymous guest's
    /// participant id or network address). A ban is answered with `banned`
    /// here; a kick ban holds `id` to the lobby.
    pub(super) fn ban_check(
        &mut self,
        room: &RoomId,
        id: ParticipantId,
        identity: Option<&Identity>,
        peer: Option<PeerKey>,
        now: Now,
    ) -> BanCheck {
        let keys = check_keys(id, identity, peer);
        match self
            .rooms
            .get(room)
            .and_then(|r| r.bans.check(&keys, now.mono))
        {
            None => BanCheck::Clear,
            Some(Until::Time(_)) => BanCheck::Held,
            Some(Until::RoomEnd) => {
                tracing::info!(participant = %id, "banned identity refused");
                self.refuse(id, ErrorCode::Banned);
                BanCheck::Refused
            }
        }
    }

    /// Puts `id` in `room` with `role` (creating the room if needed).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        identity: Option<Arc<Identity>>,
        peer: Option<PeerKey>,
        role: Role,
        now: Now,
    ) {
        let pad_token = self.pads.issue_token(id);
        let resume_token = self.links.issue_token(id);
        let last_n = self.open_room(&room, id, &name, identity.as_ref());
        let r = self.rooms.entry(room.clone()).or_default();
        let locked = r.locked;
        let members: Vec<ParticipantId> = r.members.iter().copied().collect();
        let knocks = if role == Role::Moderator {
            self.knock_messages(&room)
        } else {
            Vec::new()
        };
        let (participants, screens) = self.roster(&members);
        let announce = ServerMessage::ParticipantJoined {
            id: id.0,
            name: name.as_str().to_owned(),
            role: role.into(),
        };
        for other in &members {
            self.send(*other, announce.clone());
        }
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.insert(id);
        }
        tracing::info!(participant = %id, role = role.as_str(), "participant joined");
        self.media(Command::Join {
            room: room.clone(),
            participant: id,
        });
        self.send_media_settings(id, &room, &name, identity.as_ref(), role, last_n);
        let (ice_servers, turn_refresh_at) = self.mint_ice_servers(id, now);
        self.send(
            id,
            ServerMessage::Joined {
                id: id.0,
                room: room.0.clone(),
                role: role.into(),
                locked,
                participants,
                pad_token: pad_token.clone(),
                resume_token,
                ice_servers,
            },
        );
        let hands = self.hands_message(&room);
        for msg in screens.into_iter().chain(hands).chain(knocks) {
            self.send(id, msg);
        }
        self.sessions.insert(
            id,
            SessionState::Joined(Box::new(Member {
                room,
                name,
                role,
                identity,
                pad_token,
                pad_conn: None,
                screen_mid: None,
                audio_only: false,
                chat: Bucket::new(),
                audio_muted: false,
                video_stopped: false,
                screen_stopped: None,
                self_audio: true,
                self_video: true,
                peer,
                wanted: Wanted::default(),
                state_pacer: Pacer::default(),
                constraints: Constraints::default(),
                turn_refresh_at,
                gestures: GestureBuckets::default(),
            })),
        );
    }

    /// Removes `id` from its room: Leave to mediad, participant-left to the
    /// others, its pad socket closed, `on_leave`; the last one out ends the
    /// room. The session becomes `Idle`; the member is returned.
    pub(super) fn remove_member(&mut self, id: ParticipantId, now_s: u64) -> Option<Box<Member>> {
        let data = self.member_ctx(id, now_s)?;
        if let Some(policy) = &mut self.policy {
            policy.on_leave(&data.ctx());
        }
        let member = self.take_member(id)?;
        let room = member.room.clone();
        let mut empty = false;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.remove(&id);
            // Its hand goes down with it (`participant-left` says so).
            r.hands.remove(&id);
            empty = r.members.is_empty();
        }
        self.broadcast(&room, &ServerMessage::ParticipantLeft { id: id.0 });
        tracing::info!(participant = %id, "participant left");
        if empty {
            self.end_room(&room, "room-empty", now_s);
        }
        Some(member)
    }

    /// Turns member `id` back into an idle session: its pad token and pad
    /// socket are dropped and mediad forgets it. Room bookkeeping is the
    /// caller's.
    pub(super) fn take_member(&mut self, id: ParticipantId) -> Option<Box<Member>> {
        let Some(SessionState::Joined(member)) = self.sessions.insert(id, SessionState::Idle)
        else {
            return None;
        };
        self.pads.revoke_token(&member.pad_token);
        self.links.revoke_token(id);
        self.media(Command::Leave { participant: id });
        if let Some(conn) = member.pad_conn {
            self.pads.detach(conn);
            self.outputs.push_back(Output::PadClose {
                to: conn,
                code: 1000,
                reason: "left",
            });
        }
        Some(member)
    }
}
