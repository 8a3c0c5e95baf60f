//! Lobbies: guests the policy sends to wait, knocking until a moderator
//! admits or denies them; a denied guest waits a cooldown before knocking
//! again (kept per token identity, or per network address and participant
//! id for anonymous guests, so a new socket does not skip it).
//!
//! Bounds: at most [`super::HubLimits::lobby_cap`] waiting per room
//! (`lobby-full`), lobby entries and knocks per network address
//! (`rate-limited`), and moderators hear of the lobby's changes coalesced,
//! at most once per `lobby_update_interval` per room: a guest who knocks
//! and leaves inside one interval costs them nothing.
//!
//! Each knocking guest is told its place in the queue (`lobby-position`,
//! 1 = next) when it changes: knocking guests queue in the order they
//! knocked (a guest who knocks again after a deny goes to the end), and a
//! guest's place changes only when one ahead of it leaves the queue, so
//! the messages stay bounded by the guests ahead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use salon_plugins::{Identity, Role, Verdict};

use super::arrival::ArrivalSet;
use super::bans::{PeerKey, Who, check_keys, record_keys};
use super::limits::{Pace, Pacer, RateBucket};
use super::session::{BanCheck, SessionState};
use super::timers::Timer;
use super::{Hub, Now, ms};
use crate::control::{ParticipantId, RoomId};
use crate::protocol::{DisplayName, ErrorCode, ServerMessage};

/// Entries of the per-address knock buckets kept before full ones are
/// forgotten.
const KNOCK_BUCKETS_KEPT: usize = 4096;

/// Default time a denied guest waits before knocking again.
pub const DEFAULT_DENY_COOLDOWN: Duration = Duration::from_secs(30);

/// Someone in a room's lobby (waiting, or denied / kicked and allowed to
/// knock again).
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) room: RoomId,
    pub(super) name: DisplayName,
    pub(super) identity: Option<Arc<Identity>>,
    /// The network address it came from.
    pub(super) peer: Option<PeerKey>,
    /// In the moderators' list now (or about to be: see [`LobbyNews`]).
    pub(super) knocking: bool,
    /// May not knock before this.
    pub(super) retry_at: Option<Instant>,
    /// The queue position it was last told (`None`: not knocking, or not
    /// told yet).
    pub(super) position: Option<u32>,
}

/// One room's lobby: who waits in it, and who was denied until when.
#[derive(Debug, Default)]
pub(super) struct Lobby {
    /// Sessions in this lobby (knocking or not), in order of arrival.
    waiting: ArrivalSet,
    /// Denied guests (identity, address, participant id) and the end of
    /// their cooldown.
    cooldowns: BTreeMap<Who, Instant>,
    /// What the moderators were told, and what changed since.
    news: LobbyNews,
}

/// The moderators' view of a lobby, coalesced: the guests whose `knock`
/// they got, and the guests whose knocking changed since the last update.
#[derive(Debug, Default)]
struct LobbyNews {
    /// Guests the moderators got a `knock` for (and no resolution yet).
    announced: BTreeSet<ParticipantId>,
    /// Guests whose knocking changed since the last update.
    changed: ArrivalSet,
    pacer: Pacer,
}

impl Lobby {
    pub(super) fn insert(&mut self, id: ParticipantId) {
        self.waiting.insert(id);
    }

    pub(super) fn remove(&mut self, id: ParticipantId) {
        self.waiting.remove(&id);
    }

