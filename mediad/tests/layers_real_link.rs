//! Layer selection on a real constrained link (issue 17), in virtual time.
//!
//! The viewer's downlink is a token bucket like `tc … tbf rate R burst B
//! latency 50ms` (`common::Tbf`: bursts pass at line rate, then the rate;
//! tail drop past the latency), the viewer NACKs what it lost as Chrome
//! does (`common::Nacker`: at once, then once per round trip, ten times at
//! most) and sends transport-cc feedback every 50 ms. The publisher sends
//! Chrome's camera simulcast: 180p/360p/720p at 150 k/500 k/1.5 Mbit/s,
//! 30 fps, L1T3 with libwebrtc's temporal split (TID 0 carries 40 % of
//! the bits, TIDs 0–1 60 %), key frames every 3 s and on PLI.
//!
//! What the viewer decodes is modelled: a frame is decodable once all its
//! packets arrived (retransmissions included) and every TID 0 frame since
//! the last key frame was complete; frames decode in order.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    clippy::needless_range_loop,
    missing_docs
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{Link, Nacker, Net, Tbf};
use salon_proto::rtcp::{RtcpIter, RtcpPacket};
use salon_proto::rtp::RtpHeader;

const RIDS: [&[u8]; 3] = [b"q", b"h", b"f"];
const HEIGHTS: [u16; 3] = [180, 360, 720];
const CAMERA_BPS: [u64; 3] = [150_000, 500_000, 1_500_000];
const FPS: u32 = 30;
const PACKET: usize = 1100;
/// Frame size per TID in the L1T3 pattern 0 2 1 2, as a multiple of the
/// average: TID 0 40 % of the bits, TID 1 20 %, TID 2 40 % (libwebrtc's
/// `kLayerRateAllocation` for three temporal layers: 0.4 / 0.6 / 1.0).
const TID_SIZE: [f64; 3] = [1.6, 0.8, 0.8];

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

/// Chrome's camera encoder: three simulcast encodings, three temporal
/// layers each. Every packet's payload ends with (key, index, packets,
/// layer) so the viewer can tell complete frames.
struct Encoder {
    browser: usize,
    ssrcs: [u32; 3],
    seq: [u16; 3],
    key: [bool; 3],
    pic: [u16; 3],
    tl0: [u8; 3],
    frame: u32,
    rtcp_seen: usize,
    /// Packets sent per layer.
    sent: [u64; 3],
    /// The frame at which the last PLI was acted on.
    pli_at: Option<u32>,
    /// Drop a PLI within 300 ms of the last one acted on, as Chrome does.
    chrome_pli: bool,
    /// A key frame on every layer every this many frames, unasked.
    key_every: Option<u32>,
    /// Bit/s per layer.
    bps: [u64; 3],
}

/// How the simulated publisher answers key frame requests and how often it
/// sends key frames unasked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// Every PLI acted on, and a key frame on every layer every 3 s: harder
    /// than Chrome (the cases written first).
    Harsh,
    /// Chrome's PLI rule (one per 300 ms for all layers), key frames every
    /// 3 s still.
    ChromePli,
    /// Chrome as it behaves: the sender's PLI rule, no key frame
    /// unasked within a run, and a receiver that asks for one after 3 s
    /// without a decodable frame ([`FREEZE_PLI`]) (libwebrtc's VP8 `keyFrameInterval` is 3000
    /// frames, 100 s at 30 fps; a Chromium publisher here encoded 700
    /// frames of 180p over 35 s without one).
    Chrome,
    /// Chrome, with the rates of Chromium's fake camera in the browser
    /// test ([`FAKE_CAMERA_BPS`]): its 720p passes an 800 kbit/s bucket
    /// without loss or a growing delay, but with no room for the margin.
    FakeCamera,
}

/// What Chromium's fake camera sends per layer in `real-link.test.mjs`
/// (its 720p settles at ~700 kbit/s under a 1.5 Mbit/s target).
const FAKE_CAMERA_BPS: [u64; 3] = [150_000, 330_000, 700_000];

/// Chrome acts on one PLI per 300 ms, by arrival time; PLIs are taken
/// here at the next frame (33 ms), so two that arrived 300 ms apart may be
/// taken 8 frames apart.
const PLI_INTERVAL_FRAMES: u32 = 8;

impl Encoder {
    fn camera(net: &Net, browser: usize) -> Self {
        let base = 7000 + 10 * browser as u32;
        Self {
            browser,
            ssrcs: [base + 1, base + 2, base + 3],
            seq: [1; 3],
            key: [true; 3],
            pic: [100, 12_000, 32_700],
            tl0: [0, 100, 250],
            frame: 0,
            rtcp_seen: net.browsers[browser].publish.rtcp_in.len(),
            sent: [0; 3],
            pli_at: None,
            chrome_pli: false,
            key_every: Some(3 * FPS),
            bps: CAMERA_BPS,
        }
    }

