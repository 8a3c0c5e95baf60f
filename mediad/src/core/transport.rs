//! One WebRTC transport (a browser's RTCPeerConnection to mediad): ICE-lite
//! credentials and the latched address, the DTLS server, and the SRTP
//! contexts it yields.
//!
//! States, in order: waiting for an authenticated STUN request (no address),
//! latched (address known, DTLS handshaking), connected (peer certificate
//! matched the SDP fingerprint and SRTP keys exported), failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dimpl::{Dtls, DtlsCertificate, Output};
use salon_io::TxQueue;
use salon_srtp::{SrtpContext, SrtpProfile};

use super::ids::{LayerIdx, TrackId};
use super::pacer::{Pacer, Slot};
use super::rtx_budget::{Resend, RetransmitBudget};

/// Without an authenticated STUN request for this long, the peer no longer
/// consents to receive (RFC 7675 §5.1: 30 s): mediad stops sending.
pub const CONSENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
use crate::control::{ParticipantId, TransportKind};
use crate::metrics::Metrics;

/// A certificate fingerprint from SDP (`a=fingerprint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFingerprint {
    /// Hash function name, lower case (`sha-256`).
    pub algorithm: String,
    /// The digest.
    pub bytes: Vec<u8>,
}

/// Our ICE credentials on one transport.
#[derive(Debug, Clone)]
pub struct IceCredentials {
    /// Username fragment.
    pub ufrag: String,
    /// Password (the STUN MESSAGE-INTEGRITY key).
    pub pwd: String,
}

/// Where a transport stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportState {
    /// No authenticated STUN request yet.
    New,
    /// An address is latched; DTLS is under way.
    Handshaking,
    /// DTLS done, fingerprint verified, SRTP ready.
    Connected,
    /// DTLS failed or the certificate did not match; nothing flows.
    Failed,
}

/// What a DTLS step produced that the worker must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsProgress {
    /// Nothing new.
    None,
    /// The transport just became connected.
    Connected,
    /// The transport just failed.
    Failed,
    /// The peer closed its DTLS session (`close_notify`): nothing more is
    /// sent on it.
    Closed,
}

/// Where an SSRC arriving on (or sent on) a transport leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A publisher's media stream: track and layer.
    Track(TrackId, LayerIdx),
    /// A publisher's retransmission stream (RFC 4588): track and layer.
    Rtx(TrackId, LayerIdx),
    /// A stream mediad sends to this subscriber, of that track.
    Out(TrackId),
}

/// One transport. Its state is private: the worker asks.
pub struct Transport {
    participant: ParticipantId,
    kind: TransportKind,
    local_ufrag: String,
    local_pwd: String,
    /// The browser's ufrag, once its SDP is known.
    remote_ufrag: Option<String>,
    remote_fingerprint: Option<RemoteFingerprint>,
    /// The latched 5-tuple's remote side.
    addr: Option<SocketAddr>,
    state: TransportState,
    /// Decrypts what the browser sends.
    srtp_in: Option<SrtpContext>,
    /// Encrypts what mediad sends.
    srtp_out: Option<SrtpContext>,
    /// SSRC mediad uses as RTCP sender on this transport.
    rtcp_ssrc: u32,
    /// Last authenticated STUN request (consent freshness, RFC 7675).
    last_consent: Instant,
    /// No consent for [`CONSENT_TIMEOUT`]: nothing is sent until the next
    /// authenticated request.
    consent_lost: bool,
    /// Last SRTCP packet from the peer (subscribe side: its feedback).
    last_rtcp: Option<Instant>,
    /// NACKed numbers it may still have looked up ([`super::limits::NACK_ITEMS`]).
    nack_items: super::limits::OfferBucket,
    /// SSRC routes: which track and layer each SSRC belongs to.
    routes: Vec<(u32, Route)>,
    /// Header extension id of `sdes:mid` on this transport (publish side).
    mid_ext_id: Option<u8>,
    /// Bandwidth estimate towards this browser (subscribe side), fed by
    /// its transport-wide congestion control feedback.
    bwe: Option<Box<crate::bwe::GoogCc>>,
    /// Next transport-wide sequence number mediad sends (unwrapped).
    twcc_next: u64,
    /// Whether transport-cc feedback has arrived (until then the estimate
    /// is a guess and the allocator does not limit this receiver).
    bwe_fed: bool,
    /// The probe cluster being sent, if any.
    probe: Option<ProbeState>,
    /// A probe raised the estimate without a queue since the last
    /// allocation round.
    probe_proven: bool,
    /// Paces what goes to a receiver ([`super::pacer`]), when `pacing`.
    pacer: Pacer,
    pacing: bool,
    /// The number and size of the packet being held, not yet reported.
    unreported: Option<(u64, usize)>,
    /// Retransmissions towards this browser (subscribe side).
    rtx_budget: RetransmitBudget,
    /// Header extension id of the transport-wide sequence number the
    /// browser sends (publish side, when negotiated).
    twcc_ext_id: Option<u8>,
    /// Arrivals to report to the publisher (publish side).
    twcc_rx: Option<Box<super::publish_cc::TwccRecorder>>,
    dtls: Dtls,
    dtls_timeout: Option<Instant>,
    peer_cert_digest: Option<(String, Vec<u8>)>,
    peer_cert: Option<Vec<u8>>,
    keys: Option<(Vec<u8>, dimpl::SrtpProfile)>,
    dtls_connected: bool,
}

