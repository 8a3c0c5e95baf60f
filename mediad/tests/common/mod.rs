//! A simulated browser for deterministic tests of the forwarding core: real
//! ICE (STUN with credentials), a real DTLS client, real SRTP, and a
//! virtual network that carries datagrams between peers and one [`Worker`]
//! in virtual time. No sockets, no clock.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod nack_rx;
pub mod tbf;

pub use nack_rx::Nacker;
pub use tbf::Tbf;

use dimpl::{Dtls, DtlsCertificate, Output};
use salon_io::TxQueue;
use salon_mediad::core::{Worker, WorkerConfig, WorkerLimits};
use salon_mediad::metrics::Metrics;
use salon_mediad::{Command, Event, ParticipantId, RoomId};
use salon_proto::demux::{PacketKind, classify};
use salon_proto::rtp::{RtpFields, RtpHeader};
use salon_proto::{rtp, stun};
use salon_srtp::{SrtpContext, SrtpProfile};

pub const SERVER: &str = "127.0.0.1:10000";

pub fn server_addr() -> SocketAddr {
    SERVER.parse().unwrap()
}

pub fn fingerprint_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One simulated RTCPeerConnection (ICE controlling, DTLS client).
pub struct PeerConn {
    pub addr: SocketAddr,
    pub ufrag: String,
    pub pwd: String,
    pub fingerprint: Vec<u8>,
    pub remote_ufrag: String,
    pub remote_pwd: String,
    dtls: Dtls,
    dtls_started: bool,
    /// Its DTLS session closed ([`PeerConn::close_dtls`]): DTLS records
    /// from mediad are ignored.
    dtls_closed: bool,
    pub connected: bool,
    pub srtp_out: Option<SrtpContext>,
    pub srtp_in: Option<SrtpContext>,
    pub outbox: Vec<Vec<u8>>,
    /// Decrypted RTP packets received.
    pub rtp_in: Vec<Vec<u8>>,
    /// Decrypted RTCP packets received.
    pub rtcp_in: Vec<Vec<u8>>,
    pub stun_ok: u32,
    /// RTP packets (ssrc, seq) the network will lose on the way in, once.
    pub lose: Vec<(u32, u16)>,
    /// Transport-wide sequence numbers received (extension id 3) and when,
    /// in µs since this connection was made; drained by `send_twcc`.
    pub twcc_arrivals: Vec<(u16, i64)>,
    twcc_fb_count: u8,
    epoch: Instant,
    txid: u8,
    /// Send a consent check (RFC 7675) every 5 s once connected, as
    /// browsers do; `false` plays a peer that went away.
    pub consent_checks: bool,
    next_consent: Option<Instant>,
    /// NACK what is lost on these streams, as Chrome does
    /// ([`PeerConn::send_nacks`]).
    pub nackers: Vec<Nacker>,
}

impl PeerConn {
    pub fn new(addr: SocketAddr, tag: &str, cert: DtlsCertificate, now: Instant) -> Self {
        let fingerprint =
            salon_mediad::core::transport::digest("sha-256", &cert.certificate).unwrap();
        let mut dtls = Dtls::new_12(Arc::new(dimpl::Config::default()), cert, now);
        dtls.set_active(true);
        Self {
            addr,
            ufrag: format!("ufrag{tag}"),
            pwd: format!("passwordof{tag}0123456789abcdef"),
            fingerprint,
            remote_ufrag: String::new(),
            remote_pwd: String::new(),
            dtls,
            dtls_started: false,
            dtls_closed: false,
            connected: false,
            srtp_out: None,
            srtp_in: None,
            outbox: Vec::new(),
            rtp_in: Vec::new(),
            rtcp_in: Vec::new(),
            stun_ok: 0,
            lose: Vec::new(),
            twcc_arrivals: Vec::new(),
            twcc_fb_count: 0,
            epoch: now,
            txid: 0,
            consent_checks: true,
            next_consent: None,
            nackers: Vec::new(),
        }
    }

