//! Moderation: a moderator's request is checked in Rust (the sender's role,
//! the target in the sender's room or knocking in its lobby), then by the
//! policy's `on_moderation`, then applied. Also a participant's own
//! `unmute`, which `mute-all` holds back until `allow-unmute`.

use salon_plugins::{FAIL_CLOSED_REASON, ModerationAction, ModerationKind, Role, Verdict};

use super::bans::{Until, record_keys};
use super::session::Member;
use super::{Hub, Now};
use crate::control::Command;
use crate::control::{MediaKind, ParticipantId, RoomId};
use crate::protocol::{ErrorCode, MediaKindWire, Moderation, ServerMessage};

/// What a moderation request is, for the checks: its kind for the policy
/// (`None`: not asked), its target, and whether the target waits in the
/// lobby (else it is a member).
struct Checked {
    kind: Option<ModerationKind>,
    target: Option<u64>,
    in_lobby: bool,
}

fn checked(action: &Moderation) -> Checked {
    let (kind, target, in_lobby) = match action {
        Moderation::Admit { id } => (Some(ModerationKind::Admit), Some(*id), true),
        Moderation::Deny { id, .. } => (Some(ModerationKind::Deny), Some(*id), true),
        Moderation::Mute { id } => (Some(ModerationKind::Mute), Some(*id), false),
        Moderation::MuteAll => (Some(ModerationKind::MuteAll), None, false),
        Moderation::AllowUnmute => (None, None, false),
        Moderation::StopVideo { id } => (Some(ModerationKind::StopVideo), Some(*id), false),
        Moderation::StopScreen { id } => (Some(ModerationKind::StopScreen), Some(*id), false),
        Moderation::Kick { id, ban: false } => (Some(ModerationKind::Kick), Some(*id), false),
        Moderation::Kick { id, ban: true } => (Some(ModerationKind::Ban), Some(*id), false),
        Moderation::Lock { on: true } => (Some(ModerationKind::Lock), None, false),
        Moderation::Lock { on: false } => (Some(ModerationKind::Unlock), None, false),
        Moderation::GrantModerator { id } => {
            (Some(ModerationKind::GrantModerator), Some(*id), false)
        }
        Moderation::RevokeModerator { id } => {
            (Some(ModerationKind::RevokeModerator), Some(*id), false)
        }
        Moderation::EndMeeting => (Some(ModerationKind::End), None, false),
    };
    Checked {
        kind,
        target,
        in_lobby,
    }
}

impl Hub {
    /// A moderation request: Rust checks the role and the target, then Lua
    /// `on_moderation` may still refuse, then the action is applied.
    pub(super) fn moderate(&mut self, id: ParticipantId, action: Moderation, now: Now) {
        let now_s = now.unix_ms / 1000;
        let Some(me) = self.member(id) else {
            self.refuse(id, ErrorCode::NotJoined);
            return;
        };
        if me.role != Role::Moderator {
            self.refuse(id, ErrorCode::Forbidden);
            return;
        }
        let room = me.room.clone();
        let Checked {
            kind,
            target,
            in_lobby,
        } = checked(&action);
        // The target must be in the sender's room (or its lobby, knocking).
        if let Some(t) = target {
            let t = ParticipantId(t);
            let ok = if in_lobby {
                self.knocks_in(&room, t)
            } else {
                self.rooms
                    .get(&room)
                    .is_some_and(|r| r.members.contains(&t))
            };
            if !ok {
                self.refuse(id, ErrorCode::NoSuchParticipant);
                return;
            }
        }
        if let Some(kind) = kind
            && self.policy.is_some()
            && !self.policy_allows(id, kind, target, now_s)
        {
            return;
        }
        tracing::info!(participant = %id, action = kind.map_or("allow_unmute", ModerationKind::as_str), "moderation");
        self.apply_moderation(id, &room, action, now);
    }