/// A probe cluster in progress: padding sent at `cluster.pace_bps`.
#[derive(Debug, Clone, Copy)]
pub struct ProbeState {
    /// What to send.
    pub cluster: crate::bwe::ProbeCluster,
    /// When it started.
    pub started: Instant,
    /// Packets and bytes sent so far.
    pub packets: u32,
    /// Bytes sent so far.
    pub bytes: usize,
    /// When to send more.
    pub next_at: Instant,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("participant", &self.participant)
            .field("kind", &self.kind)
            .field("state", &self.state)
            .finish()
    }
}

impl Transport {
    /// A new transport with fresh ICE credentials, as DTLS server.
    pub fn new(
        participant: ParticipantId,
        kind: TransportKind,
        ice: IceCredentials,
        rtcp_ssrc: u32,
        dtls_config: Arc<dimpl::Config>,
        cert: DtlsCertificate,
        now: Instant,
    ) -> Self {
        let mut dtls = Dtls::new_auto(dtls_config, cert, now);
        dtls.set_active(false);
        Self {
            participant,
            kind,
            local_ufrag: ice.ufrag,
            local_pwd: ice.pwd,
            remote_ufrag: None,
            remote_fingerprint: None,
            addr: None,
            state: TransportState::New,
            srtp_in: None,
            srtp_out: None,
            rtcp_ssrc,
            last_consent: now,
            consent_lost: false,
            last_rtcp: None,
            nack_items: super::limits::OfferBucket::default(),
            routes: Vec::new(),
            mid_ext_id: None,
            bwe: (kind == TransportKind::Subscribe)
                .then(|| Box::new(crate::bwe::GoogCc::new(crate::bwe::GoogCcConfig::default()))),
            twcc_next: 1,
            bwe_fed: false,
            probe: None,
            probe_proven: false,
            pacer: Pacer::default(),
            pacing: false,
            unreported: None,
            rtx_budget: RetransmitBudget::default(),
            twcc_ext_id: None,
            twcc_rx: (kind == TransportKind::Publish).then(Box::default),
            dtls,
            dtls_timeout: None,
            peer_cert_digest: None,
            peer_cert: None,
            keys: None,
            dtls_connected: false,
        }
    }

    /// Take the next transport-wide sequence number for a packet of `size`
    /// bytes sent now, and tell the estimator.
    pub fn next_twcc(&mut self, size: usize, now: Instant) -> u16 {
        self.next_twcc_in(size, None, now)
    }

    /// Like [`Transport::next_twcc`], for a packet of probe cluster `probe`.
    pub fn next_twcc_in(&mut self, size: usize, probe: Option<u32>, now: Instant) -> u16 {
        let seq = self.twcc_next;
        self.twcc_next += 1;
        if let Some(bwe) = self.bwe.as_mut() {
            use crate::bwe::BandwidthEstimator as _;
            bwe.on_packet_sent(
                crate::bwe::SentPacket {
                    seq,
                    size,
                    probe_cluster: probe,
                },
                now,
            );
        }
        seq as u16
    }

    /// The unwrapped sequence number of a 16-bit one reported in feedback:
    /// the one nearest to what was sent last.
    pub fn unwrap_twcc(&self, seq: u16) -> u64 {
        let last = self.twcc_next.saturating_sub(1);
        let back = u64::from((last as u16).wrapping_sub(seq));
        if back < 0x8000 {
            last.saturating_sub(back)
        } else {
            last + (0x1_0000 - back)
        }
    }