    fn send_frame(&mut self, net: &mut Net) {
        let b = &mut net.browsers[self.browser];
        for p in &b.publish.rtcp_in[self.rtcp_seen..] {
            for pkt in RtcpIter::new(p).filter_map(Result::ok) {
                // With `chrome_pli`, as Chrome's sender (libwebrtc
                // `EncoderRtcpFeedback`): a PLI within 300 ms of the last
                // one acted on, for any layer, is dropped.
                if let RtcpPacket::Pli(pli) = pkt
                    && let Some(i) = self.ssrcs.iter().position(|s| *s == pli.media_ssrc)
                    && (!self.chrome_pli
                        || self
                            .pli_at
                            .is_none_or(|f| self.frame >= f + PLI_INTERVAL_FRAMES))
                {
                    self.key[i] = true;
                    self.pli_at = Some(self.frame);
                }
            }
        }
        self.rtcp_seen = b.publish.rtcp_in.len();
        if self.frame == 0 || self.key_every.is_some_and(|k| self.frame.is_multiple_of(k)) {
            self.key = [true; 3];
        }
        let ts = self.frame * (90_000 / FPS);
        let (tid, sync) = match self.frame % 4 {
            0 => (0u8, false),
            1 => (2, true),
            2 => (1, true),
            _ => (2, false),
        };
        for i in 0..3 {
            let key = std::mem::take(&mut self.key[i]);
            let avg = self.bps[i] as f64 / 8.0 / f64::from(FPS);
            let bytes = (avg * if key { 3.0 } else { TID_SIZE[usize::from(tid)] }) as usize;
            let packets = bytes.div_ceil(PACKET).max(1);
            let pic = self.pic[i];
            self.pic[i] = (pic + 1) & 0x7fff;
            if tid == 0 {
                self.tl0[i] = self.tl0[i].wrapping_add(1);
            }
            let tid = if key { 0 } else { tid };
            for k in 0..packets {
                let mut vp8 = vec![
                    if k == 0 { 0x90u8 } else { 0x80 },
                    0xe0,
                    0x80 | (pic >> 8) as u8,
                    pic as u8,
                    self.tl0[i],
                    tid << 6 | u8::from(sync) << 5,
                ];
                if k == 0 && key {
                    vp8.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
                    vp8.extend_from_slice(&(HEIGHTS[i] * 16 / 9).to_le_bytes());
                    vp8.extend_from_slice(&HEIGHTS[i].to_le_bytes());
                } else if k == 0 {
                    vp8.extend_from_slice(&[0x01, 0x00, 0x00]);
                }
                vp8.resize((bytes / packets).max(vp8.len() + 4), 0x42);
                let n = vp8.len();
                vp8[n - 4..].copy_from_slice(&[u8::from(key), k as u8, packets as u8, i as u8]);
                let rid = [(4u8, &b"1"[..]), (10u8, RIDS[i])];
                let seq = self.seq[i];
                self.seq[i] = seq.wrapping_add(1);
                b.publish.send_rtp(96, seq, ts, self.ssrcs[i], &rid, &vp8);
                self.sent[i] += 1;
            }
        }
        self.frame += 1;
    }
}

#[derive(Debug, Clone)]
struct Frame {
    layer: u8,
    tid: u8,
    key: bool,
    packets: u8,
    got: BTreeSet<u8>,
    complete_at: Option<Duration>,
}

/// A decoded frame: when, of which layer and TID, whether a key frame.
#[derive(Debug, Clone, Copy)]
struct Decoded {
    at: Duration,
    layer: u8,
    tid: u8,
    key: bool,
}

/// What the viewer receives of the video, media and RTX.
struct Watch {
    ssrc: u32,
    rtx: Option<u32>,
    seen: usize,
    frames: BTreeMap<i64, Frame>,
    ts_base: Option<u32>,
    /// (arrival, bytes) of every video packet, retransmissions flagged.
    bytes: Vec<(Duration, usize, bool)>,
    /// (arrival, unwrapped sequence number) of media packets, first
    /// transmissions only: what the browser counts as lost is the rest.
    seqs: Vec<(Duration, i64)>,
}

