//! The control interface between the signaling gateway and mediad.
//!
//! Commands go in, events come out. Both are plain data (no handles, no
//! callbacks) with a wire encoding ([`wire`]): versioned JSON, so the same
//! interface works in-process over channels today and across a process
//! boundary (mediad on another host) later, without touching the core.
//! `docs/control.md` documents the protocol.
//!
//! Each participant has two WebRTC transports to mediad, as in LiveKit:
//! - the **publish** transport: the browser offers (sendonly audio/video),
//!   mediad answers (`a=ice-lite`, `a=setup:passive`);
//! - the **subscribe** transport: mediad offers one sendonly m-line per
//!   remote track and the browser answers (it picks `a=setup:active`, so
//!   mediad stays the DTLS server). mediad re-offers when the set of
//!   tracks changes, one offer at a time.
//!
//! Commands that expect an answer carry a [`RequestId`] chosen by the
//! sender; the answer ([`Event::PublishAnswer`]) or the failure
//! ([`Event::Error`]) carries it back.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A room, by name (validated by the gateway: letters, digits, dashes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub String);

/// A participant, by an opaque id the gateway assigns (never a name).
///
/// Ids are random ([`ParticipantId::random`]), not a per-process counter,
/// so that two gateways (or a gateway restarted) never hand out the same
/// id to two people a mediad on another host serves. They stay below 2^53
/// so they survive JSON numbers in browsers exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ParticipantId(pub u64);

impl ParticipantId {
    /// Largest id plus one (2^53: JavaScript's safe integers).
    pub const LIMIT: u64 = 1 << 53;

    /// A fresh random id in `1..LIMIT` from the operating system's
    /// generator. Two of n live ids collide with probability about
    /// n²/2^54; the gateway refuses a socket whose id is already in use.
    pub fn random() -> Self {
        loop {
            let v = rand::random::<u64>() & (Self::LIMIT - 1);
            if v != 0 {
                return Self(v);
            }
        }
    }
}

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The sender's id for a command that expects an answer, echoed in the
/// answer or error. Unique per sender for as long as an answer may come.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct RequestId(pub u64);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Which of a participant's two transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// Browser → mediad.
    Publish,
    /// mediad → browser.
    Subscribe,
}

/// Kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaKind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

/// What the gateway asks of mediad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Command {
    /// Add a participant to a room (creating the room on first join).
    Join {
        /// The room.
        room: RoomId,
        /// The new participant.
        participant: ParticipantId,
    },
    /// The browser's SDP offer for its publish transport. Answered by
    /// [`Event::PublishAnswer`] or [`Event::Error`] with the same `request`.
    PublishOffer {
        /// Who offers.
        participant: ParticipantId,
        /// Echoed in the answer.
        request: RequestId,
        /// The offer, as the browser produced it.
        sdp: String,
    },
    /// The browser's answer to the last [`Event::SubscribeOffer`]. A
    /// failure comes back as [`Event::Error`] with the same `request`.
    SubscribeAnswer {
        /// Who answers.
        participant: ParticipantId,
        /// Echoed in an error.
        request: RequestId,
        /// The answer.
        sdp: String,
    },
    /// Stop or resume forwarding one kind of a participant's media (mute
    /// enforced in the media plane).
    SetForwarding {
        /// Whose media.
        participant: ParticipantId,
        /// Which kind.
        kind: MediaKind,
        /// False stops forwarding to everyone.
        enabled: bool,
    },
    /// Stop or resume forwarding one of a participant's tracks (moderation:
    /// stop a screen share but not the camera). Combines with
    /// [`Command::SetForwarding`]: a track is forwarded only if both allow.
    SetTrackForwarding {
        /// Whose track.
        participant: ParticipantId,
        /// The publisher's m-line id.
        mid: String,
        /// False stops forwarding that track to everyone.
        enabled: bool,
    },
    /// Which of a participant's published m-lines is a screen share
    /// (`None`: none). Screen shares come first in layer allocation.
    SetScreenShare {
        /// The publisher.
        participant: ParticipantId,
        /// The screen share's mid.
        mid: Option<String>,
    },
    /// What a receiver wants of one video track: the largest height its tile
    /// shows (`None`: no limit). mediad picks the best layer that fits.
    SetReceiveConstraints {
        /// The receiver.
        participant: ParticipantId,
        /// Whose track.
        publisher: ParticipantId,
        /// The publisher's m-line id (the part after the dash of the msid
        /// track id `<publisher>-<mid>`).
        mid: String,
        /// Largest useful height in pixels.
        max_height: Option<u16>,
    },
    /// Audio-only mode for a receiver: no video bytes are sent to it at all.
    SetAudioOnly {
        /// The receiver.
        participant: ParticipantId,
        /// On or off.
        enabled: bool,
    },
    /// Last-N for a receiver: the video of at most `last_n` senders, screen
    /// shares and speakers first (`None`: no limit). The gateway sends the
    /// room's value to each member.
    SetLastN {
        /// The receiver.
        participant: ParticipantId,
        /// Most video tracks it receives.
        last_n: Option<u32>,
    },
    /// The operator's cap on the video a receiver gets, in bit/s (`None`:
    /// only its link limits it).
    SetBitrateCap {
        /// The receiver.
        participant: ParticipantId,
        /// The cap.
        bps: Option<u64>,
    },
    /// Restart ICE on the participant's subscribe transport (its network
    /// changed): mediad offers new credentials on the same transport. The
    /// publish side restarts when the browser's offer brings new
    /// credentials.
    RestartIce {
        /// Whose transport.
        participant: ParticipantId,
    },
    /// Remove a participant and everything it published.
    Leave {
        /// Who leaves.
        participant: ParticipantId,
    },
}

