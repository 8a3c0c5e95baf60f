//! What a worker holds of one incoming track: its encodings (layers), with
//! their reception statistics and retransmission caches, and its
//! receivers (legs, one type per forwarding policy: [`super::forward`]).

use std::time::{Duration, Instant};

use salon_proto::rtp::{self, RtpHeader};
use salon_proto::vp8::Vp8Descriptor;

use super::forward::{AudioLeg, LegOut, VideoLeg};
use super::ids::{LayerIdx, TransportId};
use super::keyframe::KeyframeRequests;
use super::limits::MemoryBudget;
use super::rate::RateMeter;
use super::rtx_cache::RtxCache;
use super::stats::RecvStats;
use super::{MAX_LAYERS, speaker, vp8};
use crate::control::{MediaKind, ParticipantId};

/// Temporal layers tracked per encoding (VP8 TID 0..=3).
pub const MAX_TIDS: usize = 4;
/// A layer with no packet for this long is not on offer.
const LAYER_IDLE: Duration = Duration::from_millis(1500);

/// One encoding of an incoming track: the only one, or one simulcast
/// layer, identified by its rid.
#[derive(Debug)]
pub struct Layer {
    pub rid: Option<String>,
    pub ssrc: Option<u32>,
    pub stats: RecvStats,
    /// Its retransmission cache (video), created at its first packet if
    /// the worker's memory budget has room: a layer that never sends
    /// costs nothing.
    pub cache: Option<RtxCache>,
    /// Whether the layer gets a cache (video) and has not had one refused.
    cache_wanted: bool,
    /// Packets since its cache was last sized ([`super::nack`]).
    pub packets_since_sizing: u32,
    /// Frame size from the last key frame (video).
    pub size: Option<(u16, u16)>,
    /// Received bitrate (the allocator's price of this layer).
    pub rate: RateMeter,
    /// Audio: what forwarding its media packets costs — their payload and
    /// mediad's own RTP header ([`FORWARDED_HEADER`]); padding and the
    /// publisher's header extensions are never forwarded, so a publisher
    /// cannot inflate it with them (the allocator takes it off every
    /// receiver's video budget).
    pub forwarded: RateMeter,
    /// Received bitrate per temporal layer, when packets carry a TID.
    pub tid_rates: [RateMeter; MAX_TIDS],
    /// Highest TID seen (`None`: no temporal layers signalled).
    pub max_tid: Option<u8>,
    /// Frames started over the last second (one "byte" per frame).
    pub frames: RateMeter,
    /// Whether a key frame of this layer has arrived.
    pub keyframe_seen: bool,
    pub last_packet_at: Option<Instant>,
}

impl Layer {
    /// A layer with nothing received yet.
    pub fn new(kind: MediaKind, rid: Option<String>, ssrc: Option<u32>) -> Self {
        let clock = clock_rate(kind);
        Self {
            rid,
            ssrc,
            stats: RecvStats::new(clock),
            cache: None,
            cache_wanted: kind == MediaKind::Video,
            packets_since_sizing: 0,
            size: None,
            rate: RateMeter::default(),
            forwarded: RateMeter::default(),
            tid_rates: Default::default(),
            max_tid: None,
            frames: RateMeter::default(),
            keyframe_seen: false,
            last_packet_at: None,
        }
    }

    /// What forwarding temporal layers `0..=tid` costs (`None`: the whole
    /// layer, measured without TIDs), bit/s over the last second: the
    /// allocator's price.
    pub fn price_bps(&self, tid: Option<usize>, since: Duration) -> u64 {
        match tid {
            Some(t) => self
                .tid_rates
                .iter()
                .take(t + 1)
                .map(|r| r.bps(since))
                .sum(),
            None => self.rate.bps(since),
        }
    }