    pub fn set_remote(&mut self, sdp: &str) {
        let d = salon_sdp::parse(sdp).unwrap();
        self.remote_ufrag = d.ice_ufrag.clone();
        self.remote_pwd = d.ice_pwd.as_str().to_owned();
    }

    /// Queue an ICE connectivity check with USE-CANDIDATE.
    pub fn send_check(&mut self) {
        let mut buf = [0u8; 512];
        self.txid = self.txid.wrapping_add(1);
        let txid = [self.txid; 12];
        let username = format!("{}:{}", self.remote_ufrag, self.ufrag);
        let n = stun::write_binding_request(
            &mut buf,
            &txid,
            username.as_bytes(),
            0x6e00_1eff,
            0x1234_5678_9abc_def0,
            true,
            self.remote_pwd.as_bytes(),
        )
        .unwrap();
        self.outbox.push(buf[..n].to_vec());
    }

    pub fn handle(&mut self, data: &mut [u8], now: Instant) {
        match classify(data) {
            PacketKind::Stun => {
                let m = stun::StunMessage::parse(data).unwrap();
                assert!(
                    m.verify_integrity(self.remote_pwd.as_bytes()),
                    "mediad's STUN response authenticates"
                );
                self.stun_ok += 1;
                if !self.dtls_started {
                    self.dtls_started = true;
                    self.dtls.handle_timeout(now).unwrap();
                    self.drain();
                }
            }
            PacketKind::Dtls if self.dtls_closed => {}
            PacketKind::Dtls => {
                self.dtls.handle_packet(data).unwrap();
                self.drain();
            }
            PacketKind::Rtp => {
                if let Ok(h) = RtpHeader::parse(data)
                    && let Some(i) = self.lose.iter().position(|l| *l == (h.ssrc, h.sequence))
                {
                    self.lose.swap_remove(i);
                    return;
                }
                if let Some(ctx) = self.srtp_in.as_mut() {
                    let hdr = RtpHeader::parse(data).map(|h| (h.ssrc, h.sequence, h.timestamp));
                    let n = match ctx.unprotect_rtp(data) {
                        Ok(n) => n,
                        Err(e) => panic!("mediad's SRTP authenticates: {e:?} {hdr:?}"),
                    };
                    let plain = &data[..n];
                    if let Ok(h) = RtpHeader::parse(plain)
                        && let Some((_, d)) = rtp::extensions(plain, &h).find(|(id, _)| *id == 3)
                        && let Some(seq) = salon_proto::twcc::read_transport_seq(d)
                    {
                        let at = now.saturating_duration_since(self.epoch).as_micros() as i64;
                        self.twcc_arrivals.push((seq, at));
                    }
                    if let Ok(h) = RtpHeader::parse(plain) {
                        let p = h.payload(plain);
                        for n in &mut self.nackers {
                            if h.ssrc == n.ssrc && plain[0] & 0x20 == 0 {
                                n.on_packet(h.sequence, false);
                            } else if Some(h.ssrc) == n.rtx_ssrc
                                && plain[0] & 0x20 == 0
                                && p.len() >= 2
                            {
                                n.on_packet(u16::from_be_bytes([p[0], p[1]]), true);
                            }
                        }
                    }
                    self.rtp_in.push(plain.to_vec());
                }
            }
            PacketKind::Rtcp => {
                if let Some(ctx) = self.srtp_in.as_mut() {
                    let n = ctx
                        .unprotect_rtcp(data)
                        .expect("mediad's SRTCP authenticates");
                    self.rtcp_in.push(data[..n].to_vec());
                }
            }
            _ => panic!("unexpected datagram from mediad"),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dtls_started && !self.connected {
            let _ = self.dtls.handle_timeout(now);
            self.drain();
        }
        if self.connected && self.consent_checks {
            match self.next_consent {
                Some(at) if now < at => {}
                Some(_) => {
                    self.send_check();
                    self.next_consent = Some(now + Duration::from_secs(5));
                }
                None => self.next_consent = Some(now + Duration::from_secs(5)),
            }
        }
    }

    /// Close the DTLS session as a browser closing its connection does
    /// (a `close_notify` alert), and stop consent checks.
    pub fn close_dtls(&mut self) {
        self.dtls.close().unwrap();
        self.drain();
        self.dtls_closed = true;
        self.consent_checks = false;
    }

    fn drain(&mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            match self.dtls.poll_output(&mut buf) {
                Output::Packet(p) => self.outbox.push(p.to_vec()),
                Output::Timeout(_) => break,
                Output::Connected => self.connected = true,
                Output::KeyingMaterial(km, profile) => {
                    let profile = match profile {
                        dimpl::SrtpProfile::AES128_CM_SHA1_80 => SrtpProfile::Aes128CmHmacSha1_80,
                        dimpl::SrtpProfile::AEAD_AES_128_GCM => SrtpProfile::AeadAes128Gcm,
                        dimpl::SrtpProfile::AEAD_AES_256_GCM => SrtpProfile::AeadAes256Gcm,
                        _ => panic!("profile"),
                    };
                    let (inbound, outbound) =
                        salon_srtp::contexts_from_keying_material(profile, &km, true).unwrap();
                    self.srtp_in = Some(inbound);
                    self.srtp_out = Some(outbound);
                }
                _ => {}
            }
        }
    }