impl Command {
    /// The participant a command is about.
    pub fn participant(&self) -> ParticipantId {
        match self {
            Command::Join { participant, .. }
            | Command::PublishOffer { participant, .. }
            | Command::SubscribeAnswer { participant, .. }
            | Command::SetForwarding { participant, .. }
            | Command::SetTrackForwarding { participant, .. }
            | Command::SetScreenShare { participant, .. }
            | Command::SetReceiveConstraints { participant, .. }
            | Command::SetAudioOnly { participant, .. }
            | Command::SetLastN { participant, .. }
            | Command::SetBitrateCap { participant, .. }
            | Command::RestartIce { participant }
            | Command::Leave { participant } => *participant,
        }
    }

    /// Number of command types (the wire round-trip test checks it has a
    /// sample of each).
    #[doc(hidden)]
    pub const VARIANTS: usize = 12;

    /// This command's type, as a number below [`Command::VARIANTS`]. A new
    /// variant fails to compile here: number it, raise `VARIANTS`, and add
    /// a sample to `tests/control_wire.rs`.
    #[doc(hidden)]
    pub fn variant_index(&self) -> usize {
        match self {
            Command::Join { .. } => 0,
            Command::PublishOffer { .. } => 1,
            Command::SubscribeAnswer { .. } => 2,
            Command::SetForwarding { .. } => 3,
            Command::SetTrackForwarding { .. } => 4,
            Command::SetScreenShare { .. } => 5,
            Command::SetReceiveConstraints { .. } => 6,
            Command::SetAudioOnly { .. } => 7,
            Command::SetLastN { .. } => 8,
            Command::SetBitrateCap { .. } => 9,
            Command::RestartIce { .. } => 10,
            Command::Leave { .. } => 11,
        }
    }

    /// The request id an answer or error will carry, if any.
    pub fn request(&self) -> Option<RequestId> {
        match self {
            Command::PublishOffer { request, .. } | Command::SubscribeAnswer { request, .. } => {
                Some(*request)
            }
            Command::Join { .. }
            | Command::SetForwarding { .. }
            | Command::SetTrackForwarding { .. }
            | Command::SetScreenShare { .. }
            | Command::SetReceiveConstraints { .. }
            | Command::SetAudioOnly { .. }
            | Command::SetLastN { .. }
            | Command::SetBitrateCap { .. }
            | Command::RestartIce { .. }
            | Command::Leave { .. } => None,
        }
    }
}

impl ControlError {
    /// Number of error codes (see [`Command::VARIANTS`]).
    #[doc(hidden)]
    pub const VARIANTS: usize = 14;