    /// The retransmission cache at the layer's first packet, charged to
    /// `memory`. False when the budget had no room (asked once per layer).
    #[cold]
    fn create_cache(&mut self, memory: &MemoryBudget) -> bool {
        self.cache_wanted = false;
        match memory.try_charge(RtxCache::MIN_BYTES) {
            Some(charge) => {
                self.cache = Some(RtxCache::new(charge));
                true
            }
            None => false,
        }
    }

    /// Packets arrived within [`LAYER_IDLE`]: the publisher sends it.
    pub fn is_active(&self, now: Instant) -> bool {
        self.last_packet_at
            .is_some_and(|at| now.saturating_duration_since(at) < LAYER_IDLE)
    }
}

/// What mediad's RTP header costs on a forwarded audio packet: 12 bytes,
/// the one-byte extension header and the transport-wide number (8).
pub const FORWARDED_HEADER: usize = 20;

/// The receivers of a track: one leg type per forwarding policy.
#[derive(Debug)]
pub enum Legs {
    /// Audio: every packet to every receiver (mediasoup's
    /// `SimpleConsumer`).
    Audio(Vec<AudioLeg>),
    /// Video: a layer per receiver, switched at key frames, temporal
    /// layers dropped above the receiver's (`SimulcastConsumer`).
    Video(Vec<VideoLeg>),
}

impl Legs {
    /// No receiver yet, of the policy for `kind`.
    pub fn for_kind(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Audio => Legs::Audio(Vec::new()),
            MediaKind::Video => Legs::Video(Vec::new()),
        }
    }

    /// The video legs (none for audio).
    pub fn video(&self) -> &[VideoLeg] {
        match self {
            Legs::Video(v) => v,
            Legs::Audio(_) => &[],
        }
    }

    /// The video legs (none for audio).
    pub fn video_mut(&mut self) -> &mut [VideoLeg] {
        match self {
            Legs::Video(v) => v,
            Legs::Audio(_) => &mut [],
        }
    }

    /// What every leg sends out, whatever its policy.
    pub fn outs(&self) -> impl Iterator<Item = &LegOut> {
        let (audio, video): (&[AudioLeg], &[VideoLeg]) = match self {
            Legs::Audio(a) => (a, &[]),
            Legs::Video(v) => (&[], v),
        };
        audio
            .iter()
            .map(|l| &l.out)
            .chain(video.iter().map(|l| &l.out))
    }

    /// Drop `receiver`'s leg.
    pub fn remove_receiver(&mut self, receiver: ParticipantId) {
        match self {
            Legs::Audio(a) => a.retain(|l| l.out.receiver != receiver),
            Legs::Video(v) => v.retain(|l| l.out.receiver != receiver),
        }
    }
}

/// One incoming track (an m-line of a publish transport).
#[derive(Debug)]
pub struct InTrack {
    pub publisher: ParticipantId,
    pub transport: TransportId,
    pub kind: MediaKind,
    pub mid: String,
    /// Encodings, lowest quality first (simulcast order of the offer).
    pub layers: Vec<Layer>,
    pub audio_level_id: Option<u8>,
    pub rid_ext_id: Option<u8>,
    pub repaired_rid_ext_id: Option<u8>,
    pub legs: Legs,
    pub enabled: bool,
    /// A screen share (first in layer allocation).
    pub screen: bool,
    /// Speech activity (audio tracks with the audio level extension).
    pub speech: speaker::SpeechActivity,
    /// The encodings last reported wanted and when.
    pub wanted_sent: Option<([bool; MAX_LAYERS], Instant)>,
    /// Key frame requests to the publisher, per layer.
    pub keyframes: KeyframeRequests,
}

/// What one incoming packet is, for the legs that may forward it.
#[derive(Debug, Clone, Copy)]
pub struct PacketView {
    /// Its layer.
    pub layer: LayerIdx,
    /// The start of a key frame (video).
    pub keyframe: bool,
    /// The first packet of a frame (VP8 descriptor).
    pub frame_start: bool,
    /// The VP8 payload descriptor, if it parsed.
    pub desc: Option<Vp8Descriptor>,
    /// Its temporal layer, when signalled.
    pub tid: Option<u8>,
    /// The audio level extension's byte.
    pub level: Option<u8>,
}

