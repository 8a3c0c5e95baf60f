//! The signaling core: rooms, participants with their roles, lobbies,
//! moderation, chat, screen shares and the meeting pad, as a sans-IO state
//! machine. Decisions go through the Lua policy ([`PolicyHost`], once per
//! signaling event) after the Rust checks (token, ban, role, same room);
//! without a policy the built-in open rules apply (anyone creates and joins,
//! the first one in moderates).
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

use std::sync::Arc;

use salon_plugins::{
    Authenticator, ChatDecision, Ctx, FAIL_CLOSED_REASON, Identity, JoinDecision, MediaLimits,
    ModerationAction, ModerationKind, PolicyHost, Role, RoleCounts, RoomInfo, RoomSettings,
    Verdict,
};

use crate::control::{Command, Event, MediaKind, ParticipantId, RequestId, RoomId};
use crate::pad::PadDoc;
use crate::protocol::{
    ClientMessage, DisplayName, ErrorCode, MediaKindWire, Moderation, ParticipantInfo,
    ProtocolError, ServerMessage, VideoConstraint, parse_client,
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

/// Default time a denied guest waits before knocking again.
pub const DEFAULT_DENY_COOLDOWN: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Member {
    room: RoomId,
    name: DisplayName,
    role: Role,
    identity: Option<Arc<Identity>>,
    pad_token: String,
    pad_conn: Option<PadConnId>,
    screen_mid: Option<String>,
    audio_only: bool,
    chat: Bucket,
    /// Audio forwarding stopped by a moderator.
    audio_muted: bool,
    /// Camera forwarding stopped by a moderator.
    video_stopped: bool,
    /// The screen-share mid whose forwarding a moderator stopped.
    screen_stopped: Option<String>,
    /// Own mic/camera state (`media-state`, display only).
    self_audio: bool,
    self_video: bool,
}

/// Someone in a room's lobby (waiting, or denied / kicked and allowed to
/// knock again).
#[derive(Debug)]
struct Waiting {
    room: RoomId,
    name: DisplayName,
    identity: Option<Arc<Identity>>,
    /// In the moderators' list now.
    knocking: bool,
    /// May not knock before this.
    retry_at: Option<Instant>,
}

#[derive(Debug)]
enum SessionState {
    /// Socket open, not in a room (may `join`).
    Idle,
    /// In a room's lobby.
    Waiting(Box<Waiting>),
    /// In a room.
    Joined(Box<Member>),
    /// Sent `leave`; the socket may stay open but cannot join again.
    Left,
}

/// Who a ban or a deny cooldown applies to: the token's user (Jitsi
/// `context.user.id`, else `sub`), else the socket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    User(String),
    Socket(ParticipantId),
}

fn who(id: ParticipantId, identity: Option<&Identity>) -> Who {
    identity
        .and_then(|i| i.user_id.clone().or_else(|| i.sub.clone()))
        .map_or(Who::Socket(id), Who::User)
}

/// One meeting: exists from its first admitted participant until the last
/// one leaves (or a moderator ends it).
#[derive(Debug, Default)]
struct Room {
    members: BTreeSet<ParticipantId>,
    /// Sessions in this room's lobby (knocking or not).
    waiting: BTreeSet<ParticipantId>,
    locked: bool,
    /// After `mute-all`, non-moderators cannot unmute until `allow-unmute`.
    mute_all: bool,
    bans: BTreeSet<Who>,
    cooldowns: BTreeMap<Who, Instant>,
    /// Most videos each member receives (from `room_settings`).
    last_n: Option<u32>,
}

/// What a hook sees, owned (a [`Ctx`] borrows from it).
struct CtxData {
    room: String,
    size: u32,
    locked: bool,
    exists: bool,
    roles: RoleCounts,
    participant_id: String,
    name: Option<String>,
    identity: Option<Arc<Identity>>,
    role: Option<Role>,
    now: u64,
}