    /// This error's code, as a number below [`ControlError::VARIANTS`].
    #[doc(hidden)]
    pub fn variant_index(&self) -> usize {
        match self {
            ControlError::NotJoined => 0,
            ControlError::AlreadyJoined => 1,
            ControlError::InvalidOffer(_) => 2,
            ControlError::OfferNotAcceptable(_) => 3,
            ControlError::CertificateChanged => 4,
            ControlError::NoOfferPending => 5,
            ControlError::InvalidAnswer(_) => 6,
            ControlError::AnswerMismatch => 7,
            ControlError::NoSuchTrack => 8,
            ControlError::TransportFailed => 9,
            ControlError::OfferTooLarge(_) => 10,
            ControlError::AnswerTooLarge(_) => 11,
            ControlError::TooManyOffers => 12,
            ControlError::OverCapacity => 13,
        }
    }
}

/// Why a command could not be carried out. The `Display` text is short,
/// user-presentable and carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", content = "detail", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ControlError {
    /// The participant is not on this media plane.
    #[error("not joined")]
    NotJoined,
    /// [`Command::Join`] for a participant already there.
    #[error("already joined")]
    AlreadyJoined,
    /// The publish offer does not parse.
    #[error("invalid offer: {0}")]
    InvalidOffer(String),
    /// The publish offer parses but cannot be answered.
    #[error("offer not acceptable: {0}")]
    OfferNotAcceptable(String),
    /// The publish offer changes the DTLS certificate of a connected
    /// transport (a new peer connection, not an ICE restart).
    #[error("a new DTLS certificate needs a new connection")]
    CertificateChanged,
    /// A subscribe answer with no offer outstanding.
    #[error("no subscribe offer is pending")]
    NoOfferPending,
    /// The subscribe answer does not parse.
    #[error("invalid answer: {0}")]
    InvalidAnswer(String),
    /// The subscribe answer's m-lines are not the offer's.
    #[error("answer does not match the offer")]
    AnswerMismatch,
    /// Receive constraints for a track that is not there.
    #[error("no such video track")]
    NoSuchTrack,
    /// ICE or DTLS failed on one of the participant's transports.
    #[error("media transport failed")]
    TransportFailed,
    /// The publish offer is larger than the worker accepts (the limit in
    /// bytes); it was not parsed.
    #[error("offer too large: over {0} bytes")]
    OfferTooLarge(usize),
    /// The subscribe answer is larger than an answer to the outstanding
    /// offer can be (the limit in bytes); it was not parsed.
    #[error("answer too large: over {0} bytes")]
    AnswerTooLarge(usize),
    /// Publish offers come faster than a browser makes them; this one was
    /// not parsed. The participant may offer again a moment later.
    #[error("too many offers: try again in a moment")]
    TooManyOffers,
    /// What the publish offer brings would not fit in the media worker's
    /// memory budget; nothing of it was taken (what the participant
    /// already published is untouched).
    #[error("the media server is at capacity")]
    OverCapacity,
}

/// What mediad tells the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Event {
    /// mediad's answer to a [`Command::PublishOffer`].
    PublishAnswer {
        /// For whom.
        participant: ParticipantId,
        /// The offer's request id.
        request: RequestId,
        /// The answer SDP.
        sdp: String,
    },
    /// A new offer for the participant's subscribe transport: send it to the
    /// browser and return its answer with [`Command::SubscribeAnswer`].
    /// The `msid` stream id of each m-line is the publisher's
    /// [`ParticipantId`] as a decimal string, so the client can put the
    /// track under the right name.
    SubscribeOffer {
        /// For whom.
        participant: ParticipantId,
        /// The offer SDP.
        sdp: String,
    },
    /// A transport finished ICE and DTLS: media can flow.
    Connected {
        /// Whose transport.
        participant: ParticipantId,
        /// Which one.
        transport: TransportKind,
    },
    /// A transport's peer stopped consenting (no authenticated STUN check
    /// for 30 s, RFC 7675): mediad stopped sending on it. Sending resumes by
    /// itself if checks come back (an ICE restart brings new ones).
    TransportLost {
        /// Whose transport.
        participant: ParticipantId,
        /// Which one.
        transport: TransportKind,
    },
    /// A participant started publishing a track.
    TrackPublished {
        /// The publisher.
        participant: ParticipantId,
        /// Audio or video.
        kind: MediaKind,
    },
    /// The room's dominant speaker changed (from the audio level of what
    /// participants publish).
    DominantSpeaker {
        /// The room.
        room: RoomId,
        /// Who speaks now.
        participant: ParticipantId,
    },
    /// Which simulcast encodings of a published video some receiver
    /// currently gets: the publisher may stop encoding the others. Sent when
    /// the set changes (at most every [`crate::core::LAYERS_WANTED_INTERVAL`]).
    LayersWanted {
        /// The publisher.
        participant: ParticipantId,
        /// Its m-line id.
        mid: String,
        /// One per encoding, lowest first. The lowest stays wanted while
        /// anyone receives the track at all.
        active: Vec<bool>,
    },
    /// A command could not be carried out (or a transport failed).
    Error {
        /// For whom.
        participant: ParticipantId,
        /// The failed command's request id, when it had one.
        request: Option<RequestId>,
        /// What went wrong.
        error: ControlError,
    },
}

