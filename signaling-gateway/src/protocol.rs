//! The signaling protocol between the browser and the gateway (see
//! `docs/signaling.md`).
//!
//! JSON text frames, each an object with a `type`. Parsing never panics and
//! maps every failure to a stable [`ErrorCode`]; the socket stays usable after
//! an error.

#![deny(clippy::indexing_slicing, clippy::expect_used)]

use serde::Serialize;
use serde_json::{Map, Value};

use crate::control::{RoomId, TransportKind};
pub use crate::turn::IceServer;

/// Largest accepted text frame, in bytes. Bigger frames get
/// [`ErrorCode::TooLarge`] (the socket stays open).
/// Sized for SDP: a subscriber's answer in a room of 100 runs to ~150 KB,
/// and mediad accepts SDP up to 512 KiB.
pub const MAX_FRAME_BYTES: usize = 640 * 1024;

/// Longest room name, in characters.
pub const MAX_ROOM_CHARS: usize = 64;

/// Longest display name, in characters (after trimming).
pub const MAX_NAME_CHARS: usize = 64;

/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;

/// Longest publisher mid accepted in `screen` (browsers use small integers).
pub const MAX_MID_CHARS: usize = 16;

/// Longest `resume` token accepted (the gateway issues 32 hex digits).
pub const MAX_RESUME_TOKEN_CHARS: usize = 128;

/// A display name that passed [`validate_name`]: trimmed, 1..=64 chars, no
/// control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a message was refused. The wire form ([`ErrorCode::as_str`]) is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not valid JSON.
    BadJson,
    /// Valid JSON, but not an object with a string `type`, or a field is
    /// missing or of the wrong type.
    BadMessage,
    /// `type` is not one the server knows.
    UnknownType,
    /// Binary frames are not part of the protocol.
    NotText,
    /// Frame longer than [`MAX_FRAME_BYTES`].
    TooLarge,
    /// A message other than `join` before `join`.
    NotJoined,
    /// A second `join` on the same socket.
    AlreadyJoined,
    /// Room name is not `^[A-Za-z0-9-]{1,64}$`.
    BadRoom,
    /// Display name empty, too long, or with control characters.
    BadName,
    /// The media plane refused or failed a request.
    Media,
    /// A chat message longer than [`MAX_CHAT_CHARS`] (or empty).
    TooLong,
    /// Too many chat messages: the per-participant rate limit.
    RateLimited,
    /// A private message or a moderation request naming an id that is not
    /// in the sender's room (or lobby).
    NoSuchParticipant,
    /// The join token was refused (the message says why).
    AuthFailed,
    /// The room policy refused the join (the message is its reason).
    Denied,
    /// The room is locked: only moderators may join.
    RoomLocked,
    /// Banned from this meeting.
    Banned,
    /// Not allowed: not a moderator, or the policy said no (message = reason).
    Forbidden,
    /// `knock` outside the lobby state.
    NotInLobby,
    /// `knock` before the deny cooldown ran out.
    KnockTooSoon,
    /// `resume` with a token that is unknown, already used, or whose grace
    /// period is over (the socket may `join` instead).
    ResumeFailed,
    /// `join` or `resume` too soon after a failed one on the same socket
    /// (each failure doubles the wait); the message holds
    /// `retry_after_ms=<n>`.
    JoinTooSoon,
    /// The room's lobby holds as many waiting guests as it may.
    LobbyFull,
    /// Over the reaction rate limit (burst 3, then 1 a second): the
    /// reaction was not relayed. Clients drop it quietly.
    TooManyReactions,
}

impl ErrorCode {
    /// The stable wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad-json",
            ErrorCode::BadMessage => "bad-message",
            ErrorCode::UnknownType => "unknown-type",
            ErrorCode::NotText => "not-text",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::NotJoined => "not-joined",
            ErrorCode::AlreadyJoined => "already-joined",
            ErrorCode::BadRoom => "bad-room",
            ErrorCode::BadName => "bad-name",
            ErrorCode::Media => "media",
            ErrorCode::TooLong => "too-long",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::NoSuchParticipant => "no-such-participant",
            ErrorCode::AuthFailed => "auth-failed",
            ErrorCode::Denied => "denied",
            ErrorCode::RoomLocked => "room-locked",
            ErrorCode::Banned => "banned",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotInLobby => "not-in-lobby",
            ErrorCode::KnockTooSoon => "knock-too-soon",
            ErrorCode::ResumeFailed => "resume-failed",
            ErrorCode::JoinTooSoon => "join-too-soon",
            ErrorCode::LobbyFull => "lobby-full",
            ErrorCode::TooManyReactions => "too-many-reactions",
        }
    }

    /// All codes (for tests and metrics).
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::BadJson,
        ErrorCode::BadMessage,
        ErrorCode::UnknownType,
        ErrorCode::NotText,
        ErrorCode::TooLarge,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::BadRoom,
        ErrorCode::BadName,
        ErrorCode::Media,
        ErrorCode::TooLong,
        ErrorCode::RateLimited,
        ErrorCode::NoSuchParticipant,
        ErrorCode::AuthFailed,
        ErrorCode::Denied,
        ErrorCode::RoomLocked,
        ErrorCode::Banned,
        ErrorCode::Forbidden,
        ErrorCode::NotInLobby,
        ErrorCode::KnockTooSoon,
        ErrorCode::ResumeFailed,
        ErrorCode::JoinTooSoon,
        ErrorCode::LobbyFull,
        ErrorCode::TooManyReactions,
    ];

    /// Default English message for the code (the client translates by code).
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "message is not valid JSON",
            ErrorCode::BadMessage => "message is not an object with the expected fields",
            ErrorCode::UnknownType => "unknown message type",
            ErrorCode::NotText => "only text frames are accepted",
            ErrorCode::TooLarge => "frame larger than 640 KiB",
            ErrorCode::NotJoined => "join a room first",
            ErrorCode::AlreadyJoined => "this connection already joined a room",
            ErrorCode::BadRoom => "room name must be 1 to 64 letters, digits or dashes",
            ErrorCode::BadName => {
                "name must be 1 to 64 characters without control, direction or invisible characters"
            }
            ErrorCode::Media => "media error",
            ErrorCode::TooLong => "chat message must be 1 to 2000 characters",
            ErrorCode::RateLimited => "too many messages: slow down",
            ErrorCode::NoSuchParticipant => "no such participant in this room",
            ErrorCode::AuthFailed => "access token refused",
            ErrorCode::Denied => "refused by the room policy",
            ErrorCode::RoomLocked => "this room is locked",
            ErrorCode::Banned => "banned from this meeting",
            ErrorCode::Forbidden => "only moderators can do that",
            ErrorCode::NotInLobby => "not waiting in a lobby",
            ErrorCode::KnockTooSoon => "too early to knock again",
            ErrorCode::ResumeFailed => "unknown, used or expired resume token: join again",
            ErrorCode::JoinTooSoon => "too early to try joining again",
            ErrorCode::LobbyFull => "too many people are waiting to enter this room",
            ErrorCode::TooManyReactions => "too many reactions: this one was not sent",
        }
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A refused message: code plus a human-readable detail (no personal data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct ProtocolError {
    /// Stable code.
    pub code: ErrorCode,
    /// Detail for developers (English).
    pub detail: String,
}

impl ProtocolError {
    /// An error with a specific detail.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// An error with the code's default message.
    pub fn plain(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }
}

/// A message from the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// Enter a room.
    Join {
        /// Validated room.
        room: RoomId,
        /// Validated display name.
        name: DisplayName,
        /// Jitsi-compatible token (`?jwt=` of the page), if any: as sent
        /// by the browser, or already verified by the socket's task.
        jwt: Option<JoinToken>,
        /// The `lobby_token` of an earlier `lobby` in this room (kept by
        /// the page in `sessionStorage`): within the reconnect grace period
        /// it takes back the same place in the queue; within a deny
        /// cooldown it is still refused.
        lobby_token: Option<String>,
    },
    /// Knock again from the lobby (after `denied` or a kick).
    Knock,
    /// A moderation request (moderators only).
    Moderate(Moderation),
    /// Resume one's own audio or video after a moderator muted it.
    Unmute {
        /// Which.
        kind: MediaKindWire,
    },
    /// One's own mic/camera state, for display to the others.
    MediaState {
        /// Microphone on.
        audio: bool,
        /// Camera on.
        video: bool,
    },
    /// The tile heights this receiver shows remote video tracks at.
    VideoConstraints {
        /// Valid entries (bad ones are reported in `bad`).
        constraints: Vec<VideoConstraint>,
        /// How many entries were refused (bad track id or height).
        bad: usize,
    },
    /// Offer for the publish transport.
    PublishOffer {
        /// SDP.
        sdp: String,
    },
    /// Answer to the last subscribe offer.
    SubscribeAnswer {
        /// SDP.
        sdp: String,
    },
    /// A chat message: to the whole room, or privately to `to`.
    Chat {
        /// The text (1..=2000 characters; newlines and tabs allowed).
        text: String,
        /// Addressee's participant id for a private message.
        to: Option<u64>,
    },
    /// Which mid of the sender's publish transport carries a screen share
    /// (`None`: the share stopped).
    Screen {
        /// Publisher mid.
        mid: Option<String>,
    },
    /// Stop (or resume) receiving video.
    AudioOnly {
        /// On: audio only.
        on: bool,
    },
    /// Leave the room.
    Leave,
    /// Raise or lower one's own hand.
    Hand {
        /// Raised (true) or lowered.
        raised: bool,
    },
    /// Lower someone's hand: one's own, or (moderators) anyone's in the room.
    LowerHand {
        /// Whose hand.
        id: u64,
    },
    /// A reaction to the room (one of [`Reaction`]).
    React {
        /// Which.
        emoji: Reaction,
    },
    /// A connectivity probe (the `/test` page), before any join: the offer
    /// of a short-lived publish transport to mediad that is in no room.
    Probe {
        /// SDP offer.
        sdp: String,
    },
    /// Take one's place back after a dropped socket (first message of a
    /// new socket, instead of `join`).
    Resume {
        /// The `resume_token` of the last `joined` / `resumed`.
        token: String,
        /// Whether the page kept its peer connections.
        media: ResumeMedia,
    },
}

