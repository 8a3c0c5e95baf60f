//! A room's lifetime: created by its first admitted participant (with the
//! policy's `room_settings`), ended when the last one leaves or a moderator
//! ends it; and what the policy's hooks see of it ([`CtxData`]).

use std::sync::Arc;

use salon_plugins::{Ctx, Identity, Role, RoleCounts, RoomInfo, RoomSettings};

use super::Hub;
use super::arrival::ArrivalSet;
use super::bans::Bans;
use super::lobby::Lobby;
use super::session::SessionState;
use crate::control::{ParticipantId, RoomId};
use crate::protocol::{DisplayName, ParticipantInfo, ServerMessage};

/// One meeting: exists from its first admitted participant until the last
/// one leaves (or a moderator ends it).
#[derive(Debug, Default)]
pub(super) struct Room {
    /// Members, in order of arrival.
    pub(super) members: ArrivalSet,
    /// This room's lobby.
    pub(super) lobby: Lobby,
    pub(super) locked: bool,
    /// After `mute-all`, non-moderators cannot unmute until `allow-unmute`.
    pub(super) mute_all: bool,
    /// Bans and kick bans (identity, participant id, network address).
    pub(super) bans: Bans,
    /// Most videos each member receives (from `room_settings`).
    pub(super) last_n: Option<u32>,
    /// Members whose hand is raised, in the order they raised it.
    pub(super) hands: ArrivalSet,
}

/// What a hook sees, owned (a [`Ctx`] borrows from it).
pub(super) struct CtxData {
    pub(super) room: String,
    pub(super) size: u32,
    pub(super) locked: bool,
    pub(super) exists: bool,
    pub(super) roles: RoleCounts,
    pub(super) participant_id: String,
    pub(super) name: Option<String>,
    pub(super) identity: Option<Arc<Identity>>,
    pub(super) role: Option<Role>,
    pub(super) now: u64,
}

impl CtxData {
    pub(super) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            identity: self.identity.as_deref(),
            display_name: self.name.as_deref(),
            participant_id: Some(&self.participant_id),
            room: RoomInfo {
                name: &self.room,
                size: self.size,
                locked: self.locked,
                exists: self.exists,
                roles: self.roles,
            },
            role: self.role,
            now: self.now,
        }
    }
}

impl Hub {
    /// The room's moderators.
    pub(super) fn moderators(&self, room: &RoomId) -> Vec<ParticipantId> {
        self.rooms
            .get(room)
            .map(|r| {
                r.members
                    .iter()
                    .copied()
                    .filter(|p| self.member(*p).is_some_and(|m| m.role == Role::Moderator))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The hook context for `id` acting in `room`.
    pub(super) fn ctx_data(
        &self,
        room: &RoomId,
        id: ParticipantId,
        name: Option<&str>,
        identity: Option<&Arc<Identity>>,
        role: Option<Role>,
        now_s: u64,
    ) -> CtxData {
        let r = self.rooms.get(room);
        let mut roles = RoleCounts::default();
        if let Some(r) = r {
            for p in &r.members {
                match self.member(*p).map(|m| m.role) {
                    Some(Role::Moderator) => roles.moderator += 1,
                    Some(Role::Participant) => roles.participant += 1,
                    Some(Role::Guest) => roles.guest += 1,
                    None => {}
                }
            }
        }
        CtxData {
            room: room.0.clone(),
            size: r.map_or(0, |r| u32::try_from(r.members.len()).unwrap_or(u32::MAX)),
            locked: r.is_some_and(|r| r.locked),
            exists: r.is_some(),
            roles,
            participant_id: id.0.to_string(),
            name: name.map(str::to_owned),
            identity: identity.cloned(),
            role,
            now: now_s,
        }
    }

    /// The context of a member acting in its room.
    pub(super) fn member_ctx(&self, id: ParticipantId, now_s: u64) -> Option<CtxData> {
        let m = self.member(id)?;
        Some(self.ctx_data(
            &m.room,
            id,
            Some(m.name.as_str()),
            m.identity.as_ref(),
            Some(m.role),
            now_s,
        ))
    }

    /// Creates `room` for its first participant `id` if it does not exist
    /// (with the policy's `room_settings`); returns the room's last-N.
    pub(super) fn open_room(
        &mut self,
        room: &RoomId,
        id: ParticipantId,
        name: &DisplayName,
        identity: Option<&Arc<Identity>>,
    ) -> Option<u32> {
        if let Some(r) = self.rooms.get(room) {
            return r.last_n;
        }
        let data = self.ctx_data(
            room,
            id,
            Some(name.as_str()),
            identity,
            None,
            self.last_unix_s,
        );
        let settings = match &mut self.policy {
            Some(policy) => policy.room_settings(&data.ctx()),
            None => RoomSettings::default(),
        };
        let r = self.rooms.entry(room.clone()).or_default();
        r.last_n = settings.last_n.or(self.default_last_n);
        r.last_n
    }

    /// What a newcomer is told about `members`: each one's entry for
    /// `joined`, and a `screen-share` for each running share.
    pub(super) fn roster(
        &self,
        members: &[ParticipantId],
    ) -> (Vec<ParticipantInfo>, Vec<ServerMessage>) {
        let mut participants = Vec::with_capacity(members.len());
        let mut screens = Vec::new();
        for p in members {
            if let Some(m) = self.member(*p) {
                participants.push(ParticipantInfo {
                    id: p.0,
                    name: m.name.as_str().to_owned(),
                    role: m.role.into(),
                    audio_muted: m.audio_muted || !m.self_audio,
                    video_stopped: m.video_stopped || !m.self_video,
                    reconnecting: self.links.is_detached(*p),
                });
                if let Some(mid) = &m.screen_mid {
                    screens.push(ServerMessage::ScreenShare {
                        id: p.0,
                        track_id: Some(format!("{}-{mid}", p.0)),
                    });
                }
            }
        }
        (participants, screens)
    }

    /// Drops a room whose members are gone: waiting guests get
    /// `meeting-ended`, the pad is destroyed, `on_room_end` is told.
    pub(super) fn end_room(&mut self, room: &RoomId, reason: &str, now_s: u64) {
        let Some(r) = self.rooms.remove(room) else {
            return;
        };
        let locked = r.locked;
        for w in r.lobby.into_waiting() {
            if self.waiting(w).is_some() {
                self.sessions.insert(w, SessionState::Idle);
                self.send(
                    w,
                    ServerMessage::MeetingEnded {
                        reason: reason.to_owned(),
                    },
                );
            }
        }
        if self.pads.destroy(room) {
            tracing::debug!("pad destroyed with its meeting");
        }
        if let Some(policy) = &mut self.policy {
            let data = CtxData {
                room: room.0.clone(),
                size: 0,
                locked,
                exists: false,
                roles: RoleCounts::default(),
                participant_id: String::new(),
                name: None,
                identity: None,
                role: None,
                now: now_s,
            };
            let mut ctx = data.ctx();
            ctx.participant_id = None;
            policy.on_room_end(&ctx);
        }
        tracing::debug!("room ended");
    }
}