    /// True when media may flow.
    pub fn is_connected(&self) -> bool {
        self.state == TransportState::Connected
    }

    /// Whose transport.
    pub fn participant(&self) -> ParticipantId {
        self.participant
    }

    /// Publish or subscribe.
    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// Our ICE username fragment.
    pub fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    /// Our ICE password (the STUN MESSAGE-INTEGRITY key).
    pub fn local_pwd(&self) -> &str {
        &self.local_pwd
    }

    /// The browser's ufrag, once its SDP is known.
    pub fn remote_ufrag(&self) -> Option<&str> {
        self.remote_ufrag.as_deref()
    }

    /// The latched address, if any.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The SSRC mediad sends RTCP under on this transport.
    pub fn rtcp_ssrc(&self) -> u32 {
        self.rtcp_ssrc
    }

    /// True when mediad can send: an address is latched, SRTP keys are
    /// there, and the peer still consents.
    pub fn can_send(&self) -> bool {
        self.addr.is_some() && self.srtp_out.is_some() && !self.consent_lost
    }

    /// An SRTCP packet arrived: how long the peer had been silent (`None`
    /// for its first).
    pub fn on_rtcp(&mut self, now: Instant) -> Option<Duration> {
        self.last_rtcp
            .replace(now)
            .map(|prev| now.saturating_duration_since(prev))
    }

    /// One NACKed number to look up, within [`super::limits::NACK_ITEMS`].
    pub fn take_nack_item(&mut self, now: Instant) -> bool {
        self.nack_items.take(super::limits::NACK_ITEMS, now)
    }

    /// An authenticated STUN request arrived: the peer consents to receive
    /// (RFC 7675). True when this ends a loss of consent.
    pub fn on_consent(&mut self, now: Instant) -> bool {
        self.last_consent = now;
        std::mem::take(&mut self.consent_lost)
    }

    /// When consent expires, if nothing renews it (once latched).
    pub fn consent_expires_at(&self) -> Option<Instant> {
        (self.addr.is_some() && !self.consent_lost).then_some(self.last_consent + CONSENT_TIMEOUT)
    }

    /// Whether consent expired by `now`; true once, when it does.
    pub fn check_consent(&mut self, now: Instant) -> bool {
        if self.consent_expires_at().is_some_and(|at| now >= at) {
            self.consent_lost = true;
            return true;
        }
        false
    }

    /// Decrypts what the browser sends, once connected.
    pub fn srtp_in(&mut self) -> Option<&mut SrtpContext> {
        self.srtp_in.as_mut()
    }

    /// Where and how to send: the latched address and the outbound SRTP
    /// context, when both exist.
    pub fn sender(&mut self) -> Option<(SocketAddr, &mut SrtpContext)> {
        if self.consent_lost {
            return None;
        }
        Some((self.addr?, self.srtp_out.as_mut()?))
    }

    /// Forget an incoming SSRC's SRTP state (a stream that ended).
    pub fn forget_ssrc_in(&mut self, ssrc: u32) {
        if let Some(ctx) = self.srtp_in.as_mut() {
            ctx.remove_ssrc(ssrc);
        }
    }

    /// Forget an outgoing SSRC's SRTP state (a stream that ended).
    pub fn forget_ssrc_out(&mut self, ssrc: u32) {
        if let Some(ctx) = self.srtp_out.as_mut() {
            ctx.remove_ssrc(ssrc);
        }
    }

    /// Where `ssrc` leads on this transport.
    #[inline]
    pub fn route(&self, ssrc: u32) -> Option<Route> {
        self.routes.iter().find(|(s, _)| *s == ssrc).map(|x| x.1)
    }

    /// The track whose stream mediad sends as `ssrc` here.
    pub fn out_track(&self, ssrc: u32) -> Option<TrackId> {
        match self.route(ssrc)? {
            Route::Out(t) => Some(t),
            Route::Track(..) | Route::Rtx(..) => None,
        }
    }

    /// Route `ssrc` to `route`.
    pub fn add_route(&mut self, ssrc: u32, route: Route) {
        self.routes.push((ssrc, route));
    }

    /// Keep only the routes `keep` accepts.
    pub fn retain_routes(&mut self, mut keep: impl FnMut(u32, Route) -> bool) {
        self.routes.retain(|(s, r)| keep(*s, *r));
    }

