//! Lobbies: guests the policy sends to wait, knocking until a moderator
//! admits or denies them; a denied guest waits a cooldown before knocking
//! again (kept per token user or socket, so a new socket does not skip it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use salon_plugins::{Identity, Role, Verdict};

use super::arrival::ArrivalSet;
use super::session::{SessionState, Who, who};
use super::{Hub, Now, ms};
use crate::control::{ParticipantId, RoomId};
use crate::protocol::{DisplayName, ErrorCode, ServerMessage};

/// Default time a denied guest waits before knocking again.
pub const DEFAULT_DENY_COOLDOWN: Duration = Duration::from_secs(30);

/// Someone in a room's lobby (waiting, or denied / kicked and allowed to
/// knock again).
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) room: RoomId,
    pub(super) name: DisplayName,
    pub(super) identity: Option<Arc<Identity>>,
    /// In the moderators' list now.
    pub(super) knocking: bool,
    /// May not knock before this.
    pub(super) retry_at: Option<Instant>,
}

/// One room's lobby: who waits in it, and who was denied until when.
#[derive(Debug, Default)]
pub(super) struct Lobby {
    /// Sessions in this lobby (knocking or not), in order of arrival.
    waiting: ArrivalSet,
    /// Denied guests (token user or socket) and the end of their cooldown.
    cooldowns: BTreeMap<Who, Instant>,
}

impl Lobby {
    pub(super) fn insert(&mut self, id: ParticipantId) {
        self.waiting.insert(id);
    }

    pub(super) fn remove(&mut self, id: ParticipantId) {
        self.waiting.remove(&id);
    }

    pub(super) fn contains(&self, id: ParticipantId) -> bool {
        self.waiting.contains(&id)
    }

    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The waiting sessions, in order of arrival.
    pub(super) fn iter(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.waiting.iter().copied()
    }

    /// Everyone still waiting, when the room ends.
    pub(super) fn into_waiting(self) -> ArrivalSet {
        self.waiting
    }

    /// When `key` may knock again, if it was denied and that is still ahead.
    fn cooldown(&self, key: &Who, now: Instant) -> Option<Instant> {
        self.cooldowns.get(key).copied().filter(|t| *t > now)
    }

    /// `key` was denied: it may not knock before `until` (expired entries
    /// are dropped).
    fn deny(&mut self, key: Who, until: Instant, now: Instant) {
        self.cooldowns.retain(|_, t| *t > now);
        self.cooldowns.insert(key, until);
    }
}

