//! Lobbies: guests the policy sends to wait, knocking until a moderator
//! admits or denies them.
//!
//! Each guest gets a lobby token with its first `lobby` (the page keeps it
//! in `sessionStorage` and sends it again in `join`). Within the reconnect
//! grace period the token takes back the same place in the queue (same id
//! for the moderators, who keep seeing the guest waiting meanwhile); a
//! guest admitted while it had no socket gets its place in the meeting
//! back (`resumed`).
//!
//! A denied guest waits a cooldown before knocking again. The cooldown
//! follows the knocker — its token identity, else its participant id and
//! lobby token — never the network address alone: colleagues behind the
//! same NAT still reach the moderators (docs/decisions.md). A guest who
//! drops its token to skip the cooldown is held by the address's bounds:
//! lobby entries and knocks per address (`rate-limited`), guests waiting
//! per address in one room (`rate-limited`), and after
//! [`ADDRESS_DENIES`] denies of guests from one address within a cooldown,
//! a cooldown for that address whose message says so (not that a
//! moderator refused this guest).
//!
//! Bounds: at most [`super::HubLimits::lobby_cap`] waiting per room
//! (`lobby-full`), the per-address bounds above, and moderators hear of
//! the lobby's changes coalesced, at most once per `lobby_update_interval`
//! per room: a guest who knocks and leaves inside one interval costs them
//! nothing.
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
use super::bans::{PeerKey, Who, knocker_keys};
use super::limits::{Pace, Pacer, RateBucket};
use super::reconnect::random_token;
use super::session::{BanCheck, SessionState};
use super::timers::Timer;
use super::{Hub, Now, ms};
use crate::control::{ParticipantId, RoomId};
use crate::protocol::{DisplayName, ErrorCode, ResumeMedia, ServerMessage};

/// Entries of the per-address knock buckets kept before full ones are
/// forgotten.
const KNOCK_BUCKETS_KEPT: usize = 4096;

/// Default time a denied guest waits before knocking again.
pub const DEFAULT_DENY_COOLDOWN: Duration = Duration::from_secs(30);

/// Denies of guests from one network address within a deny cooldown after
/// which the address itself waits a cooldown (one hostile guest dropping
/// its lobby token to knock again; a rare office where three colleagues in
/// a row are refused).
pub const ADDRESS_DENIES: usize = 3;

/// `denied` reason of a knocker's own cooldown (re-knock, reload).
pub const DENIED_A_MOMENT_AGO: &str = "refused by a moderator a moment ago";

/// `denied` reason of an address cooldown: this guest was not refused.
pub const DENIED_NETWORK: &str = "several guests from your network were refused a moment ago";

/// Someone in a room's lobby (waiting, or denied / kicked and allowed to
/// knock again).
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) room: RoomId,
    pub(super) name: DisplayName,
    pub(super) identity: Option<Arc<Identity>>,
    /// The network address it came from.
    pub(super) peer: Option<PeerKey>,
    /// Its lobby token (see the module's doc).
    pub(super) token: String,
    /// In the moderators' list now (or about to be: see [`LobbyNews`]).
    pub(super) knocking: bool,
    /// May not knock before this.
    pub(super) retry_at: Option<Instant>,
    /// `retry_at` is its address's cooldown ([`DENIED_NETWORK`]), not a
    /// moderator's deny of this guest.
    pub(super) network_hold: bool,
    /// The queue position it was last told (`None`: not knocking, or not
    /// told yet).
    pub(super) position: Option<u32>,
}

/// One room's lobby: who waits in it, and who was denied until when.
#[derive(Debug, Default)]
pub(super) struct Lobby {
    /// Sessions in this lobby (knocking or not), in order of arrival.
    waiting: ArrivalSet,
    /// Lobby token → the session waiting under it.
    tokens: BTreeMap<String, ParticipantId>,
    /// Lobby token → a guest admitted while it had no socket: a `join`
    /// with the token resumes its place in the meeting.
    admitted_away: BTreeMap<String, ParticipantId>,
    /// Denied knockers (identity, participant id, lobby token) and the end
    /// of their cooldown.
    cooldowns: BTreeMap<Who, Instant>,
    /// When guests from each address were denied (within a cooldown).
    address_denies: BTreeMap<PeerKey, Vec<Instant>>,
    /// Addresses with [`ADDRESS_DENIES`] recent denies, and the end of
    /// their cooldown.
    address_cooldowns: BTreeMap<PeerKey, Instant>,
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
    pub(super) fn insert(&mut self, id: ParticipantId, token: &str) {
        self.waiting.insert(id);
        self.tokens.insert(token.to_owned(), id);
    }