    /// Header extension id of `sdes:mid` (publish side).
    pub fn mid_ext_id(&self) -> Option<u8> {
        self.mid_ext_id
    }

    /// Set the `sdes:mid` extension id from the negotiated SDP.
    pub fn set_mid_ext_id(&mut self, id: Option<u8>) {
        self.mid_ext_id = id;
    }

    /// Set the transport-wide sequence number extension id the browser
    /// sends with (publish side).
    pub fn set_twcc_ext_id(&mut self, id: Option<u8>) {
        self.twcc_ext_id = id;
    }

    /// A packet arrived on a publish transport: record its transport-wide
    /// sequence number, if it carries one, for the feedback to the
    /// publisher. `at_us` is the arrival in µs since the worker's epoch.
    #[inline]
    pub fn record_arrival(
        &mut self,
        plain: &[u8],
        hdr: &salon_proto::rtp::RtpHeader,
        at_us: i64,
        now: Instant,
    ) {
        if let (Some(id), Some(rec)) = (self.twcc_ext_id, self.twcc_rx.as_mut())
            && let Some((_, d)) = salon_proto::rtp::extensions(plain, hdr).find(|(i, _)| *i == id)
            && let Some(seq) = salon_proto::twcc::read_transport_seq(d)
        {
            rec.on_packet(seq, hdr.ssrc, at_us, now);
        }
    }

    /// When the next transport-wide feedback to the publisher is due.
    pub fn publisher_feedback_at(&self) -> Option<Instant> {
        self.twcc_rx.as_ref().and_then(|r| r.poll_timeout())
    }

    /// Send the transport-wide feedback to the publisher if it is due.
    pub fn send_publisher_feedback(&mut self, now: Instant, tx: &mut TxQueue, metrics: &Metrics) {
        if self.publisher_feedback_at().is_none_or(|d| d > now) {
            return;
        }
        let (Some(addr), true) = (self.addr, self.is_connected()) else {
            return;
        };
        let ssrc = self.rtcp_ssrc;
        let (Some(rec), Some(ctx)) = (self.twcc_rx.as_mut(), self.srtp_out.as_mut()) else {
            return;
        };
        let Some(buf) = tx.buffer() else {
            metrics.drop_tx_full.inc();
            return;
        };
        let Some(n) = rec.poll_feedback(now, ssrc, &mut buf[..]) else {
            return;
        };
        if let Ok(m) = ctx.protect_rtcp(&mut buf[..], n) {
            tx.commit(addr, m);
            metrics.tx_rtcp.inc();
            metrics.twcc_feedback_sent.inc();
        }
    }

    /// The estimator's current estimate (subscribe side), fed or not.
    pub fn estimate_bps(&self) -> Option<u64> {
        use crate::bwe::BandwidthEstimator as _;
        self.bwe.as_ref().map(|b| b.estimate_bps())
    }

    /// The estimate once transport-cc feedback arrived (before, the
    /// allocator does not limit this receiver).
    pub fn fed_estimate_bps(&self) -> Option<u64> {
        self.estimate_bps().filter(|_| self.bwe_fed)
    }

    /// The round trip to this browser, once feedback measured it.
    pub fn rtt(&self) -> Option<Duration> {
        self.bwe.as_ref().filter(|_| self.bwe_fed).map(|b| b.rtt())
    }

    /// The shortest interval between two retransmissions of one packet:
    /// a round trip (20..500 ms; 100 ms before it is measured).
    pub fn resend_interval(&self) -> Duration {
        self.rtt().map_or(Duration::from_millis(100), |r| {
            r.clamp(Duration::from_millis(20), Duration::from_millis(500))
        })
    }

    /// Whether a retransmission of `bytes` fits the receiver's budget
    /// (spent if so); one of a key frame's packets always does, an upper
    /// temporal layer's only while half the budget's burst is left after
    /// it. Without an estimate yet, it does.
    pub fn spend_retransmit(&mut self, bytes: usize, what: Resend, now: Instant) -> bool {
        let Some(estimate) = self.fed_estimate_bps() else {
            return true;
        };
        let rtt = self.resend_interval();
        self.rtx_budget.spend(bytes, what, now, estimate, rtt)
    }

    /// Whether transport-cc feedback has arrived.
    pub fn bwe_fed(&self) -> bool {
        self.bwe_fed
    }