impl CtxData {
    fn ctx(&self) -> Ctx<'_> {
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

/// Room and participant bookkeeping for every open socket.
#[derive(Debug)]
pub struct Hub {
    sessions: BTreeMap<ParticipantId, SessionState>,
    rooms: BTreeMap<RoomId, Room>,
    /// One pad per meeting, created on first use, dropped with the room.
    pads: BTreeMap<RoomId, PadDoc>,
    /// Pad token → its participant (while joined).
    pad_tokens: BTreeMap<String, ParticipantId>,
    /// Open, accepted pad sockets → their participant.
    pad_conns: BTreeMap<PadConnId, ParticipantId>,
    /// The room policy; `None`: the built-in open rules (anyone may create
    /// and join a room, the first one in is moderator).
    policy: Option<PolicyHost>,
    /// Token verification; `None`: every token is refused.
    auth: Option<Arc<Authenticator>>,
    deny_cooldown: Duration,
    /// Last-N of rooms whose policy sets none.
    default_last_n: Option<u32>,
    /// Unix seconds of the last input that carried a time.
    last_unix_s: u64,
    rng: StdRng,
    /// Correlation id of the next command to mediad that expects an answer.
    next_request: u64,
    outputs: VecDeque<Output>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    /// An empty hub with the built-in open rules; pad tokens from the OS's
    /// randomness.
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
            policy: None,
            auth: None,
            deny_cooldown: DEFAULT_DENY_COOLDOWN,
            default_last_n: None,
            last_unix_s: 0,
            rng,
            next_request: 1,
            outputs: VecDeque::new(),
        }
    }

    /// A fresh correlation id for a command to mediad.
    fn next_request(&mut self) -> RequestId {
        let r = RequestId(self.next_request);
        self.next_request += 1;
        r
    }

    /// Uses this Lua policy for every decision (replaces the open rules).
    pub fn set_policy(&mut self, policy: PolicyHost) {
        self.policy = Some(policy);
    }

    /// Verifies `join` tokens with this authenticator.
    pub fn set_auth(&mut self, auth: Arc<Authenticator>) {
        self.auth = Some(auth);
    }

    /// How long a denied guest waits before knocking again.
    pub fn set_deny_cooldown(&mut self, cooldown: Duration) {
        self.deny_cooldown = cooldown;
    }

    /// Last-N for rooms whose policy's `room_settings` sets none.
    pub fn set_default_last_n(&mut self, last_n: Option<u32>) {
        self.default_last_n = last_n;
    }

    /// The policy host, if any (reloads, failure counters).
    pub fn policy_mut(&mut self) -> Option<&mut PolicyHost> {
        self.policy.as_mut()
    }

    /// The policy host, if any.
    pub fn policy(&self) -> Option<&PolicyHost> {
        self.policy.as_ref()
    }

    /// Number of participants currently in a room.
    pub fn participant_count(&self) -> usize {
        self.rooms.values().map(|r| r.members.len()).sum()
    }

    /// Number of live rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of sessions waiting in lobbies (knocking or not).
    pub fn lobby_count(&self) -> usize {
        self.rooms.values().map(|r| r.waiting.len()).sum()
    }

    /// Ids of the guests knocking in `room`'s lobby (tests, diagnostics).
    pub fn knocking(&self, room: &str) -> Vec<u64> {
        self.rooms
            .get(&RoomId(room.to_owned()))
            .map(|r| {
                r.waiting
                    .iter()
                    .filter(|w| {
                        matches!(self.sessions.get(w), Some(SessionState::Waiting(x)) if x.knocking)
                    })
                    .map(|w| w.0)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `id`'s role, if it is in a room.
    pub fn role(&self, id: ParticipantId) -> Option<Role> {
        match self.sessions.get(&id) {
            Some(SessionState::Joined(m)) => Some(m.role),
            _ => None,
        }
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
    /// (An id that already has a session keeps it.)
    pub fn handle_open(&mut self, id: ParticipantId) {
        self.sessions.entry(id).or_insert(SessionState::Idle);
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
        self.send_error(id, &ProtocolError::plain(code));
    }

    /// A parsed message from socket `id`.
    pub fn handle_message(&mut self, id: ParticipantId, msg: ClientMessage, now: Now) {
        self.last_unix_s = now.unix_ms / 1000;
        let Some(state) = self.sessions.get(&id) else {
            return;
        };
        let joined = matches!(state, SessionState::Joined(_));
        match (msg, state) {
            (ClientMessage::Join { room, name, jwt }, SessionState::Idle) => {
                self.join(id, room, name, jwt, now);
            }
            (ClientMessage::Join { .. }, _) => self.refuse(id, ErrorCode::AlreadyJoined),
            (ClientMessage::Knock, SessionState::Waiting(_)) => self.knock(id, now),
            (ClientMessage::Knock, _) => self.refuse(id, ErrorCode::NotInLobby),
            (ClientMessage::Leave, SessionState::Waiting(_)) => {
                self.leave_lobby(id);
                self.sessions.insert(id, SessionState::Left);
            }
            (ClientMessage::Leave, SessionState::Joined(_)) => {
                self.remove_member(id, now.unix_ms / 1000);
                self.sessions.insert(id, SessionState::Left);
            }
            // Moderation from the lobby: not a moderator.
            (ClientMessage::Moderate(_), SessionState::Waiting(_)) => {
                self.refuse(id, ErrorCode::Forbidden);
            }
            (_, _) if !joined => self.refuse(id, ErrorCode::NotJoined),
            (ClientMessage::PublishOffer { sdp }, _) => {
                let request = self.next_request();
                self.outputs.push_back(Output::Media(Command::PublishOffer {
                    participant: id,
                    request,
                    sdp,
                }));
            }
            (ClientMessage::SubscribeAnswer { sdp }, _) => {
                let request = self.next_request();
                self.outputs
                    .push_back(Output::Media(Command::SubscribeAnswer {
                        participant: id,
                        request,
                        sdp,
                    }));
            }
            (ClientMessage::Chat { text, to }, _) => self.chat(id, text, to, now),
            (ClientMessage::Screen { mid }, _) => self.screen(id, mid),
            (ClientMessage::AudioOnly { on }, _) => {
                if let Some(SessionState::Joined(m)) = self.sessions.get_mut(&id) {
                    m.audio_only = on;
                }
                self.outputs.push_back(Output::Media(Command::SetAudioOnly {
                    participant: id,
                    enabled: on,
                }));
            }
            (ClientMessage::Moderate(m), _) => self.moderate(id, m, now),
            (ClientMessage::Unmute { kind }, _) => self.unmute(id, kind),
            (ClientMessage::MediaState { audio, video }, _) => self.media_state(id, audio, video),
            (ClientMessage::VideoConstraints { constraints, bad }, _) => {
                self.video_constraints(id, constraints, bad);
            }
            // Joined + Leave is handled above; `ClientMessage` may grow.
            #[allow(unreachable_patterns)]
            _ => self.refuse(id, ErrorCode::UnknownType),
        }
    }

    /// Whether `id` asked for audio only (recorded for the media plane).
    pub fn audio_only(&self, id: ParticipantId) -> Option<bool> {
        match self.sessions.get(&id) {
            Some(SessionState::Joined(m)) => Some(m.audio_only),
            _ => None,
        }
    }

    /// Socket `id` closed (or was dropped by the driver). Hooks called
    /// from here see the time of the last input that carried one.
    pub fn handle_close(&mut self, id: ParticipantId) {
        match self.sessions.get(&id) {
            Some(SessionState::Joined(_)) => {
                self.remove_member(id, self.last_unix_s);
            }
            Some(SessionState::Waiting(_)) => self.leave_lobby(id),
            _ => {}
        }
        self.sessions.remove(&id);
    }

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
                tracing::info!(%participant, request = ?request, %error, "media plane refused a command");
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

    fn member(&self, id: ParticipantId) -> Option<&Member> {
        match self.sessions.get(&id) {
            Some(SessionState::Joined(m)) => Some(m),
            _ => None,
        }
    }

    fn member_mut(&mut self, id: ParticipantId) -> Option<&mut Member> {
        match self.sessions.get_mut(&id) {
            Some(SessionState::Joined(m)) => Some(m),
            _ => None,
        }
    }

    fn waiting_mut(&mut self, id: ParticipantId) -> Option<&mut Waiting> {
        match self.sessions.get_mut(&id) {
            Some(SessionState::Waiting(w)) => Some(w),
            _ => None,
        }
    }

    fn pad_conns_of(&self, room: &RoomId) -> Vec<PadConnId> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        r.members
            .iter()
            .filter_map(|p| self.member(*p).and_then(|m| m.pad_conn))
            .collect()
    }

    fn send(&mut self, to: ParticipantId, msg: ServerMessage) {
        self.outputs.push_back(Output::Send { to, msg });
    }

    fn media(&mut self, cmd: Command) {
        self.outputs.push_back(Output::Media(cmd));
    }

    fn broadcast(&mut self, room: &RoomId, msg: &ServerMessage) {
        self.broadcast_except(room, msg, None);
    }

    fn broadcast_except(
        &mut self,
        room: &RoomId,
        msg: &ServerMessage,
        skip: Option<ParticipantId>,
    ) {
        if let Some(r) = self.rooms.get(room) {
            for to in &r.members {
                if Some(*to) != skip {
                    self.outputs.push_back(Output::Send {
                        to: *to,
                        msg: msg.clone(),
                    });
                }
            }
        }
    }

    /// The room's moderators.
    fn moderators(&self, room: &RoomId) -> Vec<ParticipantId> {
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
    fn ctx_data(
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
    fn member_ctx(&self, id: ParticipantId, now_s: u64) -> Option<CtxData> {
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

    fn chat(&mut self, id: ParticipantId, text: String, to: Option<u64>, now: Now) {
        let Some(member) = self.member_mut(id) else {
            return;
        };
        if !member.chat.take(now.mono) {
            self.refuse(id, ErrorCode::RateLimited);
            return;
        }
        let room = member.room.clone();
        let name = member.name.as_str().to_owned();
        if let Some(to) = to {
            let to = ParticipantId(to);
            let present = to != id
                && self
                    .rooms
                    .get(&room)
                    .is_some_and(|r| r.members.contains(&to));
            if !present {
                self.refuse(id, ErrorCode::NoSuchParticipant);
                return;
            }
        }
        let data = self.member_ctx(id, now.unix_ms / 1000);
        let text = match (&mut self.policy, data) {
            (Some(policy), Some(data)) => match policy.on_chat(&data.ctx(), &text) {
                ChatDecision::Allow => text,
                ChatDecision::Rewrite { text } => text,
                ChatDecision::Drop { reason } => {
                    self.send_error(id, &ProtocolError::new(ErrorCode::Forbidden, reason));
                    return;
                }
                _ => {
                    self.send_error(
                        id,
                        &ProtocolError::new(ErrorCode::Forbidden, FAIL_CLOSED_REASON),
                    );
                    return;
                }
            },
            _ => text,
        };
        let msg = ServerMessage::Chat {
            from: id.0,
            name,
            text,
            time: now.unix_ms,
            to,
        };
        match to {
            None => self.broadcast(&room, &msg),
            Some(to) => {
                self.send(id, msg.clone());
                self.send(ParticipantId(to), msg);
            }
        }
    }

    fn screen(&mut self, id: ParticipantId, mid: Option<String>) {
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

    fn refuse(&mut self, id: ParticipantId, code: ErrorCode) {
        self.handle_refused(id, code);
    }

    fn refuse_with(&mut self, id: ParticipantId, code: ErrorCode, detail: impl Into<String>) {
        self.send_error(id, &ProtocolError::new(code, detail));
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

    /// `join`: token, bans, then the policy (`on_join`, `on_room_create`).
    fn join(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        jwt: Option<String>,
        now: Now,
    ) {
        let now_s = now.unix_ms / 1000;
        let identity = match jwt {
            None => None,
            Some(token) => match &self.auth {
                None => {
                    self.refuse_with(id, ErrorCode::AuthFailed, "this server accepts no tokens");
                    return;
                }
                Some(auth) => match auth.verify(&token, &room.0, now_s) {
                    Ok(identity) => Some(Arc::new(identity)),
                    Err(e) => {
                        tracing::info!(participant = %id, error = %e, "token refused");
                        self.refuse_with(id, ErrorCode::AuthFailed, e.to_string());
                        return;
                    }
                },
            },
        };
        let key = who(id, identity.as_deref());
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.bans.contains(&key) || r.bans.contains(&Who::Socket(id)))
        {
            self.refuse(id, ErrorCode::Banned);
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
                self.admit(id, room, name, identity, role, false);
            }
            JoinDecision::Lobby => {
                let Some(r) = self.rooms.get_mut(&room) else {
                    self.refuse_with(id, ErrorCode::Denied, "this room does not exist yet");
                    return;
                };
                if r.locked {
                    self.refuse(id, ErrorCode::RoomLocked);
                    return;
                }
                r.waiting.insert(id);
                let cooldown = r.cooldowns.get(&key).copied().filter(|t| *t > now.mono);
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
            JoinDecision::Deny { reason } => self.refuse_with(id, ErrorCode::Denied, reason),
            _ => self.refuse_with(id, ErrorCode::Denied, FAIL_CLOSED_REASON),
        }
    }

    /// A lobby session knocks: `on_knock` may admit it at once; otherwise
    /// every moderator of the room is told (once).
    fn knock(&mut self, id: ParticipantId, now: Now) {
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
        if self.rooms.get(&room).is_some_and(|r| {
            r.bans.contains(&who(id, identity.as_deref())) || r.bans.contains(&Who::Socket(id))
        }) {
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
    fn admit_from_lobby(&mut self, id: ParticipantId, by: Option<ParticipantId>) {
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
            r.waiting.remove(&id);
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

    /// Someone leaves a lobby (socket closed, `leave`): moderators drop it
    /// from their lists.
    fn leave_lobby(&mut self, id: ParticipantId) {
        let Some(SessionState::Waiting(w)) = self.sessions.get(&id) else {
            return;
        };
        let room = w.room.clone();
        let knocking = w.knocking;
        self.sessions.insert(id, SessionState::Idle);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.waiting.remove(&id);
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

    /// Puts `id` in `room` with `role` (creating the room if needed).
    fn admit(
        &mut self,
        id: ParticipantId,
        room: RoomId,
        name: DisplayName,
        identity: Option<Arc<Identity>>,
        role: Role,
        from_lobby: bool,
    ) {
        let pad_token = self.new_pad_token();
        if !self.rooms.contains_key(&room) {
            let data = self.ctx_data(
                &room,
                id,
                Some(name.as_str()),
                identity.as_ref(),
                None,
                self.last_unix_s,
            );
            let settings = match &mut self.policy {
                Some(policy) => policy.room_settings(&data.ctx()),
                None => RoomSettings::default(),
            };
            let r = self.rooms.entry(room.clone()).or_default();
            r.last_n = settings.last_n.or(self.default_last_n);
        }
        let r = self.rooms.entry(room.clone()).or_default();
        let last_n = r.last_n;
        if from_lobby {
            r.waiting.remove(&id);
        }
        let locked = r.locked;
        let members: Vec<ParticipantId> = r.members.iter().copied().collect();
        let knocking: Vec<(u64, String)> = if role == Role::Moderator {
            r.waiting
                .iter()
                .filter_map(|w| match self.sessions.get(w) {
                    Some(SessionState::Waiting(x)) if x.knocking => {
                        Some((w.0, x.name.as_str().to_owned()))
                    }
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut participants = Vec::with_capacity(members.len());
        let mut screens = Vec::new();
        for p in &members {
            if let Some(m) = self.member(*p) {
                participants.push(ParticipantInfo {
                    id: p.0,
                    name: m.name.as_str().to_owned(),
                    role: m.role.into(),
                    audio_muted: m.audio_muted || !m.self_audio,
                    video_stopped: m.video_stopped || !m.self_video,
                });
                if let Some(mid) = &m.screen_mid {
                    screens.push(ServerMessage::ScreenShare {
                        id: p.0,
                        track_id: Some(format!("{}-{mid}", p.0)),
                    });
                }
            }
        }
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
        // Media settings: the room's last-N, the policy's cap for this
        // participant (with its role).
        if last_n.is_some() {
            self.media(Command::SetLastN {
                participant: id,
                last_n,
            });
        }
        let data = self.ctx_data(
            &room,
            id,
            Some(name.as_str()),
            identity.as_ref(),
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
        self.send(
            id,
            ServerMessage::Joined {
                id: id.0,
                room: room.0.clone(),
                role: role.into(),
                locked,
                participants,
                pad_token: pad_token.clone(),
            },
        );
        for msg in screens {
            self.send(id, msg);
        }
        for (gid, gname) in knocking {
            self.send(
                id,
                ServerMessage::Knock {
                    id: gid,
                    name: gname,
                },
            );
        }
        self.pad_tokens.insert(pad_token.clone(), id);
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
            })),
        );
    }

    /// Removes `id` from its room: Leave to mediad, participant-left to the
    /// others, its pad socket closed, `on_leave`; the last one out ends the
    /// room. The session becomes `Idle`; the member is returned.
    fn remove_member(&mut self, id: ParticipantId, now_s: u64) -> Option<Box<Member>> {
        let data = self.member_ctx(id, now_s)?;
        if let Some(policy) = &mut self.policy {
            policy.on_leave(&data.ctx());
        }
        let member = self.take_member(id)?;
        let room = member.room.clone();
        let mut empty = false;
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.remove(&id);
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
    fn take_member(&mut self, id: ParticipantId) -> Option<Box<Member>> {
        let Some(SessionState::Joined(member)) = self.sessions.insert(id, SessionState::Idle)
        else {
            return None;
        };
        self.pad_tokens.remove(&member.pad_token);
        self.media(Command::Leave { participant: id });
        if let Some(conn) = member.pad_conn {
            self.pad_conns.remove(&conn);
            self.outputs.push_back(Output::PadClose {
                to: conn,
                code: 1000,
                reason: "left",
            });
        }
        Some(member)
    }

    /// Drops a room whose members are gone: waiting guests get
    /// `meeting-ended`, the pad is destroyed, `on_room_end` is told.
    fn end_room(&mut self, room: &RoomId, reason: &str, now_s: u64) {
        let Some(r) = self.rooms.remove(room) else {
            return;
        };
        for w in r.waiting {
            if matches!(self.sessions.get(&w), Some(SessionState::Waiting(_))) {
                self.sessions.insert(w, SessionState::Idle);
                self.send(
                    w,
                    ServerMessage::MeetingEnded {
                        reason: reason.to_owned(),
                    },
                );
            }
        }
        if self.pads.remove(room).is_some() {
            tracing::debug!("pad destroyed with its meeting");
        }
        if let Some(policy) = &mut self.policy {
            let data = CtxData {
                room: room.0.clone(),
                size: 0,
                locked: r.locked,
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

    /// A moderation request: Rust checks the role and the target, then Lua
    /// `on_moderation` may still refuse, then the action is applied.
    fn moderate(&mut self, id: ParticipantId, action: Moderation, now: Now) {
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
        let (kind, target, lobby_target) = match &action {
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
            #[allow(unreachable_patterns)]
            _ => {
                self.refuse(id, ErrorCode::UnknownType);
                return;
            }
        };
        // The target must be in the sender's room (or its lobby, knocking).
        if let Some(t) = target {
            let t = ParticipantId(t);
            let ok = self.rooms.get(&room).is_some_and(|r| {
                if lobby_target {
                    r.waiting.contains(&t)
                        && matches!(self.sessions.get(&t), Some(SessionState::Waiting(w)) if w.knocking)
                } else {
                    r.members.contains(&t)
                }
            });
            if !ok {
                self.refuse(id, ErrorCode::NoSuchParticipant);
                return;
            }
        }
        if let Some(kind) = kind
            && self.policy.is_some()
        {
            let target_s = target.map(|t| t.to_string());
            let Some(data) = self.member_ctx(id, now_s) else {
                return;
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
                Verdict::Allow => {}
                Verdict::Deny { reason } => {
                    self.refuse_with(id, ErrorCode::Forbidden, reason);
                    return;
                }
                _ => {
                    self.refuse_with(id, ErrorCode::Forbidden, FAIL_CLOSED_REASON);
                    return;
                }
            }
        }
        tracing::info!(participant = %id, action = kind.map_or("allow_unmute", ModerationKind::as_str), "moderation");
        match action {
            Moderation::Admit { id: t } => self.admit_from_lobby(ParticipantId(t), Some(id)),
            Moderation::Deny { id: t, reason } => self.deny(id, ParticipantId(t), reason, now),
            Moderation::Mute { id: t } => self.force_mute(id, ParticipantId(t), MediaKind::Audio),
            Moderation::MuteAll => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.mute_all = true;
                }
                let targets: Vec<ParticipantId> = self
                    .rooms
                    .get(&room)
                    .map(|r| r.members.iter().copied().filter(|p| *p != id).collect())
                    .unwrap_or_default();
                for t in targets {
                    self.force_mute(id, t, MediaKind::Audio);
                }
            }
            Moderation::AllowUnmute => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.mute_all = false;
                }
            }
            Moderation::StopVideo { id: t } => {
                self.force_mute(id, ParticipantId(t), MediaKind::Video);
            }
            Moderation::StopScreen { id: t } => self.stop_screen(id, ParticipantId(t)),
            Moderation::Kick { id: t, ban } => self.kick(id, ParticipantId(t), ban, now),
            Moderation::Lock { on } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.locked = on;
                }
                self.broadcast(&room, &ServerMessage::RoomLocked { on, by: id.0 });
            }
            Moderation::GrantModerator { id: t } => {
                self.set_role(&room, ParticipantId(t), Role::Moderator);
            }
            Moderation::RevokeModerator { id: t } => {
                // Back to the least role that fits: guest without a token,
                // participant with one.
                let to = match self.member(ParticipantId(t)).map(|m| m.identity.is_some()) {
                    Some(true) => Role::Participant,
                    _ => Role::Guest,
                };
                self.set_role(&room, ParticipantId(t), to);
            }
            Moderation::EndMeeting => self.end_meeting(&room, now_s),
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    fn deny(&mut self, by: ParticipantId, target: ParticipantId, reason: Option<String>, now: Now) {
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
            r.cooldowns.retain(|_, t| *t > now.mono);
            r.cooldowns.insert(key, until);
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
            _ => {
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

    fn stop_screen(&mut self, by: ParticipantId, target: ParticipantId) {
        let Some(m) = self.member_mut(target) else {
            return;
        };
        let Some(mid) = m.screen_mid.take() else {
            return;
        };
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

    /// Removes `target` from the meeting; a guest (not banned) goes back to
    /// the lobby, not knocking.
    fn kick(&mut self, by: ParticipantId, target: ParticipantId, ban: bool, now: Now) {
        let Some(m) = self.member(target) else {
            return;
        };
        let room = m.room.clone();
        let key = who(target, m.identity.as_deref());
        if ban && let Some(r) = self.rooms.get_mut(&room) {
            r.bans.insert(key);
            r.bans.insert(Who::Socket(target));
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
            ..
        } = *member;
        // Back to the lobby, if the room still exists.
        if role == Role::Guest
            && !ban
            && let Some(r) = self.rooms.get_mut(&room)
        {
            r.waiting.insert(target);
            self.sessions.insert(
                target,
                SessionState::Waiting(Box::new(Waiting {
                    room: room.clone(),
                    name,
                    identity,
                    knocking: false,
                    retry_at: None,
                })),
            );
            self.send(
                target,
                ServerMessage::Lobby {
                    id: target.0,
                    room: room.0,
                },
            );
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
            let knocking: Vec<ServerMessage> = self
                .rooms
                .get(room)
                .map(|r| {
                    r.waiting
                        .iter()
                        .filter_map(|w| match self.sessions.get(w) {
                            Some(SessionState::Waiting(x)) if x.knocking => {
                                Some(ServerMessage::Knock {
                                    id: w.0,
                                    name: x.name.as_str().to_owned(),
                                })
                            }
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            for msg in knocking {
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
    fn unmute(&mut self, id: ParticipantId, kind: MediaKindWire) {
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
            match kind {
                MediaKindWire::Audio => m.audio_muted = false,
                _ => m.video_stopped = false,
            }
        }
        self.media(Command::SetForwarding {
            participant: id,
            kind: media_kind,
            enabled: true,
        });
        self.broadcast(&room, &ServerMessage::Unmuted { id: id.0, kind });
    }

    fn media_state(&mut self, id: ParticipantId, audio: bool, video: bool) {
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
    fn video_constraints(
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

/// Milliseconds of a duration, saturated.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ControlError, MediaKind, RequestId, TransportKind};
    use crate::protocol::{WireRole, WireTransport};

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
                role: WireRole::Moderator,
                locked: false,
                participants: vec![],
                pad_token: token_of(&out, p(1)),
            }]
        );

        let out = join(&mut hub, 2, "R", "Bob");
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::ParticipantJoined {
                id: 2,
                name: "Bob".into(),
                role: WireRole::Participant,
            }]
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::Joined {
                id: 2,
                room: "R".into(),
                role: WireRole::Participant,
                locked: false,
                participants: vec![ParticipantInfo {
                    id: 1,
                    name: "Ana".into(),
                    role: WireRole::Moderator,
                    audio_muted: false,
                    video_stopped: false,
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
            Command::PublishOffer { participant: a, request: r1, sdp: s1 },
            Command::SubscribeAnswer { participant: b, request: r2, sdp: s2 },
        ] if *a == p(4) && *b == p(4) && s1 == "offer" && s2 == "answer" && r1 != r2));
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
                request: RequestId(1),
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
                request: Some(RequestId(2)),
                error: ControlError::InvalidAnswer("bad sdp".into()),
            },
            Event::TrackPublished {
                participant: p(1),
                kind: MediaKind::Video,
            },
            Event::PublishAnswer {
                participant: p(3),
                request: RequestId(3),
                sdp: "x".into(),
            },
            Event::PublishAnswer {
                participant: p(99),
                request: RequestId(3),
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
                    message: "invalid answer: bad sdp".into()
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

    // ---- policy, lobby, moderation -------------------------------------------

    use salon_plugins::{AuthConfig, PolicyConfig};

    const SECRET: &str = "hub-test-secret-0123456789abcdef";
    const T0_S: u64 = 1_700_000_000;

    fn policy_hub(entry: &str) -> Hub {
        let mut hub = Hub::with_seed(9);
        let mut c =
            PolicyConfig::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua"));
        c.entry = entry.to_owned();
        c.wall_budget = None;
        hub.set_policy(PolicyHost::new(c).unwrap());
        let auth: AuthConfig = serde_json::from_value(serde_json::json!({
            "issuers": ["salon-test"], "audiences": ["salon"],
            "keys": [{"id": "k", "algorithms": ["HS256"], "secret": SECRET}]
        }))
        .unwrap();
        hub.set_auth(Arc::new(Authenticator::new(&auth).unwrap()));
        hub
    }

    fn token(room: &str, sub: &str) -> String {
        let claims = serde_json::json!({
            "iss": "salon-test", "aud": "salon", "sub": sub, "room": room,
            "exp": T0_S + 3600, "nbf": T0_S - 10,
            "context": {"user": {"id": sub, "name": "Agent", "moderator": true}}
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn join_at(
        hub: &mut Hub,
        id: u64,
        room: &str,
        name: &str,
        jwt: Option<&str>,
        now: Now,
    ) -> Vec<Output> {
        hub.handle_open(p(id));
        let mut v = serde_json::json!({"type": "join", "room": room, "name": name});
        if let Some(t) = jwt {
            v["jwt"] = t.into();
        }
        hub.handle_frame(p(id), &v.to_string(), now);
        drain(hub)
    }

    fn frame(hub: &mut Hub, id: u64, v: serde_json::Value, now: Now) -> Vec<Output> {
        hub.handle_frame(p(id), &v.to_string(), now);
        drain(hub)
    }

    fn types(msgs: &[ServerMessage]) -> Vec<String> {
        msgs.iter()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
                v["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    /// An agent (id 1) in room R, guest 2 waiting in its lobby.
    fn agent_and_waiting_guest() -> Hub {
        let mut hub = policy_hub("policy");
        let out = join_at(&mut hub, 1, "R", "Agent", Some(&token("R", "a1")), t0());
        assert!(matches!(
            &sends_to(&out, p(1))[0],
            ServerMessage::Joined {
                role: WireRole::Moderator,
                ..
            }
        ));
        let out = join_at(&mut hub, 2, "R", "Guest", None, t0());
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::Lobby {
                id: 2,
                room: "R".into()
            }]
        );
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::Knock {
                id: 2,
                name: "Guest".into()
            }]
        );
        assert!(
            commands(&out).is_empty(),
            "nothing reaches mediad for a waiting guest"
        );
        assert_eq!(hub.knocking("R"), vec![2]);
        hub
    }

    #[test]
    fn guest_cannot_create_a_room_and_bad_tokens_are_refused() {
        let mut hub = policy_hub("policy");
        let out = join_at(&mut hub, 1, "R", "Guest", None, t0());
        assert_eq!(error_code(&sends_to(&out, p(1))), Some(ErrorCode::Denied));
        assert_eq!(hub.room_count(), 0);
        // A token for room A does not open room B; garbage is malformed.
        for bad in [token("A", "a1"), "x.y.z".to_owned(), token("R", "a1") + "x"] {
            hub.handle_frame(
                p(1),
                &serde_json::json!({"type":"join","room":"R","name":"A","jwt": bad}).to_string(),
                t0(),
            );
            let out = drain(&mut hub);
            assert_eq!(
                error_code(&sends_to(&out, p(1))),
                Some(ErrorCode::AuthFailed)
            );
            assert!(commands(&out).is_empty());
        }
        // Expired: the same token an hour and a minute later.
        hub.handle_frame(
            p(1),
            &serde_json::json!({"type":"join","room":"R","name":"A","jwt": token("R", "a1")})
                .to_string(),
            at(3_660_000),
        );
        let out = drain(&mut hub);
        assert!(
            matches!(&sends_to(&out, p(1))[0], ServerMessage::Error { code: ErrorCode::AuthFailed, message } if message.contains("expired"))
        );
        // The socket is still usable: a valid token now works.
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"join","room":"R","name":"A","jwt": token("R", "a1")}),
            t0(),
        );
        assert!(matches!(
            &sends_to(&out, p(1))[0],
            ServerMessage::Joined { .. }
        ));
    }

    #[test]
    fn knock_admit_deny_and_cooldown() {
        let mut hub = agent_and_waiting_guest();
        // A second moderator joining later sees the waiting guest.
        let out = join_at(&mut hub, 3, "R", "Agent2", Some(&token("R", "a3")), t0());
        let m3 = sends_to(&out, p(3));
        assert_eq!(types(&m3), ["joined", "knock"]);
        // A third guest waits too.
        join_at(&mut hub, 4, "R", "Other", None, t0());
        // The guest tries to admit itself or the other guest: refused, no change.
        for target in [2, 4] {
            let out = frame(
                &mut hub,
                2,
                serde_json::json!({"type":"admit","id":target}),
                t0(),
            );
            assert_eq!(
                error_code(&sends_to(&out, p(2))),
                Some(ErrorCode::Forbidden)
            );
            assert_eq!(out.len(), 1);
        }
        assert_eq!(hub.knocking("R"), vec![2, 4]);
        // Admit.
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"admit","id":2}),
            t0(),
        );
        assert_eq!(types(&sends_to(&out, p(2)))[..2], ["admitted", "joined"]);
        assert!(matches!(
            &sends_to(&out, p(2))[1],
            ServerMessage::Joined {
                role: WireRole::Guest,
                ..
            }
        ));
        assert_eq!(
            sends_to(&out, p(3)),
            vec![
                ServerMessage::KnockResolved {
                    id: 2,
                    by: Some(1),
                    admitted: true
                },
                ServerMessage::ParticipantJoined {
                    id: 2,
                    name: "Guest".into(),
                    role: WireRole::Guest
                }
            ]
        );
        assert_eq!(hub.role(p(2)), Some(Role::Guest));
        // The admitted guest cannot admit the other one.
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"admit","id":4}),
            t0(),
        );
        assert_eq!(
            error_code(&sends_to(&out, p(2))),
            Some(ErrorCode::Forbidden)
        );
        assert_eq!(out.len(), 1);
        assert_eq!(hub.knocking("R"), vec![4]);
        // Deny, with a reason.
        let out = frame(
            &mut hub,
            3,
            serde_json::json!({"type":"deny","id":4,"reason":"complet"}),
            at(1_000),
        );
        assert_eq!(
            sends_to(&out, p(4)),
            vec![ServerMessage::Denied {
                reason: "complet".into(),
                retry_after_ms: 30_000
            }]
        );
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::KnockResolved {
                id: 4,
                by: Some(3),
                admitted: false
            }]
        );
        assert!(hub.knocking("R").is_empty());
        // Knock too soon, then after the cooldown.
        let out = frame(&mut hub, 4, serde_json::json!({"type":"knock"}), at(20_000));
        assert_eq!(
            error_code(&sends_to(&out, p(4))),
            Some(ErrorCode::KnockTooSoon)
        );
        assert_eq!(out.len(), 1);
        let out = frame(&mut hub, 4, serde_json::json!({"type":"knock"}), at(31_001));
        assert_eq!(types(&sends_to(&out, p(1))), ["knock"]);
        assert_eq!(hub.knocking("R"), vec![4]);
        // A joined participant cannot knock.
        let out = frame(&mut hub, 2, serde_json::json!({"type":"knock"}), t0());
        assert_eq!(
            error_code(&sends_to(&out, p(2))),
            Some(ErrorCode::NotInLobby)
        );
        // The waiting guest leaves: moderators drop it.
        hub.handle_close(p(4));
        let out = drain(&mut hub);
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::KnockResolved {
                id: 4,
                by: None,
                admitted: false
            }]
        );
        assert_eq!(hub.lobby_count(), 0);
    }

    #[test]
    fn moderation_is_checked_in_rust_and_reaches_mediad() {
        let mut hub = agent_and_waiting_guest();
        frame(
            &mut hub,
            1,
            serde_json::json!({"type":"admit","id":2}),
            t0(),
        );
        // Another room with its own agent, and its participant 6.
        join_at(&mut hub, 5, "X", "AgentX", Some(&token("X", "a5")), t0());
        // The guest tries to mute / kick / lock / end / grant itself: forbidden, nothing happens.
        for v in [
            serde_json::json!({"type":"mute","id":1}),
            serde_json::json!({"type":"kick","id":1}),
            serde_json::json!({"type":"mute-all"}),
            serde_json::json!({"type":"lock","on":true}),
            serde_json::json!({"type":"grant-moderator","id":2}),
            serde_json::json!({"type":"end-meeting"}),
            serde_json::json!({"type":"stop-video","id":1}),
        ] {
            let out = frame(&mut hub, 2, v.clone(), t0());
            assert_eq!(out.len(), 1, "{v}");
            assert_eq!(
                error_code(&sends_to(&out, p(2))),
                Some(ErrorCode::Forbidden),
                "{v}"
            );
        }
        assert_eq!(hub.role(p(2)), Some(Role::Guest));
        assert_eq!(hub.role(p(1)), Some(Role::Moderator));
        // A moderator cannot act across rooms, nor on strangers.
        for target in [5, 99] {
            let out = frame(
                &mut hub,
                1,
                serde_json::json!({"type":"mute","id":target}),
                t0(),
            );
            assert_eq!(out.len(), 1);
            assert_eq!(
                error_code(&sends_to(&out, p(1))),
                Some(ErrorCode::NoSuchParticipant)
            );
        }
        // Mute: mediad stops the guest's audio; the room is told.
        let out = frame(&mut hub, 1, serde_json::json!({"type":"mute","id":2}), t0());
        assert!(matches!(
            commands(&out)[..],
            [Command::SetForwarding { participant, kind: MediaKind::Audio, enabled: false }] if participant == p(2)
        ));
        let muted = ServerMessage::Muted {
            id: 2,
            by: 1,
            kind: MediaKindWire::Audio,
        };
        assert_eq!(sends_to(&out, p(2)), vec![muted.clone()]);
        assert_eq!(sends_to(&out, p(1)), vec![muted]);
        assert!(sends_to(&out, p(5)).is_empty());
        // Self-unmute.
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"unmute","kind":"audio"}),
            t0(),
        );
        assert!(matches!(
            commands(&out)[..],
            [Command::SetForwarding {
                kind: MediaKind::Audio,
                enabled: true,
                ..
            }]
        ));
        assert_eq!(types(&sends_to(&out, p(1))), ["unmuted"]);
        // Mute-all locks unmuting until allow-unmute.
        let out = frame(&mut hub, 1, serde_json::json!({"type":"mute-all"}), t0());
        assert_eq!(commands(&out).len(), 1, "everyone but the sender");
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"unmute","kind":"audio"}),
            t0(),
        );
        assert_eq!(
            error_code(&sends_to(&out, p(2))),
            Some(ErrorCode::Forbidden)
        );
        assert!(commands(&out).is_empty());
        frame(
            &mut hub,
            1,
            serde_json::json!({"type":"allow-unmute"}),
            t0(),
        );
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"unmute","kind":"audio"}),
            t0(),
        );
        assert_eq!(commands(&out).len(), 1);
        // Stop video.
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"stop-video","id":2}),
            t0(),
        );
        assert!(matches!(
            commands(&out)[..],
            [Command::SetForwarding {
                kind: MediaKind::Video,
                enabled: false,
                ..
            }]
        ));
        // Screen share: marked in mediad, then stopped by the moderator.
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"screen","mid":"3"}),
            t0(),
        );
        assert!(
            matches!(&commands(&out)[..], [Command::SetScreenShare { mid: Some(m), .. }] if m == "3")
        );
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"stop-screen","id":2}),
            t0(),
        );
        assert!(matches!(
            &commands(&out)[..],
            [Command::SetTrackForwarding { mid, enabled: false, .. }, Command::SetScreenShare { mid: None, .. }] if mid == "3"
        ));
        assert_eq!(types(&sends_to(&out, p(1))), ["screen-share", "muted"]);
        // Lock: a new guest gets room-locked; moderators may still join.
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"lock","on":true}),
            t0(),
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::RoomLocked { on: true, by: 1 }]
        );
        let out = join_at(&mut hub, 7, "R", "Late", None, t0());
        assert_eq!(
            error_code(&sends_to(&out, p(7))),
            Some(ErrorCode::RoomLocked)
        );
        let out = join_at(&mut hub, 8, "R", "Agent8", Some(&token("R", "a8")), t0());
        assert_eq!(types(&sends_to(&out, p(8))), ["joined"]);
        // Grant / revoke.
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"grant-moderator","id":2}),
            t0(),
        );
        assert_eq!(
            sends_to(&out, p(8)),
            vec![ServerMessage::RoleChanged {
                id: 2,
                role: WireRole::Moderator
            }]
        );
        assert_eq!(hub.role(p(2)), Some(Role::Moderator));
        frame(
            &mut hub,
            1,
            serde_json::json!({"type":"revoke-moderator","id":2}),
            t0(),
        );
        assert_eq!(hub.role(p(2)), Some(Role::Guest));
        // Video constraints: only publishers of the sender's room.
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"video-constraints","constraints":[
                {"track_id":"2-1","max_height":180},{"track_id":"5-1","max_height":180},{"track_id":"zz"}]}),
            t0(),
        );
        assert!(matches!(
            &commands(&out)[..],
            [Command::SetReceiveConstraints { participant, publisher, mid, max_height: Some(180) }]
                if *participant == p(1) && *publisher == p(2) && mid == "1"
        ));
        assert_eq!(
            error_code(&sends_to(&out, p(1))),
            Some(ErrorCode::BadMessage)
        );
        // Media state is relayed to the others.
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"media-state","audio":false,"video":true}),
            t0(),
        );
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::MediaState {
                id: 2,
                audio: false,
                video: true
            }]
        );
        assert!(sends_to(&out, p(2)).is_empty());
    }

    #[test]
    fn kick_sends_guests_back_to_the_lobby_and_ban_keeps_them_out() {
        let mut hub = agent_and_waiting_guest();
        frame(
            &mut hub,
            1,
            serde_json::json!({"type":"admit","id":2}),
            t0(),
        );
        let out = frame(&mut hub, 1, serde_json::json!({"type":"kick","id":2}), t0());
        assert_eq!(types(&sends_to(&out, p(2))), ["kicked", "lobby"]);
        assert!(
            commands(&out)
                .iter()
                .any(|c| matches!(c, Command::Leave { participant } if *participant == p(2)))
        );
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::ParticipantLeft { id: 2 }]
        );
        assert_eq!(hub.participant_count(), 1);
        // Re-knock, admit, then kick with a ban.
        let out = frame(&mut hub, 2, serde_json::json!({"type":"knock"}), t0());
        assert_eq!(types(&sends_to(&out, p(1))), ["knock"]);
        frame(
            &mut hub,
            1,
            serde_json::json!({"type":"admit","id":2}),
            t0(),
        );
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"kick","id":2,"ban":true}),
            t0(),
        );
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::Kicked { by: 1, ban: true }]
        );
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"join","room":"R","name":"Guest"}),
            t0(),
        );
        assert_eq!(error_code(&sends_to(&out, p(2))), Some(ErrorCode::Banned));
        assert_eq!(hub.lobby_count(), 0);
        // A banned agent (by token user) cannot come back from another socket.
        join_at(&mut hub, 3, "R", "Agent3", Some(&token("R", "a3")), t0());
        frame(
            &mut hub,
            1,
            serde_json::json!({"type":"kick","id":3,"ban":true}),
            t0(),
        );
        let out = join_at(&mut hub, 4, "R", "Agent3", Some(&token("R", "a3")), t0());
        assert_eq!(error_code(&sends_to(&out, p(4))), Some(ErrorCode::Banned));
    }

    #[test]
    fn ending_the_meeting_reaches_everyone_and_the_last_one_out_ends_it() {
        let mut hub = agent_and_waiting_guest();
        join_at(&mut hub, 3, "R", "Agent3", Some(&token("R", "a3")), t0());
        let out = frame(&mut hub, 1, serde_json::json!({"type":"end-meeting"}), t0());
        let ended = ServerMessage::MeetingEnded {
            reason: "ended-by-moderator".into(),
        };
        for id in [1, 2, 3] {
            assert_eq!(sends_to(&out, p(id)), vec![ended.clone()], "{id}");
        }
        assert_eq!(commands(&out).len(), 2, "Leave for both members");
        assert_eq!((hub.room_count(), hub.lobby_count()), (0, 0));
        // The last one leaving ends the room for the lobby too.
        let mut hub = agent_and_waiting_guest();
        hub.handle_close(p(1));
        let out = drain(&mut hub);
        assert_eq!(
            sends_to(&out, p(2)),
            vec![ServerMessage::MeetingEnded {
                reason: "room-empty".into()
            }]
        );
        assert_eq!((hub.room_count(), hub.lobby_count()), (0, 0));
        // The guest may join again (a refused / ended socket stays usable).
        let out = frame(
            &mut hub,
            2,
            serde_json::json!({"type":"join","room":"R","name":"Guest"}),
            t0(),
        );
        assert_eq!(error_code(&sends_to(&out, p(2))), Some(ErrorCode::Denied));
    }

    #[test]
    fn chat_goes_through_on_chat_and_open_policy_makes_the_first_moderator() {
        let mut hub = policy_hub("open");
        let out = join_at(&mut hub, 1, "R", "Ana", None, t0());
        assert!(matches!(
            &sends_to(&out, p(1))[0],
            ServerMessage::Joined {
                role: WireRole::Moderator,
                ..
            }
        ));
        let out = join_at(&mut hub, 2, "R", "Bob", None, t0());
        assert!(matches!(
            &sends_to(&out, p(2))[0],
            ServerMessage::Joined {
                role: WireRole::Participant,
                ..
            }
        ));
        let mut hub = policy_hub("policy");
        join_at(&mut hub, 1, "R", "Agent", Some(&token("R", "a1")), t0());
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"chat","text":"bonjour"}),
            t0(),
        );
        assert_eq!(chats(&sends_to(&out, p(1))).len(), 1);
    }

    /// Seeded random sequences of v2 messages from random sockets (ids in
    /// and out of range, lobby and joined): no panic, and the counters stay
    /// consistent with the rooms.
    #[test]
    fn random_v2_sequences_never_panic() {
        let mut hub = policy_hub("policy");
        let mut x: u64 = 0x5a10_0004_2026_0001;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for id in 1..=12 {
            hub.handle_open(p(id));
        }
        let start = std::time::Instant::now();
        let mut steps = 0;
        while steps < 20_000 && start.elapsed() < Duration::from_millis(1500) {
            let who = 1 + next(12);
            let target = next(14);
            let room = ["R", "S"][next(2) as usize];
            let v = match next(22) {
                0 => serde_json::json!({"type":"join","room":room,"name":"n"}),
                1 => {
                    serde_json::json!({"type":"join","room":room,"name":"a","jwt":token(room, &format!("s{who}"))})
                }
                2 => serde_json::json!({"type":"knock"}),
                3 => serde_json::json!({"type":"admit","id":target}),
                4 => serde_json::json!({"type":"deny","id":target}),
                5 => serde_json::json!({"type":"mute","id":target}),
                6 => serde_json::json!({"type":"mute-all"}),
                7 => serde_json::json!({"type":"allow-unmute"}),
                8 => serde_json::json!({"type":"stop-video","id":target}),
                9 => serde_json::json!({"type":"stop-screen","id":target}),
                10 => serde_json::json!({"type":"kick","id":target,"ban":next(4) == 0}),
                11 => serde_json::json!({"type":"lock","on":next(2) == 0}),
                12 => serde_json::json!({"type":"grant-moderator","id":target}),
                13 => serde_json::json!({"type":"revoke-moderator","id":target}),
                14 => serde_json::json!({"type":"end-meeting"}),
                15 => serde_json::json!({"type":"unmute","kind":"audio"}),
                16 => {
                    serde_json::json!({"type":"screen","mid": if next(2) == 0 { serde_json::Value::Null } else { "3".into() }})
                }
                17 => {
                    serde_json::json!({"type":"video-constraints","constraints":[{"track_id":format!("{target}-1"),"max_height":next(1000)}]})
                }
                18 => serde_json::json!({"type":"media-state","audio":next(2) == 0,"video":true}),
                19 => serde_json::json!({"type":"chat","text":"x"}),
                20 => {
                    hub.handle_close(p(who));
                    hub.handle_open(p(who));
                    steps += 1;
                    continue;
                }
                _ => serde_json::json!({"type":"leave"}),
            };
            hub.handle_frame(p(who), &v.to_string(), at(steps * 50));
            drain(&mut hub);
            let members: usize = hub.rooms.values().map(|r| r.members.len()).sum();
            assert_eq!(members, hub.participant_count());
            for r in hub.rooms.values() {
                assert!(!r.members.is_empty(), "an empty room is dropped");
                for m in &r.members {
                    assert!(matches!(hub.sessions.get(m), Some(SessionState::Joined(_))));
                }
                for w in &r.waiting {
                    assert!(matches!(
                        hub.sessions.get(w),
                        Some(SessionState::Waiting(_))
                    ));
                }
            }
            steps += 1;
        }
        assert!(steps > 1000, "only {steps} steps");
    }

    /// The shipped policy's media settings reach mediad: the room's last-N
    /// for everyone, a receive cap for the guest admitted from the lobby
    /// (not for the agent); mediad's layers-wanted reaches the publisher.
    #[test]
    fn media_settings_reach_mediad_and_layers_wanted_the_publisher() {
        let mut hub = policy_hub("policy");
        let out = join_at(&mut hub, 1, "R", "Agent", Some(&token("R", "a1")), t0());
        let cmds = commands(&out);
        assert!(
            cmds.contains(&Command::SetLastN {
                participant: p(1),
                last_n: Some(20)
            }),
            "{cmds:?}"
        );
        assert!(
            !cmds
                .iter()
                .any(|c| matches!(c, Command::SetBitrateCap { .. })),
            "agents are not capped: {cmds:?}"
        );
        join_at(&mut hub, 2, "R", "Guest", None, t0());
        let out = frame(
            &mut hub,
            1,
            serde_json::json!({"type":"admit","id":2}),
            t0(),
        );
        let cmds = commands(&out);
        assert!(cmds.contains(&Command::SetLastN {
            participant: p(2),
            last_n: Some(20)
        }));
        assert!(
            cmds.contains(&Command::SetBitrateCap {
                participant: p(2),
                bps: Some(2_500_000)
            }),
            "{cmds:?}"
        );
        hub.handle_media_event(Event::LayersWanted {
            participant: p(1),
            mid: "1".into(),
            active: vec![true, false, false],
        });
        let out = drain(&mut hub);
        assert_eq!(
            sends_to(&out, p(1)),
            vec![ServerMessage::LayersWanted {
                mid: "1".into(),
                active: vec![true, false, false]
            }]
        );
        assert!(sends_to(&out, p(2)).is_empty());
        // Without a policy setting, the server default applies.
        let mut hub = Hub::with_seed(3);
        hub.set_default_last_n(Some(7));
        let out = join(&mut hub, 5, "S", "Ana");
        assert!(commands(&out).contains(&Command::SetLastN {
            participant: p(5),
            last_n: Some(7)
        }));
    }
}
