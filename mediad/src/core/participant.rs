//! What the worker holds of one participant: its room, its two
//! transports, what it publishes, its subscribe negotiation, what
//! moderation allows of its media, and how it wants to receive.

use super::ids::{TrackId, TransportId};
use super::limits::OfferBucket;
use super::negotiation::SubscribeNegotiation;
use crate::alloc::AllocatorState;
use crate::control::{MediaKind, RoomId};

/// One participant of a room on this worker.
#[derive(Debug)]
pub struct Participant {
    pub room: RoomId,
    pub publish: TransportId,
    pub subscribe: TransportId,
    /// Its tracks, in publication order.
    pub published: Vec<TrackId>,
    /// Offer/answer state of its subscribe transport.
    pub sub: SubscribeNegotiation,
    pub forward_audio: bool,
    pub forward_video: bool,
    /// Publisher mids whose forwarding moderation stopped.
    pub blocked_mids: Vec<String>,
    /// The publisher mid carrying a screen share, if any.
    pub screen_mid: Option<String>,
    pub audio_only: bool,
    /// Most video tracks received (last-N).
    pub last_n: Option<u32>,
    /// The operator's cap on received video, bit/s.
    pub cap_bps: Option<u64>,
    /// Committed layers, with hysteresis.
    pub alloc: AllocatorState,
    /// Its publish offers' rate limit.
    pub offers: OfferBucket,
}

impl Participant {
    /// A participant with its transports, publishing nothing yet.
    pub fn new(
        room: RoomId,
        publish: TransportId,
        subscribe: TransportId,
        session_id: u64,
    ) -> Self {
        Self {
            room,
            publish,
            subscribe,
            published: Vec::new(),
            sub: SubscribeNegotiation::new(session_id),
            forward_audio: true,
            forward_video: true,
            blocked_mids: Vec::new(),
            screen_mid: None,
            audio_only: false,
            last_n: None,
            cap_bps: None,
            alloc: AllocatorState::default(),
            offers: OfferBucket::default(),
        }
    }

    /// Whether a published track of this participant may be forwarded.
    pub fn may_forward(&self, kind: MediaKind, mid: &str) -> bool {
        let by_kind = match kind {
            MediaKind::Audio => self.forward_audio,
            MediaKind::Video => self.forward_video,
        };
        by_kind && !self.blocked_mids.iter().any(|m| m == mid)
    }
}
