//! The signaling core: rooms, participants and their names, chat, screen
//! shares and the meeting pad, as a sans-IO state machine.
//!
//! Driving contract: call one `handle_*` (a socket opened, a frame arrived, a
//! socket closed, a media event, a pad socket event), then drain
//! [`Hub::poll_output`] until it returns `None`. Outputs are a message for
//! one signaling socket, a frame or a close for one pad socket, or a command
//! for the media plane. No clock (inputs carry a [`Now`]), no IO,
//! deterministic iteration (BTreeMap); pad tokens come from a seeded RNG.
//!
//! The hub holds only session state (who is in which room, with which name,
//! who shares a screen) and each meeting's pad document, in memory; media
//! state lives in mediad. Chat messages are routed, never stored. When the
//! last participant of a room leaves, the room and its pad are dropped.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::control::{Command, Event, ParticipantId, RoomId};
use crate::pad::PadDoc;
use crate::protocol::{
    ClientMessage, DisplayName, ErrorCode, ParticipantInfo, ProtocolError, ServerMessage,
    parse_client,
};

/// Chat rate limit: sustained messages per second per participant.
pub const CHAT_RATE_PER_SEC: u32 = 5;
/// Chat rate limit: burst size per participant.
pub const CHAT_BURST: u32 = 10;

/// When an input happened: monotonic time for limits, wall-clock time for
/// the stamps other participants see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time (rate limits).
    pub mono: Instant,
    /// Milliseconds since the Unix epoch (chat stamps).
    pub unix_ms: u64,
}

impl Now {
    /// The system clocks (drivers only; tests build their own).
    pub fn system() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            mono: Instant::now(),
            unix_ms,
        }
    }
}

/// One pad WebSocket (several may come and go per participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PadConnId(pub u64);

impl std::fmt::Display for PadConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pad{}", self.0)
    }
}

/// What the hub asks its driver to do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Output {
    /// Send a message to one socket.
    Send {
        /// The socket (its participant id).
        to: ParticipantId,
        /// The message.
        msg: ServerMessage,
    },
    /// Send a command to the media plane.
    Media(Command),
    /// Send one binary frame (one y-protocols message) to one pad socket.
    PadSend {
        /// The pad socket.
        to: PadConnId,
        /// The frame (shared between the recipients of a relay).
        data: Bytes,
    },
    /// Close one pad socket.
    PadClose {
        /// The pad socket.
        to: PadConnId,
        /// WebSocket close code.
        code: u16,
        /// Stable reason (`pad-denied`, `pad-malformed`, …).
        reason: &'static str,
    },
}

/// A token bucket (chat rate limit), in virtual time.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens, in thousandths.
    milli: u64,
    last: Option<Instant>,
}

impl Bucket {
    const FULL: u64 = CHAT_BURST as u64 * 1000;

