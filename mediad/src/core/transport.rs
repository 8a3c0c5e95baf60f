//! One WebRTC transport (a browser's RTCPeerConnection to mediad): ICE-lite
//! credentials and the latched address, the DTLS server, and the SRTP
//! contexts it yields.
//!
//! States, in order: waiting for an authenticated STUN request (no address),
//! latched (address known, DTLS handshaking), connected (peer certificate
//! matched the SDP fingerprint and SRTP keys exported), failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dimpl::{Dtls, DtlsCertificate, Output};
use salon_io::TxQueue;
use salon_srtp::{SrtpContext, SrtpProfile};

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
}

/// One transport.
pub struct Transport {
    /// Whose.
    pub participant: ParticipantId,
    /// Publish or subscribe.
    pub kind: TransportKind,
    /// Our ICE username fragment.
    pub local_ufrag: String,
    /// Our ICE password (the STUN MESSAGE-INTEGRITY key).
    pub local_pwd: String,
    /// The browser's ufrag, once its SDP is known.
    pub remote_ufrag: Option<String>,
    /// The browser's certificate fingerprint, once its SDP is known.
    pub remote_fingerprint: Option<RemoteFingerprint>,
    /// The latched 5-tuple's remote side.
    pub addr: Option<SocketAddr>,
    /// State.
    pub state: TransportState,
    /// Decrypts what the browser sends.
    pub srtp_in: Option<SrtpContext>,
    /// Encrypts what mediad sends.
    pub srtp_out: Option<SrtpContext>,
    /// SSRC mediad uses as RTCP sender on this transport.
    pub rtcp_ssrc: u32,
    /// Last time anything authenticated arrived.
    pub last_rx: Instant,
    /// Header extension id of `sdes:mid` on this transport (publish side).
    pub mid_ext_id: Option<u8>,
    /// Bandwidth estimate towards this browser (subscribe side), fed by
    /// its transport-wide congestion control feedback.
    pub bwe: Option<Box<crate::bwe::GoogCc>>,
    /// Next transport-wide sequence number mediad sends (unwrapped).
    pub twcc_next: u64,
    /// Whether transport-cc feedback has arrived (until then the estimate
    /// is a guess and the allocator does not limit this receiver).
    pub bwe_fed: bool,
    /// The probe cluster being sent, if any.
    pub probe: Option<ProbeState>,
    /// Header extension id of the transport-wide sequence number the
    /// browser sends (publish side, when negotiated).
    pub twcc_ext_id: Option<u8>,
    /// Arrivals to report to the publisher (publish side).
    pub twcc_rx: Option<Box<super::publish_cc::TwccRecorder>>,
    dtls: Dtls,
    dtls_timeout: Option<Instant>,
    peer_cert_digest: Option<(String, Vec<u8>)>,
    peer_cert: Option<Vec<u8>>,
    keys: Option<(Vec<u8>, dimpl::SrtpProfile)>,
    dtls_connected: bool,
}

/// A probe cluster in progress: padding sent at `cluster.target_bps`.
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
            last_rx: now,
            mid_ext_id: None,
            bwe: (kind == TransportKind::Subscribe)
                .then(|| Box::new(crate::bwe::GoogCc::new(crate::bwe::GoogCcConfig::default()))),
            twcc_next: 1,
            bwe_fed: false,
            probe: None,
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

    /// The next DTLS deadline (retransmission of a flight).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            TransportState::Handshaking => self.dtls_timeout,
            _ => None,
        }
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
        self.last_rx = now;
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
        loop {
            match self.dtls.poll_output(scratch) {
                Output::Packet(p) => {
                    tx.push(addr, p);
                }
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