impl Watch {
    fn on_packet(&mut self, t: Duration, ts: u32, payload: &[u8]) {
        if payload.len() < 4 {
            return;
        }
        let m = &payload[payload.len() - 4..];
        let base = *self.ts_base.get_or_insert(ts);
        let key = i64::from(ts.wrapping_sub(base) as i32);
        let d = salon_proto::vp8::Vp8Descriptor::parse(payload).unwrap();
        let f = self.frames.entry(key).or_insert_with(|| Frame {
            layer: m[3],
            tid: d.tid.unwrap_or(0),
            key: m[0] == 1,
            packets: m[2],
            got: BTreeSet::new(),
            complete_at: None,
        });
        f.got.insert(m[1]);
        if f.complete_at.is_none() && f.got.len() >= usize::from(f.packets) {
            f.complete_at = Some(t);
        }
    }

    fn update(&mut self, net: &Net, viewer: usize, t: Duration) {
        let rx = &net.browsers[viewer].subscribe.rtp_in;
        for p in &rx[self.seen..] {
            let h = RtpHeader::parse(p).unwrap();
            let padding = p[0] & 0x20 != 0;
            if h.ssrc == self.ssrc && !padding {
                self.bytes.push((t, p.len(), false));
                let q = match self.seqs.last() {
                    Some(&(_, last)) => {
                        last + i64::from(h.sequence.wrapping_sub(last as u16) as i16)
                    }
                    None => i64::from(h.sequence),
                };
                self.seqs.push((t, q));
                self.on_packet(t, h.timestamp, h.payload(p));
            } else if Some(h.ssrc) == self.rtx && !padding && h.payload(p).len() > 2 {
                self.bytes.push((t, p.len(), true));
                self.on_packet(t, h.timestamp, &h.payload(p)[2..]);
            }
        }
        self.seen = rx.len();
    }

    /// The frames the viewer decodes, in order.
    fn decoded(&self) -> Vec<Decoded> {
        let mut out: Vec<Decoded> = Vec::new();
        let mut chain = false;
        let mut last = Duration::ZERO;
        for f in self.frames.values() {
            let Some(done) = f.complete_at else {
                if f.tid == 0 {
                    chain = false;
                }
                continue;
            };
            if f.key {
                chain = true;
            }
            if !chain {
                continue;
            }
            last = last.max(done);
            out.push(Decoded {
                at: last,
                layer: f.layer,
                tid: f.tid,
                key: f.key,
            });
        }
        out.sort_by_key(|d| d.at);
        out
    }
}

/// Longest time without a decoded frame in `[from, to]`.
fn max_gap(d: &[Decoded], from: Duration, to: Duration) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for f in d.iter().filter(|f| f.at >= from && f.at <= to) {
        gap = gap.max(f.at - last);
        last = f.at;
    }
    gap.max(to.saturating_sub(last))
}

fn switches(d: &[Decoded], from: Duration, to: Duration) -> usize {
    let l: Vec<u8> = d
        .iter()
        .filter(|f| f.at >= from && f.at <= to)
        .map(|f| f.layer)
        .collect();
    l.windows(2).filter(|w| w[0] != w[1]).count()
}

/// The figures of one phase, for `docs/layers.md`.
struct Figures {
    /// Share of decoded frames per layer.
    shares: [f64; 3],
    fps: f64,
    kbps: f64,
    /// Media packets lost on the link (before any retransmission), as a
    /// share of those sent: the browser's `packetsLost`.
    loss: f64,
    /// Every packet dropped on the link (probe padding included).
    link_loss: f64,
    gap: Duration,
    switches: usize,
    rtx_share: f64,
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "layers 180p/360p/720p {:.0}/{:.0}/{:.0} %, {:.1} fps, {:.0} kbit/s, media loss {:.1} % (link {:.1} %), longest gap {} ms, {} switches, retransmissions {:.1} %",
            100.0 * self.shares[0],
            100.0 * self.shares[1],
            100.0 * self.shares[2],
            self.fps,
            self.kbps,
            100.0 * self.loss,
            100.0 * self.link_loss,
            self.gap.as_millis(),
            self.switches,
            100.0 * self.rtx_share
        )
    }
}

struct Sim {
    net: Net,
    enc: Encoder,
    viewer: usize,
    w: Watch,
    t: Duration,
    next_frame: Duration,
    next_feedback: Duration,
    /// Link counters at each `mark`: (t, offered, dropped).
    marks: Vec<(Duration, u64, u64)>,
    /// The viewer asks for a key frame when nothing decoded for
    /// [`FREEZE_PLI`], as Chrome's receiver does.
    freeze_pli: bool,
    /// When the viewer last sent such a PLI.
    last_pli: Option<Duration>,
    /// When the viewer next looks whether it is frozen (every 100 ms).
    next_freeze_check: Duration,
    /// PLIs the viewer sent.
    plis: u32,
}