    /// Queue one SRTP packet.
    pub fn send_rtp(
        &mut self,
        pt: u8,
        seq: u16,
        ts: u32,
        ssrc: u32,
        exts: &[(u8, &[u8])],
        payload: &[u8],
    ) {
        let mut buf = vec![0u8; 1500];
        let fields = RtpFields {
            marker: false,
            payload_type: pt,
            sequence: seq,
            timestamp: ts,
            ssrc,
        };
        let h = rtp::write_header(&mut buf, &fields, exts).unwrap();
        buf[h..h + payload.len()].copy_from_slice(payload);
        let n = self
            .srtp_out
            .as_mut()
            .unwrap()
            .protect_rtp(&mut buf, h + payload.len())
            .unwrap();
        buf.truncate(n);
        self.outbox.push(buf);
    }

    /// Queue one SRTCP packet (plain compound RTCP given).
    pub fn send_rtcp(&mut self, plain: &[u8]) {
        let mut buf = vec![0u8; 1500];
        buf[..plain.len()].copy_from_slice(plain);
        let n = self
            .srtp_out
            .as_mut()
            .unwrap()
            .protect_rtcp(&mut buf, plain.len())
            .unwrap();
        buf.truncate(n);
        self.outbox.push(buf);
    }

    /// Send transport-wide feedback for what arrived since the last one; with
    /// `all_lost`, report every packet in that range as lost.
    pub fn send_twcc(&mut self, all_lost: bool) {
        let mut arrivals = std::mem::take(&mut self.twcc_arrivals);
        if arrivals.is_empty() {
            return;
        }
        arrivals.sort_by_key(|a| a.0);
        let entries: Vec<(u16, Option<i64>)> = arrivals
            .iter()
            .map(|&(seq, at)| (seq, (!all_lost).then_some(at)))
            .collect();
        let mut rest = &entries[..];
        while !rest.is_empty() {
            let mut buf = [0u8; 1200];
            let n = salon_proto::rtcp::write_receiver_report(&mut buf, 1, &[]).unwrap();
            let params = salon_proto::twcc::TwccParams {
                sender_ssrc: 1,
                media_ssrc: 0,
                fb_count: self.twcc_fb_count,
                max_len: 1000,
            };
            self.twcc_fb_count = self.twcc_fb_count.wrapping_add(1);
            let w = salon_proto::twcc::write_feedback(&mut buf[n..], &params, rest).unwrap();
            self.send_rtcp(&buf[..n + w.len]);
            rest = &rest[w.consumed..];
        }
    }

