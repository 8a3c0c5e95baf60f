//! Reconnect: a member whose signaling socket drops without `leave` keeps
//! its place (id, role, admission, pad token, media state) for a grace
//! period; the room sees `participant-reconnecting`. A new socket that
//! sends `resume {token, media}` takes the place back (`resumed` to it,
//! `participant-resumed` to the others); past the grace period the member
//! leaves as on a `leave`. A guest waiting in a lobby is detached the same
//! way (the room is not told); its `join` with its lobby token takes the
//! place back (`super::lobby`), through [`super::Hub::take_over`].
//!
//! Sockets and participants: a participant's id is the id of the socket it
//! joined on. After a resume its messages travel on another socket, so
//! [`Links`] keeps which socket carries which participant; the hub reads
//! frames from a socket as its participant's, and [`super::Hub::poll_output`]
//! addresses a participant's messages to its current socket (or drops them
//! while it has none). A socket that was replaced is stale: its frames and
//! its close are ignored.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::TryRngCore as _;
use salon_plugins::Role;

use super::{Hub, Now, Output};
use crate::control::{Command, MediaKind, ParticipantId};
use crate::protocol::{ErrorCode, ResumeMedia, ServerMessage};

/// The close code of a signaling socket replaced by a resume (reason
/// `replaced`): the page should not try to resume with it.
pub const CLOSE_REPLACED: u16 = 4001;

/// How long a dropped member keeps its place unless told otherwise.
pub const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(30);

/// Which socket carries which participant, the grace deadlines, and the
/// resume tokens.
#[derive(Debug, Default)]
pub(super) struct Links {
    /// Zero: a dropped socket leaves at once.
    grace: Duration,
    /// A socket that resumed a participant → that participant.
    resumed: BTreeMap<ParticipantId, ParticipantId>,
    /// A participant carried by a socket other than its first → that socket.
    carried_by: BTreeMap<ParticipantId, ParticipantId>,
    /// Participants without a socket → when their grace period ends.
    detached: BTreeMap<ParticipantId, Instant>,
    /// Live resume token → its participant (one per participant).
    tokens: BTreeMap<String, ParticipantId>,
    /// Participant → its live resume token.
    token_of: BTreeMap<ParticipantId, String>,
    /// The last subscribe offer mediad sent a participant that it has not
    /// answered yet — kept while it had no socket, or sent to a socket that
    /// then dropped before the answer came: delivered (again) right after
    /// its resume (media kept), so its subscriptions catch up at once
    /// instead of at mediad's re-offer 5 s later.
    unanswered_offer: BTreeMap<ParticipantId, ServerMessage>,
}

impl Links {
    pub(super) fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// The socket that carries `p` now (`None`: reconnecting).
    pub(super) fn socket_of(&self, p: ParticipantId) -> Option<ParticipantId> {
        if self.detached.contains_key(&p) {
            return None;
        }
        Some(self.carried_by.get(&p).copied().unwrap_or(p))
    }

    /// The participant whose frames `socket` carries (`None`: a replaced,
    /// stale socket).
    pub(super) fn participant_of(&self, socket: ParticipantId) -> Option<ParticipantId> {
        let p = self.resumed.get(&socket).copied().unwrap_or(socket);
        (self.socket_of(p) == Some(socket)).then_some(p)
    }

    /// Whether `id` is a participant or a socket these links know of.
    pub(super) fn knows(&self, id: ParticipantId) -> bool {
        self.resumed.contains_key(&id)
            || self.carried_by.contains_key(&id)
            || self.carried_by.values().any(|s| *s == id)
            || self.detached.contains_key(&id)
    }

    /// Whether `p` is in its grace period.
    pub(super) fn is_detached(&self, p: ParticipantId) -> bool {
        self.detached.contains_key(&p)
    }

    /// A fresh resume token for `p` (its previous one dies): 128 bits from
    /// the OS's randomness.
    pub(super) fn issue_token(&mut self, p: ParticipantId) -> String {
        self.revoke_token(p);
        let token = loop {
            let token = random_token();
            if !self.tokens.contains_key(&token) {
                break token;
            }
        };
        self.tokens.insert(token.clone(), p);
        self.token_of.insert(p, token.clone());
        token
    }

    /// `p`'s resume token opens nothing any more.
    pub(super) fn revoke_token(&mut self, p: ParticipantId) {
        if let Some(t) = self.token_of.remove(&p) {
            self.tokens.remove(&t);
        }
    }