    /// `id` knocks again: to the end of the queue.
    fn requeue(&mut self, id: ParticipantId) {
        if self.waiting.remove(&id) {
            self.waiting.insert(id);
        }
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

    /// When any of `keys` may knock again, if it was denied and that is
    /// still ahead.
    fn cooldown(&self, keys: &[Who], now: Instant) -> Option<Instant> {
        keys.iter()
            .filter_map(|k| self.cooldowns.get(k).copied())
            .filter(|t| *t > now)
            .max()
    }

    /// `keys` were denied: they may not knock before `until` (expired
    /// entries are dropped).
    fn deny(&mut self, keys: Vec<Who>, until: Instant, now: Instant) {
        self.cooldowns.retain(|_, t| *t > now);
        for key in keys {
            let t = self.cooldowns.entry(key).or_insert(until);
            *t = (*t).max(until);
        }
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

    /// A `knock` for each guest knocking in `room`'s lobby that the
    /// moderators were told of (what a new moderator is told; the others
    /// come with the next lobby update).
    pub(super) fn knock_messages(&self, room: &RoomId) -> Vec<ServerMessage> {
        self.rooms
            .get(room)
            .map(|r| {
                r.lobby
                    .iter()
                    .filter(|w| r.lobby.news.announced.contains(w))
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
        peer: Option<PeerKey>,
        now: Now,
    ) {
        let keys = check_keys(id, identity.as_deref(), peer);
        let cap = self.limits.lobby_cap;
        let Some(r) = self.rooms.get(&room) else {
            self.refuse_with(id, ErrorCode::Denied, "this room does not exist yet");
            return;
        };
        if r.locked {
            self.refuse(id, ErrorCode::RoomLocked);
            return;
        }
        if r.lobby.len() >= cap {
            tracing::info!(participant = %id, "lobby full");
            self.refuse(id, ErrorCode::LobbyFull);
            return;
        }
        if !self.knock_allowed(id, peer, now) {
            return;
        }
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        r.lobby.insert(id);
        let cooldown = r.lobby.cooldown(&keys, now.mono);
        self.sessions.insert(
            id,
            SessionState::Waiting(Box::new(Waiting {
                room: room.clone(),
                name,
                identity,
                peer,
                knocking: false,
                retry_at: cooldown,
                position: None,
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

    /// Whether a lobby entry or a knock from `peer` is within the
    /// per-address limit; if not, `id` gets `rate-limited`.
    fn knock_allowed(&mut self, id: ParticipantId, peer: Option<PeerKey>, now: Now) -> bool {
        let (burst, per_min) = (
            self.limits.knocks_per_address_burst,
            self.limits.knocks_per_address_per_min,
        );
        let Some(peer) = peer.filter(|_| per_min > 0) else {
            return true;
        };
        if self.knock_buckets.len() >= KNOCK_BUCKETS_KEPT {
            self.knock_buckets
                .retain(|_, b| !b.is_full(now.mono, burst, per_min));
        }
        let bucket = self
            .knock_buckets
            .entry(peer)
            .or_insert_with(|| RateBucket::new(burst, now.mono));
        match bucket.take(now.mono, burst, per_min) {
            Ok(()) => true,
            Err(wait) => {
                let left = ms(wait);
                tracing::info!(participant = %id, "knock rate limit");
                self.refuse_with(
                    id,
                    ErrorCode::RateLimited,
                    format!(
                        "too many knocks from your network; knock again in {left} ms (retry_after_ms={left})"
                    ),
                );
                false
            }
        }
    }

    /// `knock` from a lobby session (after a deny or a kick): within the
    /// per-address limit, then as [`Hub::knock`].
    pub(super) fn knock_again(&mut self, id: ParticipantId, now: Now) {
        let Some(w) = self.waiting(id) else {
            self.refuse(id, ErrorCode::NotInLobby);
            return;
        };
        let peer = w.peer;
        if self.knock_allowed(id, peer, now) {
            self.knock(id, now);
        }
    }

    /// A lobby session knocks: `on_knock` may admit it at once; otherwise
    /// the moderators of the room are told (once, with the next lobby
    /// update).
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
        let peer = w.peer;
        let already = w.knocking;
        let held = match self.ban_check(&room, id, identity.as_deref(), peer, now) {
            BanCheck::Clear => false,
            BanCheck::Held => true,
            BanCheck::Refused => return,
        };
        let data = self.ctx_data(
            &room,
            id,
            Some(&name),
            identity.as_ref(),
            None,
            now.unix_ms / 1000,
        );
        let verdict = match &mut self.policy {
            // Kicked a moment ago: only a moderator lets it back in.
            Some(policy) if !held => policy.on_knock(&data.ctx()),
            Some(_) | None => Verdict::Deny {
                reason: "waiting for a moderator".to_owned(),
            },
        };
        if verdict.is_allow() {
            self.admit_from_lobby(id, None, now);
            return;
        }
        if !already {
            if let Some(w) = self.waiting_mut(id) {
                w.knocking = true;
            }
            if let Some(r) = self.rooms.get_mut(&room) {
                r.lobby.requeue(id);
            }
            self.lobby_changed(&room, id, now);
            self.send_positions(&room);
        }
    }

    /// Tells each knocking guest of `room` its place in the queue, if it
    /// changed since it was last told.
    pub(super) fn send_positions(&mut self, room: &RoomId) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let queue: Vec<ParticipantId> = r
            .lobby
            .iter()
            .filter(|w| self.waiting(*w).is_some_and(|x| x.knocking))
            .collect();
        let waiting = u32::try_from(queue.len()).unwrap_or(u32::MAX);
        for (i, id) in queue.into_iter().enumerate() {
            let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let Some(w) = self.waiting_mut(id) else {
                continue;
            };
            if w.position == Some(position) {
                continue;
            }
            w.position = Some(position);
            self.send(id, ServerMessage::LobbyPosition { position, waiting });
        }
    }

    /// Guest `id`'s knocking changed in `room`'s lobby: the moderators hear
    /// of it now, or with the update at the end of the interval.
    fn lobby_changed(&mut self, room: &RoomId, id: ParticipantId, now: Now) {
        let interval = self.limits.lobby_update_interval;
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.lobby.news.changed.insert(id);
        match r.lobby.news.pacer.change(now.mono, interval) {
            Pace::Now => self.send_lobby_update(room),
            Pace::At(at) => self.timers.set(at, Timer::LobbyUpdate(room.clone())),
            Pace::Pending => {}
        }
    }

    /// The lobby update of `room` is due.
    pub(super) fn lobby_update_due(&mut self, room: &RoomId, now: Now) {
        if self
            .rooms
            .get_mut(room)
            .is_some_and(|r| r.lobby.news.pacer.fire(now.mono))
        {
            self.send_lobby_update(room);
        }
    }

    /// Tells the moderators of `room` what changed in its lobby since the
    /// last update, net: `knock` for a guest who knocks now and was not
    /// announced, `knock-resolved {by: null}` for an announced one who no
    /// longer knocks; a guest who came and went in between costs nothing.
    fn send_lobby_update(&mut self, room: &RoomId) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let changed = std::mem::take(&mut r.lobby.news.changed);
        let mut msgs = Vec::new();
        for id in changed {
            let knocking = self
                .rooms
                .get(room)
                .is_some_and(|r| r.lobby.contains(id))
                .then(|| self.waiting(id))
                .flatten()
                .filter(|w| w.knocking && w.room == *room)
                .map(|w| w.name.as_str().to_owned());
            let admitted = self.room_of(id) == Some(room);
            let Some(r) = self.rooms.get_mut(room) else {
                return;
            };
            let announced = r.lobby.news.announced.contains(&id);
            match knocking {
                Some(name) if !announced => {
                    msgs.push(ServerMessage::Knock { id: id.0, name });
                    r.lobby.news.announced.insert(id);
                }
                None if announced => {
                    msgs.push(ServerMessage::KnockResolved {
                        id: id.0,
                        by: None,
                        admitted,
                    });
                    r.lobby.news.announced.remove(&id);
                }
                Some(_) | None => {}
            }
        }
        if msgs.is_empty() {
            return;
        }
        for m in self.moderators(room) {
            for msg in &msgs {
                self.send(m, msg.clone());
            }
        }
    }

    /// A moderator resolved `id`'s knock (admit, deny): the other
    /// moderators are told at once, if they had heard of it.
    fn knock_resolved_by(
        &mut self,
        room: &RoomId,
        id: ParticipantId,
        by: ParticipantId,
        admitted: bool,
    ) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        r.lobby.news.changed.remove(&id);
        if !r.lobby.news.announced.remove(&id) {
            return;
        }
        let resolved = ServerMessage::KnockResolved {
            id: id.0,
            by: Some(by.0),
            admitted,
        };
        for m in self.moderators(room) {
            if m != by {
                self.send(m, resolved.clone());
            }
        }
    }

    /// A lobby session enters its room as a guest (`by`: the moderator who
    /// admitted it; `None`: `on_knock` did).
    pub(super) fn admit_from_lobby(
        &mut self,
        id: ParticipantId,
        by: Option<ParticipantId>,
        now: Now,
    ) {
        let Some(SessionState::Waiting(w)) = self.sessions.remove(&id) else {
            return;
        };
        let Waiting {
            room,
            name,
            identity,
            peer,
            knocking,
            ..
        } = *w;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.lobby.remove(id);
        }
        if knocking && let Some(by) = by {
            self.knock_resolved_by(&room, id, by, true);
        }
        self.send(id, ServerMessage::Admitted {});
        self.admit(id, room.clone(), name, identity, peer, Role::Guest, now);
        if knocking && by.is_none() {
            self.lobby_changed(&room, id, now);
        }
        if knocking {
            self.send_positions(&room);
        }
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
        w.position = None;
        let until = now.mono + cooldown;
        w.retry_at = Some(until);
        let room = w.room.clone();
        let keys = record_keys(target, w.identity.as_deref(), w.peer);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.lobby.deny(keys, until, now.mono);
        }
        self.send(
            target,
            ServerMessage::Denied {
                reason: reason.unwrap_or_else(|| "a moderator refused your entry".to_owned()),
                retry_after_ms: ms(cooldown),
            },
        );
        self.knock_resolved_by(&room, target, by, false);
        self.send_positions(&room);
    }

    /// A kicked guest goes back to `room`'s lobby (not knocking; its knock
    /// waits for a moderator during the kick ban), if the room still exists.
    pub(super) fn back_to_lobby(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        identity: Option<Arc<Identity>>,
        peer: Option<PeerKey>,
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
                peer,
                knocking: false,
                retry_at: None,
                position: None,
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
    pub(super) fn leave_lobby(&mut self, id: ParticipantId, now: Now) {
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
            self.lobby_changed(&room, id, now);
            self.send_positions(&room);
        }
    }
}