/// The token of a `join`. The parser gives [`JoinToken::Raw`]; the
/// server's socket task verifies it (off the hub task: a signature check
/// costs more than the rest of a join) and hands the hub
/// [`JoinToken::Verified`], which the hub takes as it is.
#[derive(Clone)]
pub enum JoinToken {
    /// As the browser sent it (never logged: `Debug` hides it).
    Raw(String),
    /// Verified with the server's `Authenticator` for the message's room.
    Verified(std::sync::Arc<salon_plugins::Identity>),
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Raw(_) => f.write_str("JoinToken::Raw(..)"),
            Self::Verified(_) => f.write_str("JoinToken::Verified(..)"),
        }
    }
}

impl PartialEq for JoinToken {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Raw(a), Self::Raw(b)) => a == b,
            (Self::Verified(a), Self::Verified(b)) => a == b,
            (Self::Raw(_), Self::Verified(_)) | (Self::Verified(_), Self::Raw(_)) => false,
        }
    }
}

// An identity's claims are JSON (no NaN): equality is an equivalence.
impl Eq for JoinToken {}

impl From<&str> for JoinToken {
    fn from(s: &str) -> Self {
        Self::Raw(s.to_owned())
    }
}

/// What a resuming client kept of its media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResumeMedia {
    /// The page lives and kept its peer connections (only the socket
    /// dropped): nothing changes in the media plane.
    Kept,
    /// A new page (reload): the media plane forgets the old transports and
    /// the client publishes and subscribes afresh.
    New,
}

/// The reactions the server relays (a fixed allow-list): 👍 👏 😂 😮 ❤️ 🎉.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reaction {
    /// 👍
    ThumbsUp,
    /// 👏
    Clap,
    /// 😂
    Laugh,
    /// 😮
    Surprised,
    /// ❤️
    Heart,
    /// 🎉
    Party,
}

impl Reaction {
    /// Every reaction, in the order clients show them.
    pub const ALL: [Reaction; 6] = [
        Reaction::ThumbsUp,
        Reaction::Clap,
        Reaction::Laugh,
        Reaction::Surprised,
        Reaction::Heart,
        Reaction::Party,
    ];

    /// The emoji on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reaction::ThumbsUp => "\u{1F44D}",
            Reaction::Clap => "\u{1F44F}",
            Reaction::Laugh => "\u{1F602}",
            Reaction::Surprised => "\u{1F62E}",
            Reaction::Heart => "\u{2764}\u{FE0F}",
            Reaction::Party => "\u{1F389}",
        }
    }

    /// The reaction an emoji names (❤ without its variation selector too).
    pub fn parse(emoji: &str) -> Option<Self> {
        if emoji == "\u{2764}" {
            return Some(Reaction::Heart);
        }
        Self::ALL.into_iter().find(|r| r.as_str() == emoji)
    }
}

