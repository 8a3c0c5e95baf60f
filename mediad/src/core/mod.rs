//! The sans-IO forwarding core of one mediad worker.
//!
//! A [`Worker`] owns every room pinned to its thread, with their
//! participants, transports and tracks. It is driven by three inputs —
//! [`Worker::handle_command`], [`Worker::handle_datagram`],
//! [`Worker::handle_timeout`] — each taking the current instant from the
//! caller, and produces datagrams (into the caller's [`TxQueue`]), events
//! ([`Worker::poll_event`]) and its next deadline ([`Worker::poll_timeout`]).
//! It never reads the clock, never touches a socket, and its randomness comes
//! from a seed, so tests replay it exactly in virtual time.
//!
//! The media path, per incoming SRTP packet: find the transport by source
//! address (latched by an authenticated STUN request), decrypt in place
//! once, find the track by SSRC, then for every receiver: write the rewritten
//! header (receiver's SSRC, payload type and sequence number) and the
//! payload into a pooled send buffer and encrypt it there. Nothing on that
//! path allocates.

pub mod publish_cc;
pub mod rate;
pub mod rewrite;
pub mod rtx_cache;
pub mod select;
pub mod sent_log;
pub mod speaker;
pub mod stats;
pub mod transport;
pub mod vp8;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dimpl::DtlsCertificate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use salon_io::TxQueue;
use salon_proto::demux::{PacketKind, classify};
use salon_proto::rtcp::{RtcpIter, RtcpPacket};
use salon_proto::rtp::{RtpFields, RtpHeader};
use salon_proto::{rtcp, rtp, stun};

use crate::alloc::{self, AllocatorState, Choice, Priority, VideoCandidate};
use crate::control::{Command, Event, MediaKind, ParticipantId, RoomId, TransportKind};
use crate::metrics::Metrics;
use rewrite::SeqRewriter;
use rtx_cache::RtxCache;
use sent_log::{Sent, SentLog};
use stats::RecvStats;
use transport::{DtlsProgress, RemoteFingerprint, Transport};

/// While a live receiver still waits for a key frame, ask again this often
/// (a request can be lost, or reach a publisher before its encoder runs).
const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// Most encodings per track (simulcast uses three).
const MAX_LAYERS: usize = 8;
/// How often the dominant speaker of each room is reconsidered.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(200);
/// How often receiver reports go to publishers.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How often each receiver's layers are reallocated.
const ALLOC_INTERVAL: Duration = Duration::from_millis(100);
/// A layer with no packet for this long is not on offer.
const LAYER_IDLE: Duration = Duration::from_millis(1500);
/// Shortest interval between two [`Event::LayersWanted`] for one track.
pub const LAYERS_WANTED_INTERVAL: Duration = Duration::from_millis(500);
/// Recent speakers remembered per room (their cameras come next in the
/// allocation order).
const RECENT_SPEAKERS: usize = 8;
/// Temporal layers tracked per encoding (VP8 TID 0..=3).
const MAX_TIDS: usize = 4;
/// How long a probe cluster with no stream to carry it waits to retry.
const PROBE_WAIT: Duration = Duration::from_millis(250);
/// Largest padding in one probe packet (the RTP padding count is a byte).
const PROBE_PADDING: usize = 255;
/// The shortest interval between two key frame requests for one stream.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);
/// Most sequence numbers one NACK to a publisher asks for: a larger jump in
/// its numbering is a restart or a long outage, not loss worth repairing.
const MAX_NACK_GAP: u16 = 16;
/// Payload types and extension ids of the subscribe offer.
const OUT_PT_OPUS: u8 = salon_sdp::OPUS_PT;
const OUT_PT_VP8: u8 = salon_sdp::VP8_PT;
const OUT_PT_VP8_RTX: u8 = salon_sdp::VP8_RTX_PT;
const OUT_EXT_AUDIO_LEVEL: u8 = salon_sdp::EXT_AUDIO_LEVEL;
const OUT_EXT_TRANSPORT_CC: u8 = salon_sdp::EXT_TRANSPORT_CC;

/// What a worker needs to know about its place.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Address announced in candidates.
    pub announce_ip: IpAddr,
    /// This worker's UDP port.
    pub port: u16,
    /// The DTLS certificate (shared by all transports of the process).
    pub cert: DtlsCertificate,
    /// SHA-256 fingerprint of `cert`.
    pub fingerprint: Vec<u8>,
    /// DTLS settings.
    pub dtls: Arc<dimpl::Config>,
    /// Seed of the worker's randomness (ICE credentials, SSRCs).
    pub seed: u64,
}

/// A participant's outgoing m-line on its subscribe transport.
#[derive(Debug, Clone)]
struct OutLine {
    mid: String,
    track: Option<usize>,
    kind: MediaKind,
    ssrc: u32,
    /// SSRC of its RTX stream (video).
    rtx_ssrc: Option<u32>,
    stream_id: String,
    track_id: String,
}

#[derive(Debug)]
struct Participant {
    room: RoomId,
    publish: usize,
    subscribe: usize,
    published: Vec<usize>,
    lines: Vec<OutLine>,
    /// The lines the browser has accepted (prefix length of `lines`).
    answered_lines: usize,
    offered_lines: usize,
    negotiating: bool,
    dirty: bool,
    session_id: u64,
    version: u64,
    forward_audio: bool,
    forward_video: bool,
    /// Publisher mids whose forwarding moderation stopped.
    blocked_mids: Vec<String>,
    /// The publisher mid carrying a screen share, if any.
    screen_mid: Option<String>,
    audio_only: bool,
    /// Most video tracks received (last-N).
    last_n: Option<u32>,
    /// The operator's cap on received video, bit/s.
    cap_bps: Option<u64>,
    /// Committed layers, with hysteresis.
    alloc: AllocatorState,
}

impl Participant {
    /// Whether a published track of this participant may be forwarded.
    fn may_forward(&self, kind: MediaKind, mid: &str) -> bool {
        let by_kind = match kind {
            MediaKind::Audio => self.forward_audio,
            MediaKind::Video => self.forward_video,
        };
        by_kind && !self.blocked_mids.iter().any(|m| m == mid)
    }
}

/// One receiver of a track.
#[derive(Debug)]
struct Leg {
    receiver: ParticipantId,
    transport: usize,
    ssrc: u32,
    pt: u8,
    seq: SeqRewriter,
    live: bool,
    /// The layer being forwarded; `None` until a key frame of `target`.
    current: Option<usize>,
    /// The layer this receiver should get (see [`select`]).
    target: usize,
    /// Largest height the receiver's tile shows.
    max_height: Option<u16>,
    /// Nothing is sent (audio-only receiver).
    paused: bool,
    /// The allocator gives this receiver nothing of this track (outside
    /// last-N, or no budget for even the lowest layer).
    alloc_paused: bool,
    /// Added to the publisher's timestamps, so a layer switch keeps the
    /// receiver's clock continuous.
    ts_offset: u32,
    /// VP8 picture id and TL0PICIDX continuity across switches.
    vp8: vp8::Vp8Map,
    /// Highest temporal layer (VP8 TID) the allocator gives this receiver.
    target_tid: u8,
    /// Highest TID being forwarded: lowered at any frame start, raised at a
    /// layer sync frame (or a key frame).
    current_tid: u8,
    last_ts_out: Option<u32>,
    last_sent_at: Option<Instant>,
    /// What each recent output sequence number was (video legs), so NACKs
    /// stay answerable across switches, skipped packets and probes.
    sent: Option<SentLog>,
    /// RTX stream (RFC 4588) for retransmissions and probe padding, once
    /// the receiver's answer accepted it: (SSRC, next sequence number).
    rtx: Option<(u32, u16)>,
    packets: u32,
    octets: u32,
}

/// One encoding of an incoming track: the only one, or one simulcast
/// layer, identified by its rid.
#[derive(Debug)]
struct Layer {
    rid: Option<String>,
    ssrc: Option<u32>,
    stats: RecvStats,
    cache: Option<RtxCache>,
    /// Frame size from the last key frame (video).
    size: Option<(u16, u16)>,
    last_keyframe_request: Option<Instant>,
    keyframe_pending: bool,
    /// Received bitrate (the allocator's price of this layer).
    rate: rate::RateMeter,
    /// Received bitrate per temporal layer, when packets carry a TID.
    tid_rates: [rate::RateMeter; MAX_TIDS],
    /// Highest TID seen (`None`: no temporal layers signalled).
    max_tid: Option<u8>,
    /// Frames started over the last second (one "byte" per frame).
    frames: rate::RateMeter,
    /// Whether a key frame of this layer has arrived.
    keyframe_seen: bool,
    last_packet_at: Option<Instant>,
}

/// One incoming track (an m-line of a publish transport).
#[derive(Debug)]
struct InTrack {
    publisher: ParticipantId,
    transport: usize,
    kind: MediaKind,
    mid: String,
    /// Encodings, lowest quality first (simulcast order of the offer).
    layers: Vec<Layer>,
    audio_level_id: Option<u8>,
    rid_ext_id: Option<u8>,
    repaired_rid_ext_id: Option<u8>,
    legs: Vec<Leg>,
    enabled: bool,
    /// A screen share (first in layer allocation).
    screen: bool,
    /// Speech activity (audio tracks with the audio level extension).
    speech: speaker::SpeechActivity,
    /// The encodings last reported wanted ([`Event::LayersWanted`]) and when.
    wanted_sent: Option<([bool; MAX_LAYERS], Instant)>,
}

/// Where an SSRC on a transport leads.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// A publisher's media stream: track and layer.
    Track(usize, usize),
    /// A publisher's retransmission stream (RFC 4588): track and layer.
    Rtx(usize, usize),
    /// A stream mediad sends to this subscriber.
    Out(usize),
}

/// The forwarding core of one worker. See the module documentation.
pub struct Worker {
    cfg: WorkerConfig,
    rng: StdRng,
    epoch: Instant,
    transports: Vec<Option<Transport>>,
    routes: Vec<Vec<(u32, Route)>>,
    free_transports: Vec<usize>,
    by_ufrag: HashMap<String, usize>,
    by_addr: HashMap<SocketAddr, usize>,
    participants: BTreeMap<ParticipantId, Participant>,
    rooms: BTreeMap<RoomId, Vec<ParticipantId>>,
    tracks: Vec<Option<InTrack>>,
    free_tracks: Vec<usize>,
    events: VecDeque<Event>,
    metrics: Arc<Metrics>,
    scratch: Box<[u8; 2048]>,
    next_report: Instant,
    speakers: BTreeMap<RoomId, speaker::DominantSpeaker<ParticipantId>>,
    next_speaker_check: Instant,
    /// Reused for each transport-wide feedback (grows once).
    twcc_results: Vec<crate::bwe::PacketResult>,
    next_alloc: Instant,
    /// Per room, the latest dominant speakers, most recent first.
    recent: BTreeMap<RoomId, Vec<ParticipantId>>,
    /// Reused by each allocation round.
    alloc_scratch: AllocScratch,
}

/// One incoming layer as the allocator sees it ([`Worker::layer_states`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerState {
    /// Its rid (simulcast), if any.
    pub rid: Option<String>,
    /// Received bitrate over the last second.
    pub bitrate_bps: u64,
    /// Frames started over the last second.
    pub fps: u64,
    /// Frame size from its last key frame.
    pub size: Option<(u16, u16)>,
    /// Whether a key frame arrived.
    pub keyframe_seen: bool,
    /// Temporal layers signalled (1 without TIDs).
    pub temporal_layers: u8,
    /// Packets arrived in the last 1.5 s (the publisher sends it).
    pub active: bool,
}

