//! The sans-IO forwarding core of one mediad worker.
//!
//! A [`Worker`] owns every room pinned to its thread, with their
//! participants, transports and tracks. It is driven by three inputs —
//! [`Worker::handle_command`], [`Worker::handle_datagram`],
//! [`Worker::handle_timeout`] — each taking the current instant from the
//! caller, and produces datagrams (into the caller's [`TxQueue`]), events
//! ([`Worker::poll_event`]) and its next deadline with the reason for it
//! ([`Worker::poll_timeout`]). It never reads the clock, never touches a
//! socket, and its randomness comes from a seed, so tests replay it exactly
//! in virtual time.
//!
//! The worker is a router between units that each own one protocol
//! concern (see "where to change what" in `docs/architecture.md`):
//!
//! | unit | owns |
//! |---|---|
//! | [`ice`] | ICE-lite checks, latching (consent freshness will live here) |
//! | [`transport`] | one peer connection: DTLS, SRTP contexts, SSRC routes, estimator |
//! | [`negotiation`] | SDP offer/answer: publish answers, subscribe offers, m-lines |
//! | [`ingress`] | SRTP/SRTCP in, SSRC learning |
//! | [`forward`] | audio and video legs, the layer selector, egress |
//! | [`rtcp`] | reports both ways, RTCP dispatch, the one `send_rtcp` |
//! | [`keyframe`] | every key frame request (PLI) and its rate limit |
//! | [`nack`] | NACK/RTX both ways |
//! | [`allocation`] | the glue to the allocator ([`crate::alloc`]) |
//! | [`probe`] | bandwidth probes |
//! | [`rooms`], [`moderation`] | joins, leaves, tracks, speakers; moderation |
//!
//! The media path, per incoming SRTP packet, reads as a straight line:
//! demux ([`Worker::handle_datagram`]) → [`ingress`] (transport by source
//! address, decrypt in place once, track by SSRC) → [`forward`] (per
//! receiver: the selector's decision, the rewritten header and the payload
//! written into a pooled send buffer and encrypted there). Nothing on that
//! path allocates.

pub mod allocation;
pub mod deadline;
pub mod forward;
pub mod ice;
pub mod ids;
pub mod ingress;
pub mod keyframe;
pub mod limits;
pub mod moderation;
pub mod nack;
pub mod negotiation;
pub mod pacer;
pub mod participant;
pub mod probe;
pub mod publish_cc;
pub mod rate;
pub mod rewrite;
pub mod rooms;
pub mod rtcp;
pub mod rtx_budget;
pub mod rtx_cache;
pub mod select;
pub mod sent_log;
pub mod speaker;
pub mod stats;
pub mod track;
pub mod transport;
pub mod vp8;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dimpl::DtlsCertificate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use salon_io::TxQueue;
use salon_proto::demux::{PacketKind, classify};

pub use allocation::LAYERS_WANTED_INTERVAL;
pub use deadline::{Deadline, Reason};
pub use limits::{OfferRate, WorkerLimits};

use crate::control::{
    Command, ControlError, Event, ParticipantId, RequestId, RoomId, TransportKind,
};
use crate::metrics::Metrics;
use allocation::AllocScratch;
use ice::IceLite;
use ids::{Table, TrackId, TransportId};
use participant::Participant;
use track::InTrack;
use transport::{DtlsProgress, Transport};

/// Most encodings per track (simulcast uses three).
const MAX_LAYERS: usize = 8;
/// How often the dominant speaker of each room is reconsidered.
const SPEAKER_INTERVAL: Duration = Duration::from_millis(200);
/// How often receiver reports go to publishers.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// How often each receiver's layers are reallocated.
const ALLOC_INTERVAL: Duration = Duration::from_millis(100);
/// Payload types and extension ids of the subscribe offer.
const OUT_PT_OPUS: u8 = salon_sdp::OPUS_PT;
const OUT_PT_VP8: u8 = salon_sdp::VP8_PT;
const OUT_PT_VP8_RTX: u8 = salon_sdp::VP8_RTX_PT;
const OUT_EXT_AUDIO_LEVEL: u8 = salon_sdp::EXT_AUDIO_LEVEL;
const OUT_EXT_TRANSPORT_CC: u8 = salon_sdp::EXT_TRANSPORT_CC;