impl serde::Serialize for Reaction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A moderation request, by wire `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Moderation {
    /// `admit {id}`: a waiting guest enters.
    Admit {
        /// The guest.
        id: u64,
    },
    /// `deny {id, reason?}`: a waiting guest is refused.
    Deny {
        /// The guest.
        id: u64,
        /// Shown to the guest.
        reason: Option<String>,
    },
    /// `mute {id}`: stop forwarding their audio.
    Mute {
        /// The target.
        id: u64,
    },
    /// `mute-all`: everyone but the sender.
    MuteAll,
    /// `allow-unmute`: lift the `mute-all` lock.
    AllowUnmute,
    /// `stop-video {id}`.
    StopVideo {
        /// The target.
        id: u64,
    },
    /// `stop-screen {id}`.
    StopScreen {
        /// The target.
        id: u64,
    },
    /// `kick {id, ban?}`.
    Kick {
        /// The target.
        id: u64,
        /// Also ban them from the meeting.
        ban: bool,
    },
    /// `lock {on}`.
    Lock {
        /// Locked.
        on: bool,
    },
    /// `grant-moderator {id}`.
    GrantModerator {
        /// The target.
        id: u64,
    },
    /// `revoke-moderator {id}`.
    RevokeModerator {
        /// The target.
        id: u64,
    },
    /// `end-meeting`.
    EndMeeting,
}

/// One entry of `video-constraints`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoConstraint {
    /// The publisher (from the track id `<publisher>-<mid>`).
    pub publisher: u64,
    /// The publisher's mid.
    pub mid: String,
    /// Largest useful height (`None`: no limit; 0: not visible).
    pub max_height: Option<u16>,
}

/// Most entries accepted in one `video-constraints`.
pub const MAX_VIDEO_CONSTRAINTS: usize = 256;

/// Longest `reason` of a `deny`, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// Media kinds on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaKindWire {
    /// Microphone.
    Audio,
    /// Camera.
    Video,
    /// Screen share.
    Screen,
}

/// A role on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireRole {
    /// May moderate.
    Moderator,
    /// Full participant.
    Participant,
    /// Guest.
    Guest,
}

impl From<salon_plugins::Role> for WireRole {
    fn from(r: salon_plugins::Role) -> Self {
        match r {
            salon_plugins::Role::Moderator => WireRole::Moderator,
            salon_plugins::Role::Participant => WireRole::Participant,
            salon_plugins::Role::Guest => WireRole::Guest,
        }
    }
}

/// Someone in a room, as the browser sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantInfo {
    /// Participant id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Their role.
    pub role: WireRole,
    /// Audio off (muted by a moderator, or by themselves).
    pub audio_muted: bool,
    /// Camera off (stopped by a moderator, or by themselves).
    pub video_stopped: bool,
    /// Their socket dropped; they may come back within the grace period.
    pub reconnecting: bool,
}

/// Which transport, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireTransport {
    /// Browser → mediad.
    Publish,
    /// mediad → browser.
    Subscribe,
}

impl From<TransportKind> for WireTransport {
    fn from(t: TransportKind) -> Self {
        match t {
            TransportKind::Publish => WireTransport::Publish,
            TransportKind::Subscribe => WireTransport::Subscribe,
        }
    }
}

/// A message to the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ServerMessage {
    /// The join succeeded.
    Joined {
        /// Your participant id.
        id: u64,
        /// The room.
        room: String,
        /// Your role.
        role: WireRole,
        /// Whether the room is locked.
        locked: bool,
        /// Who else is there (not you).
        participants: Vec<ParticipantInfo>,
        /// Opens the meeting's pad: `GET /pad?token=…` (WebSocket). Valid
        /// while this signaling session is in the room.
        pad_token: String,
        /// Single use: send it in `resume` from a new socket to take this
        /// place back after a dropped socket (within the grace period).
        resume_token: String,
        /// TURN servers with credentials minted for you
        /// (`RTCConfiguration.iceServers`); empty when the server has no
        /// TURN. Fresh ones come in `ice-servers` before these expire.
        ice_servers: Vec<IceServer>,
    },
    /// Your `resume` succeeded: your place, as `joined` describes it.
    Resumed {
        /// Your participant id (the same as before).
        id: u64,
        /// The room.
        room: String,
        /// Your role (as it is now).
        role: WireRole,
        /// Whether the room is locked.
        locked: bool,
        /// Who else is there (not you).
        participants: Vec<ParticipantInfo>,
        /// The same pad token as before.
        pad_token: String,
        /// A fresh resume token (the one you sent is used up).
        resume_token: String,
        /// What the media plane did: `kept` (nothing) or `new` (publish and
        /// subscribe afresh).
        media: ResumeMedia,
        /// Your audio muted by a moderator.
        audio_muted: bool,
        /// Your camera stopped by a moderator.
        video_stopped: bool,
        /// Whether you asked for audio only.
        audio_only: bool,
        /// Fresh TURN credentials, as in `joined`.
        ice_servers: Vec<IceServer>,
    },
    /// Fresh TURN credentials before the previous ones expire: apply them
    /// with `RTCPeerConnection.setConfiguration` (they serve the next ICE
    /// gathering: a new transport or an ICE restart).
    IceServers {
        /// As in `joined`.
        ice_servers: Vec<IceServer>,
    },
    /// Someone's socket dropped: they keep their place for the grace period.
    ParticipantReconnecting {
        /// Their id.
        id: u64,
    },
    /// Someone who was reconnecting is back (same id, same role).
    ParticipantResumed {
        /// Their id.
        id: u64,
    },
    /// Someone entered your room.
    ParticipantJoined {
        /// Their id.
        id: u64,
        /// Their name.
        name: String,
        /// Their role.
        role: WireRole,
    },
    /// Someone left your room.
    ParticipantLeft {
        /// Their id.
        id: u64,
    },
    /// mediad's answer to your `probe` offer, with TURN servers minted for
    /// the probe (empty without TURN). The probe transport lives at most
    /// `ttl_ms` (then mediad forgets it), or until the socket closes or the
    /// next `probe` replaces it.
    ProbeAnswer {
        /// SDP.
        sdp: String,
        /// As in `joined`.
        ice_servers: Vec<IceServer>,
        /// How long the probe transport lives, in milliseconds.
        ttl_ms: u64,
    },
    /// mediad's answer for your publish transport.
    PublishAnswer {
        /// SDP.
        sdp: String,
    },
    /// mediad's offer for your subscribe transport.
    SubscribeOffer {
        /// SDP.
        sdp: String,
    },
    /// One of your transports is connected.
    Connected {
        /// Which.
        transport: WireTransport,
    },
    /// A chat message, stamped by the server.
    Chat {
        /// Sender's id.
        from: u64,
        /// Sender's display name.
        name: String,
        /// The text (render as text, never as markup).
        text: String,
        /// Server time, milliseconds since the Unix epoch.
        time: u64,
        /// For a private message: the addressee (both sender and addressee
        /// receive it).
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<u64>,
    },
    /// Someone started or stopped sharing a screen.
    ScreenShare {
        /// The publisher.
        id: u64,
        /// msid track id of the screen track in subscribe offers
        /// (`<id>-<publisher mid>`), or null when the share stopped.
        track_id: Option<String>,
    },
    /// mediad's dominant speaker of the room changed.
    DominantSpeaker {
        /// Who speaks.
        id: u64,
    },
    /// You wait in the room's lobby.
    Lobby {
        /// Your id.
        id: u64,
        /// The room.
        room: String,
        /// Who you are to this lobby (32 hex digits): send it again in
        /// `join` (a reload, a new socket) to keep your place in the queue
        /// within the grace period; a deny cooldown follows it.
        lobby_token: String,
    },
    /// To moderators: a guest waits in the lobby.
    Knock {
        /// The guest.
        id: u64,
        /// The guest's name.
        name: String,
    },
    /// To moderators: a waiting guest was admitted or denied (`by` null:
    /// the guest left the lobby).
    KnockResolved {
        /// The guest.
        id: u64,
        /// The moderator who decided.
        by: Option<u64>,
        /// Admitted (true) or not.
        admitted: bool,
    },
    /// You were admitted; `joined` follows.
    Admitted {},
    /// A moderator refused you.
    Denied {
        /// Why.
        reason: String,
        /// You may knock again after this delay.
        retry_after_ms: u64,
    },
    /// The meeting ended.
    MeetingEnded {
        /// `ended-by-moderator`, or `room-empty` for waiting guests when the
        /// last participant left.
        reason: String,
    },
    /// A moderator muted someone.
    Muted {
        /// Who.
        id: u64,
        /// The moderator.
        by: u64,
        /// What.
        kind: MediaKindWire,
    },
    /// Someone unmuted themselves.
    Unmuted {
        /// Who.
        id: u64,
        /// What.
        kind: MediaKindWire,
    },
    /// You were removed from the meeting.
    Kicked {
        /// The moderator.
        by: u64,
        /// Banned too.
        ban: bool,
    },
    /// Someone's role changed.
    RoleChanged {
        /// Who.
        id: u64,
        /// The new role.
        role: WireRole,
    },
    /// A moderator locked or unlocked the room.
    RoomLocked {
        /// Locked.
        on: bool,
        /// The moderator.
        by: u64,
    },
    /// Someone's own mic/camera state (display only).
    MediaState {
        /// Who.
        id: u64,
        /// Mic on.
        audio: bool,
        /// Camera on.
        video: bool,
    },
    /// Which simulcast encodings of your publish track are needed.
    LayersWanted {
        /// Your publish mid.
        mid: String,
        /// One per encoding, low to high.
        active: Vec<bool>,
    },
    /// Someone raised or lowered their hand (to the whole room, sender
    /// included). Raised hands are listed in the order they were raised.
    Hand {
        /// Whose hand.
        id: u64,
        /// Raised (true) or lowered.
        raised: bool,
        /// The moderator who lowered it, if not its owner.
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<u64>,
    },
    /// The hands raised in the room, oldest first (after `joined` and
    /// `resumed`, when any is raised).
    Hands {
        /// Whose hands, in the order they were raised.
        ids: Vec<u64>,
    },
    /// Someone reacted (to the whole room, sender included).
    Reaction {
        /// Who.
        id: u64,
        /// Which.
        emoji: Reaction,
    },
    /// To a knocking guest: its place in the lobby's queue (sent when it
    /// changes).
    LobbyPosition {
        /// 1: next in.
        position: u32,
        /// Guests knocking in all.
        waiting: u32,
    },
    /// A refused message or a media failure.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
}

impl ServerMessage {
    /// An `error` message for a protocol error.
    pub fn error(e: &ProtocolError) -> Self {
        ServerMessage::Error {
            code: e.code,
            message: e.detail.clone(),
        }
    }

    /// Whether the message hands out TURN credentials (metrics).
    pub fn carries_turn_credentials(&self) -> bool {
        match self {
            ServerMessage::Joined { ice_servers, .. }
            | ServerMessage::Resumed { ice_servers, .. }
            | ServerMessage::IceServers { ice_servers }
            | ServerMessage::ProbeAnswer { ice_servers, .. } => !ice_servers.is_empty(),
            _ => false,
        }
    }

    /// The JSON text frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail; keep a valid frame anyway.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"serialization"}"#.to_owned()
        })
    }
}

/// Checks a room name against `^[A-Za-z0-9-]{1,64}$`.
pub fn validate_room(room: &str) -> Result<RoomId, ProtocolError> {
    let ok = !room.is_empty()
        && room.len() <= MAX_ROOM_CHARS
        && room.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(RoomId(room.to_owned()))
    } else {
        Err(ProtocolError::plain(ErrorCode::BadRoom))
    }
}

/// Trims a display name and checks it: 1..=64 chars, no control
/// characters, no format characters (Unicode category Cf: bidi overrides
/// and isolates such as U+202E and U+2066–U+2069, zero-width spaces and
/// marks U+200B, U+200E, U+200F, the BOM…), no line or paragraph
/// separators, no Hangul fillers — the characters that let a name look
/// like another one or reorder the text around it. Zero-width joiners
/// (U+200C, U+200D) stay allowed between two visible characters, where
/// Persian, Indic scripts and emoji sequences need them.
pub fn validate_name(name: &str) -> Result<DisplayName, ProtocolError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ProtocolError::plain(ErrorCode::BadName));
    }
    if let Some(c) = first_hidden_char(name) {
        return Err(ProtocolError::new(
            ErrorCode::BadName,
            format!(
                "name holds an invisible or direction-changing character (U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(DisplayName(name.to_owned()))
}

/// A display name from a verified token (`context.user.name`): the
/// characters [`validate_name`] refuses are dropped, the rest trimmed and
/// cut at 64 characters; `None` if nothing is left. The identity provider is
/// trusted with who the user is, not with what its name does to the page.
pub fn name_from_token(name: &str) -> Option<DisplayName> {
    let chars: Vec<char> = name.chars().collect();
    let kept: String = chars
        .iter()
        .enumerate()
        .filter(|(i, c)| !c.is_control() && !hidden_at(&chars, *i))
        .map(|(_, c)| *c)
        .collect();
    let cut: String = kept.trim().chars().take(MAX_NAME_CHARS).collect();
    validate_name(&cut).ok()
}

/// The first character of `name` that [`validate_name`] refuses as hidden.
fn first_hidden_char(name: &str) -> Option<char> {
    let chars: Vec<char> = name.chars().collect();
    (0..chars.len())
        .find(|i| hidden_at(&chars, *i))
        .and_then(|i| chars.get(i).copied())
}

/// Whether `chars[i]` is hidden: a format character (other than a joiner
/// between two visible characters), a line or paragraph separator, or a
/// Hangul filler.
fn hidden_at(chars: &[char], i: usize) -> bool {
    let Some(&c) = chars.get(i) else {
        return false;
    };
    if matches!(c, '\u{200C}' | '\u{200D}') {
        let visible = |j: Option<usize>| {
            j.and_then(|j| chars.get(j))
                .is_some_and(|n| !n.is_whitespace() && !n.is_control() && !is_format(*n))
        };
        return !(visible(i.checked_sub(1)) && visible(i.checked_add(1)));
    }
    is_format(c)
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'
        )
}

/// Unicode general category Cf (format), Unicode 16.
fn is_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

fn str_field<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<&'a str, ProtocolError> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ProtocolError::new(
            ErrorCode::BadMessage,
            format!("field `{key}` must be a string"),
        )),
        None => Err(ProtocolError::new(
            ErrorCode::BadMessage,
            format!("missing field `{key}`"),
        )),
    }
}

fn id_field(obj: &Map<String, Value>) -> Result<u64, ProtocolError> {
    obj.get("id")
        .and_then(Value::as_u64)
        .ok_or_else(|| ProtocolError::new(ErrorCode::BadMessage, "field `id` must be an id"))
}

fn bool_field(obj: &Map<String, Value>, key: &str) -> Result<bool, ProtocolError> {
    match obj.get(key) {
        Some(Value::Bool(b)) => Ok(*b),
        _ => Err(ProtocolError::new(
            ErrorCode::BadMessage,
            format!("field `{key}` must be a boolean"),
        )),
    }
}

/// `{track_id: "<publisher>-<mid>", max_height: number | null}`; heights
/// are rounded and capped at 65535.
fn video_constraint(entry: &Value) -> Option<VideoConstraint> {
    let track_id = entry.get("track_id")?.as_str()?;
    let (publisher, mid) = track_id.split_once('-')?;
    if publisher.is_empty()
        || !publisher.bytes().all(|b| b.is_ascii_digit())
        || mid.is_empty()
        || mid.len() > MAX_MID_CHARS
        || !mid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let publisher: u64 = publisher.parse().ok()?;
    let max_height = match entry.get("max_height") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let h = v.as_f64()?;
            if !h.is_finite() || h < 0.0 {
                return None;
            }
            Some(h.round().min(f64::from(u16::MAX)) as u16)
        }
    };
    Some(VideoConstraint {
        publisher,
        mid: mid.to_owned(),
        max_height,
    })
}

/// Parses one client text frame. Never panics; unknown extra fields are
/// ignored (forward compatibility).
pub fn parse_client(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::plain(ErrorCode::TooLarge));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|_| ProtocolError::plain(ErrorCode::BadJson))?;
    let Value::Object(obj) = value else {
        return Err(ProtocolError::new(
            ErrorCode::BadMessage,
            "message must be a JSON object",
        ));
    };
    let ty = str_field(&obj, "type")?;
    match ty {
        "join" => {
            let room = str_field(&obj, "room")?;
            let name = str_field(&obj, "name")?;
            let jwt = match obj.get("jwt") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if t.is_empty() => None,
                Some(Value::String(t)) => Some(JoinToken::Raw(t.clone())),
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        "field `jwt` must be a string",
                    ));
                }
            };
            let lobby_token = match obj.get("lobby_token") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) if t.is_empty() => None,
                Some(Value::String(t)) if t.len() <= MAX_RESUME_TOKEN_CHARS => Some(t.clone()),
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        "field `lobby_token` must be a lobby token",
                    ));
                }
            };
            Ok(ClientMessage::Join {
                room: validate_room(room)?,
                name: validate_name(name)?,
                jwt,
                lobby_token,
            })
        }
        "knock" => Ok(ClientMessage::Knock),
        "admit" => Ok(ClientMessage::Moderate(Moderation::Admit {
            id: id_field(&obj)?,
        })),
        "deny" => {
            let id = id_field(&obj)?;
            let reason = match obj.get("reason") {
                None | Some(Value::Null) => None,
                Some(Value::String(r))
                    if r.chars().count() <= MAX_REASON_CHARS
                        && !r.chars().any(char::is_control) =>
                {
                    let r = r.trim();
                    (!r.is_empty()).then(|| r.to_owned())
                }
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        "field `reason` must be a string of at most 200 characters",
                    ));
                }
            };
            Ok(ClientMessage::Moderate(Moderation::Deny { id, reason }))
        }
        "mute" => Ok(ClientMessage::Moderate(Moderation::Mute {
            id: id_field(&obj)?,
        })),
        "mute-all" => Ok(ClientMessage::Moderate(Moderation::MuteAll)),
        "allow-unmute" => Ok(ClientMessage::Moderate(Moderation::AllowUnmute)),
        "stop-video" => Ok(ClientMessage::Moderate(Moderation::StopVideo {
            id: id_field(&obj)?,
        })),
        "stop-screen" => Ok(ClientMessage::Moderate(Moderation::StopScreen {
            id: id_field(&obj)?,
        })),
        "kick" => {
            let id = id_field(&obj)?;
            let ban = match obj.get("ban") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        "field `ban` must be a boolean",
                    ));
                }
            };
            Ok(ClientMessage::Moderate(Moderation::Kick { id, ban }))
        }
        "lock" => Ok(ClientMessage::Moderate(Moderation::Lock {
            on: bool_field(&obj, "on")?,
        })),
        "grant-moderator" => Ok(ClientMessage::Moderate(Moderation::GrantModerator {
            id: id_field(&obj)?,
        })),
        "revoke-moderator" => Ok(ClientMessage::Moderate(Moderation::RevokeModerator {
            id: id_field(&obj)?,
        })),
        "end-meeting" => Ok(ClientMessage::Moderate(Moderation::EndMeeting)),
        "unmute" => match obj.get("kind") {
            Some(Value::String(k)) if k == "audio" => Ok(ClientMessage::Unmute {
                kind: MediaKindWire::Audio,
            }),
            Some(Value::String(k)) if k == "video" => Ok(ClientMessage::Unmute {
                kind: MediaKindWire::Video,
            }),
            _ => Err(ProtocolError::new(
                ErrorCode::BadMessage,
                "field `kind` must be \"audio\" or \"video\"",
            )),
        },
        "media-state" => Ok(ClientMessage::MediaState {
            audio: bool_field(&obj, "audio")?,
            video: bool_field(&obj, "video")?,
        }),
        "video-constraints" => {
            let Some(Value::Array(list)) = obj.get("constraints") else {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "field `constraints` must be an array",
                ));
            };
            if list.len() > MAX_VIDEO_CONSTRAINTS {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "at most 256 constraints",
                ));
            }
            let mut constraints = Vec::with_capacity(list.len());
            let mut bad = 0;
            for entry in list {
                match video_constraint(entry) {
                    Some(c) => constraints.push(c),
                    None => bad += 1,
                }
            }
            Ok(ClientMessage::VideoConstraints { constraints, bad })
        }
        "probe" => Ok(ClientMessage::Probe {
            sdp: str_field(&obj, "sdp")?.to_owned(),
        }),
        "publish-offer" => Ok(ClientMessage::PublishOffer {
            sdp: str_field(&obj, "sdp")?.to_owned(),
        }),
        "subscribe-answer" => Ok(ClientMessage::SubscribeAnswer {
            sdp: str_field(&obj, "sdp")?.to_owned(),
        }),
        "leave" => Ok(ClientMessage::Leave),
        "hand" => Ok(ClientMessage::Hand {
            raised: bool_field(&obj, "raised")?,
        }),
        "lower-hand" => Ok(ClientMessage::LowerHand {
            id: id_field(&obj)?,
        }),
        "react" => {
            let emoji = str_field(&obj, "emoji")?;
            let emoji = Reaction::parse(emoji).ok_or_else(|| {
                ProtocolError::new(
                    ErrorCode::BadMessage,
                    "field `emoji` must be one of 👍 👏 😂 😮 ❤️ 🎉",
                )
            })?;
            Ok(ClientMessage::React { emoji })
        }
        "resume" => {
            let token = str_field(&obj, "token")?;
            if token.is_empty() || token.len() > MAX_RESUME_TOKEN_CHARS {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "field `token` must be a resume token",
                ));
            }
            let media = match obj.get("media") {
                None | Some(Value::Null) => ResumeMedia::Kept,
                Some(Value::String(m)) if m == "kept" => ResumeMedia::Kept,
                Some(Value::String(m)) if m == "new" => ResumeMedia::New,
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        "field `media` must be \"kept\" or \"new\"",
                    ));
                }
            };
            Ok(ClientMessage::Resume {
                token: token.to_owned(),
                media,
            })
        }
        "chat" => {
            let text = str_field(&obj, "text")?;
            let chars = text.chars().count();
            if chars > MAX_CHAT_CHARS || text.trim().is_empty() {
                return Err(ProtocolError::plain(ErrorCode::TooLong));
            }
            if text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
            {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "control characters other than newline and tab",
                ));
            }
            let to = match obj.get("to") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    ProtocolError::new(ErrorCode::BadMessage, "field `to` must be an id")
                })?),
            };
            Ok(ClientMessage::Chat {
                text: text.to_owned(),
                to,
            })
        }
        "screen" => {
            let mid = match obj.get("mid") {
                None | Some(Value::Null) => None,
                Some(Value::String(m))
                    if !m.is_empty()
                        && m.len() <= MAX_MID_CHARS
                        && m.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    Some(m.clone())
                }
                Some(_) => {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        "field `mid` must be null or 1 to 16 letters, digits, - or _",
                    ));
                }
            };
            Ok(ClientMessage::Screen { mid })
        }
        "audio-only" => match obj.get("on") {
            Some(Value::Bool(on)) => Ok(ClientMessage::AudioOnly { on: *on }),
            _ => Err(ProtocolError::new(
                ErrorCode::BadMessage,
                "field `on` must be a boolean",
            )),
        },
        _ => Err(ProtocolError::plain(ErrorCode::UnknownType)),
    }
}

/// Parses raw bytes as a client frame (the fuzz entry point): non-UTF-8 is
/// [`ErrorCode::BadJson`].
pub fn parse_client_bytes(bytes: &[u8]) -> Result<ClientMessage, ProtocolError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(ProtocolError::plain(ErrorCode::TooLarge));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_client(text),
        Err(_) => Err(ProtocolError::plain(ErrorCode::BadJson)),
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests may index
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse_client(text).unwrap_err().code
    }

    #[test]
    fn room_names() {
        for ok in ["a", "NomDuSalon123", "a-b-c", "-", &"x".repeat(64)] {
            assert_eq!(validate_room(ok).unwrap().0, ok);
        }
        for bad in [
            "",
            &"x".repeat(65),
            "a b",
            "é",
            "a/b",
            "a.b",
            "a_b",
            "..",
            "%41",
            "a\n",
        ] {
            assert_eq!(
                validate_room(bad).unwrap_err().code,
                ErrorCode::BadRoom,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names() {
        assert_eq!(validate_name("  Zoé  ").unwrap().as_str(), "Zoé");
        assert_eq!(
            validate_name(&"é".repeat(64))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            64
        );
        for bad in ["", "   ", "a\u{0}b", "a\nb", "\u{7f}", &"é".repeat(65)] {
            assert_eq!(
                validate_name(bad).unwrap_err().code,
                ErrorCode::BadName,
                "{bad:?}"
            );
        }
    }

    /// Bidi overrides and isolates, zero-width and other format characters
    /// let a guest's name pass for an agent's ("Agent\u{202E}..."): refused,
    /// with the code point in the message. Joiners between visible
    /// characters (Persian, emoji sequences) stay.
    #[test]
    fn names_with_bidi_or_invisible_characters_are_refused() {
        for bad in [
            "Camille \u{202E}tnega",
            "\u{2066}Agent\u{2069}",
            "Agent\u{200B}",
            "A\u{200E}gent",
            "A\u{200F}",
            "\u{FEFF}Agent",
            "A\u{00AD}gent",
            "A\u{2028}B",
            "\u{3164}",
            "A\u{200D}",
            "\u{200C}A",
            "A \u{200D} B",
            "A\u{E0041}",
        ] {
            let e = validate_name(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadName, "{bad:?}");
            assert!(e.detail.contains("U+"), "{bad:?}: {}", e.detail);
        }
        for ok in [
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0645}",
            "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}",
            "\u{2764}\u{FE0F}\u{200D}\u{1F525} Zoé",
            "Ægir O'Brien-Šimić",
        ] {
            assert_eq!(validate_name(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn token_names_are_cleaned_not_refused() {
        assert_eq!(
            name_from_token(" \u{202E}Camille\u{200B} Dupont ")
                .unwrap()
                .as_str(),
            "Camille Dupont"
        );
        assert_eq!(
            name_from_token(&"é".repeat(80)).unwrap().as_str(),
            "é".repeat(64)
        );
        assert_eq!(name_from_token("\u{202E}\u{200B} \n"), None);
    }

    #[test]
    fn resume_takes_a_token_and_kept_or_new_media_only() {
        assert_eq!(
            parse_client(r#"{"type":"resume","token":"abc"}"#).unwrap(),
            ClientMessage::Resume {
                token: "abc".into(),
                media: ResumeMedia::Kept
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"resume","token":"abc","media":"new"}"#).unwrap(),
            ClientMessage::Resume {
                token: "abc".into(),
                media: ResumeMedia::New
            }
        );
        let long = format!(r#"{{"type":"resume","token":"{}"}}"#, "a".repeat(129));
        for bad in [
            r#"{"type":"resume"}"#,
            r#"{"type":"resume","token":""}"#,
            r#"{"type":"resume","token":42}"#,
            r#"{"type":"resume","token":["abc"]}"#,
            r#"{"type":"resume","token":"abc","media":"old"}"#,
            r#"{"type":"resume","token":"abc","media":1}"#,
            r#"{"type":"resume","token":"abc""#,
            long.as_str(),
        ] {
            let e = parse_client(bad).unwrap_err();
            assert!(
                matches!(e.code, ErrorCode::BadMessage | ErrorCode::BadJson),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn parses_valid_messages() {
        assert_eq!(
            parse_client(r#"{"type":"join","room":"R-1","name":" Ana ","extra":1}"#).unwrap(),
            ClientMessage::Join {
                room: RoomId("R-1".into()),
                name: validate_name("Ana").unwrap(),
                jwt: None,
                lobby_token: None
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"publish-offer","sdp":"v=0"}"#).unwrap(),
            ClientMessage::PublishOffer { sdp: "v=0".into() }
        );
        assert_eq!(
            parse_client(r#"{"type":"subscribe-answer","sdp":"v=0"}"#).unwrap(),
            ClientMessage::SubscribeAnswer { sdp: "v=0".into() }
        );
        assert_eq!(
            parse_client(r#"{"type":"leave"}"#).unwrap(),
            ClientMessage::Leave
        );
    }

    #[test]
    fn every_parse_error_code() {
        assert_eq!(code("{"), ErrorCode::BadJson);
        assert_eq!(code(""), ErrorCode::BadJson);
        assert_eq!(
            parse_client_bytes(&[0xff, 0xfe]).unwrap_err().code,
            ErrorCode::BadJson
        );
        assert_eq!(code("[]"), ErrorCode::BadMessage);
        assert_eq!(code("\"join\""), ErrorCode::BadMessage);
        assert_eq!(code("{}"), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":3}"#), ErrorCode::BadMessage);
        assert_eq!(code(r#"{"type":"join","room":"a"}"#), ErrorCode::BadMessage);
        assert_eq!(
            code(r#"{"type":"join","room":1,"name":"a"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"publish-offer","sdp":null}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"subscribe-answer"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(
            code(r#"{"type":"join","room":"a b","name":"a"}"#),
            ErrorCode::BadRoom
        );
        assert_eq!(
            code(r#"{"type":"join","room":"ab","name":"  "}"#),
            ErrorCode::BadName
        );
        let big = format!(
            r#"{{"type":"publish-offer","sdp":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert_eq!(code(&big), ErrorCode::TooLarge);
        // Deep nesting is an error, not a stack overflow.
        let deep = "[".repeat(10_000);
        assert_eq!(code(&deep), ErrorCode::BadJson);
    }

    #[test]
    fn chat_screen_and_audio_only_messages() {
        assert_eq!(
            parse_client(r#"{"type":"chat","text":"Bonjour\n<b>"}"#).unwrap(),
            ClientMessage::Chat {
                text: "Bonjour\n<b>".into(),
                to: None
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"chat","text":"psst","to":12}"#).unwrap(),
            ClientMessage::Chat {
                text: "psst".into(),
                to: Some(12)
            }
        );
        let max = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "é".repeat(MAX_CHAT_CHARS)
        );
        assert!(parse_client(&max).is_ok());
        let over = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "é".repeat(MAX_CHAT_CHARS + 1)
        );
        assert_eq!(code(&over), ErrorCode::TooLong);
        assert_eq!(code(r#"{"type":"chat","text":"  "}"#), ErrorCode::TooLong);
        assert_eq!(
            code(r#"{"type":"chat","text":"a\u0007"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"chat","text":"a","to":-1}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code(r#"{"type":"chat","text":"a","to":"2"}"#),
            ErrorCode::BadMessage
        );
        assert_eq!(code(r#"{"type":"chat"}"#), ErrorCode::BadMessage);
        assert_eq!(
            parse_client(r#"{"type":"screen","mid":"2"}"#).unwrap(),
            ClientMessage::Screen {
                mid: Some("2".into())
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"screen","mid":null}"#).unwrap(),
            ClientMessage::Screen { mid: None }
        );
        for bad in [r#""""#, r#""a b""#, "3", r#""01234567890123456""#] {
            assert_eq!(
                code(&format!(r#"{{"type":"screen","mid":{bad}}}"#)),
                ErrorCode::BadMessage,
                "{bad}"
            );
        }
        assert_eq!(
            parse_client(r#"{"type":"audio-only","on":true}"#).unwrap(),
            ClientMessage::AudioOnly { on: true }
        );
        assert_eq!(
            code(r#"{"type":"audio-only","on":1}"#),
            ErrorCode::BadMessage
        );
        let chat = ServerMessage::Chat {
            from: 1,
            name: "A".into(),
            text: "x".into(),
            time: 5,
            to: None,
        };
        assert_eq!(
            chat.to_json(),
            r#"{"type":"chat","from":1,"name":"A","text":"x","time":5}"#
        );
        let share = ServerMessage::ScreenShare {
            id: 3,
            track_id: None,
        };
        assert_eq!(
            share.to_json(),
            r#"{"type":"screen-share","id":3,"track_id":null}"#
        );
    }

    #[test]
    fn server_messages_serialize_with_type() {
        let m = ServerMessage::Joined {
            id: 7,
            room: "R".into(),
            role: WireRole::Moderator,
            locked: false,
            participants: vec![ParticipantInfo {
                id: 3,
                name: "<b>x</b>".into(),
                role: WireRole::Guest,
                audio_muted: false,
                video_stopped: true,
                reconnecting: false,
            }],
            pad_token: "t".into(),
            resume_token: "r".into(),
            ice_servers: vec![IceServer {
                urls: vec!["turns:turn.example.org:443?transport=tcp".into()],
                username: "1700086400:7".into(),
                credential: "c".into(),
            }],
        };
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["pad_token"], "t");
        assert_eq!(
            v["ice_servers"],
            serde_json::json!([{
                "urls": ["turns:turn.example.org:443?transport=tcp"],
                "username": "1700086400:7",
                "credential": "c",
            }])
        );
        let refresh = ServerMessage::IceServers {
            ice_servers: vec![],
        };
        assert_eq!(
            refresh.to_json(),
            r#"{"type":"ice-servers","ice_servers":[]}"#
        );
        assert_eq!(v["type"], "joined");
        assert_eq!(v["participants"][0]["name"], "<b>x</b>");
        let e = ServerMessage::error(&ProtocolError::plain(ErrorCode::NotJoined));
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "not-joined");
        let c = ServerMessage::Connected {
            transport: WireTransport::Subscribe,
        };
        assert_eq!(
            c.to_json(),
            r#"{"type":"connected","transport":"subscribe"}"#
        );
        for code in ErrorCode::ALL {
            assert!(!code.as_str().is_empty());
        }
    }

    #[test]
    fn parses_v2_messages() {
        use Moderation as M;
        assert_eq!(
            parse_client(r#"{"type":"join","room":"R","name":"A","jwt":"x.y.z"}"#).unwrap(),
            ClientMessage::Join {
                room: RoomId("R".into()),
                name: validate_name("A").unwrap(),
                jwt: Some("x.y.z".into()),
                lobby_token: None
            }
        );
        assert_eq!(
            parse_client(r#"{"type":"join","room":"R","name":"A","lobby_token":"ab12"}"#).unwrap(),
            ClientMessage::Join {
                room: RoomId("R".into()),
                name: validate_name("A").unwrap(),
                jwt: None,
                lobby_token: Some("ab12".into())
            }
        );
        for bad in [
            r#"{"type":"join","room":"R","name":"A","lobby_token":5}"#.to_owned(),
            format!(
                r#"{{"type":"join","room":"R","name":"A","lobby_token":"{}"}}"#,
                "a".repeat(129)
            ),
        ] {
            assert_eq!(code(&bad), ErrorCode::BadMessage);
        }
        assert_eq!(
            code(r#"{"type":"join","room":"R","name":"A","jwt":5}"#),
            ErrorCode::BadMessage
        );
        let m = |t: &str| match parse_client(t).unwrap() {
            ClientMessage::Moderate(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(m(r#"{"type":"admit","id":4}"#), M::Admit { id: 4 });
        assert_eq!(
            m(r#"{"type":"deny","id":4,"reason":" full "}"#),
            M::Deny {
                id: 4,
                reason: Some("full".into())
            }
        );
        assert_eq!(
            m(r#"{"type":"deny","id":4}"#),
            M::Deny {
                id: 4,
                reason: None
            }
        );
        assert_eq!(
            m(r#"{"type":"kick","id":4}"#),
            M::Kick { id: 4, ban: false }
        );
        assert_eq!(
            m(r#"{"type":"kick","id":4,"ban":true}"#),
            M::Kick { id: 4, ban: true }
        );
        assert_eq!(m(r#"{"type":"lock","on":true}"#), M::Lock { on: true });
        assert_eq!(m(r#"{"type":"mute-all"}"#), M::MuteAll);
        assert_eq!(m(r#"{"type":"end-meeting"}"#), M::EndMeeting);
        for bad in [
            r#"{"type":"mute"}"#,
            r#"{"type":"mute","id":"4"}"#,
            r#"{"type":"mute","id":-4}"#,
            r#"{"type":"kick","id":4,"ban":"yes"}"#,
            r#"{"type":"lock"}"#,
            r#"{"type":"unmute","kind":"screen"}"#,
            r#"{"type":"media-state","audio":true}"#,
            r#"{"type":"video-constraints"}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::BadMessage, "{bad}");
        }
        let deny = format!(r#"{{"type":"deny","id":1,"reason":"{}"}}"#, "x".repeat(201));
        assert_eq!(code(&deny), ErrorCode::BadMessage);
        assert_eq!(
            parse_client(
                r#"{"type":"video-constraints","constraints":[{"track_id":"3-1","max_height":359.6},{"track_id":"4-a_b","max_height":null},{"track_id":"x-1"},{"track_id":"5-","max_height":1},{"track_id":"6-1","max_height":-1},{"track_id":"7-1","max_height":1e9}]}"#
            )
            .unwrap(),
            ClientMessage::VideoConstraints {
                constraints: vec![
                    VideoConstraint {
                        publisher: 3,
                        mid: "1".into(),
                        max_height: Some(360)
                    },
                    VideoConstraint {
                        publisher: 4,
                        mid: "a_b".into(),
                        max_height: None
                    },
                    VideoConstraint {
                        publisher: 7,
                        mid: "1".into(),
                        max_height: Some(u16::MAX)
                    },
                ],
                bad: 3
            }
        );
        let msg = ServerMessage::KnockResolved {
            id: 3,
            by: None,
            admitted: false,
        };
        assert_eq!(
            msg.to_json(),
            r#"{"type":"knock-resolved","id":3,"by":null,"admitted":false}"#
        );
        assert_eq!(
            ServerMessage::Admitted {}.to_json(),
            r#"{"type":"admitted"}"#
        );
        assert_eq!(
            ServerMessage::Muted {
                id: 1,
                by: 2,
                kind: MediaKindWire::Screen
            }
            .to_json(),
            r#"{"type":"muted","id":1,"by":2,"kind":"screen"}"#
        );
    }

    #[test]
    fn gesture_messages_parse_and_serialize() {
        assert_eq!(
            parse_client(r#"{"type":"hand","raised":true}"#).unwrap(),
            ClientMessage::Hand { raised: true }
        );
        assert_eq!(
            parse_client(r#"{"type":"lower-hand","id":7}"#).unwrap(),
            ClientMessage::LowerHand { id: 7 }
        );
        for r in Reaction::ALL {
            let frame = serde_json::json!({"type": "react", "emoji": r.as_str()}).to_string();
            assert_eq!(
                parse_client(&frame).unwrap(),
                ClientMessage::React { emoji: r }
            );
        }
        // ❤ without its variation selector is the same heart.
        assert_eq!(
            parse_client(r#"{"type":"react","emoji":"\u2764"}"#).unwrap(),
            ClientMessage::React {
                emoji: Reaction::Heart
            }
        );
        for bad in [
            r#"{"type":"hand"}"#,
            r#"{"type":"hand","raised":"yes"}"#,
            r#"{"type":"lower-hand"}"#,
            r#"{"type":"lower-hand","id":-1}"#,
            r#"{"type":"react"}"#,
            r#"{"type":"react","emoji":"💩"}"#,
            r#"{"type":"react","emoji":"👍👍"}"#,
            r#"{"type":"react","emoji":" 👍"}"#,
            r#"{"type":"react","emoji":5}"#,
        ] {
            assert_eq!(code(bad), ErrorCode::BadMessage, "{bad}");
        }
        assert_eq!(
            ServerMessage::Hand {
                id: 3,
                raised: false,
                by: Some(1)
            }
            .to_json(),
            r#"{"type":"hand","id":3,"raised":false,"by":1}"#
        );
        assert_eq!(
            ServerMessage::Hand {
                id: 3,
                raised: true,
                by: None
            }
            .to_json(),
            r#"{"type":"hand","id":3,"raised":true}"#
        );
        assert_eq!(
            ServerMessage::Hands { ids: vec![4, 2] }.to_json(),
            r#"{"type":"hands","ids":[4,2]}"#
        );
        assert_eq!(
            ServerMessage::Reaction {
                id: 2,
                emoji: Reaction::Party
            }
            .to_json(),
            "{\"type\":\"reaction\",\"id\":2,\"emoji\":\"🎉\"}"
        );
        assert_eq!(
            ServerMessage::LobbyPosition {
                position: 2,
                waiting: 3
            }
            .to_json(),
            r#"{"type":"lobby-position","position":2,"waiting":3}"#
        );
    }

    /// Small deterministic PRNG (xorshift64*), so the loop replays.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn seeded_random_json_never_panics() {
        let seeds: &[&[u8]] = &[
            br#"{"type":"join","room":"NomDuSalon123","name":"Ana"}"#,
            br#"{"type":"publish-offer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}"#,
            br#"{"type":"subscribe-answer","sdp":"v=0"}"#,
            br#"{"type":"leave"}"#,
            br#"{"type":"join","room":"R","name":"A","jwt":"a.b.c"}"#,
            br#"{"type":"deny","id":3,"reason":"non"}"#,
            br#"{"type":"kick","id":12,"ban":true}"#,
            br#"{"type":"video-constraints","constraints":[{"track_id":"3-1","max_height":360.5},{"track_id":"4-x","max_height":null}]}"#,
            br#"{"type":"unmute","kind":"audio"}"#,
            br#"{"type":"media-state","audio":true,"video":false}"#,
            br#"[1,2,{"a":[null,true,false,1e308,-0.5]}]"#,
        ];
        let alphabet = b"{}[]\",:\\ntrufalsejoin-0123456789eE+.\x00\xff\xc3\xa9 ";
        let mut rng = Rng(0x5a10_2026_dead_beef);
        let start = std::time::Instant::now();
        let mut n = 0u32;
        while n < 200_000 && start.elapsed() < std::time::Duration::from_millis(1500) {
            let mut buf = seeds[rng.below(seeds.len())].to_vec();
            for _ in 0..=rng.below(8) {
                match rng.below(4) {
                    0 if !buf.is_empty() => {
                        let i = rng.below(buf.len());
                        buf[i] = alphabet[rng.below(alphabet.len())];
                    }
                    1 => {
                        let i = rng.below(buf.len() + 1);
                        buf.insert(i, alphabet[rng.below(alphabet.len())]);
                    }
                    2 if !buf.is_empty() => {
                        let i = rng.below(buf.len());
                        buf.remove(i);
                    }
                    _ => {
                        let i = rng.below(buf.len() + 1);
                        buf.truncate(i);
                    }
                }
            }
            let _ = parse_client_bytes(&buf);
            n += 1;
        }
        assert!(n > 1000, "only {n} iterations");
    }
}