    /// Feed the estimator one transport-wide feedback's results. False
    /// when this transport has no estimator.
    pub fn on_transport_feedback(
        &mut self,
        results: &[crate::bwe::PacketResult],
        now: Instant,
    ) -> bool {
        use crate::bwe::BandwidthEstimator as _;
        let Some(bwe) = self.bwe.as_mut() else {
            return false;
        };
        bwe.on_feedback(results, now);
        self.bwe_fed = true;
        true
    }

    /// Tell the estimator what the allocator would send if it could.
    pub fn set_wanted_bps(&mut self, bps: u64, now: Instant) {
        use crate::bwe::BandwidthEstimator as _;
        if let Some(bwe) = self.bwe.as_mut() {
            bwe.set_wanted_bps(bps, now);
        }
    }

    /// A probe cluster raised the estimate without building a queue.
    pub fn set_probe_proven(&mut self) {
        self.probe_proven = true;
    }

    /// Whether a probe proved the estimate since the last call (the next
    /// allocation round commits its up-switch without the hold).
    pub fn take_probe_proven(&mut self) -> bool {
        std::mem::take(&mut self.probe_proven)
    }

    /// The receiver is switching layers: no probe before `until`
    /// ([`crate::bwe::BandwidthEstimator::hold_probes`]).
    pub fn hold_probes(&mut self, until: Instant) {
        use crate::bwe::BandwidthEstimator as _;
        if let Some(bwe) = self.bwe.as_mut() {
            bwe.hold_probes(until);
        }
    }

    /// The estimator's own next deadline.
    pub fn bwe_timeout(&self) -> Option<Instant> {
        use crate::bwe::BandwidthEstimator as _;
        self.bwe.as_ref().and_then(|b| b.poll_timeout())
    }

    /// Run the estimator's timer if it is due.
    pub fn bwe_handle_timeout(&mut self, now: Instant) {
        use crate::bwe::BandwidthEstimator as _;
        if let Some(bwe) = self.bwe.as_mut()
            && bwe.poll_timeout().is_some_and(|d| d <= now)
        {
            bwe.handle_timeout(now);
        }
    }

    /// A finished probe cluster's outcome, oldest first.
    pub fn poll_probe_outcome(&mut self) -> Option<crate::bwe::ProbeOutcome> {
        use crate::bwe::BandwidthEstimator as _;
        self.bwe.as_mut().and_then(|b| b.poll_probe_outcome())
    }

    /// The estimator says cluster `cluster` already filled a queue.
    pub fn probe_saturated(&self, cluster: u32) -> bool {
        use crate::bwe::BandwidthEstimator as _;
        self.bwe
            .as_ref()
            .is_some_and(|b| b.probe_saturated(cluster))
    }

    /// The ceiling the estimator holds after a congestion episode.
    pub fn bwe_ceiling_bps(&self) -> Option<u64> {
        self.bwe.as_ref().and_then(|b| b.ceiling_bps())
    }

    /// A probe cluster the estimator wants sent, if any.
    pub fn poll_probe_cluster(&mut self, now: Instant) -> Option<crate::bwe::ProbeCluster> {
        use crate::bwe::BandwidthEstimator as _;
        self.bwe.as_mut().and_then(|b| b.poll_probe(now))
    }

    /// When a packet of `size` bytes to this receiver may leave (and
    /// book it): at the pacing rate of its estimate once feedback came
    /// (before, or on a publish transport, at once). `urgent`: audio.
    pub fn pace(&mut self, size: usize, urgent: bool, now: Instant) -> Slot {
        if !self.pacing {
            return Slot::Now;
        }
        match self.fed_estimate_bps() {
            Some(e) if self.kind == TransportKind::Subscribe => {
                self.pacer.book(size, Pacer::rate_for(e), urgent, now)
            }
            _ => Slot::Now,
        }
    }

    /// Pace this transport's packets or not ([`super::WorkerLimits::pacing`]).
    pub fn set_pacing(&mut self, on: bool) {
        self.pacing = on;
    }

    /// The transport-wide number of a packet of `size` bytes going out
    /// in `slot`: told the estimator now, or — held by the pacer — when
    /// it leaves ([`Transport::hold_packet`], [`Transport::release_paced`]).
    pub fn twcc_for(&mut self, slot: Slot, size: usize, now: Instant) -> u16 {
        match slot {
            Slot::Later(_) => {
                let seq = self.twcc_next;
                self.twcc_next += 1;
                self.unreported = Some((seq, size));
                seq as u16
            }
            Slot::Now | Slot::FlushThenNow => self.next_twcc(size, now),
        }
    }