impl Hub {
    /// Ids of the guests knocking in `room`'s lobby (tests, diagnostics).
    pub fn knocking(&self, room: &str) -> Vec<u64> {
        self.rooms
            .get(&RoomId(room.to_owned()))
            .map(|r| {
                r.lobby
                    .iter()
                    .filter(|w| self.waiting(*w).is_some_and(|x| x.knocking))
                    .map(|w| w.0)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn waiting(&self, id: ParticipantId) -> Option<&Waiting> {
        self.sessions.get(&id).and_then(SessionState::waiting)
    }

    fn waiting_mut(&mut self, id: ParticipantId) -> Option<&mut Waiting> {
        self.sessions
            .get_mut(&id)
            .and_then(SessionState::waiting_mut)
    }

    /// Whether `id` knocks in `room`'s lobby (a moderator's admit or deny
    /// targets only those).
    pub(super) fn knocks_in(&self, room: &RoomId, id: ParticipantId) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.lobby.contains(id) && self.waiting(id).is_some_and(|w| w.knocking))
    }

    /// A `knock` for each guest knocking in `room`'s lobby (what a new
    /// moderator is told).
    pub(super) fn knock_messages(&self, room: &RoomId) -> Vec<ServerMessage> {
        self.rooms
            .get(room)
            .map(|r| {
                r.lobby
                    .iter()
                    .filter_map(|w| {
                        let x = self.waiting(w).filter(|x| x.knocking)?;
                        Some(ServerMessage::Knock {
                            id: w.0,
                            name: x.name.as_str().to_owned(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `join` sent `id` to `room`'s lobby (the policy's `lobby`): it waits,
    /// and knocks at once unless a recent deny still runs.
    pub(super) fn enter_lobby(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        identity: Option<Arc<Identity>>,
        now: Now,
    ) {
        let key = who(id, identity.as_deref());
        let Some(r) = self.rooms.get_mut(&room) else {
            self.refuse_with(id, ErrorCode::Denied, "this room does not exist yet");
            return;
        };
        if r.locked {
            self.refuse(id, ErrorCode::RoomLocked);
            return;
        }
        r.lobby.insert(id);
        let cooldown = r.lobby.cooldown(&key, now.mono);
        self.sessions.insert(
            id,
            SessionState::Waiting(Box::new(Waiting {
                room: room.clone(),
                name,
                identity,
                knocking: false,
                retry_at: cooldown,
            })),
        );
        tracing::info!(participant = %id, "waiting in a lobby");
        self.send(
            id,
            ServerMessage::Lobby {
                id: id.0,
                room: room.0,
            },
        );
        match cooldown {
            // Denied a moment ago (e.g. from another socket): told
            // again, with the time left.
            Some(until) => self.send(
                id,
                ServerMessage::Denied {
                    reason: "refused by a moderator a moment ago".to_owned(),
                    retry_after_ms: ms(until.saturating_duration_since(now.mono)),
                },
            ),
            None => self.knock(id, now),
        }
    }

    /// A lobby session knocks: `on_knock` may admit it at once; otherwise
    /// every moderator of the room is told (once).
    pub(super) fn knock(&mut self, id: ParticipantId, now: Now) {
        let Some(w) = self.waiting_mut(id) else {
            self.refuse(id, ErrorCode::NotInLobby);
            return;
        };
        if let Some(at) = w.retry_at {
            if at > now.mono {
                let left = ms(at.saturating_duration_since(now.mono));
                self.refuse_with(
                    id,
                    ErrorCode::KnockTooSoon,
                    format!("knock again in {left} ms (retry_after_ms={left})"),
                );
                return;
            }
            w.retry_at = None;
        }
        let room = w.room.clone();
        let name = w.name.as_str().to_owned();
        let identity = w.identity.clone();
        let already = w.knocking;
        if self.is_banned(&room, id, identity.as_deref()) {
            self.refuse(id, ErrorCode::Banned);
            return;
        }
        let data = self.ctx_data(
            &room,
            id,
            Some(&name),
            identity.as_ref(),
            None,
            now.unix_ms / 1000,
        );
        let verdict = match &mut self.policy {
            Some(policy) => policy.on_knock(&data.ctx()),
            None => Verdict::Deny {
                reason: "waiting for a moderator".to_owned(),
            },
        };
        if verdict.is_allow() {
            self.admit_from_lobby(id, None);
            return;
        }
        if !already {
            if let Some(w) = self.waiting_mut(id) {
                w.knocking = true;
            }
            for m in self.moderators(&room) {
                self.send(
                    m,
                    ServerMessage::Knock {
                        id: id.0,
                        name: name.clone(),
                    },
                );
            }
        }
    }

    /// A lobby session enters its room as a guest (`by`: the moderator who
    /// admitted it; `None`: `on_knock` did).
    pub(super) fn admit_from_lobby(&mut self, id: ParticipantId, by: Option<ParticipantId>) {
        let Some(SessionState::Waiting(w)) = self.sessions.remove(&id) else {
            return;
        };
        let Waiting {
            room,
            name,
            identity,
            knocking,
            ..
        } = *w;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.lobby.remove(id);
        }
        if knocking {
            let resolved = ServerMessage::KnockResolved {
                id: id.0,
                by: by.map(|b| b.0),
                admitted: true,
            };
            for m in self.moderators(&room) {
                if Some(m) != by {
                    self.send(m, resolved.clone());
                }
            }
        }
        self.send(id, ServerMessage::Admitted {});
        self.admit(id, room, name, identity, Role::Guest, true);
    }

    /// A moderator refuses a knocking guest: it may knock again after the
    /// cooldown; the other moderators drop it from their lists.
    pub(super) fn deny(
        &mut self,
        by: ParticipantId,
        target: ParticipantId,
        reason: Option<String>,
        now: Now,
    ) {
        let cooldown = self.deny_cooldown;
        let Some(w) = self.waiting_mut(target) else {
            return;
        };
        w.knocking = false;
        let until = now.mono + cooldown;
        w.retry_at = Some(until);
        let room = w.room.clone();
        let key = who(target, w.identity.as_deref());
        if let Some(r) = self.rooms.get_mut(&room) {
            r.lobby.deny(key, until, now.mono);
        }
        self.send(
            target,
            ServerMessage::Denied {
                reason: reason.unwrap_or_else(|| "a moderator refused your entry".to_owned()),
                retry_after_ms: ms(cooldown),
            },
        );
        let resolved = ServerMessage::KnockResolved {
            id: target.0,
            by: Some(by.0),
            admitted: false,
        };
        for m in self.moderators(&room) {
            if m != by {
                self.send(m, resolved.clone());
            }
        }
    }

    /// A kicked guest goes back to `room`'s lobby (not knocking), if the
    /// room still exists.
    pub(super) fn back_to_lobby(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        identity: Option<Arc<Identity>>,
    ) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        r.lobby.insert(id);
        self.sessions.insert(
            id,
            SessionState::Waiting(Box::new(Waiting {
                room: room.clone(),
                name,
                identity,
                knocking: false,
                retry_at: None,
            })),
        );
        self.send(
            id,
            ServerMessage::Lobby {
                id: id.0,
                room: room.0,
            },
        );
    }

    /// Someone leaves a lobby (socket closed, `leave`): moderators drop it
    /// from their lists.
    pub(super) fn leave_lobby(&mut self, id: ParticipantId) {
        let Some(w) = self.waiting(id) else {
            return;
        };
        let room = w.room.clone();
        let knocking = w.knocking;
        self.sessions.insert(id, SessionState::Idle);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.lobby.remove(id);
        }
        if knocking {
            let resolved = ServerMessage::KnockResolved {
                id: id.0,
                by: None,
                admitted: false,
            };
            for m in self.moderators(&room) {
                self.send(m, resolved.clone());
            }
        }
    }
}