/// Buffers of an allocation round, kept between rounds.
#[derive(Debug, Default)]
struct AllocScratch {
    layers: Vec<alloc::Layer>,
    /// Per candidate: track, priority, its range in `layers`.
    videos: Vec<(usize, Priority, std::ops::Range<usize>)>,
    order: Vec<usize>,
    in_last_n: Vec<bool>,
    decisions: Vec<(usize, Choice)>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("port", &self.cfg.port)
            .field("participants", &self.participants.len())
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

impl Worker {
    /// A worker with no rooms.
    pub fn new(cfg: WorkerConfig, metrics: Arc<Metrics>, now: Instant) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            rng,
            epoch: now,
            transports: Vec::new(),
            routes: Vec::new(),
            free_transports: Vec::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            participants: BTreeMap::new(),
            rooms: BTreeMap::new(),
            tracks: Vec::new(),
            free_tracks: Vec::new(),
            events: VecDeque::new(),
            metrics,
            scratch: Box::new([0u8; 2048]),
            next_report: now + REPORT_INTERVAL,
            speakers: BTreeMap::new(),
            next_speaker_check: now + SPEAKER_INTERVAL,
            twcc_results: Vec::with_capacity(1024),
            next_alloc: now + ALLOC_INTERVAL,
            recent: BTreeMap::new(),
            alloc_scratch: AllocScratch::default(),
        }
    }

    /// This worker's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The next event for the gateway.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Number of participants on this worker.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// The next instant [`Worker::handle_timeout`] must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next = self
            .next_report
            .min(self.next_speaker_check)
            .min(self.next_alloc);
        for t in self.transports.iter().flatten() {
            if let Some(d) = t.poll_timeout() {
                next = next.min(d);
            }
            if let Some(d) = t.probe.as_ref().map(|p| p.next_at) {
                next = next.min(d);
            }
            if let Some(d) = t.twcc_rx.as_ref().and_then(|r| r.poll_timeout()) {
                next = next.min(d);
            }
            if let Some(d) = t.bwe.as_ref().and_then(|b| {
                use crate::bwe::BandwidthEstimator as _;
                b.poll_timeout()
            }) {
                next = next.min(d);
            }
        }
        for tr in self.tracks.iter().flatten() {
            if let Some(li) = tr.waiting_layer()
                && let Some(last) = tr.layers.get(li).and_then(|l| l.last_keyframe_request)
            {
                next = next.min(last + KEYFRAME_RETRY);
            }
            for l in tr.layers.iter().filter(|l| l.keyframe_pending) {
                next = next.min(match l.last_keyframe_request {
                    Some(last) => last + KEYFRAME_REQUEST_INTERVAL,
                    None => self.epoch,
                });
            }
        }
        Some(next)
    }

    // ----------------------------------------------------------------- control

    /// Carry out one command from the gateway.
    pub fn handle_command(&mut self, cmd: Command, now: Instant, tx: &mut TxQueue) {
        match cmd {
            Command::Join { room, participant } => self.join(room, participant, now),
            Command::PublishOffer { participant, sdp } => {
                self.publish_offer(participant, &sdp, now)
            }
            Command::SubscribeAnswer { participant, sdp } => {
                self.subscribe_answer(participant, &sdp, now, tx)
            }
            Command::SetForwarding {
                participant,
                kind,
                enabled,
            } => self.set_forwarding(participant, kind, enabled, now, tx),
            Command::SetTrackForwarding {
                participant,
                mid,
                enabled,
            } => self.set_track_forwarding(participant, &mid, enabled, now, tx),
            Command::SetScreenShare { participant, mid } => self.set_screen_share(participant, mid),
            Command::SetReceiveConstraints {
                participant,
                publisher,
                mid,
                max_height,
            } => self.set_receive_constraints(participant, publisher, &mid, max_height, now, tx),
            Command::SetAudioOnly {
                participant,
                enabled,
            } => self.set_audio_only(participant, enabled, now, tx),
            Command::SetLastN {
                participant,
                last_n,
            } => match self.participants.get_mut(&participant) {
                Some(p) => {
                    p.last_n = last_n;
                    self.allocate(now);
                }
                None => self.error(participant, "not joined"),
            },
            Command::SetBitrateCap { participant, bps } => {
                match self.participants.get_mut(&participant) {
                    Some(p) => {
                        p.cap_bps = bps;
                        self.allocate(now);
                    }
                    None => self.error(participant, "not joined"),
                }
            }
            Command::Leave { participant } => self.leave(participant),
        }
    }

    fn error(&mut self, participant: ParticipantId, reason: &str) {
        self.events.push_back(Event::Error {
            participant,
            reason: reason.to_owned(),
        });
    }

    fn random_string(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| char::from(ALPHABET[self.rng.random_range(0..ALPHABET.len())]))
            .collect()
    }

    fn new_transport(
        &mut self,
        participant: ParticipantId,
        kind: TransportKind,
        now: Instant,
    ) -> usize {
        let ufrag = loop {
            let u = self.random_string(8);
            if !self.by_ufrag.contains_key(&u) {
                break u;
            }
        };
        let pwd = self.random_string(24);
        let rtcp_ssrc = self.rng.random::<u32>() | 1;
        let t = Transport::new(
            participant,
            kind,
            transport::IceCredentials {
                ufrag: ufrag.clone(),
                pwd,
            },
            rtcp_ssrc,
            self.cfg.dtls.clone(),
            self.cfg.cert.clone(),
            now,
        );
        let idx = match self.free_transports.pop() {
            Some(i) => {
                self.transports[i] = Some(t);
                self.routes[i].clear();
                i
            }
            None => {
                self.transports.push(Some(t));
                self.routes.push(Vec::new());
                self.transports.len() - 1
            }
        };
        self.by_ufrag.insert(ufrag, idx);
        idx
    }

    fn remove_transport(&mut self, idx: usize) {
        if let Some(t) = self.transports.get_mut(idx).and_then(Option::take) {
            self.by_ufrag.remove(&t.local_ufrag);
            if let Some(a) = t.addr
                && self.by_addr.get(&a) == Some(&idx)
            {
                self.by_addr.remove(&a);
            }
            if let Some(r) = self.routes.get_mut(idx) {
                r.clear();
            }
            self.free_transports.push(idx);
        }
    }

    fn local_transport(
        &self,
        idx: usize,
        version: u64,
        session_id: u64,
    ) -> Option<salon_sdp::LocalTransport> {
        let t = self.transports.get(idx)?.as_ref()?;
        Some(salon_sdp::LocalTransport {
            ice_ufrag: t.local_ufrag.clone(),
            ice_pwd: salon_sdp::IcePwd::new(t.local_pwd.clone()),
            fingerprint: salon_sdp::Fingerprint {
                algorithm: "sha-256".to_owned(),
                bytes: self.cfg.fingerprint.clone(),
            },
            candidate_ip: self.cfg.announce_ip,
            candidate_port: self.cfg.port,
            session_id,
            session_version: version,
        })
    }

    fn join(&mut self, room: RoomId, pid: ParticipantId, now: Instant) {
        if self.participants.contains_key(&pid) {
            self.error(pid, "already joined");
            return;
        }
        let publish = self.new_transport(pid, TransportKind::Publish, now);
        let subscribe = self.new_transport(pid, TransportKind::Subscribe, now);
        let session_id = self.rng.random::<u64>() >> 2;
        let mut p = Participant {
            room: room.clone(),
            publish,
            subscribe,
            published: Vec::new(),
            lines: Vec::new(),
            answered_lines: 0,
            offered_lines: 0,
            negotiating: false,
            dirty: false,
            session_id,
            version: 1,
            forward_audio: true,
            forward_video: true,
            blocked_mids: Vec::new(),
            screen_mid: None,
            audio_only: false,
            last_n: None,
            cap_bps: None,
            alloc: AllocatorState::default(),
        };
        // Everything already published in the room.
        let members = self.rooms.entry(room).or_default();
        let mut existing = Vec::new();
        for other in members.iter() {
            if let Some(o) = self.participants.get(other) {
                existing.extend(o.published.iter().copied());
            }
        }
        members.push(pid);
        for track in existing {
            self.add_line(&mut p, pid, track);
        }
        self.participants.insert(pid, p);
        self.maybe_offer(pid);
    }

    /// Give participant `p` (id `pid`) an m-line for `track` and a leg on it.
    fn add_line(&mut self, p: &mut Participant, pid: ParticipantId, track_idx: usize) {
        let Some(track) = self.tracks.get_mut(track_idx).and_then(Option::as_mut) else {
            return;
        };
        // A random SSRC no line of this receiver uses (nor `also`).
        let mut fresh = |also: u32| loop {
            let s = self.rng.random::<u32>();
            if s != 0 && s != also && !p.lines.iter().any(|l| l.ssrc == s || l.rtx_ssrc == Some(s))
            {
                break s;
            }
        };
        let ssrc = fresh(0);
        let rtx_ssrc = (track.kind == MediaKind::Video).then(|| fresh(ssrc));
        let mid = p.lines.len().to_string();
        let pt = match track.kind {
            MediaKind::Audio => OUT_PT_OPUS,
            MediaKind::Video => OUT_PT_VP8,
        };
        p.lines.push(OutLine {
            mid,
            track: Some(track_idx),
            kind: track.kind,
            ssrc,
            rtx_ssrc,
            stream_id: track.publisher.0.to_string(),
            track_id: format!("{}-{}", track.publisher.0, track.mid),
        });
        let first_seq = self.rng.random::<u16>() & 0x7fff;
        track.legs.push(Leg {
            receiver: pid,
            transport: p.subscribe,
            ssrc,
            pt,
            seq: SeqRewriter::new(first_seq),
            live: false,
            current: None,
            target: select::initial_layer(track.layers.len()),
            max_height: None,
            paused: p.audio_only && track.kind == MediaKind::Video,
            alloc_paused: false,
            ts_offset: 0,
            vp8: vp8::Vp8Map::default(),
            target_tid: u8::MAX,
            current_tid: u8::MAX,
            last_ts_out: None,
            last_sent_at: None,
            sent: (track.kind == MediaKind::Video).then(SentLog::new),
            rtx: None,
            packets: 0,
            octets: 0,
        });
        if let Some(r) = self.routes.get_mut(p.subscribe) {
            r.push((ssrc, Route::Out(track_idx)));
        }
    }

    fn maybe_offer(&mut self, pid: ParticipantId) {
        let Some(p) = self.participants.get_mut(&pid) else {
            return;
        };
        if p.negotiating {
            p.dirty = true;
            return;
        }
        if p.lines.is_empty() || (p.offered_lines == p.lines.len() && !p.dirty) {
            return;
        }
        p.dirty = false;
        p.negotiating = true;
        p.version += 1;
        p.offered_lines = p.lines.len();
        let (sub, version, session_id) = (p.subscribe, p.version, p.session_id);
        let tracks: Vec<salon_sdp::OutTrack> = p
            .lines
            .iter()
            .map(|l| salon_sdp::OutTrack {
                mid: l.mid.clone(),
                kind: match l.kind {
                    MediaKind::Audio => salon_sdp::MediaKind::Audio,
                    MediaKind::Video => salon_sdp::MediaKind::Video,
                },
                ssrc: l.ssrc,
                rtx_ssrc: l.rtx_ssrc,
                cname: format!("salon-{}", l.stream_id),
                stream_id: l.stream_id.clone(),
                track_id: l.track_id.clone(),
                pt: match l.kind {
                    MediaKind::Audio => OUT_PT_OPUS,
                    MediaKind::Video => OUT_PT_VP8,
                },
                rtx_pt: l.rtx_ssrc.map(|_| OUT_PT_VP8_RTX),
                active: l.track.is_some(),
            })
            .collect();
        let Some(local) = self.local_transport(sub, version, session_id) else {
            return;
        };
        let sdp = match salon_sdp::offer_subscribe(&tracks, &local) {
            Ok(sdp) => sdp,
            Err(e) => {
                tracing::error!(error = %e, "cannot write a subscribe offer");
                return;
            }
        };
        self.events.push_back(Event::SubscribeOffer {
            participant: pid,
            sdp,
        });
    }

    fn publish_offer(&mut self, pid: ParticipantId, sdp: &str, now: Instant) {
        let Some(p) = self.participants.get(&pid) else {
            self.error(pid, "not joined");
            return;
        };
        let (publish, session_id, room) = (p.publish, p.session_id, p.room.clone());
        let offer = match salon_sdp::parse(sdp) {
            Ok(o) => o,
            Err(e) => {
                self.error(pid, &format!("invalid offer: {e}"));
                return;
            }
        };
        let Some(local) = self.local_transport(publish, 1, session_id) else {
            return;
        };
        let answer = match salon_sdp::answer_publish(&offer, &local) {
            Ok(a) => a,
            Err(e) => {
                self.error(pid, &format!("offer not acceptable: {e}"));
                return;
            }
        };
        if let Some(t) = self.transports.get_mut(publish).and_then(Option::as_mut) {
            if t.remote_ufrag.is_some()
                && t.remote_ufrag.as_deref() != Some(offer.ice_ufrag.as_str())
            {
                self.error(pid, "ICE restart is not supported");
                return;
            }
            let _ = t.set_remote(
                offer.ice_ufrag.clone(),
                RemoteFingerprint {
                    algorithm: offer.fingerprint.algorithm.to_ascii_lowercase(),
                    bytes: offer.fingerprint.bytes.clone(),
                },
            );
        }
        // Tracks whose m-line the browser stopped or rejected go away.
        let stale: Vec<usize> = self
            .participants
            .get(&pid)
            .map(|p| {
                p.published
                    .iter()
                    .copied()
                    .filter(|&ti| {
                        self.tracks
                            .get(ti)
                            .and_then(Option::as_ref)
                            .is_some_and(|t| {
                                !answer
                                    .accepted
                                    .iter()
                                    .any(|m| m.receiving && m.mid == t.mid)
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        for ti in stale {
            self.remove_track(ti);
        }
        let mut new_tracks = Vec::new();
        for m in answer.accepted.iter().filter(|m| m.receiving) {
            let kind = match m.kind {
                salon_sdp::MediaKind::Audio => MediaKind::Audio,
                salon_sdp::MediaKind::Video => MediaKind::Video,
            };
            let known = self.participants.get(&pid).is_some_and(|p| {
                p.published.iter().any(|&i| {
                    self.tracks
                        .get(i)
                        .and_then(Option::as_ref)
                        .is_some_and(|t| t.mid == m.mid)
                })
            });
            if known {
                continue;
            }
            // Without simulcast the SDP lists the SSRC (and its RTX in an FID
            // group); with simulcast the SSRCs are learnt from the rid
            // header extension.
            let ssrc = if m.rids.is_empty() {
                m.ssrcs.first().copied()
            } else {
                None
            };
            let rtx_ssrc = ssrc.and_then(|primary| {
                m.ssrc_groups
                    .iter()
                    .find(|g| g.semantics == "FID" && g.ssrcs.first() == Some(&primary))
                    .and_then(|g| g.ssrcs.get(1).copied())
            });
            let clock = if kind == MediaKind::Audio {
                48_000
            } else {
                90_000
            };
            let layer = |rid: Option<String>, ssrc: Option<u32>| Layer {
                rid,
                ssrc,
                stats: RecvStats::new(clock),
                cache: (kind == MediaKind::Video).then(RtxCache::new),
                size: None,
                last_keyframe_request: None,
                keyframe_pending: false,
                rate: rate::RateMeter::default(),
                tid_rates: Default::default(),
                max_tid: None,
                frames: rate::RateMeter::default(),
                keyframe_seen: false,
                last_packet_at: None,
            };
            let layers = if m.rids.is_empty() {
                vec![layer(None, ssrc)]
            } else {
                m.rids
                    .iter()
                    .take(MAX_LAYERS)
                    .map(|r| layer(Some(r.clone()), None))
                    .collect()
            };
            let track = InTrack {
                publisher: pid,
                transport: publish,
                kind,
                mid: m.mid.clone(),
                layers,
                audio_level_id: m.extmap.audio_level,
                rid_ext_id: m.extmap.rtp_stream_id,
                repaired_rid_ext_id: m.extmap.repaired_rtp_stream_id,
                legs: Vec::new(),
                enabled: self
                    .participants
                    .get(&pid)
                    .is_none_or(|p| p.may_forward(kind, &m.mid)),
                screen: self
                    .participants
                    .get(&pid)
                    .is_some_and(|p| p.screen_mid.as_deref() == Some(m.mid.as_str())),
                speech: speaker::SpeechActivity::default(),
                wanted_sent: None,
            };
            let idx = match self.free_tracks.pop() {
                Some(i) => {
                    self.tracks[i] = Some(track);
                    i
                }
                None => {
                    self.tracks.push(Some(track));
                    self.tracks.len() - 1
                }
            };
            if let Some(r) = self.routes.get_mut(publish) {
                if let Some(s) = ssrc {
                    r.push((s, Route::Track(idx, 0)));
                }
                if let Some(s) = rtx_ssrc {
                    r.push((s, Route::Rtx(idx, 0)));
                }
            }
            new_tracks.push((idx, kind, m.extmap.mid));
        }
        // One transport-wide sequence space per transport (BUNDLE): the id
        // from whichever m-line negotiated it.
        let twcc_id = answer.accepted.iter().find_map(|m| m.extmap.transport_cc);
        if let Some(t) = self.transports.get_mut(publish).and_then(Option::as_mut) {
            t.twcc_ext_id = twcc_id;
        }
        if let Some(p) = self.participants.get_mut(&pid) {
            p.published.extend(new_tracks.iter().map(|t| t.0));
            if let Some(t) = self.transports.get_mut(publish).and_then(Option::as_mut)
                && let Some((_, _, Some(mid_id))) = new_tracks.first()
            {
                t.mid_ext_id = Some(*mid_id);
            }
        }
        self.events.push_back(Event::PublishAnswer {
            participant: pid,
            sdp: answer.sdp,
        });
        for (_, kind, _) in &new_tracks {
            self.events.push_back(Event::TrackPublished {
                participant: pid,
                kind: *kind,
            });
        }
        // Offer the new tracks to everyone else in the room.
        let members: Vec<ParticipantId> = self.rooms.get(&room).cloned().unwrap_or_default();
        for other in members.into_iter().filter(|o| *o != pid) {
            if let Some(mut op) = self.participants.remove(&other) {
                for (idx, _, _) in &new_tracks {
                    self.add_line(&mut op, other, *idx);
                }
                self.participants.insert(other, op);
                self.maybe_offer(other);
            }
        }
        let _ = now;
    }

    fn subscribe_answer(&mut self, pid: ParticipantId, sdp: &str, now: Instant, tx: &mut TxQueue) {
        let Some(p) = self.participants.get(&pid) else {
            self.error(pid, "not joined");
            return;
        };
        if !p.negotiating {
            self.error(pid, "no subscribe offer is pending");
            return;
        }
        let answer = match salon_sdp::parse(sdp) {
            Ok(a) => a,
            Err(e) => {
                self.error(pid, &format!("invalid answer: {e}"));
                return;
            }
        };
        if answer.media.len() != p.offered_lines
            || answer
                .media
                .iter()
                .zip(p.lines.iter())
                .any(|(m, l)| m.mid != l.mid)
        {
            self.error(pid, "answer does not match the offer");
            return;
        }
        let sub = p.subscribe;
        let offered = p.offered_lines;
        let mut progress = DtlsProgress::None;
        if let Some(t) = self.transports.get_mut(sub).and_then(Option::as_mut) {
            progress = t.set_remote(
                answer.ice_ufrag.clone(),
                RemoteFingerprint {
                    algorithm: answer.fingerprint.algorithm.to_ascii_lowercase(),
                    bytes: answer.fingerprint.bytes.clone(),
                },
            );
        }
        let mut tracks_to_refresh = Vec::new();
        if let Some(p) = self.participants.get_mut(&pid) {
            p.negotiating = false;
            p.answered_lines = offered;
            for (l, m) in p.lines.iter().zip(&answer.media).take(offered) {
                if let Some(ti) = l.track {
                    // RTX only if the answer kept its payload type.
                    let rtx = l.rtx_ssrc.filter(|_| {
                        m.codec_by_pt(OUT_PT_VP8)
                            .is_some_and(|c| c.rtx_pt == Some(OUT_PT_VP8_RTX))
                    });
                    tracks_to_refresh.push((ti, rtx));
                }
            }
        }
        for (ti, rtx) in tracks_to_refresh {
            if let Some(track) = self.tracks.get_mut(ti).and_then(Option::as_mut) {
                for leg in track.legs.iter_mut().filter(|l| l.receiver == pid) {
                    leg.live = true;
                    match (rtx, leg.rtx) {
                        (Some(ssrc), Some((on, _))) if ssrc == on => {}
                        (Some(ssrc), _) => {
                            leg.rtx = Some((ssrc, self.rng.random::<u16>() & 0x7fff))
                        }
                        (None, _) => leg.rtx = None,
                    }
                }
            }
        }
        self.after_progress(sub, progress, now, tx);
        // Newly answered legs on an already connected transport need a key frame.
        if progress == DtlsProgress::None
            && self
                .transports
                .get(sub)
                .and_then(Option::as_ref)
                .is_some_and(Transport::is_connected)
        {
            self.request_keyframes_for(pid, now, tx);
        }
        self.maybe_offer(pid);
    }

    fn set_forwarding(
        &mut self,
        pid: ParticipantId,
        kind: MediaKind,
        enabled: bool,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, "not joined");
            return;
        };
        match kind {
            MediaKind::Audio => p.forward_audio = enabled,
            MediaKind::Video => p.forward_video = enabled,
        }
        self.apply_forwarding(pid, now, tx);
    }

    fn set_track_forwarding(
        &mut self,
        pid: ParticipantId,
        mid: &str,
        enabled: bool,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, "not joined");
            return;
        };
        p.blocked_mids.retain(|m| m != mid);
        if !enabled {
            p.blocked_mids.push(mid.to_owned());
        }
        self.apply_forwarding(pid, now, tx);
    }

    fn set_screen_share(&mut self, pid: ParticipantId, mid: Option<String>) {
        let Some(p) = self.participants.get_mut(&pid) else {
            self.error(pid, "not joined");
            return;
        };
        p.screen_mid = mid;
        let published = p.published.clone();
        let screen_mid = p.screen_mid.clone();
        for ti in published {
            if let Some(t) = self.tracks.get_mut(ti).and_then(Option::as_mut) {
                t.screen = screen_mid.as_deref() == Some(t.mid.as_str());
            }
        }
    }

    /// Brings each published track's forwarding in line with the
    /// participant's moderation state: a track turned off stops at once, a
    /// video track turned back on resumes at its next key frame.
    fn apply_forwarding(&mut self, pid: ParticipantId, now: Instant, tx: &mut TxQueue) {
        let Some(p) = self.participants.get(&pid) else {
            return;
        };
        let published = p.published.clone();
        for ti in published {
            let mut resume_video = false;
            let Some(p) = self.participants.get(&pid) else {
                return;
            };
            if let Some(t) = self.tracks.get_mut(ti).and_then(Option::as_mut) {
                let enabled = p.may_forward(t.kind, &t.mid);
                if t.enabled == enabled {
                    continue;
                }
                t.enabled = enabled;
                for leg in &mut t.legs {
                    leg.seq.pause();
                    if t.kind == MediaKind::Video {
                        leg.current = None;
                    }
                }
                resume_video = enabled && t.kind == MediaKind::Video;
            }
            if resume_video {
                self.request_wanted_keyframes(ti, now, tx);
            }
        }
    }

    fn set_receive_constraints(
        &mut self,
        receiver: ParticipantId,
        publisher: ParticipantId,
        mid: &str,
        max_height: Option<u16>,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let track = self.participants.get(&publisher).and_then(|p| {
            p.published.iter().copied().find(|&ti| {
                self.tracks
                    .get(ti)
                    .and_then(Option::as_ref)
                    .is_some_and(|t| t.mid == mid && t.kind == MediaKind::Video)
            })
        });
        let Some(ti) = track else {
            self.error(receiver, "no such video track");
            return;
        };
        let Some(t) = self.tracks.get_mut(ti).and_then(Option::as_mut) else {
            return;
        };
        let Some(leg) = t.legs.iter_mut().find(|l| l.receiver == receiver) else {
            self.error(receiver, "no such video track");
            return;
        };
        leg.max_height = max_height;
        self.allocate(now);
        self.request_wanted_keyframes(ti, now, tx);
    }

    fn set_audio_only(
        &mut self,
        receiver: ParticipantId,
        enabled: bool,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(p) = self.participants.get_mut(&receiver) else {
            self.error(receiver, "not joined");
            return;
        };
        if p.audio_only == enabled {
            return;
        }
        p.audio_only = enabled;
        let mut resumed = Vec::new();
        for (ti, t) in self.tracks.iter_mut().enumerate() {
            let Some(t) = t.as_mut().filter(|t| t.kind == MediaKind::Video) else {
                continue;
            };
            for leg in t.legs.iter_mut().filter(|l| l.receiver == receiver) {
                leg.paused = enabled;
                if !enabled {
                    // Resume at a key frame, numbering after the last packet sent.
                    leg.current = None;
                    leg.seq.pause();
                    resumed.push(ti);
                }
            }
        }
        for ti in resumed {
            self.request_wanted_keyframes(ti, now, tx);
        }
    }

    /// Stop forwarding track `ti`: its receivers' m-lines become inactive
    /// (they are re-offered), and its SSRCs leave the routes and the SRTP
    /// contexts.
    fn remove_track(&mut self, ti: usize) {
        let Some(track) = self.tracks.get_mut(ti).and_then(Option::take) else {
            return;
        };
        if let Some(r) = self.routes.get_mut(track.transport) {
            r.retain(
                |(_, route)| !matches!(route, Route::Track(t, _) | Route::Rtx(t, _) if *t == ti),
            );
        }
        if let Some(ctx) = self
            .transports
            .get_mut(track.transport)
            .and_then(Option::as_mut)
            .and_then(|t| t.srtp_in.as_mut())
        {
            for ssrc in track.layers.iter().filter_map(|l| l.ssrc) {
                ctx.remove_ssrc(ssrc);
            }
        }
        for leg in &track.legs {
            if let Some(r) = self.routes.get_mut(leg.transport) {
                r.retain(|(s, _)| *s != leg.ssrc);
            }
            if let Some(ctx) = self
                .transports
                .get_mut(leg.transport)
                .and_then(Option::as_mut)
                .and_then(|t| t.srtp_out.as_mut())
            {
                ctx.remove_ssrc(leg.ssrc);
                if let Some((rtx, _)) = leg.rtx {
                    ctx.remove_ssrc(rtx);
                }
            }
            if let Some(rp) = self.participants.get_mut(&leg.receiver) {
                for l in rp.lines.iter_mut().filter(|l| l.track == Some(ti)) {
                    l.track = None;
                }
                rp.dirty = true;
            }
        }
        if let Some(p) = self.participants.get_mut(&track.publisher) {
            p.published.retain(|&x| x != ti);
        }
        self.free_tracks.push(ti);
    }

    fn leave(&mut self, pid: ParticipantId) {
        let Some(p) = self.participants.remove(&pid) else {
            return;
        };
        // Its tracks disappear from everyone's subscriptions.
        for &ti in &p.published {
            self.remove_track(ti);
        }
        // It stops receiving.
        for track in self.tracks.iter_mut().flatten() {
            track.legs.retain(|l| l.receiver != pid);
        }
        self.remove_transport(p.publish);
        self.remove_transport(p.subscribe);
        let mut members = Vec::new();
        if let Some(m) = self.rooms.get_mut(&p.room) {
            m.retain(|x| *x != pid);
            members = m.clone();
            if m.is_empty() {
                self.rooms.remove(&p.room);
                self.speakers.remove(&p.room);
            }
        }
        if let Some(d) = self.speakers.get_mut(&p.room) {
            d.remove(pid);
        }
        for other in members {
            self.maybe_offer(other);
        }
    }

    // ------------------------------------------------------------------ network

    /// Handle one datagram from `src`. `data` is rewritten in place.
    pub fn handle_datagram(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        now: Instant,
        tx: &mut TxQueue,
    ) {
        self.metrics.rx_datagrams.inc();
        match classify(data) {
            PacketKind::Stun => self.handle_stun(src, data, now, tx),
            PacketKind::Dtls => {
                self.metrics.rx_dtls.inc();
                let Some(&idx) = self.by_addr.get(&src) else {
                    self.metrics.drop_unlatched.inc();
                    return;
                };
                let progress = match self.transports.get_mut(idx).and_then(Option::as_mut) {
                    Some(t) => t.handle_dtls(data, now, &mut self.scratch[..], tx, &self.metrics),
                    None => return,
                };
                self.after_progress(idx, progress, now, tx);
            }
            PacketKind::Rtp => self.handle_srtp(src, data, now, tx),
            PacketKind::Rtcp => self.handle_srtcp(src, data, now, tx),
            _ => self.metrics.drop_unknown_kind.inc(),
        }
    }

    fn handle_stun(&mut self, src: SocketAddr, data: &[u8], now: Instant, tx: &mut TxQueue) {
        self.metrics.rx_stun.inc();
        let msg = match stun::StunMessage::parse(data) {
            Ok(m) => m,
            Err(_) => {
                self.metrics.drop_stun_malformed.inc();
                return;
            }
        };
        if !msg.is_binding_request() {
            self.metrics.drop_stun_malformed.inc();
            return;
        }
        let Some(username) = msg.username() else {
            self.metrics.drop_stun_auth.inc();
            return;
        };
        let Some((local, remote)) = stun::split_ice_username(username) else {
            self.metrics.drop_stun_auth.inc();
            return;
        };
        let Some(&idx) = std::str::from_utf8(local)
            .ok()
            .and_then(|u| self.by_ufrag.get(u))
        else {
            self.metrics.drop_stun_auth.inc();
            return;
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if !msg.verify_fingerprint() || !msg.verify_integrity(t.local_pwd.as_bytes()) {
            self.metrics.drop_stun_auth.inc();
            return;
        }
        if let Some(expected) = &t.remote_ufrag
            && expected.as_bytes() != remote
        {
            self.metrics.drop_stun_auth.inc();
            return;
        }
        let Some(buf) = tx.buffer() else {
            self.metrics.drop_tx_full.inc();
            return;
        };
        match stun::write_binding_success(
            &mut buf[..],
            msg.transaction_id(),
            src,
            t.local_pwd.as_bytes(),
        ) {
            Ok(n) => tx.commit(src, n),
            Err(_) => return,
        }
        if t.addr != Some(src) && (t.addr.is_none() || msg.use_candidate()) {
            if let Some(old) = t.addr
                && self.by_addr.get(&old) == Some(&idx)
            {
                self.by_addr.remove(&old);
            }
            t.latch(src, now);
            self.by_addr.insert(src, idx);
        } else {
            t.last_rx = now;
        }
    }

    fn connected_transport(&mut self, src: SocketAddr) -> Option<usize> {
        let Some(&idx) = self.by_addr.get(&src) else {
            self.metrics.drop_unlatched.inc();
            return None;
        };
        match self.transports.get(idx).and_then(Option::as_ref) {
            Some(t) if t.is_connected() => Some(idx),
            _ => {
                self.metrics.drop_not_connected.inc();
                None
            }
        }
    }

    fn handle_srtp(&mut self, src: SocketAddr, data: &mut [u8], now: Instant, tx: &mut TxQueue) {
        let Some(idx) = self.connected_transport(src) else {
            return;
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Some(ctx) = t.srtp_in.as_mut() else {
            return;
        };
        let n = match ctx.unprotect_rtp(data) {
            Ok(n) => n,
            Err(_) => {
                self.metrics.drop_srtp_auth.inc();
                return;
            }
        };
        t.last_rx = now;
        self.metrics.rx_rtp.inc();
        let plain = &data[..n];
        let Ok(hdr) = RtpHeader::parse(plain) else {
            self.metrics.drop_rtp_malformed.inc();
            return;
        };
        let mid_ext_id = t.mid_ext_id;
        if let (Some(id), Some(rec)) = (t.twcc_ext_id, t.twcc_rx.as_mut())
            && let Some((_, d)) = rtp::extensions(plain, &hdr).find(|(i, _)| *i == id)
            && let Some(seq) = salon_proto::twcc::read_transport_seq(d)
        {
            let at = now.saturating_duration_since(self.epoch).as_micros();
            rec.on_packet(seq, hdr.ssrc, i64::try_from(at).unwrap_or(i64::MAX), now);
        }
        let route = self
            .routes
            .get(idx)
            .and_then(|r| r.iter().find(|(s, _)| *s == hdr.ssrc).map(|x| x.1));
        let route = match route {
            Some(r) => Some(r),
            None => self.learn_ssrc(idx, plain, &hdr, mid_ext_id),
        };
        match route {
            Some(Route::Track(ti, li)) => {
                self.nack_gap(ti, li, hdr.sequence, tx);
                self.forward(ti, li, plain, &hdr, now, tx);
            }
            Some(Route::Rtx(ti, li)) => self.on_publisher_rtx(ti, li, plain, &hdr, now, tx),
            Some(Route::Out(_)) | None => self.metrics.drop_rtp_unknown_ssrc.inc(),
        }
    }

    /// An SSRC the SDP did not list: bind it, through the mid header
    /// extension, to a track of this transport and, through the rid (or
    /// repaired rid) extension, to one of its layers. A rid that was not
    /// negotiated binds nothing.
    fn learn_ssrc(
        &mut self,
        idx: usize,
        plain: &[u8],
        hdr: &RtpHeader,
        mid_ext_id: Option<u8>,
    ) -> Option<Route> {
        let ext = |id: Option<u8>| {
            let id = id?;
            rtp::extensions(plain, hdr)
                .find(|(i, _)| *i == id)
                .map(|(_, d)| d)
        };
        let mid = ext(mid_ext_id)?;
        let t = self.transports.get(idx)?.as_ref()?;
        let p = self.participants.get(&t.participant)?;
        let ti = p.published.iter().copied().find(|&ti| {
            self.tracks
                .get(ti)
                .and_then(Option::as_ref)
                .is_some_and(|tr| tr.mid.as_bytes() == mid)
        })?;
        let track = self.tracks.get_mut(ti)?.as_mut()?;
        let is_rid = |l: &Layer, rid: &[u8]| l.rid.as_deref().map(str::as_bytes) == Some(rid);
        let route = if let Some(rrid) = ext(track.repaired_rid_ext_id) {
            let li = track.layers.iter().position(|l| is_rid(l, rrid))?;
            Route::Rtx(ti, li)
        } else if let Some(rid) = ext(track.rid_ext_id) {
            let li = track
                .layers
                .iter()
                .position(|l| l.ssrc.is_none() && is_rid(l, rid))?;
            Route::Track(ti, li)
        } else if track.layers.len() == 1
            && track.layers[0].rid.is_none()
            && track.layers[0].ssrc.is_none()
        {
            Route::Track(ti, 0)
        } else {
            return None;
        };
        if let Route::Track(_, li) = route
            && let Some(layer) = track.layers.get_mut(li)
        {
            layer.ssrc = Some(hdr.ssrc);
        }
        if let Some(r) = self.routes.get_mut(idx) {
            r.push((hdr.ssrc, route));
        }
        Some(route)
    }

    /// Send one decrypted packet of layer `li` of track `ti` to every live
    /// receiver that gets that layer, or switches to it at this key frame.
    fn forward(
        &mut self,
        ti: usize,
        li: usize,
        plain: &[u8],
        hdr: &RtpHeader,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let since_epoch = now.saturating_duration_since(self.epoch);
        let Some(track) = self.tracks.get_mut(ti).and_then(Option::as_mut) else {
            return;
        };
        let kind = track.kind;
        let Some(layer) = track.layers.get_mut(li) else {
            return;
        };
        layer
            .stats
            .on_packet(hdr.sequence, hdr.timestamp, since_epoch);
        layer.rate.add(plain.len(), since_epoch);
        layer.last_packet_at = Some(now);
        let desc = if kind == MediaKind::Video {
            salon_proto::vp8::Vp8Descriptor::parse(hdr.payload(plain)).ok()
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
        if !track.enabled {
            self.metrics.drop_muted.inc();
            return;
        }
        let payload = hdr.payload(plain);
        if payload.is_empty() {
            return; // padding only
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
        // Audio can start anywhere; video only at a key frame.
        let can_start = kind == MediaKind::Audio || keyframe;
        let clock = if kind == MediaKind::Audio {
            48_000
        } else {
            90_000
        };
        let level = track
            .audio_level_id
            .and_then(|id| rtp::extensions(plain, hdr).find(|(i, _)| *i == id))
            .and_then(|(_, d)| d.first().copied());
        if let Some(l) = level {
            track.speech.on_level(l, now);
        }
        let transports = &mut self.transports;
        let metrics = &self.metrics;
        for leg in track.legs.iter_mut() {
            if !leg.live || leg.paused || leg.alloc_paused {
                continue;
            }
            if leg.current != Some(li) {
                if li != leg.target || !can_start {
                    continue;
                }
                leg.switch_to(li, hdr.timestamp, now, clock);
            }
            // Temporal layers: change only at a frame start; up only where
            // the stream allows it (layer sync, or a key frame).
            if let (Some(t), Some(d)) = (tid, desc) {
                let down = leg.target_tid < leg.current_tid;
                let up_here = leg.target_tid > leg.current_tid
                    && t > leg.current_tid
                    && t <= leg.target_tid
                    && d.layer_sync;
                if frame_start && (keyframe || down || up_here) {
                    leg.current_tid = leg.target_tid;
                }
                if t > leg.current_tid {
                    leg.seq.skip(hdr.sequence);
                    leg.vp8.skip(&d);
                    continue;
                }
            }
            let Some(t) = transports.get_mut(leg.transport).and_then(Option::as_mut) else {
                continue;
            };
            let (Some(addr), true) = (t.addr, t.srtp_out.is_some()) else {
                continue;
            };
            let Some(seq) = leg.seq.map(hdr.sequence) else {
                continue;
            };
            let ts = hdr.timestamp.wrapping_add(leg.ts_offset);
            let twcc = t.next_twcc(payload.len() + 28, now);
            let Some(ctx) = t.srtp_out.as_mut() else {
                continue;
            };
            let out = OutPacket {
                ssrc: leg.ssrc,
                pt: leg.pt,
                seq,
                ts,
                twcc,
                vp8: desc.and_then(|d| leg.vp8.map(&d).map(|m| (d, m))),
                osn: None,
            };
            if send_rtp(tx, metrics, ctx, addr, &out, hdr, level, payload) {
                if let Some(log) = leg.sent.as_mut() {
                    log.record(
                        seq,
                        Sent {
                            layer: li as u8,
                            in_seq: hdr.sequence,
                            ts_offset: leg.ts_offset,
                            vp8: out.vp8.map(|(_, m)| m),
                        },
                    );
                }
                leg.packets = leg.packets.wrapping_add(1);
                leg.octets = leg.octets.wrapping_add(payload.len() as u32);
                leg.last_ts_out = Some(ts);
                leg.last_sent_at = Some(now);
            }
        }
    }

    fn handle_srtcp(&mut self, src: SocketAddr, data: &mut [u8], now: Instant, tx: &mut TxQueue) {
        let Some(idx) = self.connected_transport(src) else {
            return;
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Some(ctx) = t.srtp_in.as_mut() else {
            return;
        };
        let n = match ctx.unprotect_rtcp(data) {
            Ok(n) => n,
            Err(_) => {
                self.metrics.drop_srtp_auth.inc();
                return;
            }
        };
        t.last_rx = now;
        let kind = t.kind;
        self.metrics.rx_rtcp.inc();
        let plain = &data[..n];
        for pkt in RtcpIter::new(plain) {
            let pkt = match pkt {
                Ok(p) => p,
                Err(_) => {
                    self.metrics.drop_rtcp_malformed.inc();
                    break;
                }
            };
            match (kind, pkt) {
                (TransportKind::Publish, RtcpPacket::SenderReport(sr)) => {
                    self.on_sender_report(idx, &sr, now, tx)
                }
                (TransportKind::Subscribe, RtcpPacket::Nack(nack)) => {
                    let media = nack.media_ssrc;
                    for seq in nack.lost() {
                        self.metrics.nack_received.inc();
                        self.retransmit(idx, media, seq, now, tx);
                    }
                }
                (TransportKind::Subscribe, RtcpPacket::TransportCc(fb)) => {
                    self.on_transport_feedback(idx, fb.fci, now);
                }
                (TransportKind::Subscribe, RtcpPacket::Pli(pli)) => {
                    if let Some((ti, li)) = self.out_layer(idx, pli.media_ssrc) {
                        self.request_keyframe(ti, li, now, tx);
                    }
                }
                (TransportKind::Subscribe, RtcpPacket::Fir(fir)) => {
                    for entry in fir.entries() {
                        if let Some((ti, li)) = self.out_layer(idx, entry.ssrc) {
                            self.request_keyframe(ti, li, now, tx);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn out_route(&self, idx: usize, ssrc: u32) -> Option<usize> {
        self.routes.get(idx)?.iter().find_map(|(s, r)| match r {
            Route::Out(ti) if *s == ssrc => Some(*ti),
            _ => None,
        })
    }

    /// Transport-wide feedback from a receiver: into its bandwidth estimate.
    fn on_transport_feedback(&mut self, idx: usize, fci: &[u8], now: Instant) {
        let Ok(fb) = salon_proto::twcc::TwccFeedback::parse(fci) else {
            self.metrics.drop_rtcp_malformed.inc();
            return;
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        self.twcc_results.clear();
        for (seq, status) in fb.packets() {
            let arrival_us = match status {
                salon_proto::twcc::PacketStatus::Received { arrival_us, .. } => Some(arrival_us),
                _ => None,
            };
            self.twcc_results.push(crate::bwe::PacketResult {
                seq: t.unwrap_twcc(seq),
                arrival_us,
            });
        }
        if let Some(bwe) = t.bwe.as_mut() {
            use crate::bwe::BandwidthEstimator as _;
            bwe.on_feedback(&self.twcc_results, now);
            t.bwe_fed = true;
            self.metrics.twcc_feedback.inc();
        }
    }

    /// The state of each layer (encoding) of `publisher`'s track `mid`,
    /// lowest first: what the allocator sees.
    pub fn layer_states(
        &self,
        publisher: ParticipantId,
        mid: &str,
        now: Instant,
    ) -> Vec<LayerState> {
        let since = now.saturating_duration_since(self.epoch);
        let Some(p) = self.participants.get(&publisher) else {
            return Vec::new();
        };
        p.published
            .iter()
            .filter_map(|&ti| self.tracks.get(ti)?.as_ref())
            .filter(|t| t.mid == mid)
            .flat_map(|t| {
                t.layers.iter().map(move |l| LayerState {
                    rid: l.rid.clone(),
                    bitrate_bps: l.rate.bps(since),
                    fps: l.frames.bps(since) / 8,
                    size: l.size,
                    keyframe_seen: l.keyframe_seen,
                    temporal_layers: l.max_tid.map_or(1, |m| m + 1),
                    active: l.is_active(now),
                })
            })
            .collect()
    }

    /// The bandwidth estimate towards `participant`, once feedback arrived.
    pub fn estimate_bps(&self, participant: ParticipantId) -> Option<u64> {
        use crate::bwe::BandwidthEstimator as _;
        let p = self.participants.get(&participant)?;
        let t = self.transports.get(p.subscribe)?.as_ref()?;
        t.bwe.as_ref().map(|b| b.estimate_bps())
    }

    /// The track and layer a receiver's stream `ssrc` on transport `idx`
    /// shows (or is about to show).
    fn out_layer(&self, idx: usize, ssrc: u32) -> Option<(usize, usize)> {
        let ti = self.out_route(idx, ssrc)?;
        let leg = self
            .tracks
            .get(ti)?
            .as_ref()?
            .legs
            .iter()
            .find(|l| l.ssrc == ssrc)?;
        Some((ti, leg.current.unwrap_or(leg.target)))
    }

    fn on_sender_report(
        &mut self,
        idx: usize,
        sr: &rtcp::SenderReport<'_>,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(Route::Track(ti, li)) = self
            .routes
            .get(idx)
            .and_then(|r| r.iter().find(|(s, _)| *s == sr.ssrc).map(|x| x.1))
        else {
            return;
        };
        let Some(track) = self.tracks.get_mut(ti).and_then(Option::as_mut) else {
            return;
        };
        if let Some(layer) = track.layers.get_mut(li) {
            layer.stats.on_sender_report(sr.ntp, now);
        }
        // Relay the publisher's clock mapping to every receiver of this
        // layer, under its own SSRC, counts and timestamp offset, so
        // browsers can synchronise audio and video.
        for leg in track
            .legs
            .iter()
            .filter(|l| l.live && l.current == Some(li))
        {
            let Some(t) = self
                .transports
                .get_mut(leg.transport)
                .and_then(Option::as_mut)
            else {
                continue;
            };
            let (Some(addr), Some(ctx)) = (t.addr, t.srtp_out.as_mut()) else {
                continue;
            };
            let Some(buf) = tx.buffer() else {
                self.metrics.drop_tx_full.inc();
                continue;
            };
            let Ok(n) = rtcp::write_sender_report(
                &mut buf[..],
                leg.ssrc,
                sr.ntp,
                sr.rtp_timestamp.wrapping_add(leg.ts_offset),
                leg.packets,
                leg.octets,
                &[],
            ) else {
                continue;
            };
            if let Ok(m) = ctx.protect_rtcp(&mut buf[..], n) {
                tx.commit(addr, m);
                self.metrics.tx_rtcp.inc();
            }
        }
    }

    fn retransmit(
        &mut self,
        idx: usize,
        media_ssrc: u32,
        out_seq: u16,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(ti) = self.out_route(idx, media_ssrc) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(ti).and_then(Option::as_mut) else {
            return;
        };
        let Some(leg) = track.legs.iter_mut().find(|l| l.ssrc == media_ssrc) else {
            return;
        };
        // Video legs log what each output number was sent as (layer, input
        // packet, offsets), so a retransmission is what was lost even
        // after a switch, a dropped temporal-layer packet or a probe.
        // Audio legs map back through the rewriter: only packets sent since
        // the last resume, from the layer being forwarded.
        let sent = match &leg.sent {
            Some(log) => log.get(out_seq),
            None => leg
                .current
                .zip(leg.seq.unmap_checked(out_seq))
                .map(|(li, in_seq)| Sent {
                    layer: li as u8,
                    in_seq,
                    ts_offset: leg.ts_offset,
                    vp8: None,
                }),
        };
        let Some(sent) = sent else {
            self.metrics.nack_unanswerable.inc();
            return;
        };
        let Some(packet) = track
            .layers
            .get(usize::from(sent.layer))
            .and_then(|l| l.cache.as_ref())
            .and_then(|c| c.get(sent.in_seq))
        else {
            self.metrics.nack_unanswerable.inc();
            return;
        };
        let Ok(hdr) = RtpHeader::parse(packet) else {
            return;
        };
        let payload = hdr.payload(packet);
        let vp8_out = sent.vp8.and_then(|m| {
            salon_proto::vp8::Vp8Descriptor::parse(payload)
                .ok()
                .map(|d| (d, m))
        });
        let Some(t) = self
            .transports
            .get_mut(leg.transport)
            .and_then(Option::as_mut)
        else {
            return;
        };
        let Some(addr) = t.addr else {
            return;
        };
        let rtx_overhead = if leg.rtx.is_some() { 2 } else { 0 };
        let twcc = t.next_twcc(payload.len() + rtx_overhead + 28, now);
        let Some(ctx) = t.srtp_out.as_mut() else {
            return;
        };
        // On the RTX stream when the receiver accepted one (its own
        // numbering, the lost number first in the payload), else again on
        // the media stream under the lost number.
        let (ssrc, pt, seq, osn) = match leg.next_rtx() {
            Some((rtx_ssrc, seq)) => (rtx_ssrc, OUT_PT_VP8_RTX, seq, Some(out_seq)),
            None => (leg.ssrc, leg.pt, out_seq, None),
        };
        let out = OutPacket {
            ssrc,
            pt,
            seq,
            ts: hdr.timestamp.wrapping_add(sent.ts_offset),
            twcc,
            vp8: vp8_out,
            osn,
        };
        if send_rtp(tx, &self.metrics, ctx, addr, &out, &hdr, None, payload) {
            self.metrics.nack_answered.inc();
        }
    }

    fn request_keyframes_for(&mut self, receiver: ParticipantId, now: Instant, tx: &mut TxQueue) {
        let wanted: Vec<usize> = self
            .tracks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let t = t.as_ref()?;
                t.legs
                    .iter()
                    .any(|l| l.receiver == receiver && l.live && l.current != Some(l.target))
                    .then_some(i)
            })
            .collect();
        for ti in wanted {
            self.request_wanted_keyframes(ti, now, tx);
        }
    }

    /// Ask for a key frame of every layer of `ti` that a live receiver
    /// waits to start or switch to.
    fn request_wanted_keyframes(&mut self, ti: usize, now: Instant, tx: &mut TxQueue) {
        let Some(track) = self.tracks.get(ti).and_then(Option::as_ref) else {
            return;
        };
        let mut wanted = [false; 8];
        for l in track
            .legs
            .iter()
            .filter(|l| l.live && !l.paused && !l.alloc_paused && l.current != Some(l.target))
        {
            if let Some(w) = wanted.get_mut(l.target) {
                *w = true;
            }
        }
        for (li, w) in wanted.into_iter().enumerate() {
            if w {
                self.request_keyframe(ti, li, now, tx);
            }
        }
    }

    /// Video packet `seq` of layer `li` of track `ti` arrived: if it
    /// skips a few numbers past the highest so far, ask the publisher for
    /// them (generic NACK; a larger jump is a restart, not loss). Its
    /// browser resends on its RTX stream ([`Worker::on_publisher_rtx`]).
    fn nack_gap(&mut self, ti: usize, li: usize, seq: u16, tx: &mut TxQueue) {
        let Some(track) = self.tracks.get(ti).and_then(Option::as_ref) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(layer) = track.layers.get(li) else {
            return;
        };
        let (Some(highest), Some(media_ssrc)) = (layer.stats.max_seq(), layer.ssrc) else {
            return;
        };
        let gap = seq.wrapping_sub(highest);
        if !(2..=MAX_NACK_GAP + 1).contains(&gap) {
            return;
        }
        let mut lost = [0u16; MAX_NACK_GAP as usize];
        let n = usize::from(gap - 1);
        for (i, l) in lost.iter_mut().take(n).enumerate() {
            *l = highest.wrapping_add(1 + i as u16);
        }
        let sent = send_rtcp(
            &mut self.transports,
            &self.metrics,
            tx,
            track.transport,
            |buf, sender| {
                let h = rtcp::write_receiver_report(buf, sender, &[]).ok()?;
                let m = rtcp::write_nack(buf.get_mut(h..)?, sender, media_ssrc, &lost[..n]).ok()?;
                Some(h + m)
            },
        );
        if sent {
            self.metrics.nack_sent.add(n as u64);
        }
    }

    /// A packet on a publisher's RTX stream: a retransmission (the original
    /// sequence number, then the payload) goes on as the packet it repairs;
    /// padding (Chrome's bandwidth probes) is counted and dropped.
    fn on_publisher_rtx(
        &mut self,
        ti: usize,
        li: usize,
        plain: &[u8],
        hdr: &RtpHeader,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let payload = hdr.payload(plain);
        let layer = self
            .tracks
            .get(ti)
            .and_then(Option::as_ref)
            .and_then(|t| t.layers.get(li));
        let (Some(layer), Some(osn), Some(body)) = (layer, payload.get(..2), payload.get(2..))
        else {
            self.metrics.drop_rtx_unused.inc();
            return;
        };
        let seq = u16::from_be_bytes([osn[0], osn[1]]);
        // Only a packet that is missing and recent: Chrome also probes by
        // resending packets that arrived ("payload padding"), which would
        // reach receivers as duplicates and inflate the layer's price.
        let missing = layer.cache.as_ref().is_none_or(|c| c.get(seq).is_none());
        let recent = layer
            .stats
            .max_seq()
            .is_some_and(|m| m.wrapping_sub(seq) < rtx_cache::SLOTS as u16);
        let Some(media_ssrc) = layer.ssrc.filter(|_| missing && recent && !body.is_empty()) else {
            self.metrics.drop_rtx_unused.inc();
            return;
        };
        // The repaired packet: the RTX header under the media SSRC and
        // number, without padding, then the original payload.
        let mut buf = [0u8; salon_io::MAX_DATAGRAM];
        let head = hdr.payload_offset;
        let len = head + body.len();
        let (Some(dst_head), Some(src_head)) = (buf.get_mut(..head), plain.get(..head)) else {
            return;
        };
        dst_head.copy_from_slice(src_head);
        // RTP fixed header: byte 0 holds the P bit, 2..4 the sequence
        // number, 8..12 the SSRC.
        let Some(fixed) = buf.get_mut(..12) else {
            return;
        };
        fixed[0] &= !0x20;
        fixed[2..4].copy_from_slice(osn);
        fixed[8..12].copy_from_slice(&media_ssrc.to_be_bytes());
        let Some(dst) = buf.get_mut(head..len) else {
            return;
        };
        dst.copy_from_slice(body);
        let Ok(repaired) = RtpHeader::parse(&buf[..len]) else {
            return;
        };
        self.metrics.rtx_received.inc();
        self.forward(ti, li, &buf[..len], &repaired, now, tx);
    }

    /// Ask the publisher of `ti` for a key frame of layer `li`, at most once
    /// per [`KEYFRAME_REQUEST_INTERVAL`]; a request inside it is sent when it
    /// ends.
    fn request_keyframe(&mut self, ti: usize, li: usize, now: Instant, tx: &mut TxQueue) {
        let Some(track) = self.tracks.get_mut(ti).and_then(Option::as_mut) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(layer) = track.layers.get_mut(li) else {
            return;
        };
        if let Some(last) = layer.last_keyframe_request
            && now < last + KEYFRAME_REQUEST_INTERVAL
        {
            layer.keyframe_pending = true;
            return;
        }
        let Some(media_ssrc) = layer.ssrc else {
            layer.keyframe_pending = true;
            return;
        };
        if !self
            .transports
            .get(track.transport)
            .and_then(Option::as_ref)
            .is_some_and(|t| t.addr.is_some() && t.srtp_out.is_some())
        {
            return;
        }
        layer.last_keyframe_request = Some(now);
        layer.keyframe_pending = false;
        let sent = send_rtcp(
            &mut self.transports,
            &self.metrics,
            tx,
            track.transport,
            |buf, sender| {
                let n = rtcp::write_receiver_report(buf, sender, &[]).ok()?;
                let m = rtcp::write_pli(buf.get_mut(n..)?, sender, media_ssrc).ok()?;
                Some(n + m)
            },
        );
        if sent {
            self.metrics.keyframe_requests.inc();
        }
    }

    fn after_progress(
        &mut self,
        idx: usize,
        progress: DtlsProgress,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(t) = self.transports.get(idx).and_then(Option::as_ref) else {
            return;
        };
        let (participant, kind) = (t.participant, t.kind);
        match progress {
            DtlsProgress::None => {}
            DtlsProgress::Failed => {
                self.error(participant, "media transport failed");
            }
            DtlsProgress::Connected => {
                self.metrics.transports_connected.inc();
                self.events.push_back(Event::Connected {
                    participant,
                    transport: kind,
                });
                match kind {
                    TransportKind::Subscribe => self.request_keyframes_for(participant, now, tx),
                    TransportKind::Publish => {
                        // Receivers may already be waiting for this publisher.
                        let pending: Vec<usize> = self
                            .participants
                            .get(&participant)
                            .map(|p| p.published.clone())
                            .unwrap_or_default();
                        for ti in pending {
                            self.request_wanted_keyframes(ti, now, tx);
                        }
                    }
                }
            }
        }
    }

    /// Run timers: DTLS retransmissions, receiver reports, deferred key
    /// frame requests.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut TxQueue) {
        for t in self.transports.iter_mut().flatten() {
            if let Some(bwe) = t.bwe.as_mut() {
                use crate::bwe::BandwidthEstimator as _;
                if bwe.poll_timeout().is_some_and(|d| d <= now) {
                    bwe.handle_timeout(now);
                }
            }
        }
        for idx in 0..self.transports.len() {
            let progress = match self.transports.get_mut(idx).and_then(Option::as_mut) {
                Some(t) => t.handle_timeout(now, &mut self.scratch[..], tx, &self.metrics),
                None => continue,
            };
            self.after_progress(idx, progress, now, tx);
        }
        for ti in 0..self.tracks.len() {
            // Receivers still waiting for a key frame: ask again.
            let retry = self.tracks.get(ti).and_then(Option::as_ref).and_then(|t| {
                let li = t.waiting_layer()?;
                let last = t.layers.get(li)?.last_keyframe_request?;
                (now >= last + KEYFRAME_RETRY).then_some(li)
            });
            if let Some(li) = retry {
                self.request_keyframe(ti, li, now, tx);
            }
            let layers = self
                .tracks
                .get(ti)
                .and_then(Option::as_ref)
                .map_or(0, |t| t.layers.len());
            for li in 0..layers {
                let due = self
                    .tracks
                    .get(ti)
                    .and_then(Option::as_ref)
                    .and_then(|t| t.layers.get(li))
                    .is_some_and(|l| {
                        l.keyframe_pending
                            && l.last_keyframe_request
                                .is_none_or(|last| now >= last + KEYFRAME_REQUEST_INTERVAL)
                    });
                if due {
                    self.request_keyframe(ti, li, now, tx);
                }
            }
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.send_receiver_reports(now, tx);
        }
        if now >= self.next_speaker_check {
            self.next_speaker_check = now + SPEAKER_INTERVAL;
            self.update_speakers(now);
        }
        if now >= self.next_alloc {
            self.next_alloc = now + ALLOC_INTERVAL;
            self.allocate(now);
            self.report_wanted_layers(now);
        }
        self.run_probes(now, tx);
        self.send_publisher_feedback(now, tx);
    }

    /// Transport-cc feedback to each publisher whose report is due.
    fn send_publisher_feedback(&mut self, now: Instant, tx: &mut TxQueue) {
        for t in self.transports.iter_mut().flatten() {
            if t.twcc_rx
                .as_ref()
                .and_then(|r| r.poll_timeout())
                .is_none_or(|d| d > now)
            {
                continue;
            }
            let (Some(addr), true) = (t.addr, t.is_connected()) else {
                continue;
            };
            let ssrc = t.rtcp_ssrc;
            let (Some(rec), Some(ctx)) = (t.twcc_rx.as_mut(), t.srtp_out.as_mut()) else {
                continue;
            };
            let Some(buf) = tx.buffer() else {
                self.metrics.drop_tx_full.inc();
                continue;
            };
            let Some(n) = rec.poll_feedback(now, ssrc, &mut buf[..]) else {
                continue;
            };
            if let Ok(m) = ctx.protect_rtcp(&mut buf[..], n) {
                tx.commit(addr, m);
                self.metrics.tx_rtcp.inc();
                self.metrics.twcc_feedback_sent.inc();
            }
        }
    }

    /// One allocation round for every receiver (see [`crate::alloc`]): its
    /// budget is its bandwidth estimate once transport-cc feedback arrived
    /// (unlimited before: the tile sizes alone decide), capped by the
    /// operator; candidates are the room's live videos in priority order —
    /// screen shares, the dominant speaker, recent speakers, the others in
    /// join order — the first `last_n` of them eligible. Decisions become
    /// each leg's target layer (switched at its next key frame, requested
    /// here) or a pause; the next step up is what the estimator may probe
    /// towards.
    fn allocate(&mut self, now: Instant) {
        use crate::bwe::BandwidthEstimator as _;
        let since = now.saturating_duration_since(self.epoch);
        let mut sc = std::mem::take(&mut self.alloc_scratch);
        let receivers: Vec<ParticipantId> = self.participants.keys().copied().collect();
        for pid in receivers {
            let Some(p) = self.participants.get(&pid) else {
                continue;
            };
            if p.audio_only {
                continue;
            }
            let (last_n, cap_bps, sub) = (p.last_n, p.cap_bps, p.subscribe);
            let dominant = self.speakers.get(&p.room).and_then(|d| d.current());
            let recent = self.recent.get(&p.room);
            sc.layers.clear();
            sc.videos.clear();
            for member in self.rooms.get(&p.room).into_iter().flatten() {
                if *member == pid {
                    continue;
                }
                let Some(m) = self.participants.get(member) else {
                    continue;
                };
                for &ti in &m.published {
                    let Some(t) = self.tracks.get(ti).and_then(Option::as_ref) else {
                        continue;
                    };
                    if t.kind != MediaKind::Video || !t.enabled {
                        continue;
                    }
                    let Some(leg) = t.legs.iter().find(|l| l.receiver == pid && l.live) else {
                        continue;
                    };
                    let priority = if t.screen {
                        Priority::ScreenShare
                    } else if dominant == Some(*member) {
                        Priority::DominantSpeaker
                    } else if let Some(r) = recent.and_then(|r| r.iter().position(|x| x == member))
                    {
                        Priority::RecentSpeaker(u8::try_from(r).unwrap_or(u8::MAX))
                    } else {
                        Priority::Other
                    };
                    // Layers above what the tile shows are not offered.
                    let mut sizes = [None; MAX_LAYERS];
                    let n = t.layers.len().min(MAX_LAYERS);
                    for (sz, l) in sizes.iter_mut().zip(&t.layers) {
                        *sz = l.size;
                    }
                    let top = select::choose_layer(&sizes[..n], leg.max_height);
                    let start = sc.layers.len();
                    for (li, l) in t.layers.iter().enumerate().take(top + 1) {
                        let active = l.is_active(now);
                        let spatial = u8::try_from(li).unwrap_or(u8::MAX);
                        let height = l.size.map_or(0, |(_, h)| h);
                        // With temporal layers: one step per TID, priced
                        // cumulatively; without: the whole encoding.
                        let tids = l.max_tid.map_or(0, |m| usize::from(m).min(MAX_TIDS - 1));
                        let mut cumulative = 0;
                        for tid in 0..=tids {
                            cumulative += match l.max_tid {
                                Some(_) => l.tid_rates.get(tid).map_or(0, |r| r.bps(since)),
                                None => l.rate.bps(since),
                            };
                            sc.layers.push(alloc::Layer {
                                spatial,
                                temporal: u8::try_from(tid).unwrap_or(0),
                                bitrate_bps: if active { cumulative.max(1) } else { 0 },
                                height,
                                active,
                            });
                        }
                    }
                    if sc
                        .layers
                        .get(start..)
                        .is_some_and(|ls| ls.iter().all(|l| !l.active))
                    {
                        // Nothing arrives (yet): leave this leg as it is.
                        sc.layers.truncate(start);
                        continue;
                    }
                    sc.videos.push((ti, priority, start..sc.layers.len()));
                }
            }
            // Last-N: the first `last_n` in priority order (stable: join
            // order among equals).
            sc.order.clear();
            sc.order.extend(0..sc.videos.len());
            sc.order.sort_by_key(|&i| sc.videos.get(i).map(|v| v.1));
            let limit = last_n.map_or(usize::MAX, |n| n as usize);
            sc.in_last_n.clear();
            sc.in_last_n.resize(sc.videos.len(), false);
            for (rank, &i) in sc.order.iter().enumerate() {
                if let Some(x) = sc.in_last_n.get_mut(i) {
                    *x = rank < limit;
                }
            }
            let candidates: Vec<VideoCandidate<'_>> = sc
                .videos
                .iter()
                .zip(&sc.in_last_n)
                .map(|((ti, priority, range), &in_n)| VideoCandidate {
                    id: *ti as u64,
                    priority: *priority,
                    layers: sc.layers.get(range.clone()).unwrap_or(&[]),
                    max_height: None,
                    in_last_n: in_n,
                })
                .collect();
            let estimate = self
                .transports
                .get(sub)
                .and_then(Option::as_ref)
                .filter(|t| t.bwe_fed)
                .and_then(|t| t.bwe.as_ref())
                .map(|b| b.estimate_bps());
            // What everything at its best would cost: probe towards it.
            let wanted: u64 = candidates
                .iter()
                .filter(|c| c.in_last_n)
                .map(|c| c.layers.iter().map(|l| l.bitrate_bps).max().unwrap_or(0))
                .sum();
            let input = alloc::AllocInput {
                available_bps: estimate.unwrap_or(u64::MAX),
                cap_bps,
                audio_only: false,
                videos: &candidates,
            };
            sc.decisions.clear();
            if let Some(p) = self.participants.get_mut(&pid) {
                let out = p.alloc.allocate(&input, now);
                sc.decisions
                    .extend(out.iter().map(|d| (d.id as usize, d.choice)));
            }
            drop(candidates);
            if estimate.is_some()
                && let Some(bwe) = self
                    .transports
                    .get_mut(sub)
                    .and_then(Option::as_mut)
                    .and_then(|t| t.bwe.as_mut())
            {
                // With the allocator's up margin, and some headroom.
                let wanted = (wanted as f64 * 1.3) as u64;
                bwe.set_wanted_bps(wanted.min(cap_bps.unwrap_or(u64::MAX)), now);
            }
            for &(ti, choice) in &sc.decisions {
                let Some(t) = self.tracks.get_mut(ti).and_then(Option::as_mut) else {
                    continue;
                };
                let Some(leg) = t.legs.iter_mut().find(|l| l.receiver == pid) else {
                    continue;
                };
                match choice {
                    Choice::Paused => {
                        if !leg.alloc_paused {
                            leg.alloc_paused = true;
                            leg.current = None;
                            leg.seq.pause();
                            self.metrics.layer_pauses.inc();
                        }
                    }
                    Choice::Layer { spatial, temporal } => {
                        let li = usize::from(spatial);
                        // The top temporal layer on offer means "all".
                        let top_tid = t.layers.get(li).and_then(|l| l.max_tid);
                        leg.target_tid = match top_tid {
                            Some(m) if temporal < m => temporal,
                            _ => u8::MAX,
                        };
                        let resumed = std::mem::take(&mut leg.alloc_paused);
                        let changed = leg.target != li;
                        if changed {
                            leg.target = li;
                            self.metrics.layer_switches.inc();
                        }
                        // A key frame of the new layer (a receiver still
                        // waiting is asked for again by the retry timer).
                        if (changed || resumed)
                            && leg.current != Some(li)
                            && let Some(l) = t.layers.get_mut(li)
                        {
                            l.keyframe_pending = true;
                        }
                    }
                }
            }
        }
        self.alloc_scratch = sc;
    }

    /// Tell publishers which simulcast encodings some receiver's tile can
    /// use (at most every [`LAYERS_WANTED_INTERVAL`] per track, on change).
    /// By tile size, not by bandwidth, so a layer a receiver may climb back
    /// to keeps being sent; the lowest stays on while anyone watches.
    fn report_wanted_layers(&mut self, now: Instant) {
        for t in self.tracks.iter_mut().flatten() {
            if t.kind != MediaKind::Video || t.layers.len() < 2 {
                continue;
            }
            let n = t.layers.len().min(MAX_LAYERS);
            let mut sizes = [None; MAX_LAYERS];
            for (sz, l) in sizes.iter_mut().zip(&t.layers) {
                *sz = l.size;
            }
            let mut wanted = [false; MAX_LAYERS];
            for leg in t.legs.iter().filter(|l| l.live && !l.paused) {
                let top = select::choose_layer(&sizes[..n], leg.max_height);
                for w in wanted.iter_mut().take(top + 1) {
                    *w = true;
                }
            }
            // A publisher starts with every encoding on.
            let prev = t.wanted_sent.map_or([true; MAX_LAYERS], |(w, _)| w);
            let changed = prev.get(..n) != wanted.get(..n);
            let due = t
                .wanted_sent
                .is_none_or(|(_, at)| now >= at + LAYERS_WANTED_INTERVAL);
            if changed && due {
                t.wanted_sent = Some((wanted, now));
                self.events.push_back(Event::LayersWanted {
                    participant: t.publisher,
                    mid: t.mid.clone(),
                    active: wanted.iter().take(n).copied().collect(),
                });
            }
        }
    }

    /// Send due probe padding on each subscribe transport, and start the
    /// clusters the estimators ask for. Padding goes on a video stream the
    /// receiver is getting (padding-only RTP packets on its SSRC, numbered
    /// in sequence, carrying a transport-wide sequence number).
    fn run_probes(&mut self, now: Instant, tx: &mut TxQueue) {
        use crate::bwe::BandwidthEstimator as _;
        for idx in 0..self.transports.len() {
            let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if t.kind != TransportKind::Subscribe || !t.bwe_fed {
                continue;
            }
            if t.probe.is_none()
                && let Some(cluster) = t.bwe.as_mut().and_then(|b| b.poll_probe(now))
            {
                t.probe = Some(transport::ProbeState {
                    cluster,
                    started: now,
                    packets: 0,
                    bytes: 0,
                    next_at: now,
                });
                self.metrics.probes.inc();
            }
            let Some(mut probe) = t.probe.filter(|p| now >= p.next_at) else {
                continue;
            };
            // Bytes due by now at the cluster's rate (one packet at least).
            let elapsed = now.saturating_duration_since(probe.started).as_secs_f64();
            let due = ((probe.cluster.target_bps as f64 * elapsed / 8.0) as usize)
                .max(probe.bytes + 1)
                .min(probe.cluster.min_bytes);
            let mut sent_any = false;
            while probe.bytes < due || probe.packets < probe.cluster.min_packets {
                if !self.send_padding(idx, probe.cluster.id, now, tx) {
                    break;
                }
                sent_any = true;
                probe.packets += 1;
                probe.bytes += PROBE_PADDING + 12;
                if probe.bytes >= due && probe.packets >= 1 {
                    break;
                }
            }
            if !sent_any && probe.packets == 0 {
                // No stream to carry it yet (the receiver's video has not
                // started): the cluster waits, so the estimator does not
                // count it in flight for nothing.
                probe.started = now + PROBE_WAIT;
                probe.next_at = now + PROBE_WAIT;
                if let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) {
                    t.probe = Some(probe);
                }
                continue;
            }
            let done = !sent_any
                || (probe.bytes >= probe.cluster.min_bytes
                    && probe.packets >= probe.cluster.min_packets);
            let next = if done {
                None
            } else {
                // Next packet at the cluster's rate.
                let per_packet = Duration::from_secs_f64(
                    ((PROBE_PADDING + 12) * 8) as f64 / probe.cluster.target_bps.max(1) as f64,
                );
                probe.next_at = now + per_packet.max(Duration::from_millis(1));
                Some(probe)
            };
            if let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) {
                t.probe = next;
            }
        }
    }

    /// One padding-only packet on a video stream subscribe transport `idx`
    /// is forwarding. False when there is none.
    fn send_padding(&mut self, idx: usize, cluster: u32, now: Instant, tx: &mut TxQueue) -> bool {
        let found = self.tracks.iter_mut().flatten().find_map(|t| {
            if t.kind != MediaKind::Video {
                return None;
            }
            t.legs.iter_mut().find(|l| {
                l.transport == idx
                    && l.live
                    && !l.paused
                    && !l.alloc_paused
                    && l.current.is_some()
                    && l.last_ts_out.is_some()
            })
        });
        let Some(leg) = found else {
            return false;
        };
        let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
            return false;
        };
        let (Some(addr), true) = (t.addr, t.srtp_out.is_some()) else {
            return false;
        };
        // On the RTX stream if there is one: the media numbering is left
        // alone. Else a number slipped into the media stream.
        let (ssrc, pt, seq) = match leg.next_rtx() {
            Some((rtx_ssrc, seq)) => (rtx_ssrc, OUT_PT_VP8_RTX, seq),
            None => {
                let Some(seq) = leg.seq.insert() else {
                    return false;
                };
                (leg.ssrc, leg.pt, seq)
            }
        };
        let twcc = t.next_twcc_in(PROBE_PADDING + 12, Some(cluster), now);
        let Some(ctx) = t.srtp_out.as_mut() else {
            return false;
        };
        let Some(buf) = tx.buffer() else {
            self.metrics.drop_tx_full.inc();
            return false;
        };
        let fields = RtpFields {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: leg.last_ts_out.unwrap_or(0),
            ssrc,
        };
        let twcc = twcc.to_be_bytes();
        let Ok(h) = rtp::write_header(&mut buf[..], &fields, &[(OUT_EXT_TRANSPORT_CC, &twcc[..])])
        else {
            return false;
        };
        let end = h + PROBE_PADDING;
        let Some(pad) = buf.get_mut(h..end) else {
            return false;
        };
        pad.fill(0);
        if let Some(last) = pad.last_mut() {
            *last = PROBE_PADDING as u8;
        }
        if let Some(b0) = buf.first_mut() {
            *b0 |= 0x20; // P: the payload is all padding
        }
        match ctx.protect_rtp(&mut buf[..], end) {
            Ok(n) => {
                tx.commit(addr, n);
                self.metrics.tx_padding.inc();
                true
            }
            Err(_) => false,
        }
    }

    /// Reconsider each room's dominant speaker; tell the gateway of changes.
    fn update_speakers(&mut self, now: Instant) {
        for (room, members) in &self.rooms {
            let scores = members.iter().filter_map(|pid| {
                let p = self.participants.get(pid)?;
                let best = p
                    .published
                    .iter()
                    .filter_map(|&ti| self.tracks.get(ti)?.as_ref())
                    .filter(|t| t.kind == MediaKind::Audio && t.enabled)
                    .map(|t| t.speech.score_at(now))
                    .fold(0.0f32, f32::max);
                Some((*pid, best))
            });
            let dominant = self.speakers.entry(room.clone()).or_default();
            if let Some(participant) = dominant.update(scores, now) {
                let recent = self.recent.entry(room.clone()).or_default();
                recent.retain(|p| *p != participant);
                recent.insert(0, participant);
                recent.truncate(RECENT_SPEAKERS);
                self.events.push_back(Event::DominantSpeaker {
                    room: room.clone(),
                    participant,
                });
            }
        }
    }

    fn send_receiver_reports(&mut self, now: Instant, tx: &mut TxQueue) {
        let mut blocks: Vec<rtcp::ReportBlock> = Vec::new();
        for idx in 0..self.transports.len() {
            let Some(t) = self.transports.get_mut(idx).and_then(Option::as_mut) else {
                continue;
            };
            if t.kind != TransportKind::Publish || !t.is_connected() {
                continue;
            }
            blocks.clear();
            if let Some(p) = self.participants.get(&t.participant) {
                for &ti in &p.published {
                    let Some(track) = self.tracks.get_mut(ti).and_then(Option::as_mut) else {
                        continue;
                    };
                    for layer in &mut track.layers {
                        if let Some(ssrc) = layer.ssrc
                            && let Some(b) = layer.stats.report(ssrc, now)
                        {
                            blocks.push(rtcp::ReportBlock {
                                ssrc: b.ssrc,
                                fraction_lost: b.fraction_lost,
                                cumulative_lost: b.cumulative_lost,
                                highest_seq: b.highest_seq,
                                jitter: b.jitter,
                                lsr: b.lsr,
                                dlsr: b.dlsr,
                            });
                        }
                    }
                }
            }
            if blocks.is_empty() {
                continue;
            }
            let (Some(addr), Some(ctx)) = (t.addr, t.srtp_out.as_mut()) else {
                continue;
            };
            let Some(buf) = tx.buffer() else {
                self.metrics.drop_tx_full.inc();
                continue;
            };
            let Ok(n) = rtcp::write_receiver_report(
                &mut buf[..],
                t.rtcp_ssrc,
                &blocks[..blocks.len().min(31)],
            ) else {
                continue;
            };
            if let Ok(m) = ctx.protect_rtcp(&mut buf[..], n) {
                tx.commit(addr, m);
                self.metrics.tx_rtcp.inc();
            }
        }
    }
}

/// What changes in a packet for one receiver.
#[derive(Debug, Clone, Copy)]
struct OutPacket {
    ssrc: u32,
    pt: u8,
    seq: u16,
    ts: u32,
    /// Transport-wide sequence number.
    twcc: u16,
    /// The VP8 descriptor and its rewritten picture id / TL0PICIDX.
    vp8: Option<(salon_proto::vp8::Vp8Descriptor, vp8::Vp8Out)>,
    /// An RTX packet (RFC 4588): the original sequence number, written
    /// before the payload.
    osn: Option<u16>,
}

impl InTrack {
    /// A layer some live receiver waits to start or switch to, if any.
    fn waiting_layer(&self) -> Option<usize> {
        if self.kind != MediaKind::Video || !self.enabled {
            return None;
        }
        self.legs
            .iter()
            .find(|l| l.live && !l.paused && !l.alloc_paused && l.current != Some(l.target))
            .map(|l| l.target)
    }
}

impl Layer {
    /// Packets arrived within [`LAYER_IDLE`]: the publisher sends it.
    fn is_active(&self, now: Instant) -> bool {
        self.last_packet_at
            .is_some_and(|at| now.saturating_duration_since(at) < LAYER_IDLE)
    }
}

impl Leg {
    /// The RTX stream's SSRC and next sequence number (taken), if the
    /// receiver accepted RTX.
    fn next_rtx(&mut self) -> Option<(u32, u16)> {
        let (ssrc, next) = self.rtx.as_mut()?;
        let seq = *next;
        *next = next.wrapping_add(1);
        Some((*ssrc, seq))
    }

    /// Start forwarding layer `li` from a packet with timestamp `in_ts`. On a
    /// switch (or a resume), numbering continues after the last packet
    /// sent and the timestamps advance by the time that has passed.
    fn switch_to(&mut self, li: usize, in_ts: u32, now: Instant, clock: u32) {
        if let (Some(last), Some(at)) = (self.last_ts_out, self.last_sent_at) {
            self.seq.pause();
            let elapsed = now.saturating_duration_since(at);
            let step = (elapsed.as_micros() * u128::from(clock) / 1_000_000)
                .clamp(1, u128::from(u32::MAX >> 1)) as u32;
            self.ts_offset = last.wrapping_add(step).wrapping_sub(in_ts);
        }
        self.vp8.resync();
        self.current = Some(li);
    }
}

/// Write an RTCP compound for transport `idx` (`write` gets the buffer and
/// the transport's RTCP SSRC, returns the length) into the send queue and
/// encrypt it there. Returns true when it was queued.
fn send_rtcp(
    transports: &mut [Option<Transport>],
    metrics: &Metrics,
    tx: &mut TxQueue,
    idx: usize,
    write: impl FnOnce(&mut [u8], u32) -> Option<usize>,
) -> bool {
    let Some(t) = transports.get_mut(idx).and_then(Option::as_mut) else {
        return false;
    };
    let sender = t.rtcp_ssrc;
    let (Some(addr), Some(ctx)) = (t.addr, t.srtp_out.as_mut()) else {
        return false;
    };
    let Some(buf) = tx.buffer() else {
        metrics.drop_tx_full.inc();
        return false;
    };
    let Some(n) = write(&mut buf[..], sender) else {
        return false;
    };
    match ctx.protect_rtcp(&mut buf[..], n) {
        Ok(len) => {
            tx.commit(addr, len);
            metrics.tx_rtcp.inc();
            true
        }
        Err(_) => false,
    }
}

/// Write one rewritten RTP packet for a receiver into the send queue and
/// encrypt it there. Returns true when it was queued.
#[allow(clippy::too_many_arguments)]
#[inline]
fn send_rtp(
    tx: &mut TxQueue,
    metrics: &Metrics,
    ctx: &mut salon_srtp::SrtpContext,
    addr: SocketAddr,
    out: &OutPacket,
    hdr: &RtpHeader,
    audio_level: Option<u8>,
    payload: &[u8],
) -> bool {
    let Some(buf) = tx.buffer() else {
        metrics.drop_tx_full.inc();
        return false;
    };
    let fields = RtpFields {
        marker: hdr.marker,
        payload_type: out.pt,
        sequence: out.seq,
        timestamp: out.ts,
        ssrc: out.ssrc,
    };
    let twcc = out.twcc.to_be_bytes();
    let level = [audio_level.unwrap_or(0)];
    let both = [
        (OUT_EXT_TRANSPORT_CC, &twcc[..]),
        (OUT_EXT_AUDIO_LEVEL, &level[..]),
    ];
    let exts: &[(u8, &[u8])] = if audio_level.is_some() {
        &both
    } else {
        &both[..1]
    };
    let Ok(mut h) = rtp::write_header(&mut buf[..], &fields, exts) else {
        return false;
    };
    if let Some(osn) = out.osn {
        let Some(o) = buf.get_mut(h..h + 2) else {
            return false;
        };
        o.copy_from_slice(&osn.to_be_bytes());
        h += 2;
    }
    let end = h + payload.len();
    let Some(dst) = buf.get_mut(h..end) else {
        return false;
    };
    dst.copy_from_slice(payload);
    if let Some((d, m)) = &out.vp8 {
        let _ = salon_proto::vp8::set_picture_id(dst, d, m.picture_id);
        if let Some(t) = m.tl0picidx {
            let _ = salon_proto::vp8::set_tl0picidx(dst, d, t);
        }
    }
    match ctx.protect_rtp(&mut buf[..], end) {
        Ok(n) => {
            tx.commit(addr, n);
            metrics.tx_rtp.inc();
            true
        }
        Err(_) => false,
    }
}