/// Chrome's receiver asks for a key frame when no frame became decodable
/// for 3 s (libwebrtc `VideoReceiveStream2`, `kMaxWaitForFrame`); here
/// again every 3 s while it lasts.
const FREEZE_PLI: Duration = Duration::from_secs(3);

impl Sim {
    fn new(seed: u64, rate_bps: u64, burst: usize, paced: bool) -> Self {
        let limits = salon_mediad::WorkerLimits {
            pacing: paced,
            ..salon_mediad::WorkerLimits::default()
        };
        let mut net = Net::with_limits(seed, limits);
        let publisher = net.join_with("Salle", |b| b.simulcast = true);
        let viewer = net.join_with("Salle", |b| b.rtx = true);
        net.settle(Duration::from_millis(500));
        let enc = Encoder::camera(&net, publisher);
        let pid = net.browsers[publisher].id;
        let offer = salon_sdp::parse(net.browsers[viewer].offers.last().unwrap()).unwrap();
        let m = offer
            .media
            .iter()
            .find(|m| {
                m.kind == Some(salon_sdp::MediaKind::Video)
                    && m.msid
                        .as_ref()
                        .is_some_and(|x| x.stream_id == pid.0.to_string())
            })
            .unwrap();
        let ssrc = m.ssrcs[0];
        let rtx = m
            .ssrc_groups
            .iter()
            .find(|g| g.semantics == "FID")
            .and_then(|g| g.ssrcs.get(1).copied());
        assert!(rtx.is_some(), "an RTX stream is offered");
        let sub = &mut net.browsers[viewer].subscribe;
        sub.nackers
            .push(Nacker::new(ssrc, rtx, Duration::from_millis(60)));
        let seen = sub.rtp_in.len();
        let addr = sub.addr;
        let tbf = Tbf::new(rate_bps, burst, Duration::from_millis(50));
        net.links
            .insert(addr, Link::tbf(tbf, Duration::from_millis(20), seed));
        Self {
            net,
            enc,
            viewer,
            w: Watch {
                ssrc,
                rtx,
                seen,
                frames: BTreeMap::new(),
                ts_base: None,
                bytes: Vec::new(),
                seqs: Vec::new(),
            },
            t: Duration::ZERO,
            next_frame: Duration::ZERO,
            next_feedback: Duration::ZERO,
            marks: Vec::new(),
            freeze_pli: false,
            last_pli: None,
            next_freeze_check: Duration::ZERO,
            plis: 0,
        }
    }

    /// Chrome's receiver: a PLI when nothing decoded for [`FREEZE_PLI`].
    fn pli_if_frozen(&mut self) {
        let last = self.w.decoded().last().map_or(Duration::ZERO, |f| f.at);
        let since = last.max(self.last_pli.unwrap_or(Duration::ZERO));
        if self.t.saturating_sub(since) < FREEZE_PLI {
            return;
        }
        self.last_pli = Some(self.t);
        self.plis += 1;
        let mut buf = [0u8; 100];
        let n = salon_proto::rtcp::write_receiver_report(&mut buf, 1, &[]).unwrap();
        let m = salon_proto::rtcp::write_pli(&mut buf[n..], 1, self.w.ssrc).unwrap();
        self.net.browsers[self.viewer]
            .subscribe
            .send_rtcp(&buf[..n + m]);
    }

    fn link(&mut self) -> &mut Link {
        let addr = self.net.browsers[self.viewer].subscribe.addr;
        self.net.links.get_mut(&addr).unwrap()
    }

    fn set_rate(&mut self, rate: Option<u64>) {
        let now = self.net.now;
        self.link().tbf.as_mut().unwrap().set_rate(rate, now);
        self.mark();
    }

    fn mark(&mut self) {
        let t = self.t;
        let l = self.link();
        let (o, d) = (l.offered, l.dropped);
        self.marks.push((t, o, d));
    }

    fn estimate(&self) -> u64 {
        let id = self.net.browsers[self.viewer].id;
        self.net.worker.estimate_bps(id).unwrap_or(0)
    }