    /// Send the NACKs due now (see [`Nacker`]); how many numbers.
    pub fn send_nacks(&mut self, now: Instant) -> usize {
        let mut total = 0;
        for i in 0..self.nackers.len() {
            let (ssrc, due) = {
                let n = &mut self.nackers[i];
                (n.ssrc, n.due(now))
            };
            total += due.len();
            for chunk in due.chunks(60) {
                let mut buf = [0u8; 1200];
                let n = salon_proto::rtcp::write_nack(&mut buf, 1, ssrc, chunk).unwrap();
                self.send_rtcp(&buf[..n]);
            }
        }
        total
    }

    /// Received RTP headers.
    pub fn received(&self) -> Vec<RtpHeader> {
        self.rtp_in
            .iter()
            .map(|p| RtpHeader::parse(p).unwrap())
            .collect()
    }
}

/// A simulated browser participant: a publish and a subscribe connection.
pub struct Browser {
    pub id: ParticipantId,
    pub room: RoomId,
    pub publish: PeerConn,
    pub subscribe: PeerConn,
    pub audio_ssrc: u32,
    pub video_ssrc: u32,
    pub offers: Vec<String>,
    pub errors: Vec<String>,
    /// Publish VP8 as three simulcast encodings (rids q, h, f).
    pub simulcast: bool,
    /// Accept the RTX streams mediad offers (as Chrome does).
    pub rtx: bool,
    /// Keep subscribe offers unanswered (the test answers, or not).
    pub hold_answers: bool,
}

impl Browser {
    /// Headers of the RTP packets received on the subscribe connection.
    pub fn received(&self) -> Vec<RtpHeader> {
        self.subscribe.received()
    }

    /// Sequence numbers received on `ssrc`, in arrival order.
    pub fn seqs(&self, ssrc: u32) -> Vec<u16> {
        self.received()
            .iter()
            .filter(|h| h.ssrc == ssrc)
            .map(|h| h.sequence)
            .collect()
    }

    /// The SSRC under which the last subscribe offer carries `publisher`'s
    /// active track of `kind`.
    pub fn out_ssrc(&self, publisher: ParticipantId, kind: salon_sdp::MediaKind) -> Option<u32> {
        let o = salon_sdp::parse(self.offers.last()?).ok()?;
        let stream = publisher.0.to_string();
        o.media
            .iter()
            .find(|m| {
                m.port != 0
                    && m.direction != salon_sdp::Direction::Inactive
                    && m.kind == Some(kind)
                    && m.msid.as_ref().is_some_and(|x| x.stream_id == stream)
            })
            .and_then(|m| m.ssrcs.first().copied())
    }
}