    fn new() -> Self {
        Self {
            milli: Self::FULL,
            last: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now
                .saturating_duration_since(last)
                .min(Duration::from_secs(60));
            let refill = elapsed.as_millis() as u64 * u64::from(CHAT_RATE_PER_SEC);
            self.milli = (self.milli + refill).min(Self::FULL);
        }
        self.last = Some(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Member {
    room: RoomId,
    name: DisplayName,
    pad_token: String,
    pad_conn: Option<PadConnId>,
    screen_mid: Option<String>,
    audio_only: bool,
    chat: Bucket,
}

#[derive(Debug)]
enum SessionState {
    /// Socket open, no `join` yet.
    Lobby,
    /// In a room.
    Joined(Box<Member>),
    /// Sent `leave`; the socket may stay open but cannot join again.
    Left,
}

/// Room and participant bookkeeping for every open socket.
#[derive(Debug)]
pub struct Hub {
    sessions: BTreeMap<ParticipantId, SessionState>,
    rooms: BTreeMap<RoomId, BTreeSet<ParticipantId>>,
    /// One pad per meeting, created on first use, dropped with the room.
    pads: BTreeMap<RoomId, PadDoc>,
    /// Pad token → its participant (while joined).
    pad_tokens: BTreeMap<String, ParticipantId>,
    /// Open, accepted pad sockets → their participant.
    pad_conns: BTreeMap<PadConnId, ParticipantId>,
    rng: StdRng,
    outputs: VecDeque<Output>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub; pad tokens from the OS's randomness.
    pub fn new() -> Self {
        Self::with_rng(StdRng::from_os_rng())
    }

    /// An empty hub with seeded pad tokens (tests).
    pub fn with_seed(seed: u64) -> Self {
        Self::with_rng(StdRng::seed_from_u64(seed))
    }

    fn with_rng(rng: StdRng) -> Self {
        Self {
            sessions: BTreeMap::new(),
            rooms: BTreeMap::new(),
            pads: BTreeMap::new(),
            pad_tokens: BTreeMap::new(),
            pad_conns: BTreeMap::new(),
            rng,
            outputs: VecDeque::new(),
        }
    }

    /// Number of participants currently in a room.
    pub fn participant_count(&self) -> usize {
        self.rooms.values().map(BTreeSet::len).sum()
    }

    /// Number of non-empty rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of live pad documents (one per meeting that opened its pad).
    pub fn pads_live(&self) -> usize {
        self.pads.len()
    }

    /// Number of accepted pad sockets.
    pub fn pad_connections(&self) -> usize {
        self.pad_conns.len()
    }

    /// The text of a room's pad (`Y.Text` named `name`), if the pad exists
    /// (tests and diagnostics; never logged).
    pub fn pad_text(&self, room: &str, name: &str) -> Option<String> {
        self.pads
            .get(&RoomId(room.to_owned()))
            .map(|pad| pad.text(name))
    }

    /// A socket opened; `id` is its (process-unique) participant id.
    pub fn handle_open(&mut self, id: ParticipantId) {
        self.sessions.insert(id, SessionState::Lobby);
    }

    /// A text frame arrived from socket `id`.
    pub fn handle_frame(&mut self, id: ParticipantId, text: &str, now: Now) {
        match parse_client(text) {
            Ok(msg) => self.handle_message(id, msg, now),
            Err(e) => self.send_error(id, &e),
        }
    }

    /// A frame that is refused before parsing (too large, binary).
    pub fn handle_refused(&mut self, id: ParticipantId, code: ErrorCode) {
        self.send_error(
            id,
            &ProtocolError {
                code,
                detail: code.default_message().to_owned(),
            },
        );
    }

    /// A parsed message from socket `id`.
    pub fn handle_message(&mut self, id: ParticipantId, msg: ClientMessage, now: Now) {
        let Some(state) = self.sessions.get(&id) else {
            return;
        };
        match (msg, state) {
            (ClientMessage::Join { room, name }, SessionState::Lobby) => self.join(id, room, name),
            (ClientMessage::Join { .. }, _) => self.refuse(id, ErrorCode::AlreadyJoined),
            (_, SessionState::Lobby | SessionState::Left) => self.refuse(id, ErrorCode::NotJoined),
            (ClientMessage::PublishOffer { sdp }, SessionState::Joined(_)) => {
                self.outputs.push_back(Output::Media(Command::PublishOffer {
                    participant: id,
                    sdp,
                }));
            }
            (ClientMessage::SubscribeAnswer { sdp }, SessionState::Joined(_)) => {
                self.outputs
                    .push_back(Output::Media(Command::SubscribeAnswer {
                        participant: id,
                        sdp,
                    }));
            }
            (ClientMessage::Chat { text, to }, SessionState::Joined(_)) => {
                self.chat(id, text, to, now);
            }
            (ClientMessage::Screen { mid }, SessionState::Joined(_)) => self.screen(id, mid),
            (ClientMessage::AudioOnly { on }, SessionState::Joined(_)) => {
                if let Some(SessionState::Joined(m)) = self.sessions.get_mut(&id) {
                    m.audio_only = on;
                }
                self.outputs.push_back(Output::Media(Command::SetAudioOnly {
                    participant: id,
                    enabled: on,
                }));
            }
            (ClientMessage::Leave, SessionState::Joined(_)) => {
                self.leave(id);
                self.sessions.insert(id, SessionState::Left);
            }
        }
    }

    /// Whether `id` asked for audio only (recorded for the media plane).
    pub fn audio_only(&self, id: ParticipantId) -> Option<bool> {
        match self.sessions.get(&id) {
            Some(SessionState::Joined(m)) => Some(m.audio_only),
            _ => None,
        }
    }

    /// Socket `id` closed (or was dropped by the driver).
    pub fn handle_close(&mut self, id: ParticipantId) {
        self.leave(id);
        self.sessions.remove(&id);
    }

    /// An event from the media plane: route it to its participant's socket.
    pub fn handle_media_event(&mut self, event: Event) {
        let (to, msg) = match event {
            Event::PublishAnswer { participant, sdp } => {
                (participant, ServerMessage::PublishAnswer { sdp })
            }
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
                reason,
            } => (
                participant,
                ServerMessage::Error {
                    code: ErrorCode::Media,
                    message: reason,
                },
            ),
            Event::TrackPublished { participant, kind } => {
                tracing::debug!(%participant, ?kind, "track published");
                return;
            }
            Event::DominantSpeaker { room, participant } => {
                // Only if that participant is still in that room.
                if self.room_of(participant) == Some(&room) {
                    self.broadcast(&room, &ServerMessage::DominantSpeaker { id: participant.0 });
                }
                return;
            }
            // `Event` is non-exhaustive in mediad (unreachable only when the
            // control types are compiled into this crate).
            #[allow(unreachable_patterns)]
            other => {
                tracing::debug!(?other, "media event not forwarded");
                return;
            }
        };
        // Only participants still in a room get media events: a late event
        // for someone who left (or a stranger id) is dropped.
        if matches!(self.sessions.get(&to), Some(SessionState::Joined(_))) {
            self.outputs.push_back(Output::Send { to, msg });
        } else {
            tracing::debug!(participant = %to, "media event for absent participant dropped");
        }
    }

    /// A pad socket opened with `token` (from `joined`). Accepted if the
    /// token belongs to a participant in a room; a second pad socket of the
    /// same participant replaces the first. The room's pad is created on
    /// first use. Refused sockets get [`Output::PadClose`] (`pad-denied`).
    pub fn handle_pad_open(&mut self, conn: PadConnId, token: &str) {
        let Some(&id) = self.pad_tokens.get(token) else {
            self.outputs.push_back(Output::PadClose {
                to: conn,
                code: 1008,
                reason: "pad-denied",
            });
            return;
        };
        let Some(SessionState::Joined(member)) = self.sessions.get_mut(&id) else {
            self.outputs.push_back(Output::PadClose {
                to: conn,
                code: 1008,
                reason: "pad-denied",
            });
            return;
        };
        if let Some(old) = member.pad_conn.replace(conn) {
            self.pad_conns.remove(&old);
            self.outputs.push_back(Output::PadClose {
                to: old,
                code: 1000,
                reason: "pad-replaced",
            });
        }
        let room = member.room.clone();
        self.pad_conns.insert(conn, id);
        let pad = self.pads.entry(room).or_insert_with(|| {
            tracing::debug!("pad created");
            PadDoc::new()
        });
        self.outputs.push_back(Output::PadSend {
            to: conn,
            data: Bytes::from(pad.greeting()),
        });
    }

    /// One binary frame from a pad socket. A refused frame closes that
    /// socket only; the document and the other sockets are unaffected.
    pub fn handle_pad_frame(&mut self, conn: PadConnId, frame: &[u8]) {
        let Some(&id) = self.pad_conns.get(&conn) else {
            return;
        };
        let Some(room) = self.room_of(id).cloned() else {
            return;
        };
        let Some(pad) = self.pads.get_mut(&room) else {
            return;
        };
        match pad.handle_frame(frame) {
            Ok(reply) => {
                if let Some(data) = reply.reply {
                    self.outputs.push_back(Output::PadSend {
                        to: conn,
                        data: Bytes::from(data),
                    });
                }
                if let Some(data) = reply.relay {
                    let data = Bytes::from(data);
                    for other in self.pad_conns_of(&room) {
                        if other != conn {
                            self.outputs.push_back(Output::PadSend {
                                to: other,
                                data: data.clone(),
                            });
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(participant = %id, error = e.as_str(), "pad frame refused");
                self.refuse_pad(conn, e.close_code(), e.as_str());
            }
        }
    }

    /// A pad frame refused before it reached the document (a text frame,
    /// or a frame over the socket's hard limit): closes that pad socket.
    pub fn handle_pad_refused(&mut self, conn: PadConnId, code: u16, reason: &'static str) {
        if self.pad_conns.contains_key(&conn) {
            self.refuse_pad(conn, code, reason);
        }
    }

    /// A pad socket closed.
    pub fn handle_pad_close(&mut self, conn: PadConnId) {
        if let Some(id) = self.pad_conns.remove(&conn)
            && let Some(SessionState::Joined(m)) = self.sessions.get_mut(&id)
            && m.pad_conn == Some(conn)
        {
            m.pad_conn = None;
        }
    }

    /// Next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn refuse_pad(&mut self, conn: PadConnId, code: u16, reason: &'static str) {
        self.handle_pad_close(conn);
        self.outputs.push_back(Output::PadClose {
            to: conn,
            code,
            reason,
        });
    }

    fn room_of(&self, id: ParticipantId) -> Option<&RoomId> {
        match self.sessions.get(&id) {
            Some(SessionState::Joined(m)) => Some(&m.room),
            _ => None,
        }
    }

    fn pad_conns_of(&self, room: &RoomId) -> Vec<PadConnId> {
        let Some(members) = self.rooms.get(room) else {
            return Vec::new();
        };
        members
            .iter()
            .filter_map(|p| match self.sessions.get(p) {
                Some(SessionState::Joined(m)) => m.pad_conn,
                _ => None,
            })
            .collect()
    }

    fn broadcast(&mut self, room: &RoomId, msg: &ServerMessage) {
        if let Some(members) = self.rooms.get(room) {
            for to in members {
                self.outputs.push_back(Output::Send {
                    to: *to,
                    msg: msg.clone(),
                });
            }
        }
    }

    fn chat(&mut self, id: ParticipantId, text: String, to: Option<u64>, now: Now) {
        let Some(SessionState::Joined(member)) = self.sessions.get_mut(&id) else {
            return;
        };
        if !member.chat.take(now.mono) {
            self.refuse(id, ErrorCode::RateLimited);
            return;
        }
        let room = member.room.clone();
        let msg = ServerMessage::Chat {
            from: id.0,
            name: member.name.as_str().to_owned(),
            text,
            time: now.unix_ms,
            to,
        };
        match to {
            None => self.broadcast(&room, &msg),
            Some(to) => {
                let to = ParticipantId(to);
                let present = to != id
                    && self
                        .rooms
                        .get(&room)
                        .is_some_and(|members| members.contains(&to));
                if !present {
                    self.refuse(id, ErrorCode::NoSuchParticipant);
                    return;
                }
                self.outputs.push_back(Output::Send {
                    to: id,
                    msg: msg.clone(),
                });
                self.outputs.push_back(Output::Send { to, msg });
            }
        }
    }

    fn screen(&mut self, id: ParticipantId, mid: Option<String>) {
        let Some(SessionState::Joined(member)) = self.sessions.get_mut(&id) else {
            return;
        };
        if member.screen_mid == mid {
            return;
        }
        member.screen_mid = mid;
        let msg = ServerMessage::ScreenShare {
            id: id.0,
            track_id: member.screen_mid.as_ref().map(|m| format!("{}-{m}", id.0)),
        };
        let room = member.room.clone();
        self.broadcast(&room, &msg);
    }

    fn refuse(&mut self, id: ParticipantId, code: ErrorCode) {
        self.handle_refused(id, code);
    }

    fn send_error(&mut self, id: ParticipantId, e: &ProtocolError) {
        tracing::debug!(participant = %id, code = e.code.as_str(), "message refused");
        self.outputs.push_back(Output::Send {
            to: id,
            msg: ServerMessage::error(e),
        });
    }

    fn new_pad_token(&mut self) -> String {
        loop {
            let n: u128 = self.rng.random();
            let token = format!("{n:032x}");
            if !self.pad_tokens.contains_key(&token) {
                return token;
            }
        }
    }

    fn join(&mut self, id: ParticipantId, room: RoomId, name: DisplayName) {
        let pad_token = self.new_pad_token();
        let members = self.rooms.entry(room.clone()).or_default();
        let mut participants = Vec::with_capacity(members.len());
        let mut screens = Vec::new();
        for p in members.iter() {
            if let Some(SessionState::Joined(m)) = self.sessions.get(p) {
                participants.push(ParticipantInfo {
                    id: p.0,
                    name: m.name.as_str().to_owned(),
                });
                if let Some(mid) = &m.screen_mid {
                    screens.push(ServerMessage::ScreenShare {
                        id: p.0,
                        track_id: Some(format!("{}-{mid}", p.0)),
                    });
                }
            }
        }
        for other in members.iter() {
            self.outputs.push_back(Output::Send {
                to: *other,
                msg: ServerMessage::ParticipantJoined {
                    id: id.0,
                    name: name.as_str().to_owned(),
                },
            });
        }
        members.insert(id);
        tracing::info!(participant = %id, "participant joined");
        self.outputs.push_back(Output::Media(Command::Join {
            room: room.clone(),
            participant: id,
        }));
        self.outputs.push_back(Output::Send {
            to: id,
            msg: ServerMessage::Joined {
                id: id.0,
                room: room.0.clone(),
                participants,
                pad_token: pad_token.clone(),
            },
        });
        for msg in screens {
            self.outputs.push_back(Output::Send { to: id, msg });
        }
        self.pad_tokens.insert(pad_token.clone(), id);
        self.sessions.insert(
            id,
            SessionState::Joined(Box::new(Member {
                room,
                name,
                pad_token,
                pad_conn: None,
                screen_mid: None,
                audio_only: false,
                chat: Bucket::new(),
            })),
        );
    }

    /// Removes `id` from its room (if any): Leave to mediad, participant-left
    /// to the others, its pad socket closed; the last one out drops the room
    /// and its pad.
    fn leave(&mut self, id: ParticipantId) {
        let Some(SessionState::Joined(member)) = self.sessions.get(&id) else {
            return;
        };
        let room = member.room.clone();
        let pad_conn = member.pad_conn;
        self.pad_tokens.remove(&member.pad_token);
        self.outputs
            .push_back(Output::Media(Command::Leave { participant: id }));
        if let Some(conn) = pad_conn {
            self.pad_conns.remove(&conn);
            self.outputs.push_back(Output::PadClose {
                to: conn,
                code: 1000,
                reason: "left",
            });
        }
        if let Some(members) = self.rooms.get_mut(&room) {
            members.remove(&id);
            for other in members.iter() {
                self.outputs.push_back(Output::Send {
                    to: *other,
                    msg: ServerMessage::ParticipantLeft { id: id.0 },
                });
            }
            if members.is_empty() {
                self.rooms.remove(&room);
                if self.pads.remove(&room).is_some() {
                    tracing::debug!("pad destroyed with its meeting");
                }
            }
        }
        // The session stays until the caller replaces or removes it, but
        // it no longer holds the pad socket.
        if let Some(SessionState::Joined(m)) = self.sessions.get_mut(&id) {
            m.pad_conn = None;
        }
        tracing::info!(participant = %id, "participant left");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{MediaKind, TransportKind};
    use crate::protocol::WireTransport;

    /// Virtual time: a fixed base instant plus `ms`.
    fn at(ms: u64) -> Now {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(Instant::now);
        Now {
            mono: base + Duration::from_millis(ms),
            unix_ms: 1_700_000_000_000 + ms,
        }
    }

    fn t0() -> Now {
        at(0)
    }

    fn p(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    fn drain(hub: &mut Hub) -> Vec<Output> {
        std::iter::from_fn(|| hub.poll_output()).collect()
    }

    fn sends_to(out: &[Output], id: ParticipantId) -> Vec<ServerMessage> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { to, msg } if *to == id => Some(msg.clone()),
                _ => None,
            })
            .collect()
    }

    fn commands(out: &[Output]) -> Vec<Command> {
        out.iter()
            .filter_map(|o| match o {
                Output::Media(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    fn join(hub: &mut Hub, id: u64, room: &str, name: &str) -> Vec<Output> {
        hub.handle_open(p(id));
        hub.handle_frame(
            p(id),
            &format!(r#"{{"type":"join","room":"{room}","name":"{name}"}}"#),
            t0(),
        );
        drain(hub)
    }

    fn token_of(out: &[Output], id: ParticipantId) -> String {
        sends_to(out, id)
            .iter()
            .find_map(|m| match m {
                ServerMessage::Joined { pad_token, .. } => Some(pad_token.clone()),
                _ => None,
            })
            .unwrap()
    }

    fn error_code(msgs: &[ServerMessage]) -> Option<ErrorCode> {
        msgs.iter().find_map(|m| match m {
            ServerMessage::Error { code, .. } => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn join_announces_both_ways() {
        let mut hub = Hub::with_seed(7);
        let out = join(&mut hub, 1, "R", "Ana");
        assert!(matches!(
            commands(&out)[..],
            [Command::Join { ref room, participant }] if room.0 == "R" && participant == p(1)
        ));
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::Joined {
                id: 1,
                room: "R".into(),
                participants: vec![],
                pad_token: token_of(&out, p(1)),
            }]
        );

        let out = join(&mut hub, 2, "R", "Bob");
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::ParticipantJoined {
                id: 2,
                name: "Bob".into()
            }]
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::Joined {
                id: 2,
                room: "R".into(),
                participants: vec![ParticipantInfo {
                    id: 1,
                    name: "Ana".into()
                }],
                pad_token: token_of(&out, p(2)),
            }]
        );

        // Another room sees nothing.
        let out = join(&mut hub, 3, "Other", "Cy");
        assert!(sends_to(&out, p(1)).is_empty());
        assert!(sends_to(&out, p(2)).is_empty());
        assert_eq!(hub.participant_count(), 3);
        assert_eq!(hub.room_count(), 2);
    }

    #[test]
    fn close_sends_leave_and_tells_the_room() {
        let mut hub = Hub::with_seed(7);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        join(&mut hub, 3, "X", "Cy");
        hub.handle_close(p(2));
        let out = drain(&mut hub);
        assert!(
            matches!(commands(&out)[..], [Command::Leave { participant }] if participant == p(2))
        );
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::ParticipantLeft { id: 2 }]
        );
        assert!(sends_to(&out, p(3)).is_empty());
        assert!(sends_to(&out, p(2)).is_empty());
        // Closing twice, or closing a lobby socket, does nothing.
        hub.handle_close(p(2));
        hub.handle_open(p(9));
        hub.handle_close(p(9));
        assert!(drain(&mut hub).is_empty());
        // Last one out removes the room.
        hub.handle_close(p(1));
        drain(&mut hub);
        assert_eq!(hub.room_count(), 1);
    }

    #[test]
    fn leave_message_then_rejoin_refused() {
        let mut hub = Hub::with_seed(7);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        hub.handle_frame(p(1), r#"{"type":"leave"}"#, t0());
        let out = drain(&mut hub);
        assert!(
            matches!(commands(&out)[..], [Command::Leave { participant }] if participant == p(1))
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::ParticipantLeft { id: 1 }]
        );
        hub.handle_frame(p(1), r#"{"type":"join","room":"R","name":"Ana"}"#, t0());
        assert_eq!(
            error_code(&sends_to(&drain(&mut hub), p(1))),
            Some(ErrorCode::AlreadyJoined)
        );
        hub.handle_frame(p(1), r#"{"type":"publish-offer","sdp":"v=0"}"#, t0());
        assert_eq!(
            error_code(&sends_to(&drain(&mut hub), p(1))),
            Some(ErrorCode::NotJoined)
        );
        // The later close must not send a second Leave.
        hub.handle_close(p(1));
        assert!(commands(&drain(&mut hub)).is_empty());
    }

    #[test]
    fn every_session_error_code_and_socket_stays_usable() {
        let mut hub = Hub::with_seed(7);
        hub.handle_open(p(1));
        let cases: &[(&str, ErrorCode)] = &[
            ("nope", ErrorCode::BadJson),
            ("42", ErrorCode::BadMessage),
            (r#"{"type":"hello"}"#, ErrorCode::UnknownType),
            (
                r#"{"type":"publish-offer","sdp":"v=0"}"#,
                ErrorCode::NotJoined,
            ),
            (
                r#"{"type":"subscribe-answer","sdp":"v=0"}"#,
                ErrorCode::NotJoined,
            ),
            (r#"{"type":"leave"}"#, ErrorCode::NotJoined),
            (
                r#"{"type":"join","room":"a/b","name":"A"}"#,
                ErrorCode::BadRoom,
            ),
            (
                r#"{"type":"join","room":"ab","name":"\u0007"}"#,
                ErrorCode::BadName,
            ),
        ];
        for (frame, expected) in cases {
            hub.handle_frame(p(1), frame, t0());
            let out = drain(&mut hub);
            assert!(commands(&out).is_empty(), "{frame}");
            assert_eq!(
                error_code(&sends_to(&out, p(1))),
                Some(*expected),
                "{frame}"
            );
        }
        for code in [ErrorCode::TooLarge, ErrorCode::NotText] {
            hub.handle_refused(p(1), code);
            assert_eq!(error_code(&sends_to(&drain(&mut hub), p(1))), Some(code));
        }
        // Still usable: a valid join works, a second one is refused.
        let out = join(&mut hub, 1, "R", "Ana");
        assert!(matches!(
            sends_to(&out, p(1))[..],
            [ServerMessage::Joined { .. }]
        ));
        hub.handle_frame(p(1), r#"{"type":"join","room":"R","name":"Ana"}"#, t0());
        let out = drain(&mut hub);
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::AlreadyJoined)
        );
        assert!(commands(&out).is_empty());
    }

    #[test]
    fn sdp_goes_to_media_with_the_sender_id() {
        let mut hub = Hub::with_seed(7);
        join(&mut hub, 4, "R", "Ana");
        hub.handle_frame(p(4), r#"{"type":"publish-offer","sdp":"offer"}"#, t0());
        hub.handle_frame(p(4), r#"{"type":"subscribe-answer","sdp":"answer"}"#, t0());
        let cmds = commands(&drain(&mut hub));
        assert!(matches!(&cmds[..], [
            Command::PublishOffer { participant: a, sdp: s1 },
            Command::SubscribeAnswer { participant: b, sdp: s2 },
        ] if *a == p(4) && *b == p(4) && s1 == "offer" && s2 == "answer"));
    }

    #[test]
    fn media_events_reach_only_their_socket() {
        let mut hub = Hub::with_seed(7);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        hub.handle_open(p(3)); // lobby: no media events
        let events = [
            Event::PublishAnswer {
                participant: p(1),
                sdp: "ans".into(),
            },
            Event::SubscribeOffer {
                participant: p(2),
                sdp: "off".into(),
            },
            Event::Connected {
                participant: p(1),
                transport: TransportKind::Subscribe,
            },
            Event::Error {
                participant: p(2),
                reason: "bad sdp".into(),
            },
            Event::TrackPublished {
                participant: p(1),
                kind: MediaKind::Video,
            },
            Event::PublishAnswer {
                participant: p(3),
                sdp: "x".into(),
            },
            Event::PublishAnswer {
                participant: p(99),
                sdp: "x".into(),
            },
        ];
        for e in events {
            hub.handle_media_event(e);
        }
        let out = drain(&mut hub);
        assert_eq!(
            sends_to(&out, p(1)),
            vec![
                ServerMessage::PublishAnswer { sdp: "ans".into() },
                ServerMessage::Connected {
                    transport: WireTransport::Subscribe
                },
            ]
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![
                ServerMessage::SubscribeOffer { sdp: "off".into() },
                ServerMessage::Error {
                    code: ErrorCode::Media,
                    message: "bad sdp".into()
                },
            ]
        );
        assert!(sends_to(&out, p(3)).is_empty());
        assert_eq!(out.len(), 4);
        // After leaving, late events are dropped.
        hub.handle_close(p(1));
        drain(&mut hub);
        hub.handle_media_event(Event::SubscribeOffer {
            participant: p(1),
            sdp: "late".into(),
        });
        assert!(drain(&mut hub).is_empty());
    }

    /// Seeded random sessions: every Join to mediad is matched by exactly one
    /// Leave once all sockets close, nobody hears about other rooms, and no
    /// message goes to a closed socket.
    #[test]
    fn seeded_random_sessions_keep_invariants() {
        let mut seed = 0x00c0_ffee_1234_5678u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let frames = [
            r#"{"type":"join","room":"A","name":"x"}"#,
            r#"{"type":"join","room":"B","name":"y"}"#,
            r#"{"type":"publish-offer","sdp":"o"}"#,
            r#"{"type":"subscribe-answer","sdp":"a"}"#,
            r#"{"type":"leave"}"#,
            r#"{"type":"join","room":"bad room","name":"x"}"#,
            "garbage",
        ];
        let mut total_joins = 0;
        for _round in 0..200 {
            let mut hub = Hub::with_seed(7);
            let mut open = std::collections::BTreeSet::new();
            let mut room_of: BTreeMap<ParticipantId, String> = BTreeMap::new();
            let mut joins = BTreeMap::new();
            let mut leaves = BTreeMap::new();
            // Six socket slots; each open gets a fresh id, as in the server.
            let mut slots = [None::<ParticipantId>; 6];
            let mut next = 1u64;
            for _ in 0..60 {
                let slot = rnd(6) as usize;
                match (rnd(10), slots[slot]) {
                    (0, None) => {
                        let id = p(next);
                        next += 1;
                        slots[slot] = Some(id);
                        open.insert(id);
                        hub.handle_open(id);
                    }
                    (1, Some(id)) => {
                        slots[slot] = None;
                        open.remove(&id);
                        hub.handle_close(id);
                    }
                    (_, Some(id)) => {
                        hub.handle_frame(id, frames[rnd(frames.len() as u64) as usize], t0());
                    }
                    _ => {}
                }
                let outs = drain(&mut hub);
                for out in &outs {
                    if let Output::Send {
                        to,
                        msg: ServerMessage::Joined { room, .. },
                    } = out
                    {
                        room_of.insert(*to, room.clone());
                    }
                }
                for out in outs {
                    match out {
                        Output::Send { to, msg } => {
                            assert!(open.contains(&to), "message to closed socket {to}");
                            if let ServerMessage::ParticipantJoined { id, .. } = &msg {
                                assert_eq!(room_of.get(&to), room_of.get(&p(*id)));
                            }
                        }
                        Output::Media(Command::Join { participant, .. }) => {
                            *joins.entry(participant).or_insert(0) += 1;
                        }
                        Output::Media(Command::Leave { participant }) => {
                            *leaves.entry(participant).or_insert(0) += 1;
                        }
                        Output::Media(_) | Output::PadSend { .. } | Output::PadClose { .. } => {}
                    }
                }
            }
            for id in std::mem::take(&mut open) {
                hub.handle_close(id);
            }
            for out in drain(&mut hub) {
                if let Output::Media(Command::Leave { participant }) = out {
                    *leaves.entry(participant).or_insert(0) += 1;
                }
            }
            assert_eq!(joins, leaves);
            assert!(joins.values().all(|n| *n == 1));
            total_joins += joins.len();
            assert_eq!(hub.participant_count(), 0);
            assert_eq!(hub.room_count(), 0);
        }
        assert!(total_joins > 200, "only {total_joins} joins exercised");
    }

    fn chat_frame(text: &str, to: Option<u64>) -> String {
        serde_json::json!({"type": "chat", "text": text, "to": to}).to_string()
    }

    fn chats(msgs: &[ServerMessage]) -> Vec<(u64, String, Option<u64>)> {
        msgs.iter()
            .filter_map(|m| match m {
                ServerMessage::Chat { from, text, to, .. } => Some((*from, text.clone(), *to)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn public_chat_reaches_the_room_only_stamped_by_the_server() {
        let mut hub = Hub::with_seed(1);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        join(&mut hub, 3, "X", "Cy");
        hub.handle_frame(
            p(1),
            &chat_frame("<img src=x onerror=alert(1)>", None),
            at(1234),
        );
        let out = drain(&mut hub);
        for id in [1, 2] {
            let msgs = sends_to(&out, p(id));
            assert_eq!(
                msgs,
                vec![ServerMessage::Chat {
                    from: 1,
                    name: "Ana".into(),
                    text: "<img src=x onerror=alert(1)>".into(),
                    time: 1_700_000_001_234,
                    to: None
                }]
            );
        }
        assert!(sends_to(&out, p(3)).is_empty());
        assert!(commands(&out).is_empty());
        // Not in a room: refused.
        hub.handle_open(p(4));
        hub.handle_frame(p(4), &chat_frame("hi", None), t0());
        assert_eq!(
            error_code(&sends_to(&drain(&mut hub), p(4))),
            Some(ErrorCode::NotJoined)
        );
    }

    #[test]
    fn private_chat_reaches_only_its_addressee_and_sender() {
        let mut hub = Hub::with_seed(1);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        join(&mut hub, 3, "R", "Cy");
        join(&mut hub, 4, "X", "Dan");
        hub.handle_frame(p(1), &chat_frame("psst", Some(2)), t0());
        let out = drain(&mut hub);
        assert_eq!(
            chats(&sends_to(&out, p(1))),
            vec![(1, "psst".into(), Some(2))]
        );
        assert_eq!(
            chats(&sends_to(&out, p(2))),
            vec![(1, "psst".into(), Some(2))]
        );
        assert!(sends_to(&out, p(3)).is_empty());
        assert!(sends_to(&out, p(4)).is_empty());
        // To someone in another room, to nobody, to oneself: refused, and
        // nothing is delivered to anyone.
        for to in [4, 99, 1] {
            hub.handle_frame(p(1), &chat_frame("secret", Some(to)), t0());
            let out = drain(&mut hub);
            assert_eq!(out.len(), 1, "to {to}");
            assert_eq!(
                error_code(&sends_to(&out, p(1))),
                Some(ErrorCode::NoSuchParticipant)
            );
        }
        // Someone who left is no longer addressable.
        hub.handle_close(p(2));
        drain(&mut hub);
        hub.handle_frame(p(1), &chat_frame("still there?", Some(2)), t0());
        assert_eq!(
            error_code(&sends_to(&drain(&mut hub), p(1))),
            Some(ErrorCode::NoSuchParticipant)
        );
    }

    #[test]
    fn chat_rate_limit_per_participant() {
        let mut hub = Hub::with_seed(1);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        // Burst of 10 accepted, the 11th at the same instant refused.
        for i in 0..CHAT_BURST {
            hub.handle_frame(p(1), &chat_frame(&format!("m{i}"), None), t0());
        }
        hub.handle_frame(p(1), &chat_frame("one too many", None), t0());
        let out = drain(&mut hub);
        assert_eq!(chats(&sends_to(&out, p(2))).len(), CHAT_BURST as usize);
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::RateLimited)
        );
        // Bob is not limited by Ana's burst.
        hub.handle_frame(p(2), &chat_frame("moi", None), t0());
        assert_eq!(chats(&sends_to(&drain(&mut hub), p(1))).len(), 1);
        // 5 per second refill: after 200 ms one more passes, a second not.
        hub.handle_frame(p(1), &chat_frame("a", None), at(200));
        hub.handle_frame(p(1), &chat_frame("b", None), at(200));
        let out = drain(&mut hub);
        assert_eq!(chats(&sends_to(&out, p(2))).len(), 1);
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::RateLimited)
        );
        // After two seconds the bucket is full again.
        for i in 0..CHAT_BURST {
            hub.handle_frame(p(1), &chat_frame(&format!("n{i}"), None), at(2_500));
        }
        assert_eq!(
            chats(&sends_to(&drain(&mut hub), p(2))).len(),
            CHAT_BURST as usize
        );
        // An oversized message is refused and reaches nobody.
        hub.handle_frame(p(1), &chat_frame(&"x".repeat(2001), None), at(5_000));
        let out = drain(&mut hub);
        assert_eq!(out.len(), 1);
        assert_eq!(error_code(&sends_to(&out, p(1))), Some(ErrorCode::TooLong));
    }

    #[test]
    fn screen_share_is_announced_to_the_room_and_to_newcomers() {
        let mut hub = Hub::with_seed(1);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        join(&mut hub, 3, "X", "Cy");
        hub.handle_frame(p(1), r#"{"type":"screen","mid":"2"}"#, t0());
        let out = drain(&mut hub);
        let share = ServerMessage::ScreenShare {
            id: 1,
            track_id: Some("1-2".into()),
        };
        assert_eq!(sends_to(&out, p(1)), vec![share.clone()]);
        assert_eq!(sends_to(&out, p(2)), vec![share.clone()]);
        assert!(sends_to(&out, p(3)).is_empty());
        // Repeating it changes nothing.
        hub.handle_frame(p(1), r#"{"type":"screen","mid":"2"}"#, t0());
        assert!(drain(&mut hub).is_empty());
        // A newcomer learns about the running share right after `joined`.
        let out = join(&mut hub, 4, "R", "Dan");
        let msgs = sends_to(&out, p(4));
        assert!(matches!(msgs[0], ServerMessage::Joined { .. }));
        assert_eq!(msgs[1..], [share]);
        // Stop.
        hub.handle_frame(p(1), r#"{"type":"screen","mid":null}"#, t0());
        let out = drain(&mut hub);
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::ScreenShare {
                id: 1,
                track_id: None
            }]
        );
    }

    #[test]
    fn audio_only_is_recorded_and_sent_to_mediad() {
        let mut hub = Hub::with_seed(1);
        join(&mut hub, 1, "R", "Ana");
        assert_eq!(hub.audio_only(p(1)), Some(false));
        hub.handle_frame(p(1), r#"{"type":"audio-only","on":true}"#, t0());
        let out = drain(&mut hub);
        assert!(matches!(
            commands(&out)[..],
            [Command::SetAudioOnly { participant, enabled: true }] if participant == p(1)
        ));
        assert_eq!(hub.audio_only(p(1)), Some(true));
    }

    #[test]
    fn dominant_speaker_goes_to_the_room() {
        let mut hub = Hub::with_seed(1);
        join(&mut hub, 1, "R", "Ana");
        join(&mut hub, 2, "R", "Bob");
        join(&mut hub, 3, "X", "Cy");
        hub.handle_media_event(Event::DominantSpeaker {
            room: RoomId("R".into()),
            participant: p(2),
        });
        // A stale event (wrong room) is dropped.
        hub.handle_media_event(Event::DominantSpeaker {
            room: RoomId("X".into()),
            participant: p(2),
        });
        let out = drain(&mut hub);
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::DominantSpeaker { id: 2 }]
        );
        assert_eq!(out.len(), 2);
    }

    // ---- pad ----------------------------------------------------------------

    use yrs::updates::encoder::Encode as _;
    use yrs::{Doc, GetString as _, ReadTxn as _, Text as _, Transact as _};

    fn pad_frames(out: &[Output], conn: PadConnId) -> Vec<Bytes> {
        out.iter()
            .filter_map(|o| match o {
                Output::PadSend { to, data } if *to == conn => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    fn pad_close(out: &[Output], conn: PadConnId) -> Option<&'static str> {
        out.iter().find_map(|o| match o {
            Output::PadClose { to, reason, .. } if *to == conn => Some(*reason),
            _ => None,
        })
    }

    /// A browser-side document: applies what the gateway sends.
    fn apply_frames(doc: &Doc, frames: &[Bytes]) {
        use yrs::sync::{Message, SyncMessage};
        use yrs::updates::decoder::Decode as _;
        for f in frames {
            if let Message::Sync(SyncMessage::SyncStep2(u) | SyncMessage::Update(u)) =
                Message::decode_v1(f).unwrap()
            {
                doc.transact_mut()
                    .apply_update(yrs::Update::decode_v1(&u).unwrap())
                    .unwrap();
            }
        }
    }

    fn edit(doc: &Doc, at: u32, text: &str) -> Vec<u8> {
        use yrs::sync::{Message, SyncMessage};
        let t = doc.get_or_insert_text("pad");
        let before = doc.transact().state_vector();
        t.insert(&mut doc.transact_mut(), at, text);
        let update = doc.transact().encode_state_as_update_v1(&before);
        Message::Sync(SyncMessage::Update(update)).encode_v1()
    }

    fn open_pad(hub: &mut Hub, out: &[Output], id: u64, conn: u64) -> PadConnId {
        let conn = PadConnId(conn);
        hub.handle_pad_open(conn, &token_of(out, p(id)));
        conn
    }

    #[test]
    fn pad_syncs_between_participants_and_dies_with_the_meeting() {
        let mut hub = Hub::with_seed(3);
        let o1 = join(&mut hub, 1, "R", "Ana");
        let o2 = join(&mut hub, 2, "R", "Bob");
        let o3 = join(&mut hub, 3, "X", "Cy");
        assert_eq!(hub.pads_live(), 0, "pads are created on first use");
        let c1 = open_pad(&mut hub, &o1, 1, 11);
        let c2 = open_pad(&mut hub, &o2, 2, 12);
        let c3 = open_pad(&mut hub, &o3, 3, 13);
        let out = drain(&mut hub);
        assert_eq!(hub.pads_live(), 2);
        // Each gets the server's SyncStep1.
        for c in [c1, c2, c3] {
            assert_eq!(pad_frames(&out, c).len(), 1);
        }
        let (d1, d2, d3) = (Doc::with_client_id(1), Doc::with_client_id(2), Doc::new());
        hub.handle_pad_frame(c1, &edit(&d1, 0, "Ordre du jour"));
        let out = drain(&mut hub);
        apply_frames(&d2, &pad_frames(&out, c2));
        assert!(pad_frames(&out, c1).is_empty(), "no echo");
        assert!(pad_frames(&out, c3).is_empty(), "other room");
        hub.handle_pad_frame(c2, &edit(&d2, 0, "# "));
        let out = drain(&mut hub);
        apply_frames(&d1, &pad_frames(&out, c1));
        let text = |d: &Doc| d.get_or_insert_text("pad").get_string(&d.transact());
        assert_eq!(text(&d1), "# Ordre du jour");
        assert_eq!(text(&d2), text(&d1));
        assert_eq!(hub.pad_text("R", "pad").unwrap(), "# Ordre du jour");
        // A late joiner catches up with SyncStep1 → SyncStep2.
        let o4 = join(&mut hub, 4, "R", "Dan");
        let c4 = open_pad(&mut hub, &o4, 4, 14);
        drain(&mut hub);
        let d4 = Doc::new();
        let step1 = yrs::sync::Message::Sync(yrs::sync::SyncMessage::SyncStep1(
            d4.transact().state_vector(),
        ))
        .encode_v1();
        hub.handle_pad_frame(c4, &step1);
        apply_frames(&d4, &pad_frames(&drain(&mut hub), c4));
        assert_eq!(text(&d4), "# Ordre du jour");
        assert_eq!(text(&d3), "");
        // Everyone leaves: the pad sockets are closed and the pad is gone.
        for id in [1, 2, 4] {
            hub.handle_close(p(id));
        }
        let out = drain(&mut hub);
        for c in [c1, c2, c4] {
            assert_eq!(pad_close(&out, c), Some("left"));
        }
        assert_eq!(hub.pads_live(), 1, "room X's pad is still live");
        assert_eq!(hub.pad_text("R", "pad"), None);
        assert_eq!(hub.room_count(), 1);
        hub.handle_close(p(3));
        drain(&mut hub);
        assert_eq!(hub.pads_live(), 0);
        assert_eq!(hub.room_count(), 0);
        assert_eq!(hub.pad_connections(), 0);
        // A new meeting with the same name starts with an empty pad.
        let o5 = join(&mut hub, 5, "R", "Eve");
        let c5 = open_pad(&mut hub, &o5, 5, 15);
        drain(&mut hub);
        assert_eq!(hub.pad_text("R", "pad").unwrap(), "");
        // Old tokens no longer open anything.
        hub.handle_pad_open(PadConnId(16), &token_of(&o1, p(1)));
        assert_eq!(
            pad_close(&drain(&mut hub), PadConnId(16)),
            Some("pad-denied")
        );
        let _ = c5;
    }

    #[test]
    fn pad_refuses_bad_tokens_and_bad_frames_for_their_sender_only() {
        let mut hub = Hub::with_seed(4);
        let o1 = join(&mut hub, 1, "R", "Ana");
        let o2 = join(&mut hub, 2, "R", "Bob");
        hub.handle_pad_open(PadConnId(9), "not-a-token");
        assert_eq!(
            pad_close(&drain(&mut hub), PadConnId(9)),
            Some("pad-denied")
        );
        assert_eq!(hub.pads_live(), 0);
        let c1 = open_pad(&mut hub, &o1, 1, 1);
        let c2 = open_pad(&mut hub, &o2, 2, 2);
        drain(&mut hub);
        let d1 = Doc::with_client_id(1);
        hub.handle_pad_frame(c1, &edit(&d1, 0, "bonjour"));
        drain(&mut hub);
        // Malformed: garbage, a sync update whose payload is not an update,
        // an unknown sync step.
        for bad in [
            &[0xffu8, 0xff, 0xff][..],
            &[0, 2, 3, 0xff, 0xff, 0xff][..],
            &[0, 9, 0][..],
            &[2, 0][..],
        ] {
            let o = join(&mut hub, 3, "R", "Mallory");
            let c3 = open_pad(&mut hub, &o, 3, 3);
            drain(&mut hub);
            hub.handle_pad_frame(c3, bad);
            let out = drain(&mut hub);
            assert_eq!(pad_close(&out, c3), Some("pad-malformed"), "{bad:?}");
            assert!(pad_frames(&out, c1).is_empty() && pad_frames(&out, c2).is_empty());
            // Later frames from the closed socket are ignored.
            hub.handle_pad_frame(c3, &edit(&Doc::new(), 0, "x"));
            assert!(drain(&mut hub).is_empty());
            hub.handle_close(p(3));
            drain(&mut hub);
        }
        // Oversized update: refused.
        let big = Doc::with_client_id(7);
        let frame = edit(&big, 0, &"a".repeat(crate::pad::MAX_PAD_FRAME_BYTES));
        hub.handle_pad_frame(c2, &frame);
        assert_eq!(pad_close(&drain(&mut hub), c2), Some("pad-too-large"));
        // Ana is unaffected and the document intact.
        hub.handle_pad_frame(c1, &edit(&d1, 7, " !"));
        assert!(pad_close(&drain(&mut hub), c1).is_none());
        assert_eq!(hub.pad_text("R", "pad").unwrap(), "bonjour !");
        // Bob reconnects with the same session token.
        let c2b = open_pad(&mut hub, &o2, 2, 22);
        assert_eq!(pad_frames(&drain(&mut hub), c2b).len(), 1);
        assert_eq!(hub.pad_connections(), 2);
    }

    #[test]
    fn pad_document_size_is_capped() {
        let mut hub = Hub::with_seed(5);
        let o1 = join(&mut hub, 1, "R", "Ana");
        let c1 = open_pad(&mut hub, &o1, 1, 1);
        drain(&mut hub);
        let d = Doc::with_client_id(1);
        let chunk = "z".repeat(200 * 1024);
        let mut accepted = 0;
        let mut full = false;
        for _ in 0..8 {
            let len = d.get_or_insert_text("pad").len(&d.transact());
            hub.handle_pad_frame(c1, &edit(&d, len, &chunk));
            match pad_close(&drain(&mut hub), c1) {
                None => accepted += 1,
                Some(reason) => {
                    assert_eq!(reason, "pad-full");
                    full = true;
                    break;
                }
            }
        }
        assert!(full && accepted == 5, "accepted {accepted}");
        let len = hub.pad_text("R", "pad").unwrap().len();
        assert!(len <= crate::pad::MAX_PAD_DOC_BYTES, "{len}");
    }
}