    fn run(&mut self, d: Duration) {
        let end = self.t + d;
        let step = Duration::from_millis(5);
        let trace = std::env::var_os("SIM_TRACE").is_some();
        let mut next_trace = self.t;
        while self.t < end {
            if self.t >= self.next_frame {
                self.next_frame += Duration::from_micros(1_000_000 / u64::from(FPS));
                self.enc.send_frame(&mut self.net);
            }
            if self.t >= self.next_feedback {
                self.next_feedback += Duration::from_millis(50);
                self.net.browsers[self.viewer].subscribe.send_twcc(false);
            }
            let now = self.net.now;
            self.net.browsers[self.viewer].subscribe.send_nacks(now);
            self.net.deliver();
            // The worker's deadlines inside the step (its pacer's), on
            // time, as the io drivers run them (bounded).
            let target = self.net.now + step;
            for _ in 0..256 {
                let Some(at) = self.net.worker.poll_timeout().map(|d| d.at) else {
                    break;
                };
                if at >= target {
                    break;
                }
                self.net.now = self.net.now.max(at);
                let now = self.net.now;
                self.net.worker.handle_timeout(now, &mut self.net.tx);
                self.net.deliver();
            }
            self.net.now = target;
            self.t += step;
            let now = self.net.now;
            if self.net.worker.poll_timeout().is_some_and(|d| d.at <= now) {
                self.net.worker.handle_timeout(now, &mut self.net.tx);
            }
            for b in &mut self.net.browsers {
                b.publish.handle_timeout(now);
                b.subscribe.handle_timeout(now);
            }
            self.net.deliver();
            let (net, viewer, t) = (&self.net, self.viewer, self.t);
            self.w.update(net, viewer, t);
            if self.freeze_pli && self.t >= self.next_freeze_check {
                self.next_freeze_check = self.t + Duration::from_millis(100);
                self.pli_if_frozen();
            }
            if trace && self.t >= next_trace {
                next_trace += s(0.5);
                let d = self.w.decoded();
                let last = d.last().copied();
                let dropped = self.link().dropped;
                let m = self.net.metrics();
                println!(
                    "t={:.1} est={} layer={:?} tid={:?} dropped={} rtx={} probes={} raised={} queue={} not={}",
                    self.t.as_secs_f64(),
                    self.estimate(),
                    last.map(|f| f.layer),
                    last.map(|f| f.tid),
                    dropped,
                    m.rtx_bytes_sent.get(),
                    m.probes.get(),
                    m.probes_raised.get(),
                    m.probes_queue_built.get(),
                    m.probes_not_raised.get(),
                );
            }
        }
    }

    /// Figures of `[from, to]`; `mark` indexes the link counters at `from`
    /// and the next mark (or now) at `to`.
    fn figures(&mut self, from: Duration, to: Duration, mark: usize) -> Figures {
        let d = self.w.decoded();
        let in_phase: Vec<&Decoded> = d.iter().filter(|f| f.at >= from && f.at < to).collect();
        let mut shares = [0.0; 3];
        for f in &in_phase {
            shares[usize::from(f.layer)] += 1.0;
        }
        let n = in_phase.len().max(1) as f64;
        shares.iter_mut().for_each(|x| *x /= n);
        let secs = (to - from).as_secs_f64();
        let (bytes, rtx): (usize, usize) = self
            .w
            .bytes
            .iter()
            .filter(|b| b.0 >= from && b.0 < to)
            .fold((0, 0), |a, b| (a.0 + b.1, a.1 + if b.2 { b.1 } else { 0 }));
        let (o0, d0) = (self.marks[mark].1, self.marks[mark].2);
        let (o1, d1) = match self.marks.get(mark + 1) {
            Some(m) => (m.1, m.2),
            None => {
                let l = self.link();
                (l.offered, l.dropped)
            }
        };
        let got: BTreeSet<i64> = self
            .w
            .seqs
            .iter()
            .filter(|x| x.0 >= from && x.0 < to)
            .map(|x| x.1)
            .collect();
        let span = match (got.first(), got.last()) {
            (Some(a), Some(b)) => b - a + 1,
            _ => 1,
        };
        Figures {
            shares,
            fps: in_phase.len() as f64 / secs,
            kbps: bytes as f64 * 8.0 / secs / 1000.0,
            loss: 1.0 - got.len() as f64 / span as f64,
            link_loss: (d1 - d0) as f64 / (o1 - o0).max(1) as f64,
            gap: max_gap(&d, from, to),
            switches: switches(&d, from, to),
            rtx_share: rtx as f64 / bytes.max(1) as f64,
        }
    }
}

#[test]
fn tbf_bursts_pass_then_the_rate_holds() {
    let t0 = Instant::now();
    let mut b = Tbf::new(400_000, 10_000, Duration::from_millis(50));
    // 8 packets of 1250 B at once: the 10 kB burst passes at line rate.
    let d: Vec<Instant> = (0..8).map(|_| b.enqueue(t0, 1250).unwrap()).collect();
    assert!(d[7] - t0 < Duration::from_millis(1), "{:?}", d[7] - t0);
    // The next waits for tokens: 1250 B at 400 kbit/s = 25 ms.
    let n = b.enqueue(t0, 1250).unwrap();
    assert!((n - t0).as_millis().abs_diff(25) <= 1, "{:?}", n - t0);
    // The queue holds rate × latency + burst: 2.5 kB + 10 kB in all.
    let more = (0..10).filter(|_| b.enqueue(t0, 1250).is_some()).count();
    assert_eq!(more, 1, "tail drop past the limit");
}