impl Event {
    /// Number of event types (see [`Command::VARIANTS`]).
    #[doc(hidden)]
    pub const VARIANTS: usize = 8;

    /// This event's type, as a number below [`Event::VARIANTS`].
    #[doc(hidden)]
    pub fn variant_index(&self) -> usize {
        match self {
            Event::PublishAnswer { .. } => 0,
            Event::SubscribeOffer { .. } => 1,
            Event::Connected { .. } => 2,
            Event::TransportLost { .. } => 3,
            Event::TrackPublished { .. } => 4,
            Event::DominantSpeaker { .. } => 5,
            Event::LayersWanted { .. } => 6,
            Event::Error { .. } => 7,
        }
    }

    /// The participant an event is for (the room's, for a room event).
    pub fn participant(&self) -> ParticipantId {
        match self {
            Event::PublishAnswer { participant, .. }
            | Event::SubscribeOffer { participant, .. }
            | Event::Connected { participant, .. }
            | Event::TransportLost { participant, .. }
            | Event::TrackPublished { participant, .. }
            | Event::DominantSpeaker { participant, .. }
            | Event::LayersWanted { participant, .. }
            | Event::Error { participant, .. } => *participant,
        }
    }
}

/// The wire encoding of commands and events: one JSON object per message,
/// `{"v": VERSION, "type": "<kebab-case variant>", …fields}`. A receiver
/// refuses any other version ([`wire::WireError::Version`]).
pub mod wire {
    use serde::{Deserialize, Serialize};

    use super::{Command, Event};

    /// The control protocol's version. Bump it on any change a peer of the
    /// previous version would misread.
    pub const VERSION: u16 = 1;

    /// Why a message could not be decoded.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum WireError {
        /// Not JSON, or not a message of this protocol.
        #[error("malformed control message: {0}")]
        Malformed(#[from] serde_json::Error),
        /// Another version of the protocol.
        #[error("control protocol version {got}, this side speaks {VERSION}")]
        Version {
            /// The version the message carried.
            got: u16,
        },
    }

    #[derive(Serialize)]
    struct Out<'a, T> {
        v: u16,
        #[serde(flatten)]
        body: &'a T,
    }

    #[derive(Deserialize)]
    struct VersionOnly {
        v: u16,
    }

    #[derive(Deserialize)]
    struct In<T> {
        #[allow(dead_code)]
        v: u16,
        #[serde(flatten)]
        body: T,
    }

    fn encode<T: Serialize>(body: &T) -> String {
        // Serializing these plain enums cannot fail (string keys, no maps
        // with non-string keys); an empty string would be refused by the
        // peer, never misread.
        serde_json::to_string(&Out { v: VERSION, body }).unwrap_or_default()
    }

    fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, WireError> {
        let VersionOnly { v } = serde_json::from_str(text)?;
        if v != VERSION {
            return Err(WireError::Version { got: v });
        }
        let In { body, .. } = serde_json::from_str::<In<T>>(text)?;
        Ok(body)
    }

    /// One command as a JSON text.
    pub fn encode_command(cmd: &Command) -> String {
        encode(cmd)
    }

    /// A command from its JSON text.
    pub fn decode_command(text: &str) -> Result<Command, WireError> {
        decode(text)
    }

    /// One event as a JSON text.
    pub fn encode_event(event: &Event) -> String {
        encode(event)
    }

    /// An event from its JSON text.
    pub fn decode_event(text: &str) -> Result<Event, WireError> {
        decode(text)
    }
}
