//! The control interface between the signaling gateway and mediad.
//!
//! Commands go in, events come out. Both are plain data (no handles, no
//! callbacks), so the same interface works in-process over channels now and
//! can cross a process boundary later (serialize them).
//!
//! Each participant has two WebRTC transports to mediad, as in LiveKit:
//! - the **publish** transport: the browser offers (sendonly audio/video),
//!   mediad answers (`a=ice-lite`, `a=setup:passive`);
//! - the **subscribe** transport: mediad offers one sendonly m-line per
//!   remote track and the browser answers (it picks `a=setup:active`, so
//!   mediad stays the DTLS server). mediad re-offers when the set of
//!   tracks changes, one offer at a time.

use std::fmt;

/// A room, by name (validated by the gateway: letters, digits, dashes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub String);

/// A participant, by an opaque id the gateway assigns (never a name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

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

/// Which of a participant's two transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Browser → mediad.
    Publish,
    /// mediad → browser.
    Subscribe,
}

/// Kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

/// What the gateway asks of mediad.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// [`Event::PublishAnswer`] or [`Event::Error`].
    PublishOffer {
        /// Who offers.
        participant: ParticipantId,
        /// The offer, as the browser produced it.
        sdp: String,
    },
    /// The browser's answer to the last [`Event::SubscribeOffer`].
    SubscribeAnswer {
        /// Who answers.
        participant: ParticipantId,
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
            | Command::Leave { participant } => *participant,
        }
    }
}

/// What mediad tells the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// mediad's answer to a [`Command::PublishOffer`].
    PublishAnswer {
        /// For whom.
        participant: ParticipantId,
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
    /// A command could not be carried out.
    Error {
        /// For whom.
        participant: ParticipantId,
        /// A short, user-presentable reason (no personal data).
        reason: String,
    },
}