    /// Tell the estimator of packet `seq` leaving now.
    fn report_sent(bwe: &mut Option<Box<crate::bwe::GoogCc>>, seq: u64, size: usize, now: Instant) {
        if let Some(b) = bwe.as_mut() {
            crate::bwe::BandwidthEstimator::on_packet_sent(
                b.as_mut(),
                crate::bwe::SentPacket {
                    seq,
                    size,
                    probe_cluster: None,
                },
                now,
            );
        }
    }

    /// Hold an encrypted packet until `at` (a slot [`Transport::pace`]
    /// gave; its number from [`Transport::twcc_for`]). False when the
    /// pacer cannot: it is sent now (and reported so).
    pub fn hold_packet(&mut self, at: Instant, dst: SocketAddr, data: &[u8], now: Instant) -> bool {
        let sent = self.unreported.take();
        let held = self.pacer.hold(at, dst, data, sent);
        if !held && let Some((seq, size)) = sent {
            Self::report_sent(&mut self.bwe, seq, size, now);
        }
        held
    }

    /// When the next held packet is due.
    pub fn pacer_timeout(&self) -> Option<Instant> {
        self.pacer.poll_timeout()
    }

    /// Queue everything held now (the pacer gave up: full, or too far
    /// behind); returns how many.
    pub fn flush_paced(&mut self, tx: &mut TxQueue, now: Instant) -> usize {
        let bwe = &mut self.bwe;
        self.pacer
            .flush(tx, &mut |seq, size| Self::report_sent(bwe, seq, size, now))
    }

    /// Queue the held packets due by `now`.
    pub fn release_paced(&mut self, now: Instant, tx: &mut TxQueue) -> usize {
        let bwe = &mut self.bwe;
        self.pacer.release(now, tx, &mut |seq, size| {
            Self::report_sent(bwe, seq, size, now)
        })
    }

    /// The probe cluster being sent.
    pub fn probe(&self) -> Option<ProbeState> {
        self.probe
    }

    /// Set (or end) the probe cluster being sent.
    pub fn set_probe(&mut self, probe: Option<ProbeState>) {
        self.probe = probe;
    }