    pub(super) fn remove(&mut self, id: ParticipantId) {
        if self.waiting.remove(&id) {
            self.tokens.retain(|_, p| *p != id);
        }
    }

    /// The lobby token of a new entry: the one its page sent, if it is
    /// still in a deny cooldown here (so the cooldown holds), else a fresh
    /// one (a page does not choose its token).
    fn token_for(&self, sent: Option<&str>, now: Instant) -> String {
        sent.filter(|t| {
            !self.tokens.contains_key(*t)
                && self
                    .cooldowns
                    .get(&Who::Knocker((*t).to_owned()))
                    .is_some_and(|until| *until > now)
        })
        .map_or_else(random_token, str::to_owned)
    }

    /// Records a deny of a guest from `peer`; `Some(until)` when the
    /// address has reached [`ADDRESS_DENIES`] within `cooldown`.
    fn address_denied(
        &mut self,
        peer: PeerKey,
        cooldown: Duration,
        now: Instant,
    ) -> Option<Instant> {
        self.address_denies.retain(|_, ts| {
            ts.retain(|t| *t + cooldown > now);
            !ts.is_empty()
        });
        self.address_cooldowns.retain(|_, t| *t > now);
        let ts = self.address_denies.entry(peer).or_default();
        ts.push(now);
        if ts.len() < ADDRESS_DENIES {
            return None;
        }
        let until = now + cooldown;
        self.address_cooldowns.insert(peer, until);
        Some(until)
    }

