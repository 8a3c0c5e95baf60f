//! The signaling core: rooms, participants with their roles, lobbies,
//! moderation, chat, screen shares and the meeting pad, as a sans-IO state
//! machine. Decisions go through the Lua policy ([`PolicyHost`], once per
//! signaling event) after the Rust checks (token, ban, role, same room);
//! without a policy the built-in open rules apply (anyone creates and joins,
//! the first one in moderates).
//!
//! Driving contract: call one `handle_*` (a socket opened, a frame arrived, a
//! socket closed, a media event, a pad socket event, a deadline passed),
//! then drain [`Hub::poll_output`] until it returns `None`, then ask
//! [`Hub::poll_timeout`] when to call [`Hub::handle_timeout`] next. Outputs
//! are a message for one signaling socket, a frame or a close for one pad
//! socket, or a command for the media plane. No clock (inputs carry a
//! [`Now`]), no IO, deterministic iteration (BTreeMap); pad tokens come from
//! a seeded RNG, resume tokens from the OS.
//!
//! The hub holds only session state (who is in which room, with which name,
//! who shares a screen) and each meeting's pad document, in memory; media
//! state lives in mediad. Chat messages are routed, never stored. When the
//! last participant of a room leaves, the room and its pad are dropped.
//!
//! One file per concern:
//! - this file: the [`Hub`], its inputs and [`Output`]s, and the dispatch
//!   of a signaling message to the concern that handles it;
//! - `session`: one socket's session (idle, waiting, joined, left), `join`
//!   (token, bans, policy), entering and leaving a room;
//! - `lobby`: waiting guests, knocking, admit and deny, the deny cooldown,
//!   lobby tokens (a reload keeps the place in the queue);
//! - `moderation`: moderator requests (checked in Rust, then by the policy)
//!   and self-unmute;
//! - `chat`: chat routing and its rate limit;
//! - `gestures`: raised hands (in order of raising) and reactions;
//! - `media`: events from mediad, and the commands a participant's own
//!   media requests turn into;
//! - `pad`: pad sockets, their tokens and the documents;
//! - `reconnect`: a dropped member's (or waiting guest's) grace period,
//!   resume tokens, and which socket carries which participant after a
//!   resume;
//! - `rooms`: a room's lifetime and the policy's view of it;
//! - `bans`: who a ban, a kick or a deny cooldown applies to (identity, or
//!   network address for anonymous guests' bans, lobby token for their
//!   deny cooldowns), and a room's bans;
//! - `limits`: the abuse bounds ([`HubLimits`]) and their mechanisms
//!   (coalescing pacers, token buckets);
//! - `timers`: the deadlines of coalesced sends;
//! - `census`: rooms by size and members by role, for metrics;
//! - `turn`: TURN credentials for members (at admission, on resume, and
//!   fresh ones before they expire) — never for a guest in a lobby;
//! - `probe`: connectivity probes of the `/test` page (a hidden, short-lived
//!   publish transport per idle socket, in no room).

mod arrival;
mod bans;
mod census;
mod chat;
mod gestures;
mod limits;
mod lobby;
mod media;
mod moderation;
mod pad;
mod probe;
mod reconnect;
mod rooms;
mod session;
#[cfg(test)]
mod tests;
mod timers;
mod turn;

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use salon_plugins::{Authenticator, PolicyHost, Role};

use crate::control::{Command, ParticipantId, RoomId};
use crate::protocol::{ClientMessage, ErrorCode, ProtocolError, ServerMessage, parse_client};
use crate::turn::TurnConfig;

pub use bans::PeerKey;
pub use census::{Census, SIZE_BUCKETS};
pub use chat::{CHAT_BURST, CHAT_RATE_PER_SEC};
pub use gestures::GestureCounts;
pub use limits::{DEFAULT_KICK_BAN, DEFAULT_LOBBY_CAP, DEFAULT_PAD_QUEUE_BYTES, HubLimits};
pub use lobby::{ADDRESS_DENIES, DEFAULT_DENY_COOLDOWN, DENIED_A_MOMENT_AGO, DENIED_NETWORK};
pub use media::MAX_VIDEO_TRACKS_PER_PUBLISHER;
pub use pad::PadConnId;
pub use probe::ProbeCounts;
pub use reconnect::{CLOSE_REPLACED, DEFAULT_RECONNECT_GRACE, TimeoutReason};