/// A publish offer with three VP8 simulcast encodings (rids q, h, f, low to
/// high), as Chrome writes it: no SSRCs, mid and rid header extensions.
pub fn publish_offer_simulcast(b: &PeerConn, audio_ssrc: u32) -> String {
    let offer = publish_offer(b, audio_ssrc, 1);
    let video_at = offer.find("m=video").unwrap();
    let (head, tail) = offer.split_at(video_at);
    let tail: String = tail
        .lines()
        .filter(|l| !l.starts_with("a=ssrc"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let tail = tail.replace(
        "a=sendonly\r\n",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n\
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\na=sendonly\r\n\
a=rid:q send\r\na=rid:h send\r\na=rid:f send\r\na=simulcast:send q;h;f\r\n",
    );
    format!("{head}{tail}")
}

/// The publish offer with the video m-line's direction replaced (e.g.
/// `inactive` when the browser stops sending video).
pub fn publish_offer_video(
    b: &PeerConn,
    audio_ssrc: u32,
    video_ssrc: u32,
    direction: &str,
) -> String {
    let offer = publish_offer(b, audio_ssrc, video_ssrc);
    let video_at = offer.find("m=video").unwrap();
    let (head, tail) = offer.split_at(video_at);
    format!(
        "{head}{}",
        tail.replacen("a=sendonly", &format!("a={direction}"), 1)
    )
}

pub fn publish_offer(b: &PeerConn, audio_ssrc: u32, video_ssrc: u32) -> String {
    let fp = fingerprint_hex(&b.fingerprint);
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\na=msid-semantic: WMS stream\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:0\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
a=sendonly\r\na=msid:stream audio\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:{a} cname:c\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=mid:1\r\na=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendonly\r\na=msid:stream video\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=ssrc-group:FID {v} {vr}\r\na=ssrc:{v} cname:c\r\na=ssrc:{vr} cname:c\r\n",
        u = b.ufrag,
        p = b.pwd,
        a = audio_ssrc,
        v = video_ssrc,
        vr = video_ssrc + 1,
    )
}

/// The browser's answer to mediad's subscribe offer.
pub fn subscribe_answer(b: &PeerConn, offer: &str) -> String {
    answer_with(b, offer, false)
}

/// Like [`subscribe_answer`], keeping the offered VP8 RTX payload type.
pub fn subscribe_answer_rtx(b: &PeerConn, offer: &str) -> String {
    answer_with(b, offer, true)
}

fn answer_with(b: &PeerConn, offer: &str, rtx: bool) -> String {
    let o = salon_sdp::parse(offer).unwrap();
    let fp = fingerprint_hex(&b.fingerprint);
    let mids: Vec<&str> = o.media.iter().map(|m| m.mid.as_str()).collect();
    let mut s = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {}\r\n",
        mids.join(" ")
    );
    for m in &o.media {
        let (kind, codec) = match m.kind {
            Some(salon_sdp::MediaKind::Audio) => ("audio", "111 opus/48000/2"),
            _ => ("video", "96 VP8/90000"),
        };
        let pt = codec.split(' ').next().unwrap();
        let open = m.port != 0;
        let active = open && m.direction != salon_sdp::Direction::Inactive;
        let with_rtx = rtx && kind == "video";
        let pts = if with_rtx {
            format!("{pt} 97")
        } else {
            pt.to_owned()
        };
        let rtx_lines = if with_rtx {
            "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
        } else {
            ""
        };
        s.push_str(&format!(
            "m={kind} {port} UDP/TLS/RTP/SAVPF {pts}\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=fingerprint:sha-256 {fp}\r\na=setup:active\r\na=mid:{mid}\r\na={dir}\r\na=rtcp-mux\r\na=rtpmap:{codec}\r\n{rtx_lines}",
            port = if open { 9 } else { 0 },
            u = b.ufrag,
            p = b.pwd,
            mid = m.mid,
            dir = if active { "recvonly" } else { "inactive" },
        ));
    }
    s
}

/// A simulated one-way link (mediad → one browser address): a drop-tail
/// bottleneck at `capacity_bps` with at most `queue_limit` of queueing
/// delay, then `delay` plus up to `jitter` of propagation (never
/// reordering), and seeded random `loss`.
pub struct Link {
    pub capacity_bps: u64,
    /// A token-bucket bottleneck in place of the drop-tail one (like
    /// `tc qdisc … tbf rate R burst B latency L`); `None`: drop-tail at
    /// `capacity_bps`.
    pub tbf: Option<Tbf>,
    pub delay: Duration,
    pub jitter: Duration,
    pub queue_limit: Duration,
    pub loss: f64,
    rng: u64,
    busy_until: Option<Instant>,
    last_arrival: Option<Instant>,
    queue: std::collections::VecDeque<(Instant, Vec<u8>)>,
    /// Packets dropped by the queue or the random loss.
    pub dropped: u64,
    /// Bytes delivered.
    pub delivered_bytes: u64,
    /// Datagrams that entered the link.
    pub offered: u64,
}

impl Link {
    pub fn new(capacity_bps: u64, delay: Duration, seed: u64) -> Self {
        Self {
            capacity_bps,
            tbf: None,
            delay,
            jitter: Duration::ZERO,
            queue_limit: Duration::from_millis(200),
            loss: 0.0,
            rng: seed | 1,
            busy_until: None,
            last_arrival: None,
            queue: std::collections::VecDeque::new(),
            dropped: 0,
            delivered_bytes: 0,
            offered: 0,
        }
    }