    /// `p`'s live resume token.
    pub(super) fn live_token(&self, p: ParticipantId) -> Option<&str> {
        self.token_of.get(&p).map(String::as_str)
    }

    /// Uses up `token`: its participant, if it was live.
    fn take_token(&mut self, token: &str) -> Option<ParticipantId> {
        let p = self.tokens.remove(token)?;
        self.token_of.remove(&p);
        Some(p)
    }

    /// `p` lost its socket at `now`; `false` if reconnect is off.
    fn detach(&mut self, p: ParticipantId, now: Instant) -> bool {
        if self.grace.is_zero() {
            return false;
        }
        if let Some(s) = self.carried_by.remove(&p) {
            self.resumed.remove(&s);
        }
        self.detached.insert(p, now + self.grace);
        true
    }

    /// `socket` carries `p` from now on (a socket `p` still had is stale).
    fn attach(&mut self, p: ParticipantId, socket: ParticipantId) {
        self.detached.remove(&p);
        if let Some(old) = self.carried_by.insert(p, socket) {
            self.resumed.remove(&old);
        }
        self.resumed.insert(socket, p);
    }

    /// Forgets the socket (it closed).
    fn forget_socket(&mut self, socket: ParticipantId) {
        self.resumed.remove(&socket);
    }

    /// Keeps `msg` (a subscribe offer to `p`) until `p` answers it.
    pub(super) fn keep_offer(&mut self, p: ParticipantId, msg: ServerMessage) {
        self.unanswered_offer.insert(p, msg);
    }

    /// `p` answered its last offer.
    pub(super) fn offer_answered(&mut self, p: ParticipantId) {
        self.unanswered_offer.remove(&p);
    }

    /// The offer `p` has not answered, if any.
    fn take_unanswered_offer(&mut self, p: ParticipantId) -> Option<ServerMessage> {
        self.unanswered_offer.remove(&p)
    }

    /// Forgets `p` (its session is gone).
    fn forget(&mut self, p: ParticipantId) {
        self.unanswered_offer.remove(&p);
        self.detached.remove(&p);
        self.revoke_token(p);
        if let Some(s) = self.carried_by.remove(&p) {
            self.resumed.remove(&s);
        }
    }

    /// The earliest end of a grace period.
    fn next_deadline(&self) -> Option<Instant> {
        self.detached.values().min().copied()
    }

    /// Takes out the participants whose grace period ended by `now`.
    fn expired(&mut self, now: Instant) -> Vec<ParticipantId> {
        let gone: Vec<ParticipantId> = self
            .detached
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(p, _)| *p)
            .collect();
        for p in &gone {
            self.detached.remove(p);
            self.unanswered_offer.remove(p);
        }
        gone
    }
}