    /// The end of `peer`'s address cooldown, if it is still ahead.
    fn address_cooldown(&self, peer: Option<PeerKey>, now: Instant) -> Option<Instant> {
        peer.and_then(|p| self.address_cooldowns.get(&p).copied())
            .filter(|t| *t > now)
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

    /// A `join` with the lobby token of a guest of `room` who waits (or
    /// was admitted) without a socket, or whose old socket is still open:
    /// socket `socket` takes its place back — the same place in the queue
    /// (`lobby` again, then its position or its cooldown), or its place in
    /// the meeting (`resumed`). `false`: the token names no such place
    /// (or another identity's), and the join goes on as a new one.
    pub(super) fn lobby_resume(
        &mut self,
        socket: ParticipantId,
        room: &RoomId,
        identity: Option<&Identity>,
        token: Option<&str>,
        now: Now,
    ) -> bool {
        let Some((token, r)) = token.zip(self.rooms.get(room)) else {
            return false;
        };
        if let Some(old) = r.lobby.tokens.get(token).copied() {
            if old == socket
                || !self
                    .waiting(old)
                    .is_some_and(|w| w.room == *room && w.identity.as_deref() == identity)
            {
                return false;
            }
            self.take_over(socket, old);
            tracing::info!(participant = %old, %socket, "lobby guest resumed");
            self.send(
                old,
                ServerMessage::Lobby {
                    id: old.0,
                    room: room.0.clone(),
                    lobby_token: token.to_owned(),
                },
            );
            let Some(w) = self.waiting_mut(old) else {
                return true;
            };
            match w.retry_at.filter(|t| *t > now.mono) {
                Some(until) => {
                    // Told again what held it: its own deny, or its
                    // network's.
                    let reason = if w.network_hold {
                        DENIED_NETWORK
                    } else {
                        DENIED_A_MOMENT_AGO
                    }
                    .to_owned();
                    self.send(
                        old,
                        ServerMessage::Denied {
                            reason,
                            retry_after_ms: ms(until.saturating_duration_since(now.mono)),
                        },
                    );
                }
                None if w.knocking => {
                    // Told again: the new page does not know it.
                    w.position = None;
                    self.send_positions(room);
                }
                None => self.knock(old, now),
            }
            return true;
        }
        let Some(old) = r.lobby.admitted_away.get(token).copied() else {
            return false;
        };
        let resume_token = self
            .member(old)
            .filter(|m| m.room == *room && m.identity.as_deref() == identity)
            .and_then(|_| self.links.live_token(old))
            .filter(|_| self.links.is_detached(old))
            .map(str::to_owned);
        if let Some(r) = self.rooms.get_mut(room) {
            r.lobby.admitted_away.remove(token);
        }
        match resume_token {
            Some(t) => {
                self.resume(socket, &t, ResumeMedia::New, now);
                true
            }
            None => false,
        }
    }

    /// `join` sent `id` to `room`'s lobby (the policy's `lobby`): it waits,
    /// and knocks at once unless a recent deny of the same knocker still
    /// runs (`lobby_token`: the token its page sent, if any).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn enter_lobby(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        identity: Option<Arc<Identity>>,
        peer: Option<PeerKey>,
        lobby_token: Option<&str>,
        now: Now,
    ) {
        let cap = self.limits.lobby_cap;
        let per_address = self.limits.lobby_per_address;
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
        if let Some(peer) = peer
            && r.lobby
                .iter()
                .filter(|w| self.waiting(*w).is_some_and(|x| x.peer == Some(peer)))
                .count()
                >= per_address
        {
            tracing::info!(participant = %id, "lobby full for one address");
            self.refuse_with(
                id,
                ErrorCode::RateLimited,
                "too many guests from your network are waiting in this lobby",
            );
            return;
        }
        if !self.knock_allowed(id, peer, now) {
            return;
        }
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        let token = r.lobby.token_for(lobby_token, now.mono);
        r.lobby.insert(id, &token);
        let keys = knocker_keys(id, identity.as_deref(), &token);
        let cooldown = r.lobby.cooldown(&keys, now.mono);
        self.sessions.insert(
            id,
            SessionState::Waiting(Box::new(Waiting {
                room: room.clone(),
                name,
                identity,
                peer,
                token: token.clone(),
                knocking: false,
                retry_at: cooldown,
                network_hold: false,
                position: None,
            })),
        );
        tracing::info!(participant = %id, "waiting in a lobby");
        self.send(
            id,
            ServerMessage::Lobby {
                id: id.0,
                room: room.0,
                lobby_token: token,
            },
        );
        match cooldown {
            // Denied a moment ago (from another socket, or before a
            // reload): told again, with the time left.
            Some(until) => self.send(
                id,
                ServerMessage::Denied {
                    reason: DENIED_A_MOMENT_AGO.to_owned(),
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
        let peer = w.peer;
        let knocking = w.knocking;
        if let Some(until) = self
            .rooms
            .get(&room)
            .filter(|_| !knocking)
            .and_then(|r| r.lobby.address_cooldown(peer, now.mono))
        {
            // Several guests from this address were refused just now: this
            // one waits too, told so (no moderator refused it; one already
            // knocking stays in the moderators' list).
            if let Some(w) = self.waiting_mut(id) {
                w.retry_at = Some(until);
                w.network_hold = true;
            }
            tracing::info!(participant = %id, "knock held by an address cooldown");
            self.send(
                id,
                ServerMessage::Denied {
                    reason: DENIED_NETWORK.to_owned(),
                    retry_after_ms: ms(until.saturating_duration_since(now.mono)),
                },
            );
            return;
        }
        let Some(w) = self.waiting(id) else {
            return;
        };
        let name = w.name.as_str().to_owned();
        let identity = w.identity.clone();
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
            token,
            ..
        } = *w;
        let away = self.links.is_detached(id);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.lobby.remove(id);
            if away {
                // Admitted while reloading: its `join` with the token
                // resumes its place in the meeting.
                let links = &self.links;
                r.lobby.admitted_away.retain(|_, p| links.is_detached(*p));
                r.lobby.admitted_away.insert(token, id);
            }
        }
        if knocking && let Some(by) = by {
            self.knock_resolved_by(&room, id, by, true);
        }
        self.send(id, ServerMessage::Admitted {});
        self.admit(id, room.clone(), name, identity, peer, Role::Guest, now);
        if away && self.room_of(id) == Some(&room) {
            // Its page is reloading (or its tab is gone): the room sees it
            // reconnecting, as any member without a socket, until its
            // `join` with the token or the end of its grace.
            self.broadcast_except(
                &room,
                &ServerMessage::ParticipantReconnecting { id: id.0 },
                Some(id),
            );
        }
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
        w.network_hold = false;
        let room = w.room.clone();
        let keys = knocker_keys(target, w.identity.as_deref(), &w.token);
        let peer = w.peer;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.lobby.deny(keys, until, now.mono);
            if let Some(peer) = peer
                && r.lobby.address_denied(peer, cooldown, now.mono).is_some()
            {
                tracing::info!(participant = %target, "address cooldown after repeated denies");
            }
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
        let token = random_token();
        r.lobby.insert(id, &token);
        self.sessions.insert(
            id,
            SessionState::Waiting(Box::new(Waiting {
                room: room.clone(),
                name,
                identity,
                peer,
                token: token.clone(),
                knocking: false,
                retry_at: None,
                network_hold: false,
                position: None,
            })),
        );
        self.send(
            id,
            ServerMessage::Lobby {
                id: id.0,
                room: room.0,
                lobby_token: token,
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