    fn random(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A link shaped by a token bucket (`tbf`), then `delay` of
    /// propagation.
    pub fn tbf(tbf: Tbf, delay: Duration, seed: u64) -> Self {
        let mut l = Self::new(tbf.line_bps, delay, seed);
        l.tbf = Some(tbf);
        l
    }

    /// A datagram enters the link at `now`.
    pub fn send(&mut self, now: Instant, d: Vec<u8>) {
        self.offered += 1;
        if let Some(tbf) = self.tbf.as_mut() {
            let Some(done) = tbf.enqueue(now, d.len() + 28) else {
                self.dropped += 1;
                return;
            };
            return self.propagate(done, d);
        }
        let start = self.busy_until.filter(|b| *b > now).unwrap_or(now);
        if start.saturating_duration_since(now) > self.queue_limit {
            self.dropped += 1;
            return;
        }
        let wire = (d.len() + 28) as u64 * 8;
        let done = start + Duration::from_nanos(wire * 1_000_000_000 / self.capacity_bps.max(1));
        self.busy_until = Some(done);
        self.propagate(done, d);
    }

    /// After the bottleneck: seeded loss, then delay and jitter.
    fn propagate(&mut self, done: Instant, d: Vec<u8>) {
        if self.loss > 0.0 && self.random() < self.loss {
            self.dropped += 1;
            return;
        }
        let jitter = self.jitter.mul_f64(self.random());
        let mut at = done + self.delay + jitter;
        if let Some(last) = self.last_arrival {
            at = at.max(last);
        }
        self.last_arrival = Some(at);
        self.queue.push_back((at, d));
    }

    /// Datagrams that have arrived by `now`, with their arrival instants.
    pub fn arrived(&mut self, now: Instant) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((at, d)) = self.queue.pop_front() {
                self.delivered_bytes += d.len() as u64;
                out.push((at, d));
            }
        }
        out
    }
}

/// The virtual network with one worker.
pub struct Net {
    pub now: Instant,
    pub worker: Worker,
    pub tx: TxQueue,
    pub browsers: Vec<Browser>,
    pub events: Vec<Event>,
    /// Shaped links from mediad to these browser addresses (others are
    /// instantaneous and lossless).
    pub links: HashMap<SocketAddr, Link>,
    /// TCP connections (stream addresses) the worker closed.
    pub closed: Vec<SocketAddr>,
    next_port: u16,
    next_id: u64,
}

impl Net {
    pub fn new(seed: u64) -> Self {
        Self::with_limits(seed, WorkerLimits::default())
    }

    /// A network whose worker has `limits`.
    pub fn with_limits(seed: u64, limits: WorkerLimits) -> Self {
        Self::with_config(seed, |cfg| cfg.limits = limits)
    }