/// 128 bits from the OS's randomness, as 32 hex digits (resume and lobby
/// tokens).
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    if rand::rngs::OsRng.try_fill_bytes(&mut bytes).is_err() {
        // The thread RNG is a CSPRNG seeded from the OS as well.
        rand::Rng::fill(&mut rand::rng(), &mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a deadline is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutReason {
    /// A dropped member's grace period ends.
    ReconnectGrace,
    /// A room's coalesced lobby changes go to its moderators.
    LobbyUpdate,
    /// A member's coalesced `media-state` / `screen` goes to the room.
    MemberState,
    /// A member's coalesced `video-constraints` go to mediad.
    VideoConstraints,
    /// A pad socket's coalesced sync answer or awareness relay.
    PadPacing,
    /// A member's TURN credentials need refreshing.
    TurnRefresh,
    /// A connectivity probe reaches its lifetime.
    ProbeEnd,
}

impl Hub {
    /// How long a member whose socket dropped keeps its place (zero: it
    /// leaves at once, as on `leave`).
    pub fn set_reconnect_grace(&mut self, grace: Duration) {
        self.links.set_grace(grace);
    }

    /// `id`'s live resume token (tests).
    #[cfg(test)]
    pub(crate) fn resume_token(&self, id: ParticipantId) -> Option<String> {
        self.links.live_token(id).map(str::to_owned)
    }

    /// `id`'s pad token (tests).
    #[cfg(test)]
    pub(crate) fn pad_token_of(&self, id: ParticipantId) -> Option<String> {
        self.member(id).map(|m| m.pad_token.clone())
    }

    /// Whether `id` is in the room but without a socket (grace period).
    pub fn is_reconnecting(&self, id: ParticipantId) -> bool {
        self.links.is_detached(id)
    }

    /// When the driver must call [`Hub::handle_timeout`] next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, TimeoutReason)> {
        let grace = self
            .links
            .next_deadline()
            .map(|t| (t, TimeoutReason::ReconnectGrace));
        match (grace, self.timers.next()) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Time passed: members whose grace period is over leave the room
    /// (`participant-left`, mediad `Leave`, `on_leave`), waiting sessions
    /// without a socket leave the lobby.
    pub fn handle_timeout(&mut self, now: Now) {
        self.last_unix_s = now.unix_ms / 1000;
        for id in self.links.expired(now.mono) {
            tracing::info!(participant = %id, "reconnect grace period over");
            self.drop_session(id, now);
        }
        for timer in self.timers.expired(now.mono) {
            self.fire(timer, now);
        }
    }

    /// Ends every grace period now (shutdown).
    pub fn end_grace_periods(&mut self, now: Now) {
        let all: Vec<ParticipantId> = self.links.detached.keys().copied().collect();
        for id in all {
            self.links.detached.remove(&id);
            self.drop_session(id, now);
        }
    }

    /// Socket `socket` closed (or was dropped by the driver). A member keeps
    /// its place for the grace period; anyone else is gone at once.
    pub fn handle_close(&mut self, socket: ParticipantId, now: Now) {
        self.last_unix_s = now.unix_ms / 1000;
        self.probe_socket_closed(socket);
        self.peers.remove(&socket);
        let Some(id) = self.links.participant_of(socket) else {
            // A stale socket (replaced by a resume): nothing of it remains.
            self.links.forget_socket(socket);
            return;
        };
        self.links.forget_socket(socket);
        // A guest waiting in a lobby keeps its place in the queue for the
        // grace period too (a reload, a network blink): its `join` with
        // its lobby token takes it back (`lobby`); the moderators keep
        // seeing it waiting meanwhile.
        if self.waiting(id).is_some() && self.links.detach(id, now.mono) {
            tracing::info!(participant = %id, "lobby guest reconnecting");
            return;
        }
        if let Some(room) = self.room_of(id).cloned()
            && self.links.detach(id, now.mono)
        {
            tracing::info!(participant = %id, "participant reconnecting");
            self.broadcast_except(
                &room,
                &ServerMessage::ParticipantReconnecting { id: id.0 },
                Some(id),
            );
            return;
        }
        self.drop_session(id, now);
    }

    /// The session of `id` ends: out of its room or lobby, forgotten.
    fn drop_session(&mut self, id: ParticipantId, now: Now) {
        match self.sessions.get(&id) {
            Some(super::SessionState::Joined(_)) => {
                self.remove_member(id, now.unix_ms / 1000);
            }
            Some(super::SessionState::Waiting(_)) => self.leave_lobby(id, now),
            Some(super::SessionState::Idle | super::SessionState::Left) | None => {}
        }
        self.sessions.remove(&id);
        self.links.forget(id);
    }

    /// `resume {token, media}` from idle socket `socket`.
    pub(super) fn resume(
        &mut self,
        socket: ParticipantId,
        token: &str,
        media: ResumeMedia,
        now: Now,
    ) {
        let Some(id) = self
            .links
            .take_token(token)
            .filter(|p| self.member(*p).is_some())
        else {
            tracing::info!(%socket, "resume refused");
            self.refuse(socket, ErrorCode::ResumeFailed);
            return;
        };
        let was_detached = self.links.is_detached(id);
        // A socket the gateway has not seen drop yet (a half-open
        // connection, or a duplicated tab): it is replaced.
        let replaced = self.links.socket_of(id);
        self.sessions.remove(&socket);
        self.links.attach(id, socket);
        if let Some(old) = replaced {
            self.outputs.push_back(Output::Close {
                to: old,
                code: CLOSE_REPLACED,
                reason: "replaced",
            });
        }
        let resume_token = self.links.issue_token(id);
        let Some(m) = self.member(id) else {
            return;
        };
        let room = m.room.clone();
        let (name, identity, role) = (m.name.clone(), m.identity.clone(), m.role);
        let (audio_muted, video_stopped, audio_only) =
            (m.audio_muted, m.video_stopped, m.audio_only);
        let pad_token = m.pad_token.clone();
        let had_screen = m.screen_mid.is_some();
        let (locked, last_n, others) = match self.rooms.get(&room) {
            Some(r) => (
                r.locked,
                r.last_n,
                r.members.iter().copied().filter(|p| *p != id).collect(),
            ),
            None => (false, None, Vec::new()),
        };
        tracing::info!(
            participant = %id,
            %socket,
            media = ?media,
            was_detached,
            "participant resumed"
        );
        if media == ResumeMedia::New {
            // A new page: mediad forgets the old transports, then the
            // participant's media settings apply to the new ones.
            self.media(Command::Leave { participant: id });
            self.media(Command::Join {
                room: room.clone(),
                participant: id,
            });
            self.send_media_settings(id, &room, &name, identity.as_ref(), role, last_n);
            if audio_only {
                self.media(Command::SetAudioOnly {
                    participant: id,
                    enabled: true,
                });
            }
            for (kind, stopped) in [
                (MediaKind::Audio, audio_muted),
                (MediaKind::Video, video_stopped),
            ] {
                if stopped {
                    self.media(Command::SetForwarding {
                        participant: id,
                        kind,
                        enabled: false,
                    });
                }
            }
            if let Some(m) = self.member_mut(id) {
                // The old page's screen share went with it.
                m.screen_mid = None;
                m.screen_stopped = None;
                m.wanted.screen = None;
            }
        }
        let (participants, screens) = self.roster(&others);
        let knocks = if role == Role::Moderator {
            self.knock_messages(&room)
        } else {
            Vec::new()
        };
        // Fresh credentials: those of `joined` may be near their end, and
        // refreshes sent while it had no socket were lost.
        let (ice_servers, turn_refresh_at) = self.mint_ice_servers(id, now);
        if let Some(m) = self.member_mut(id) {
            m.turn_refresh_at = turn_refresh_at;
        }
        self.send(
            id,
            ServerMessage::Resumed {
                id: id.0,
                room: room.0.clone(),
                role: role.into(),
                locked,
                participants,
                pad_token,
                resume_token,
                media,
                audio_muted,
                video_stopped,
                audio_only,
                ice_servers,
            },
        );
        // The hands raised now, even none: a page that kept its state may
        // have missed changes while it had no socket (its own hand stayed
        // up through the grace period: it is in the list).
        let hands = self
            .hands_message(&room)
            .unwrap_or(ServerMessage::Hands { ids: Vec::new() });
        for msg in screens.into_iter().chain([hands]).chain(knocks) {
            self.send(id, msg);
        }
        // A subscribe offer it has not answered (it came while it had no
        // socket, or its old socket dropped before the answer): its peer
        // connection is the same, so it answers it now (a new page gets a
        // fresh offer from its new join instead).
        if let Some(offer) = self.links.take_unanswered_offer(id)
            && media == ResumeMedia::Kept
        {
            self.send(id, offer);
        }
        self.broadcast_except(
            &room,
            &ServerMessage::ParticipantResumed { id: id.0 },
            Some(id),
        );
        if media == ResumeMedia::New && had_screen {
            self.broadcast(
                &room,
                &ServerMessage::ScreenShare {
                    id: id.0,
                    track_id: None,
                },
            );
        }
    }

    /// Socket `socket` carries participant (or lobby guest) `p` from now
    /// on; a socket `p` still had is closed as `replaced`.
    pub(super) fn take_over(&mut self, socket: ParticipantId, p: ParticipantId) {
        let replaced = self.links.socket_of(p).filter(|s| *s != socket);
        self.sessions.remove(&socket);
        self.links.attach(p, socket);
        if let Some(old) = replaced {
            self.outputs.push_back(Output::Close {
                to: old,
                code: CLOSE_REPLACED,
                reason: "replaced",
            });
        }
    }

    /// Addresses an output to the socket that carries its participant now;
    /// `None`: that participant has no socket (its message is dropped).
    pub(super) fn route(&self, out: Output) -> Option<Output> {
        match out {
            Output::Send { to, msg } => self.links.socket_of(to).map(|to| Output::Send { to, msg }),
            // A close names its socket already.
            Output::Close { .. }
            | Output::Media(_)
            | Output::PadSend { .. }
            | Output::PadClose { .. } => Some(out),
        }
    }
}