/// What a packet's arrival meant for its track.
#[derive(Debug)]
pub enum Ingest {
    /// Forward it.
    Media(PacketView),
    /// Moderation stopped this track.
    Muted,
    /// Padding only: nothing to forward.
    Padding,
    /// No such layer.
    Unknown,
}

impl InTrack {
    /// At a packet of layer `li`: its retransmission cache, if it wants
    /// one and has none yet (its first packet), charged to `memory`. False
    /// when the budget had no room (the layer then goes without; asked
    /// once).
    #[inline]
    pub fn ensure_cache(&mut self, li: LayerIdx, memory: &MemoryBudget) -> bool {
        match self.layers.get_mut(li.index()) {
            Some(layer) if layer.cache_wanted => layer.create_cache(memory),
            _ => true,
        }
    }

    /// Account one decrypted packet of layer `li` (statistics, rates,
    /// retransmission cache, speech) and say what it is.
    #[inline]
    pub fn ingest(
        &mut self,
        li: LayerIdx,
        plain: &[u8],
        hdr: &RtpHeader,
        since_epoch: Duration,
        now: Instant,
    ) -> Ingest {
        let kind = self.kind;
        let Some(layer) = self.layers.get_mut(li.index()) else {
            return Ingest::Unknown;
        };
        layer
            .stats
            .on_packet(hdr.sequence, hdr.timestamp, since_epoch);
        layer.rate.add(plain.len(), since_epoch);
        layer.last_packet_at = Some(now);
        layer.packets_since_sizing = layer.packets_since_sizing.saturating_add(1);
        let desc = if kind == MediaKind::Video {
            Vp8Descriptor::parse(hdr.payload(plain)).ok()
        } else {
            None
        };
        let tid = desc
            .and_then(|d| d.tid)
            .filter(|t| usize::from(*t) < MAX_TIDS);
        if let Some(t) = tid {
            layer.max_tid = Some(layer.max_tid.map_or(t, |m| m.max(t)));
            if let Some(r) = layer.tid_rates.get_mut(usize::from(t)) {
                r.add(plain.len(), since_epoch);
            }
        }
        if let Some(cache) = layer.cache.as_mut() {
            cache.insert(hdr.sequence, plain);
        }
        if !self.enabled {
            return Ingest::Muted;
        }
        let payload = hdr.payload(plain);
        if payload.is_empty() {
            return Ingest::Padding;
        }
        if kind == MediaKind::Audio {
            layer
                .forwarded
                .add(payload.len() + FORWARDED_HEADER, since_epoch);
        }
        let keyframe = kind == MediaKind::Video && vp8::is_keyframe_start(payload);
        let frame_start = desc.is_some_and(|d| d.start_of_partition && d.partition_index == 0);
        if frame_start {
            layer.frames.add(1, since_epoch);
        }
        if keyframe {
            layer.keyframe_seen = true;
            if let Some(size) = vp8::keyframe_size(payload) {
                // A layer's size, for the allocator's tile limits.
                layer.size = Some(size);
            }
        }
        let level = self
            .audio_level_id
            .and_then(|id| rtp::extensions(plain, hdr).find(|(i, _)| *i == id))
            .and_then(|(_, d)| d.first().copied());
        if let Some(l) = level {
            self.speech.on_level(l, now);
        }
        Ingest::Media(PacketView {
            layer: li,
            keyframe,
            frame_start,
            desc,
            tid: desc.and(tid),
            level,
        })
    }

    /// The layer `li`, if the track has it.
    pub fn layer(&self, li: LayerIdx) -> Option<&Layer> {
        self.layers.get(li.index())
    }
}

/// The RTP clock of a kind of media.
pub fn clock_rate(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Audio => 48_000,
        MediaKind::Video => 90_000,
    }
}