    /// A network whose worker's configuration `tweak` changed.
    pub fn with_config(seed: u64, tweak: impl FnOnce(&mut WorkerConfig)) -> Self {
        let now = Instant::now();
        let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
        let fingerprint =
            salon_mediad::core::transport::digest("sha-256", &cert.certificate).unwrap();
        let cfg = WorkerConfig {
            announce_ips: vec!["127.0.0.1".parse().unwrap()],
            port: 10000,
            relay_ips: Vec::new(),
            tcp_port: Some(10000),
            cert,
            fingerprint,
            dtls: Arc::new(dimpl::Config::default()),
            seed: Some(seed),
            limits: WorkerLimits::default(),
        };
        let mut cfg = cfg;
        tweak(&mut cfg);
        Self {
            now,
            worker: Worker::new(cfg, Arc::new(Metrics::default()), now),
            tx: TxQueue::with_capacity(salon_io::TX_QUEUE_CAPACITY),
            browsers: Vec::new(),
            events: Vec::new(),
            links: HashMap::new(),
            closed: Vec::new(),
            next_port: 40000,
            next_id: 1,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        self.worker.metrics()
    }

    pub fn command(&mut self, cmd: Command) {
        self.worker.handle_command(cmd, self.now, &mut self.tx);
        self.pump();
    }

    /// Add a browser to `room`, publish audio+video, and connect both transports.
    pub fn join(&mut self, room: &str) -> usize {
        self.join_with(room, |_| {})
    }

    /// Like [`Net::join`], letting `tweak` change the browser before it offers.
    pub fn join_with(&mut self, room: &str, tweak: impl FnOnce(&mut Browser)) -> usize {
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let cert = dimpl::certificate::generate_self_signed_certificate().unwrap();
        let pa: SocketAddr = format!("127.0.0.2:{}", self.next_port).parse().unwrap();
        let sa: SocketAddr = format!("127.0.0.2:{}", self.next_port + 1).parse().unwrap();
        self.next_port += 2;
        let b = Browser {
            id,
            room: RoomId(room.to_owned()),
            publish: PeerConn::new(pa, &format!("{}p", id.0), cert.clone(), self.now),
            subscribe: PeerConn::new(sa, &format!("{}s", id.0), cert, self.now),
            audio_ssrc: 1000 * id.0 as u32,
            video_ssrc: 1000 * id.0 as u32 + 10,
            offers: Vec::new(),
            errors: Vec::new(),
            simulcast: false,
            rtx: false,
            hold_answers: false,
        };
        let i = self.browsers.len();
        let mut b = b;
        tweak(&mut b);
        self.browsers.push(b);
        self.command(Command::Join {
            room: RoomId(room.to_owned()),
            participant: id,
        });
        let offer = {
            let b = &self.browsers[i];
            if b.simulcast {
                publish_offer_simulcast(&b.publish, b.audio_ssrc)
            } else {
                publish_offer(&b.publish, b.audio_ssrc, b.video_ssrc)
            }
        };
        self.command(Command::PublishOffer {
            participant: id,
            request: salon_mediad::RequestId::default(),
            sdp: offer,
        });
        self.settle(Duration::from_millis(300));
        i
    }

    /// Route events to browsers (answers, offers).
    pub fn pump(&mut self) {
        while let Some(e) = self.worker.poll_event() {
            self.events.push(e.clone());
            match e {
                Event::PublishAnswer {
                    participant, sdp, ..
                } => {
                    let b = self.browser_mut(participant);
                    b.publish.set_remote(&sdp);
                    b.publish.send_check();
                }
                Event::SubscribeOffer { participant, sdp } => {
                    let b = self.browser_mut(participant);
                    b.offers.push(sdp.clone());
                    if b.hold_answers {
                        continue;
                    }
                    let first = b.subscribe.remote_ufrag.is_empty();
                    b.subscribe.set_remote(&sdp);
                    let answer = if b.rtx {
                        subscribe_answer_rtx(&b.subscribe, &sdp)
                    } else {
                        subscribe_answer(&b.subscribe, &sdp)
                    };
                    if first {
                        b.subscribe.send_check();
                    }
                    self.worker.handle_command(
                        Command::SubscribeAnswer {
                            participant,
                            request: salon_mediad::RequestId::default(),
                            sdp: answer,
                        },
                        self.now,
                        &mut self.tx,
                    );
                }
                Event::Error {
                    participant, error, ..
                } => {
                    if let Some(b) = self.browsers.iter_mut().find(|b| b.id == participant) {
                        b.errors.push(error.to_string());
                    }
                }
                _ => {}
            }
        }
    }

    pub fn browser_mut(&mut self, id: ParticipantId) -> &mut Browser {
        self.browsers.iter_mut().find(|b| b.id == id).unwrap()
    }

    /// Deliver everything in flight until quiet (bounded).
    pub fn deliver(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            let now = self.now;
            // Peers → mediad.
            let mut inbound: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            for b in &mut self.browsers {
                for c in [&mut b.publish, &mut b.subscribe] {
                    for d in c.outbox.drain(..) {
                        inbound.push((c.addr, d));
                    }
                }
            }
            // mediad → peers (sent early once the queue is half full, as
            // the drivers do).
            let mut outbound: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
            for (src, mut d) in inbound {
                moved = true;
                if self.tx.len() >= salon_io::TX_FLUSH_AT {
                    self.closed.extend_from_slice(self.tx.closes());
                    self.tx
                        .drain(|t| outbound.push((t.dst, t.buf[..t.len].to_vec())));
                }
                self.worker.handle_datagram(src, &mut d, now, &mut self.tx);
            }
            self.pump();
            self.closed.extend_from_slice(self.tx.closes());
            self.tx
                .drain(|t| outbound.push((t.dst, t.buf[..t.len].to_vec())));
            for (dst, mut d) in outbound {
                moved = true;
                if let Some(link) = self.links.get_mut(&dst) {
                    link.send(now, d);
                } else if let Some(c) = self.conn_mut(dst) {
                    c.handle(&mut d, now);
                }
            }
            // Shaped links: what has arrived by now, at its arrival time.
            let addrs: Vec<SocketAddr> = self.links.keys().copied().collect();
            for dst in addrs {
                let arrived = self.links.get_mut(&dst).map(|l| l.arrived(now));
                for (at, mut d) in arrived.into_iter().flatten() {
                    if let Some(c) = self.conn_mut(dst) {
                        c.handle(&mut d, at);
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// The connection at `addr`; a v4-mapped address and its plain IPv4
    /// one are the same (as on a dual-stack socket).
    pub fn conn_mut(&mut self, addr: SocketAddr) -> Option<&mut PeerConn> {
        let addr = salon_io::canonical(addr);
        self.browsers.iter_mut().find_map(|b| {
            if salon_io::canonical(b.publish.addr) == addr {
                Some(&mut b.publish)
            } else if salon_io::canonical(b.subscribe.addr) == addr {
                Some(&mut b.subscribe)
            } else {
                None
            }
        })
    }

    /// Advance virtual time by `d` in 10 ms steps, running timers.
    pub fn settle(&mut self, d: Duration) {
        let end = self.now + d;
        self.deliver();
        while self.now < end {
            self.now += Duration::from_millis(10);
            let now = self.now;
            if self.worker.poll_timeout().is_some_and(|d| d.at <= now) {
                self.worker.handle_timeout(now, &mut self.tx);
                self.pump();
            }
            for b in &mut self.browsers {
                b.publish.handle_timeout(now);
                b.subscribe.handle_timeout(now);
            }
            self.deliver();
        }
    }

    /// `rounds` rounds of [`Net::send_media`] from sequence number
    /// `from_seq`, 20 ms apart.
    pub fn run_media(&mut self, from_seq: u16, rounds: u16) {
        for s in from_seq..from_seq + rounds {
            self.send_media(s);
            self.settle(Duration::from_millis(20));
        }
    }

    /// Audio packets browser `to` received from browser `from` (under the
    /// SSRC its last offer gave `from`'s audio).
    pub fn audio_received(&self, to: usize, from: usize) -> usize {
        let b = &self.browsers[to];
        let audio = b
            .out_ssrc(self.browsers[from].id, salon_sdp::MediaKind::Audio)
            .unwrap();
        b.received().iter().filter(|h| h.ssrc == audio).count()
    }

    /// Every browser sends one audio packet and one VP8 key-frame packet.
    pub fn send_media(&mut self, seq: u16) {
        for b in &mut self.browsers {
            if !b.publish.connected || b.publish.srtp_out.is_none() {
                continue;
            }
            let level = [0x80u8 | 30];
            b.publish.send_rtp(
                111,
                seq,
                u32::from(seq) * 960,
                b.audio_ssrc,
                &[(1, &level[..])],
                b"opus-frame-bytes",
            );
            // VP8: S=1 PID=0, P=0 (key frame) on even sequence numbers.
            let vp8 = [
                0x10u8,
                if seq.is_multiple_of(2) { 0x00 } else { 0x01 },
                0x42,
                0x42,
            ];
            b.publish
                .send_rtp(96, seq, u32::from(seq) * 3000, b.video_ssrc, &[], &vp8);
        }
    }
}