use limits::RateBucket;
use pad::Pads;
use probe::Probes;
use reconnect::Links;
use rooms::Room;
use session::SessionState;
use timers::{Timer, Timers};

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
    /// Close one signaling socket (a resume replaced it; its participant
    /// lives on another socket).
    Close {
        /// The socket.
        to: ParticipantId,
        /// WebSocket close code.
        code: u16,
        /// Stable reason (`replaced`).
        reason: &'static str,
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

/// Room and participant bookkeeping for every open socket.
#[derive(Debug)]
pub struct Hub {
    sessions: BTreeMap<ParticipantId, SessionState>,
    rooms: BTreeMap<RoomId, Room>,
    /// Pad documents, pad tokens and pad sockets.
    pads: Pads,
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
    /// Correlation id of the next command to mediad that expects an answer.
    next_request: u64,
    /// Sockets of resumed participants, grace periods, resume tokens.
    links: Links,
    /// The abuse bounds.
    limits: HubLimits,
    /// Deadlines of coalesced sends.
    timers: Timers,
    /// The network address of each open signaling socket, when the driver
    /// gave one (bans and knock limits of anonymous guests).
    peers: BTreeMap<ParticipantId, PeerKey>,
    /// Lobby entries and knocks per network address.
    knock_buckets: BTreeMap<PeerKey, RateBucket>,
    /// TURN servers and their shared secret (`None`: no TURN, empty
    /// `ice_servers`).
    turn: Option<TurnConfig>,
    /// Hands raised and reactions relayed or refused (metrics).
    gesture_counts: GestureCounts,
    /// Connectivity probes (the `/test` page).
    probes: Probes,
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

    fn with_rng(mut rng: StdRng) -> Self {
        let probe_rng = StdRng::seed_from_u64(rng.random());
        Self {
            sessions: BTreeMap::new(),
            rooms: BTreeMap::new(),
            pads: Pads::new(rng),
            policy: None,
            auth: None,
            deny_cooldown: DEFAULT_DENY_COOLDOWN,
            default_last_n: None,
            last_unix_s: 0,
            next_request: 1,
            links: Links::default(),
            limits: HubLimits::default(),
            timers: Timers::default(),
            peers: BTreeMap::new(),
            knock_buckets: BTreeMap::new(),
            turn: None,
            gesture_counts: GestureCounts::default(),
            probes: Probes::new(probe_rng),
            outputs: VecDeque::new(),
        }
    }

    /// Uses these abuse bounds (the defaults otherwise).
    pub fn set_limits(&mut self, limits: HubLimits) {
        self.limits = limits;
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
        self.rooms.values().map(|r| r.lobby.len()).sum()
    }

    /// `id`'s role, if it is in a room.
    pub fn role(&self, id: ParticipantId) -> Option<Role> {
        self.member(id).map(|m| m.role)
    }

    /// Whether `id` asked for audio only (recorded for the media plane).
    pub fn audio_only(&self, id: ParticipantId) -> Option<bool> {
        self.member(id).map(|m| m.audio_only)
    }

    /// Whether `id` names a session or a participant here (random ids:
    /// the driver refuses a new socket whose id collides).
    pub fn id_in_use(&self, id: ParticipantId) -> bool {
        self.sessions.contains_key(&id) || self.links.knows(id) || self.probes.is_probe(id)
    }

    /// A socket opened; `id` is its (process-unique) id, which becomes the
    /// participant id of whoever joins on it (a socket that resumes speaks
    /// for an older participant id instead: see `reconnect`). An id that
    /// already has a session keeps it.
    pub fn handle_open(&mut self, id: ParticipantId) {
        self.sessions.entry(id).or_insert(SessionState::Idle);
    }

    /// A socket opened from network address `peer` (the driver's view of
    /// the client; behind a reverse proxy, the client's address as the
    /// proxy reports it). Like [`Hub::handle_open`]; the address keys the
    /// bans, knock limits, lobby shares and address cooldowns of anonymous
    /// guests (a deny cooldown follows the knocker: `lobby`). Never
    /// logged.
    pub fn handle_open_from(&mut self, id: ParticipantId, peer: Option<IpAddr>) {
        self.handle_open(id);
        if let Some(ip) = peer.filter(|_| self.limits.address_keys) {
            self.peers.insert(id, PeerKey::of(ip));
        }
    }

    /// A text frame arrived from socket `socket`.
    pub fn handle_frame(&mut self, socket: ParticipantId, text: &str, now: Now) {
        match parse_client(text) {
            Ok(msg) => self.handle_message(socket, msg, now),
            Err(e) => {
                if let Some(id) = self.links.participant_of(socket) {
                    self.send_error(id, &e);
                }
            }
        }
    }

    /// A frame from socket `socket` that is refused before parsing (too
    /// large, binary).
    pub fn handle_refused(&mut self, socket: ParticipantId, code: ErrorCode) {
        if let Some(id) = self.links.participant_of(socket) {
            self.send_error(id, &ProtocolError::plain(code));
        }
    }

    /// A parsed message from socket `socket` (read as its participant's; a
    /// socket replaced by a resume is not heard).
    pub fn handle_message(&mut self, socket: ParticipantId, msg: ClientMessage, now: Now) {
        self.last_unix_s = now.unix_ms / 1000;
        let Some(id) = self.links.participant_of(socket) else {
            return;
        };
        match self.sessions.get(&id) {
            None => {}
            Some(SessionState::Joined(_)) => self.dispatch_in_room(id, msg, now),
            Some(SessionState::Idle) => self.dispatch_outside_room(id, msg, Outside::Idle, now),
            Some(SessionState::Waiting(_)) => {
                self.dispatch_outside_room(id, msg, Outside::Lobby, now);
            }
            Some(SessionState::Left) => self.dispatch_outside_room(id, msg, Outside::Left, now),
        }
    }

    /// A message from a session that is not in a room: only `join`
    /// (idle), `knock` and `leave` (lobby) do anything.
    fn dispatch_outside_room(
        &mut self,
        id: ParticipantId,
        msg: ClientMessage,
        at: Outside,
        now: Now,
    ) {
        match (msg, at) {
            (
                ClientMessage::Join {
                    room,
                    name,
                    jwt,
                    lobby_token,
                },
                Outside::Idle,
            ) => {
                self.join(id, room, name, jwt, lobby_token, now);
            }
            (ClientMessage::Resume { token, media }, Outside::Idle) => {
                self.resume(id, &token, media, now);
            }
            (
                ClientMessage::Join { .. } | ClientMessage::Resume { .. },
                Outside::Lobby | Outside::Left,
            ) => {
                self.refuse(id, ErrorCode::AlreadyJoined);
            }
            (ClientMessage::Probe { sdp }, Outside::Idle) => self.probe(id, sdp, now),
            (ClientMessage::Probe { .. }, Outside::Lobby | Outside::Left) => {
                self.refuse_probe(id, ErrorCode::AlreadyJoined);
            }
            (ClientMessage::Knock, Outside::Lobby) => self.knock_again(id, now),
            (ClientMessage::Knock, Outside::Idle | Outside::Left) => {
                self.refuse(id, ErrorCode::NotInLobby);
            }
            (ClientMessage::Leave, Outside::Lobby) => {
                self.leave_lobby(id, now);
                self.sessions.insert(id, SessionState::Left);
            }
            // Moderation from the lobby: not a moderator.
            (ClientMessage::Moderate(_), Outside::Lobby) => self.refuse(id, ErrorCode::Forbidden),
            (
                ClientMessage::Leave
                | ClientMessage::Moderate(_)
                | ClientMessage::PublishOffer { .. }
                | ClientMessage::SubscribeAnswer { .. }
                | ClientMessage::Chat { .. }
                | ClientMessage::Screen { .. }
                | ClientMessage::AudioOnly { .. }
                | ClientMessage::Unmute { .. }
                | ClientMessage::MediaState { .. }
                | ClientMessage::VideoConstraints { .. }
                | ClientMessage::Hand { .. }
                | ClientMessage::LowerHand { .. }
                | ClientMessage::React { .. },
                Outside::Idle | Outside::Lobby | Outside::Left,
            ) => self.refuse(id, ErrorCode::NotJoined),
        }
    }

    /// A message from a member of a room.
    fn dispatch_in_room(&mut self, id: ParticipantId, msg: ClientMessage, now: Now) {
        match msg {
            ClientMessage::Join { .. } | ClientMessage::Resume { .. } => {
                self.refuse(id, ErrorCode::AlreadyJoined);
            }
            ClientMessage::Knock => self.refuse(id, ErrorCode::NotInLobby),
            ClientMessage::Probe { .. } => self.refuse_probe(id, ErrorCode::AlreadyJoined),
            ClientMessage::Leave => {
                self.remove_member(id, now.unix_ms / 1000);
                self.sessions.insert(id, SessionState::Left);
            }
            ClientMessage::PublishOffer { sdp } => self.publish_offer(id, sdp),
            ClientMessage::SubscribeAnswer { sdp } => self.subscribe_answer(id, sdp),
            ClientMessage::Chat { text, to } => self.chat(id, text, to, now),
            ClientMessage::Screen { mid } => self.screen(id, mid, now),
            ClientMessage::AudioOnly { on } => self.set_audio_only(id, on),
            ClientMessage::Moderate(m) => self.moderate(id, m, now),
            ClientMessage::Unmute { kind } => self.unmute(id, kind),
            ClientMessage::MediaState { audio, video } => {
                self.media_state(id, audio, video, now);
            }
            ClientMessage::VideoConstraints { constraints, bad } => {
                self.video_constraints(id, constraints, bad, now);
            }
            ClientMessage::Hand { raised } => self.hand(id, raised, now),
            ClientMessage::LowerHand { id: target } => self.lower_hand(id, target, now),
            ClientMessage::React { emoji } => self.react(id, emoji, now),
        }
    }

    /// Next thing for the driver to do. A message is addressed to the
    /// socket that carries its participant now (see `reconnect`).
    pub fn poll_output(&mut self) -> Option<Output> {
        while let Some(out) = self.outputs.pop_front() {
            if let Output::Send {
                to,
                msg: msg @ ServerMessage::SubscribeOffer { .. },
            } = &out
            {
                self.links.keep_offer(*to, msg.clone());
                if self.links.is_detached(*to) {
                    continue;
                }
            }
            if let Some(out) = self.route(out) {
                return Some(out);
            }
        }
        None
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

    /// A coalesced send is due.
    fn fire(&mut self, timer: Timer, now: Now) {
        match timer {
            Timer::LobbyUpdate(room) => self.lobby_update_due(&room, now),
            Timer::MemberState(id) => self.member_state_due(id, now),
            Timer::Constraints(id) => self.constraints_due(id, now),
            Timer::PadSync(conn) => self.pad_sync_due(conn, now),
            Timer::PadAwareness(conn) => self.pad_awareness_due(conn, now),
            Timer::TurnRefresh(id) => self.turn_refresh_due(id, now),
            Timer::ProbeEnd(socket) => self.probe_due(socket, now),
        }
    }

    /// Refuses a message of participant `id` (its current socket gets the
    /// error: after a resume that is not the socket whose id it bears).
    fn refuse(&mut self, id: ParticipantId, code: ErrorCode) {
        self.send_error(id, &ProtocolError::plain(code));
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
}

/// Where a session that is not in a room stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outside {
    /// Socket open, may `join`.
    Idle,
    /// In a room's lobby.
    Lobby,
    /// Sent `leave`; cannot join again.
    Left,
}

/// Milliseconds of a duration, saturated.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