#[test]
fn nacker_asks_once_per_round_trip_until_repaired() {
    let t0 = Instant::now();
    let mut n = Nacker::new(1, Some(2), Duration::from_millis(60));
    n.on_packet(10, false);
    n.on_packet(13, false);
    assert_eq!(n.due(t0), vec![11, 12]);
    assert!(n.due(t0 + s(0.03)).is_empty());
    n.on_packet(11, true);
    assert_eq!(n.due(t0 + s(0.06)), vec![12]);
    for i in 2..=9 {
        assert_eq!(n.due(t0 + s(0.06 * f64::from(i))), vec![12]);
    }
    assert!(n.due(t0 + s(1.0)).is_empty());
    assert_eq!((n.repaired, n.given_up), (1, 1));
}

const DROP_AT: f64 = 10.0;
const LIMITED: f64 = 25.0;
const AFTER: f64 = 10.0;

/// 5 Mbit/s, then `limit` for 25 s, then unlimited; figures per phase.
fn three_phases(
    seed: u64,
    limit: u64,
    burst: usize,
    paced: bool,
    sender: Sender,
) -> (Sim, Vec<Decoded>) {
    three_phases_for(seed, limit, burst, paced, sender, LIMITED)
}

/// [`three_phases`] with the limit held `limited` seconds.
fn three_phases_for(
    seed: u64,
    limit: u64,
    burst: usize,
    paced: bool,
    sender: Sender,
    limited: f64,
) -> (Sim, Vec<Decoded>) {
    if std::env::var_os("SIM_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("salon_mediad=debug")
            .with_test_writer()
            .try_init();
    }
    let mut sim = Sim::new(seed, 5_000_000, burst, paced);
    sim.enc.chrome_pli = sender != Sender::Harsh;
    if sender == Sender::FakeCamera {
        sim.enc.bps = FAKE_CAMERA_BPS;
    }
    if matches!(sender, Sender::Chrome | Sender::FakeCamera) {
        sim.enc.key_every = None;
        sim.freeze_pli = true;
    }
    sim.mark();
    sim.run(s(DROP_AT));
    println!(
        "[{limit} b/s, burst {burst}] 5 Mbit/s: {} (estimate {})",
        sim.figures(s(2.0), s(DROP_AT), 0),
        sim.estimate()
    );
    sim.set_rate(Some(limit));
    // The estimate's highest over the limit's last 15 s.
    let mut top = 0;
    let steps = (limited * 10.0) as u32;
    for i in 0..steps {
        sim.run(s(0.1));
        if i + 150 >= steps {
            top = top.max(sim.estimate());
        }
    }
    println!(
        "[{limit} b/s, burst {burst}] limited: estimate at most {top} over the last 15 s, at the end {}",
        sim.estimate()
    );
    sim.set_rate(None);
    sim.run(s(AFTER));
    let d = sim.w.decoded();
    (sim, d)
}