/// What a worker needs to know about its place.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Addresses announced in candidates (1 to
    /// [`salon_sdp::MAX_CANDIDATE_IPS`]; an IPv4 and an IPv6 one on a
    /// dual-stack socket).
    pub announce_ips: Vec<IpAddr>,
    /// This worker's UDP port.
    pub port: u16,
    /// Addresses TURN servers relay from: a check latched from one counts
    /// as relayed ([`ice`]).
    pub relay_ips: Vec<IpAddr>,
    /// This worker's ICE-TCP port, announced as a passive TCP candidate
    /// (`None`: no TCP listener).
    pub tcp_port: Option<u16>,
    /// The DTLS certificate (shared by all transports of the process).
    pub cert: DtlsCertificate,
    /// SHA-256 fingerprint of `cert`.
    pub fingerprint: Vec<u8>,
    /// DTLS settings.
    pub dtls: Arc<dimpl::Config>,
    /// Seed of the worker's randomness (ICE credentials, SSRCs, SDP
    /// session ids): `None` draws a full seed from the operating system;
    /// tests give one to replay a run exactly.
    pub seed: Option<u64>,
    /// SDP sizes and rates, the memory budget.
    pub limits: WorkerLimits,
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

/// The forwarding core of one worker. See the module documentation.
pub struct Worker {
    cfg: WorkerConfig,
    rng: StdRng,
    epoch: Instant,
    transports: Table<TransportId, Transport>,
    ice: IceLite,
    participants: BTreeMap<ParticipantId, Participant>,
    rooms: BTreeMap<RoomId, Vec<ParticipantId>>,
    tracks: Table<TrackId, InTrack>,
    events: VecDeque<Event>,
    metrics: Arc<Metrics>,
    scratch: Box<[u8; 2048]>,
    next_report: Instant,
    speakers: BTreeMap<RoomId, speaker::DominantSpeaker<ParticipantId>>,
    next_speaker_check: Instant,
    /// Reused for each transport-wide feedback (grows once).
    twcc_results: Vec<crate::bwe::PacketResult>,
    next_alloc: Instant,
    /// Receivers whose constraints, last-N or cap changed since the last
    /// round, allocated at `alloc_soon` (one round for all of them).
    alloc_dirty: BTreeSet<ParticipantId>,
    alloc_soon: Option<Instant>,
    /// Per room, the latest dominant speakers, most recent first.
    recent: BTreeMap<RoomId, Vec<ParticipantId>>,
    /// Reused by each allocation round.
    alloc_scratch: AllocScratch,
    /// The account of the big buffers against the budget.
    memory: limits::MemoryBudget,
    /// TCP connections (stream addresses) to close at the end of this
    /// input: their transport went or lost consent.
    closing: Vec<SocketAddr>,
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
        let rng = match cfg.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let memory = limits::MemoryBudget::new(cfg.limits.memory_budget_bytes, metrics.clone());
        Self {
            rng,
            epoch: now,
            transports: Table::default(),
            ice: IceLite::new(cfg.relay_ips.clone()),
            participants: BTreeMap::new(),
            rooms: BTreeMap::new(),
            tracks: Table::default(),
            events: VecDeque::new(),
            metrics,
            scratch: Box::new([0u8; 2048]),
            next_report: now + REPORT_INTERVAL,
            speakers: BTreeMap::new(),
            next_speaker_check: now + SPEAKER_INTERVAL,
            twcc_results: Vec::with_capacity(1024),
            next_alloc: now + ALLOC_INTERVAL,
            alloc_dirty: BTreeSet::new(),
            alloc_soon: None,
            recent: BTreeMap::new(),
            alloc_scratch: AllocScratch::default(),
            memory,
            closing: Vec::new(),
            cfg,
        }
    }

    /// Hand the connections to close to the driver.
    fn flush_closes(&mut self, tx: &mut TxQueue) {
        for addr in self.closing.drain(..) {
            tx.close(addr);
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

    /// Bytes the worker's big buffers hold, and its budget.
    pub fn memory_use(&self) -> (u64, u64) {
        (self.memory.used(), self.memory.limit())
    }

    /// Number of participants on this worker.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// The next instant [`Worker::handle_timeout`] must run, and why.
    pub fn poll_timeout(&self) -> Option<Deadline> {
        let mut next = deadline::Earliest::default();
        next.offer(Some(self.next_report), Reason::ReceiverReports);
        next.offer(Some(self.next_speaker_check), Reason::DominantSpeaker);
        next.offer(Some(self.next_alloc), Reason::Allocation);
        next.offer(self.alloc_soon, Reason::Allocation);
        for t in self.transports.values() {
            next.offer(t.poll_timeout(), Reason::DtlsRetransmit);
            next.offer(t.probe().map(|p| p.next_at), Reason::Probe);
            next.offer(t.pacer_timeout(), Reason::Pacer);
            next.offer(t.publisher_feedback_at(), Reason::PublisherFeedback);
            next.offer(t.bwe_timeout(), Reason::BandwidthEstimator);
            next.offer(t.consent_expires_at(), Reason::ConsentExpiry);
        }
        for tr in self.tracks.values() {
            tr.keyframe_timeout(self.epoch, &mut next);
        }
        for p in self.participants.values() {
            next.offer(p.sub.poll_timeout(), Reason::OfferUnanswered);
        }
        next.get()
    }

    // ----------------------------------------------------------------- control

    /// Carry out one command from the gateway.
    pub fn handle_command(&mut self, cmd: Command, now: Instant, tx: &mut TxQueue) {
        match cmd {
            Command::Join { room, participant } => self.join(room, participant, now),
            Command::PublishOffer {
                participant,
                request,
                sdp,
            } => self.publish_offer(participant, request, &sdp, now),
            Command::SubscribeAnswer {
                participant,
                request,
                sdp,
            } => self.subscribe_answer(participant, request, &sdp, now, tx),
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
            } => self.set_receive_constraints(participant, publisher, &mid, max_height, now),
            Command::SetAudioOnly {
                participant,
                enabled,
            } => self.set_audio_only(participant, enabled, now, tx),
            Command::SetLastN {
                participant,
                last_n,
            } => self.set_last_n(participant, last_n, now),
            Command::SetBitrateCap { participant, bps } => {
                self.set_bitrate_cap(participant, bps, now)
            }
            Command::RestartIce { participant } => self.restart_subscribe_ice(participant, now),
            Command::Leave { participant } => self.leave(participant, now),
        }
        self.flush_closes(tx);
    }

    /// Tell the gateway a command failed.
    fn error(
        &mut self,
        participant: ParticipantId,
        request: Option<RequestId>,
        error: ControlError,
    ) {
        self.events.push_back(Event::Error {
            participant,
            request,
            error,
        });
    }

    fn random_string(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .filter_map(|_| ALPHABET.get(self.rng.random_range(0..ALPHABET.len())))
            .map(|&b| char::from(b))
            .collect()
    }

    /// Fresh ICE credentials (a ufrag no transport of this worker uses).
    fn fresh_credentials(&mut self) -> transport::IceCredentials {
        let ufrag = loop {
            let u = self.random_string(8);
            if !self.ice.has_ufrag(&u) {
                break u;
            }
        };
        let pwd = self.random_string(24);
        transport::IceCredentials { ufrag, pwd }
    }

    /// New local ICE credentials on transport `idx` (an ICE restart).
    fn restart_ice(&mut self, idx: TransportId) {
        let creds = self.fresh_credentials();
        let Some(t) = self.transports.get_mut(idx) else {
            return;
        };
        let old = t.local_ufrag().to_owned();
        self.ice.rekey(idx, &old, creds.ufrag.clone());
        t.restart_ice(creds);
        self.metrics.ice_restarts.inc();
    }

    /// A new transport for `participant`, with fresh ICE credentials.
    fn new_transport(
        &mut self,
        participant: ParticipantId,
        kind: TransportKind,
        now: Instant,
    ) -> TransportId {
        let transport::IceCredentials { ufrag, pwd } = self.fresh_credentials();
        let rtcp_ssrc = self.rng.random::<u32>() | 1;
        let mut t = Transport::new(
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
        t.set_pacing(self.cfg.limits.pacing);
        let idx = self.transports.insert(t);
        self.ice.register(ufrag, idx);
        idx
    }

    fn remove_transport(&mut self, idx: TransportId) {
        if let Some(t) = self.transports.remove(idx) {
            self.ice.forget(idx, &t, &self.metrics);
            if let Some(a) = t.addr().filter(salon_io::is_stream) {
                self.closing.push(a);
            }
        }
    }

    /// Our side of transport `idx` as SDP needs it.
    fn local_transport(
        &self,
        idx: TransportId,
        version: u64,
        session_id: u64,
    ) -> Option<salon_sdp::LocalTransport> {
        let t = self.transports.get(idx)?;
        Some(salon_sdp::LocalTransport {
            ice_ufrag: t.local_ufrag().to_owned(),
            ice_pwd: salon_sdp::IcePwd::new(t.local_pwd().to_owned()),
            fingerprint: salon_sdp::Fingerprint {
                algorithm: "sha-256".to_owned(),
                bytes: self.cfg.fingerprint.clone(),
            },
            candidate_ips: self.cfg.announce_ips.clone(),
            candidate_port: self.cfg.port,
            tcp_candidate_port: self.cfg.tcp_port,
            session_id,
            session_version: version,
        })
    }

    // ------------------------------------------------------------------ network

    /// Handle one datagram from `src`. `data` is rewritten in place. An
    /// IPv4 peer named v4-mapped (`::ffff:a.b.c.d`, as a dual-stack socket
    /// may) is the same peer as its plain IPv4 address: latched, matched
    /// and answered as that (the drivers already hand over plain ones).
    pub fn handle_datagram(
        &mut self,
        src: SocketAddr,
        data: &mut [u8],
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let src = salon_io::canonical(src);
        self.metrics.rx_datagrams.inc();
        match classify(data) {
            PacketKind::Stun => {
                self.ice
                    .handle_stun(&mut self.transports, src, data, now, tx, &self.metrics)
            }
            PacketKind::Dtls => self.handle_dtls(src, data, now, tx),
            PacketKind::Rtp => self.handle_srtp(src, data, now, tx),
            PacketKind::Rtcp => self.handle_srtcp(src, data, now, tx),
            PacketKind::Unknown => self.metrics.drop_unknown_kind.inc(),
        }
    }

    /// A DTLS record from a latched address.
    fn handle_dtls(&mut self, src: SocketAddr, data: &[u8], now: Instant, tx: &mut TxQueue) {
        self.metrics.rx_dtls.inc();
        let Some(idx) = self.ice.latched(src) else {
            self.metrics.drop_unlatched.inc();
            return;
        };
        let progress = match self.transports.get_mut(idx) {
            Some(t) => t.handle_dtls(data, now, &mut self.scratch[..], tx, &self.metrics),
            None => return,
        };
        self.after_progress(idx, progress, now, tx);
    }

    /// A transport connected or failed.
    fn after_progress(
        &mut self,
        idx: TransportId,
        progress: DtlsProgress,
        now: Instant,
        tx: &mut TxQueue,
    ) {
        let Some(t) = self.transports.get(idx) else {
            return;
        };
        let (participant, kind) = (t.participant(), t.kind());
        match progress {
            DtlsProgress::None => {}
            DtlsProgress::Failed => {
                self.error(participant, None, ControlError::TransportFailed);
            }
            DtlsProgress::Closed => {
                self.metrics.dtls_closed.inc();
                if let Some(a) = t.addr().filter(salon_io::is_stream) {
                    self.closing.push(a);
                }
                tracing::info!(%participant, transport = ?kind, "DTLS closed by the peer");
                self.events.push_back(Event::TransportLost {
                    participant,
                    transport: kind,
                });
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
                        let pending: Vec<TrackId> = self
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

    /// Reallocate `receiver` at the next timer, now: commands that change
    /// what receivers should get (hundreds in one wake-up) coalesce into
    /// one round over those receivers only.
    fn allocate_soon(&mut self, receiver: ParticipantId, now: Instant) {
        self.alloc_dirty.insert(receiver);
        self.alloc_soon = Some(self.alloc_soon.map_or(now, |at| at.min(now)));
    }

    /// Transports whose peer stopped consenting: they stop sending, and the
    /// gateway is told.
    fn check_consent(&mut self, now: Instant) {
        for t in self.transports.values_mut() {
            if t.check_consent(now) {
                self.metrics.consent_lost.inc();
                if let Some(a) = t.addr().filter(salon_io::is_stream) {
                    // Its checks come back on a new connection, if at all.
                    self.closing.push(a);
                }
                tracing::info!(participant = %t.participant(), transport = ?t.kind(), "consent lost");
                self.events.push_back(Event::TransportLost {
                    participant: t.participant(),
                    transport: t.kind(),
                });
            }
        }
    }

    /// Run timers: DTLS retransmissions, estimators, key frame requests,
    /// reports, speakers, allocation, probes, feedback to publishers.
    pub fn handle_timeout(&mut self, now: Instant, tx: &mut TxQueue) {
        for t in self.transports.values_mut() {
            t.release_paced(now, tx);
            t.bwe_handle_timeout(now);
            // A probe proven here (its last packets timed out) is used at
            // the next round.
            probe::note_probe_outcomes(t, &self.metrics);
        }
        for idx in self.transports.handles() {
            let progress = match self.transports.get_mut(idx) {
                Some(t) => t.handle_timeout(now, &mut self.scratch[..], tx, &self.metrics),
                None => continue,
            };
            self.after_progress(idx, progress, now, tx);
        }
        self.check_consent(now);
        self.keyframe_timers(now, tx);
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.send_receiver_reports(now, tx);
            self.size_rtx_caches(REPORT_INTERVAL);
        }
        if now >= self.next_speaker_check {
            self.next_speaker_check = now + SPEAKER_INTERVAL;
            self.update_speakers(now);
        }
        if now >= self.next_alloc {
            // Every receiver, dirty ones included.
            self.next_alloc = now + ALLOC_INTERVAL;
            self.alloc_soon = None;
            self.alloc_dirty.clear();
            self.metrics.alloc_rounds.inc();
            self.allocate(now);
            self.report_wanted_layers(now);
        } else if self.alloc_soon.is_some_and(|at| now >= at) {
            self.alloc_soon = None;
            self.metrics.alloc_rounds.inc();
            self.allocate_dirty(now);
            self.report_wanted_layers(now);
        }
        self.run_probes(now, tx);
        self.expire_offers(now);
        for t in self.transports.values_mut() {
            t.send_publisher_feedback(now, tx, &self.metrics);
        }
        self.flush_closes(tx);
    }

    // ------------------------------------------------------------------ queries

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
            .filter_map(|&ti| self.tracks.get(ti))
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
        let p = self.participants.get(&participant)?;
        self.transports.get(p.subscribe)?.estimate_bps()
    }
}