    /// Lua `on_moderation`; a refusal is answered with `forbidden`.
    fn policy_allows(
        &mut self,
        id: ParticipantId,
        kind: ModerationKind,
        target: Option<u64>,
        now_s: u64,
    ) -> bool {
        let target_s = target.map(|t| t.to_string());
        let Some(data) = self.member_ctx(id, now_s) else {
            return false;
        };
        let verdict = match &mut self.policy {
            Some(policy) => policy.on_moderation(
                &data.ctx(),
                &ModerationAction {
                    kind,
                    target: target_s.as_deref(),
                },
            ),
            None => Verdict::Allow,
        };
        match verdict {
            Verdict::Allow => true,
            Verdict::Deny { reason } => {
                self.refuse_with(id, ErrorCode::Forbidden, reason);
                false
            }
            // `Verdict` is `#[non_exhaustive]` in salon-plugins: an outcome
            // this gateway does not know refuses (fail closed).
            _ => {
                self.refuse_with(id, ErrorCode::Forbidden, FAIL_CLOSED_REASON);
                false
            }
        }
    }

    /// Carries out a checked request of moderator `id` in `room`.
    fn apply_moderation(&mut self, id: ParticipantId, room: &RoomId, action: Moderation, now: Now) {
        match action {
            Moderation::Admit { id: t } => {
                self.admit_from_lobby(ParticipantId(t), Some(id), now);
            }
            Moderation::Deny { id: t, reason } => self.deny(id, ParticipantId(t), reason, now),
            Moderation::Mute { id: t } => self.force_mute(id, ParticipantId(t), MediaKind::Audio),
            Moderation::MuteAll => self.mute_all(id, room),
            Moderation::AllowUnmute => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.mute_all = false;
                }
            }
            Moderation::StopVideo { id: t } => {
                self.force_mute(id, ParticipantId(t), MediaKind::Video);
            }
            Moderation::StopScreen { id: t } => self.stop_screen(id, ParticipantId(t)),
            Moderation::Kick { id: t, ban } => self.kick(id, ParticipantId(t), ban, now),
            Moderation::Lock { on } => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.locked = on;
                }
                self.broadcast(room, &ServerMessage::RoomLocked { on, by: id.0 });
            }
            Moderation::GrantModerator { id: t } => {
                self.set_role(room, ParticipantId(t), Role::Moderator);
            }
            Moderation::RevokeModerator { id: t } => {
                // Back to the least role that fits: guest without a token,
                // participant with one.
                let to = match self.member(ParticipantId(t)).map(|m| m.identity.is_some()) {
                    Some(true) => Role::Participant,
                    Some(false) | None => Role::Guest,
                };
                self.set_role(room, ParticipantId(t), to);
            }
            Moderation::EndMeeting => self.end_meeting(room, now.unix_ms / 1000),
        }
    }

    /// `mute-all`: everyone but the sender is muted, and non-moderators
    /// cannot unmute until `allow-unmute`.
    fn mute_all(&mut self, by: ParticipantId, room: &RoomId) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.mute_all = true;
        }
        let targets: Vec<ParticipantId> = self
            .rooms
            .get(room)
            .map(|r| r.members.iter().copied().filter(|p| *p != by).collect())
            .unwrap_or_default();
        for t in targets {
            self.force_mute(by, t, MediaKind::Audio);
        }
    }

    /// A moderator stops a participant's audio or camera in mediad.
    fn force_mute(&mut self, by: ParticipantId, target: ParticipantId, kind: MediaKind) {
        let Some(m) = self.member_mut(target) else {
            return;
        };
        let wire = match kind {
            MediaKind::Audio => {
                m.audio_muted = true;
                MediaKindWire::Audio
            }
            MediaKind::Video => {
                m.video_stopped = true;
                MediaKindWire::Video
            }
        };
        let room = m.room.clone();
        self.media(Command::SetForwarding {
            participant: target,
            kind,
            enabled: false,
        });
        self.broadcast(
            &room,
            &ServerMessage::Muted {
                id: target.0,
                by: by.0,
                kind: wire,
            },
        );
    }

    /// A moderator stops a participant's screen share in mediad.
    fn stop_screen(&mut self, by: ParticipantId, target: ParticipantId) {
        let Some(m) = self.member_mut(target) else {
            return;
        };
        let Some(mid) = m.screen_mid.take() else {
            return;
        };
        // A share it asked for since does not start behind the moderator.
        m.wanted.screen = None;
        m.screen_stopped = Some(mid.clone());
        let room = m.room.clone();
        self.media(Command::SetTrackForwarding {
            participant: target,
            mid,
            enabled: false,
        });
        self.media(Command::SetScreenShare {
            participant: target,
            mid: None,
        });
        self.broadcast(
            &room,
            &ServerMessage::ScreenShare {
                id: target.0,
                track_id: None,
            },
        );
        self.broadcast(
            &room,
            &ServerMessage::Muted {
                id: target.0,
                by: by.0,
                kind: MediaKindWire::Screen,
            },
        );
    }

    /// Removes `target` from the meeting. `ban`: its identity (token), its
    /// participant id and its network address may not come back until the
    /// room ends. Without `ban` the same keys are held for the kick ban
    /// (`HubLimits::kick_ban`, default 5 minutes, or until the room ends):
    /// they come back only through the lobby and a moderator's `admit` —
    /// even under a policy that would let them in at once. A guest goes
    /// back to the lobby, not knocking.
    fn kick(&mut self, by: ParticipantId, target: ParticipantId, ban: bool, now: Now) {
        let Some(m) = self.member(target) else {
            return;
        };
        let room = m.room.clone();
        let keys = record_keys(target, m.identity.as_deref(), m.peer);
        let until = if ban {
            Until::RoomEnd
        } else {
            Until::Time(now.mono + self.limits.kick_ban)
        };
        if let Some(r) = self.rooms.get_mut(&room) {
            r.bans.ban(keys, until, now.mono);
        }
        self.send(target, ServerMessage::Kicked { by: by.0, ban });
        let Some(member) = self.remove_member(target, now.unix_ms / 1000) else {
            return;
        };
        let Member {
            room,
            name,
            role,
            identity,
            peer,
            ..
        } = *member;
        if role == Role::Guest && !ban {
            self.back_to_lobby(target, room, name, identity, peer);
        }
    }

    fn set_role(&mut self, room: &RoomId, target: ParticipantId, role: Role) {
        let Some(m) = self.member_mut(target) else {
            return;
        };
        let was = std::mem::replace(&mut m.role, role);
        self.broadcast(
            room,
            &ServerMessage::RoleChanged {
                id: target.0,
                role: role.into(),
            },
        );
        // A new moderator sees the guests already waiting.
        if role == Role::Moderator && was != Role::Moderator {
            for msg in self.knock_messages(room) {
                self.send(target, msg);
            }
        }
    }

    /// Everyone (and every waiting guest) gets `meeting-ended`; all leave
    /// mediad; the pad is destroyed.
    fn end_meeting(&mut self, room: &RoomId, now_s: u64) {
        const REASON: &str = "ended-by-moderator";
        let members: Vec<ParticipantId> = self
            .rooms
            .get(room)
            .map(|r| r.members.iter().copied().collect())
            .unwrap_or_default();
        for p in &members {
            self.send(
                *p,
                ServerMessage::MeetingEnded {
                    reason: REASON.to_owned(),
                },
            );
        }
        for p in members {
            if let Some(data) = self.member_ctx(p, now_s)
                && let Some(policy) = &mut self.policy
            {
                policy.on_leave(&data.ctx());
            }
            if self.take_member(p).is_none() {
                continue;
            }
            if let Some(r) = self.rooms.get_mut(room) {
                r.members.remove(&p);
            }
        }
        self.end_room(room, REASON, now_s);
    }

    /// `unmute {kind}`: the muted participant resumes (not after
    /// `mute-all` for non-moderators, until `allow-unmute`).
    pub(super) fn unmute(&mut self, id: ParticipantId, kind: MediaKindWire) {
        let Some(m) = self.member(id) else {
            return;
        };
        let room = m.room.clone();
        let locked = self.rooms.get(&room).is_some_and(|r| r.mute_all) && m.role != Role::Moderator;
        let (muted, media_kind) = match kind {
            MediaKindWire::Audio => (m.audio_muted, MediaKind::Audio),
            MediaKindWire::Video => (m.video_stopped, MediaKind::Video),
            MediaKindWire::Screen => return,
        };
        if !muted {
            return;
        }
        if locked && kind == MediaKindWire::Audio {
            self.refuse_with(
                id,
                ErrorCode::Forbidden,
                "a moderator muted everyone; wait until unmuting is allowed",
            );
            return;
        }
        if let Some(m) = self.member_mut(id) {
            match media_kind {
                MediaKind::Audio => m.audio_muted = false,
                MediaKind::Video => m.video_stopped = false,
            }
        }
        self.media(Command::SetForwarding {
            participant: id,
            kind: media_kind,
            enabled: true,
        });
        self.broadcast(&room, &ServerMessage::Unmuted { id: id.0, kind });
    }
}