    /// The next DTLS deadline (retransmission of a flight).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            TransportState::Handshaking => self.dtls_timeout,
            TransportState::New | TransportState::Connected | TransportState::Failed => None,
        }
    }

    /// The browser's certificate fingerprint from its SDP, if known.
    pub fn remote_fingerprint(&self) -> Option<&RemoteFingerprint> {
        self.remote_fingerprint.as_ref()
    }

    /// An ICE restart: our new credentials (the browser's come with its
    /// next SDP). The latched address, DTLS and SRTP stay: a check under
    /// the new credentials latches again, from wherever it comes.
    pub fn restart_ice(&mut self, ice: IceCredentials) {
        self.local_ufrag = ice.ufrag;
        self.local_pwd = ice.pwd;
        self.remote_ufrag = None;
    }

    /// The browser's SDP brought its credentials and fingerprint.
    pub fn set_remote(&mut self, ufrag: String, fingerprint: RemoteFingerprint) -> DtlsProgress {
        self.remote_ufrag = Some(ufrag);
        self.remote_fingerprint = Some(fingerprint);
        // The handshake may have finished before the SDP arrived.
        self.try_complete()
    }

    /// Feed one DTLS datagram from the latched address.
    pub fn handle_dtls(
        &mut self,
        data: &[u8],
        now: Instant,
        scratch: &mut [u8],
        tx: &mut TxQueue,
        metrics: &Metrics,
    ) -> DtlsProgress {
        if matches!(self.state, TransportState::Failed | TransportState::New) {
            return DtlsProgress::None;
        }
        if let Err(e) = self.dtls.handle_packet(data) {
            tracing::debug!(participant = %self.participant, error = %e, "dtls failed");
            metrics.dtls_failed.inc();
            self.state = TransportState::Failed;
            return DtlsProgress::Failed;
        }
        let _ = now;
        self.drain(scratch, tx)
    }

    /// Run DTLS timers.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        scratch: &mut [u8],
        tx: &mut TxQueue,
        metrics: &Metrics,
    ) -> DtlsProgress {
        if self.state != TransportState::Handshaking {
            return DtlsProgress::None;
        }
        match self.dtls_timeout {
            Some(t) if t <= now => {}
            _ => return DtlsProgress::None,
        }
        self.dtls_timeout = None;
        if let Err(e) = self.dtls.handle_timeout(now) {
            tracing::debug!(participant = %self.participant, error = %e, "dtls timed out");
            metrics.dtls_failed.inc();
            self.state = TransportState::Failed;
            return DtlsProgress::Failed;
        }
        self.drain(scratch, tx)
    }

    /// Latch `addr` after an authenticated STUN request. Starts the DTLS
    /// clock on the first latch.
    pub fn latch(&mut self, addr: SocketAddr, now: Instant) {
        self.addr = Some(addr);
        self.last_consent = now;
        self.consent_lost = false;
        if self.state == TransportState::New {
            self.state = TransportState::Handshaking;
            // Arm dimpl's timers from now.
            let _ = self.dtls.handle_timeout(now);
        }
    }

    fn drain(&mut self, scratch: &mut [u8], tx: &mut TxQueue) -> DtlsProgress {
        let Some(addr) = self.addr else {
            return DtlsProgress::None;
        };
        let mut closed = false;
        loop {
            match self.dtls.poll_output(scratch) {
                Output::Packet(p) => {
                    tx.push(addr, p);
                }
                Output::CloseNotify => closed = true,
                Output::Timeout(t) => {
                    self.dtls_timeout = Some(t);
                    break;
                }
                Output::Connected => self.dtls_connected = true,
                Output::PeerCert(der) => self.peer_cert = Some(der.to_vec()),
                Output::KeyingMaterial(km, profile) => self.keys = Some((km.to_vec(), profile)),
                Output::BufferTooSmall { .. } => {
                    // scratch is 2 KiB, larger than dimpl's MTU; cannot happen.
                    break;
                }
                _ => {}
            }
        }
        // The peer closed the session (a page reloaded or left, its
        // connection closed): no more media to it — for the 30 s until its
        // consent lapsed, a reloading page's own download competed with
        // them (36 s for the page behind 400 kbit/s).
        if closed && !self.consent_lost {
            self.consent_lost = true;
            return DtlsProgress::Closed;
        }
        self.try_complete()
    }

    fn try_complete(&mut self) -> DtlsProgress {
        if self.state != TransportState::Handshaking || !self.dtls_connected {
            return DtlsProgress::None;
        }
        let (Some(expected), Some(cert)) = (&self.remote_fingerprint, &self.peer_cert) else {
            return DtlsProgress::None;
        };
        let digest = match self.peer_cert_digest.as_ref() {
            Some((alg, d)) if *alg == expected.algorithm => d.clone(),
            _ => match digest(&expected.algorithm, cert) {
                Some(d) => {
                    self.peer_cert_digest = Some((expected.algorithm.clone(), d.clone()));
                    d
                }
                None => {
                    self.state = TransportState::Failed;
                    return DtlsProgress::Failed;
                }
            },
        };
        if digest != expected.bytes {
            tracing::warn!(participant = %self.participant, "dtls certificate does not match the sdp fingerprint");
            self.state = TransportState::Failed;
            return DtlsProgress::Failed;
        }
        let Some((km, profile)) = self.keys.take() else {
            return DtlsProgress::None;
        };
        let profile = match profile {
            dimpl::SrtpProfile::AES128_CM_SHA1_80 => SrtpProfile::Aes128CmHmacSha1_80,
            dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
            dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
            _ => {
                self.state = TransportState::Failed;
                return DtlsProgress::Failed;
            }
        };
        match salon_srtp::contexts_from_keying_material(profile, &km, false) {
            Ok((inbound, outbound)) => {
                self.srtp_in = Some(inbound);
                self.srtp_out = Some(outbound);
                self.state = TransportState::Connected;
                DtlsProgress::Connected
            }
            Err(e) => {
                tracing::warn!(error = %e, "srtp keys unusable");
                self.state = TransportState::Failed;
                DtlsProgress::Failed
            }
        }
    }
}

/// Digest of a DER certificate with an SDP hash function name.
pub fn digest(algorithm: &str, der: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    let alg = match algorithm {
        "sha-256" => &digest::SHA256,
        "sha-384" => &digest::SHA384,
        "sha-512" => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(alg, der).as_ref().to_vec())
}