fn check_drop(limit: u64, burst: usize, seed: u64, paced: bool, sender: Sender) -> Duration {
    let (mut sim, d) = three_phases(seed, limit, burst, paced, sender);
    let drop_at = s(DROP_AT);
    let lifted = s(DROP_AT + LIMITED);
    let top_before = d.iter().rev().find(|f| f.at < drop_at).map(|f| f.layer);
    // A lower layer's key frame after the drop.
    let low = d
        .iter()
        .find(|f| f.at >= drop_at && f.key && top_before.is_some_and(|t| f.layer < t))
        .map(|f| f.at - drop_at);
    let settled = drop_at + low.unwrap_or(s(1.0));
    let steady = sim.figures(settled, settled + s(20.0), 1);
    let gap = max_gap(&d, settled, settled + s(20.0));
    let up = d
        .iter()
        .find(|f| f.at >= lifted && f.layer == 2)
        .map(|f| f.at - lifted);
    let after = sim.figures(lifted, lifted + s(AFTER), 2);
    println!(
        "[{limit} b/s, burst {burst}] before the drop at layer {top_before:?}; lower key frame after {low:?}; limited: {steady}; lifted: top layer after {up:?}, {after}; viewer PLIs on a freeze: {}",
        sim.plis
    );
    println!(
        "  metrics: {}",
        sim.net
            .metrics()
            .snapshot()
            .iter()
            .filter(|m| m.0.starts_with("nack")
                || m.0.starts_with("rtx")
                || m.0.starts_with("probe")
                || m.0.starts_with("layer"))
            .map(|m| format!("{}={}", m.0, m.2))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(top_before, Some(2), "720p before the drop");
    let low = low.expect("a lower layer's key frame");
    assert!(low <= s(1.0), "lower layer after {low:?}");
    assert!(gap <= s(0.5), "decodable frames stop for {gap:?}");
    assert!(steady.switches <= 2, "{} switches", steady.switches);
    assert!(steady.loss < 0.05, "loss {:.1} %", 100.0 * steady.loss);
    let up = up.expect("back at the top layer");
    assert!(up <= s(5.0), "top layer after {up:?}");
    low
}

fn check_800(burst: usize, seed: u64, paced: bool, sender: Sender) {
    let (mut sim, d) = three_phases(seed, 800_000, burst, paced, sender);
    let drop_at = s(DROP_AT);
    let lifted = s(DROP_AT + LIMITED);
    // The last 15 s of the limit.
    let from = drop_at + s(10.0);
    let f = sim.figures(from, lifted, 1);
    let l1_fps = d
        .iter()
        .filter(|x| x.at >= from && x.at < lifted && x.layer == 1)
        .count() as f64
        / (lifted - from).as_secs_f64();
    let up = d
        .iter()
        .find(|f| f.at >= lifted && f.layer == 2 && f.tid == 0)
        .map(|f| f.at - lifted);
    let after = sim.figures(lifted, lifted + s(AFTER), 2);
    println!(
        "[800 kbit/s, burst {burst}] last 15 s: {f}; 360p at {l1_fps:.1} fps; lifted: top layer after {up:?}, {after}; viewer PLIs on a freeze: {}",
        sim.plis
    );
    assert!(
        l1_fps >= 0.9 * f64::from(FPS),
        "360p at {l1_fps:.1} fps ({f})"
    );
    let up = up.expect("back at the top layer");
    assert!(up <= s(5.0), "top layer after {up:?}");
}

#[test]
fn tbf_400k_burst_10k() {
    let low = check_drop(400_000, 10_000, 81, false, Sender::Harsh);
    // The queue behind the bucket is seen before the trendline says so
    // (`goog_cc`'s `FAST_QUEUE_US`): 0.42 s here, 0.84 s without.
    assert!(low <= s(0.6), "lower layer after {low:?}");
}

#[test]
fn tbf_400k_burst_2k() {
    check_drop(400_000, 2_000, 82, false, Sender::Harsh);
}

#[test]
fn tbf_800k_burst_10k() {
    check_800(10_000, 83, false, Sender::Harsh);
}

#[test]
fn tbf_800k_burst_2k() {
    check_800(2_000, 84, false, Sender::Harsh);
}

// The same runs with mediad's pacer on (`WorkerLimits::pacing`, off by
// default): each packet to the viewer leaves at 2.5 × its estimate.

#[test]
fn tbf_400k_burst_10k_paced() {
    check_drop(400_000, 10_000, 81, true, Sender::Harsh);
}

#[test]
fn tbf_400k_burst_2k_paced() {
    check_drop(400_000, 2_000, 82, true, Sender::Harsh);
}

#[test]
fn tbf_800k_burst_10k_paced() {
    check_800(10_000, 83, true, Sender::Harsh);
}

#[test]
#[ignore = "issue 17: not met with the pacer — 360p 60 % of the last 15 s at 17.1 fps (needs 27), the estimate still falls after some 3-s key frames through the 2 kB bucket (docs/layers.md, \"The pacer\"); unpaced it is met since probes stay near a measured link rate"]
fn tbf_800k_burst_2k_paced() {
    check_800(2_000, 84, true, Sender::Harsh);
}

// The same runs with the publisher acting on one PLI per 300 ms, for all
// its layers, as Chrome's sender does (libwebrtc `EncoderRtcpFeedback`,
// `min_keyframe_send_interval`): a request for another layer within 300 ms
// of the last one is lost, and its receiver waits for mediad's retry
// (`KEYFRAME_FIRST_RETRY`, 400 ms; at 1 s the 2 kB case waited 1.3 s for
// 180p).

#[test]
fn tbf_400k_burst_10k_chrome_pli() {
    check_drop(400_000, 10_000, 81, false, Sender::ChromePli);
}

#[test]
fn tbf_400k_burst_2k_chrome_pli() {
    check_drop(400_000, 2_000, 82, false, Sender::ChromePli);
}

#[test]
fn tbf_800k_burst_10k_chrome_pli() {
    check_800(10_000, 83, false, Sender::ChromePli);
}

// The four cases with the publisher as Chrome's sender behaves: its PLI
// rule and no key frame unasked (the cases above send one every 3 s on
// every layer, which Chrome does not).

#[test]
fn tbf_400k_burst_10k_chrome() {
    check_drop(400_000, 10_000, 81, false, Sender::Chrome);
}

#[test]
fn tbf_400k_burst_2k_chrome() {
    check_drop(400_000, 2_000, 82, false, Sender::Chrome);
}

#[test]
fn tbf_800k_burst_10k_chrome() {
    check_800(10_000, 83, false, Sender::Chrome);
}

#[test]
fn tbf_800k_burst_2k_chrome() {
    check_800(2_000, 84, false, Sender::Chrome);
}

// The 800 kbit/s cases with the fake camera's rates: its 720p (700
// kbit/s) passes the bucket without loss or a growing delay, and mediad
// keeps it for the whole limit (as libwebrtc would, without periodic
// probes while application-limited): nothing says the link narrowed. In
// the browser the camera's rate rises after 2–12 s and the receiver goes
// to 360p (docs/layers.md, "Fifth round"). Tried: capping the estimate at
// the median of the rates measured behind queues — 360p here with the
// 2 kB bucket (never with 10 kB: no queue forms), but with 5 ms of jitter
// on a 3 Mbit/s link the measures said 1.3 Mbit/s and 720p was lost
// (`layers_sim`, three tests).

#[test]
#[ignore = "issue 17: a 720p that passes the bucket is kept while it passes (no congestion signal); see the comment above"]
fn tbf_800k_burst_10k_fake_camera() {
    check_800(10_000, 83, false, Sender::FakeCamera);
}

#[test]
#[ignore = "issue 17: a 720p that passes the bucket is kept while it passes (no congestion signal); see the comment above"]
fn tbf_800k_burst_2k_fake_camera() {
    check_800(2_000, 84, false, Sender::FakeCamera);
}

/// What an operator sees of the 400 kbit/s episode: the estimate
/// histogram, probes and their outcome, switches up and down, and the
/// per-worker gauges of what the legs forward.
#[test]
fn the_episode_shows_in_the_metrics() {
    let (sim, _) = three_phases(85, 400_000, 10_000, false, Sender::Harsh);
    let m = sim.net.metrics();
    let text = salon_mediad::metrics::render_prometheus(&[m]);
    for needle in [
        "mediad_receiver_estimate_bps_bucket{le=\"400000.0\"}",
        "mediad_receiver_estimate_bps_count",
        "mediad_probes_queue_built_total",
        "mediad_layer_switches_down_total",
        "mediad_video_legs_spatial2{worker=\"0\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
    assert!(m.layer_switches_down.get() >= 1);
    assert!(m.layer_switches_up.get() >= 2, "climbs back");
    assert!(m.probes_raised.get() >= 1);
    assert!(
        m.probes_queue_built.get() + m.probes_cut.get() >= 1,
        "failed probes show"
    );
    assert!(m.rtx_bytes_sent.get() > 0 && m.nack_answered.get() > 0);
    let (buckets, _) = m.receiver_estimate.counts();
    // Some 100 ms rounds at ≤ 400 kbit/s (the episode), some above 1.6 M.
    assert!(buckets[..3].iter().sum::<u64>() > 50, "{buckets:?}");
    assert!(buckets[5..].iter().sum::<u64>() > 50, "{buckets:?}");
}

/// The limit lifted at any moment of the probe timer's period (2 s while
/// probes fail behind the limit; the cases above lift at one moment):
/// 720p within 5 s every time, Chrome's sender. The wait for the next
/// probe is most of the spread: 1.5–4.1 s at 400 kbit/s / 10 kB.
#[test]
fn the_lift_is_found_at_any_phase_of_the_probe_timer() {
    for (limit, burst, seed) in [
        (400_000, 10_000, 81),
        (400_000, 2_000, 82),
        (800_000, 10_000, 83),
        (800_000, 2_000, 84),
    ] {
        let mut ups = Vec::new();
        for k in 0..10 {
            let limited = LIMITED + 0.2 * f64::from(k);
            let (_, d) = three_phases_for(seed, limit, burst, false, Sender::Chrome, limited);
            let lifted = s(DROP_AT + limited);
            let up = d
                .iter()
                .find(|f| f.at >= lifted && f.layer == 2 && f.tid == 0)
                .map(|f| f.at - lifted);
            ups.push(up);
        }
        let secs: Vec<String> = ups
            .iter()
            .map(|u| u.map_or("never".into(), |u| format!("{:.2}", u.as_secs_f64())))
            .collect();
        println!(
            "[{limit} b/s, burst {burst}] lifted 25.0–26.8 s after the drop: 720p after {secs:?} s"
        );
        for up in ups {
            assert!(up.is_some_and(|u| u <= s(5.0)), "{limit}/{burst}: {secs:?}");
        }
    }
}
