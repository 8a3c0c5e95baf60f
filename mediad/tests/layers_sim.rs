//! Congestion-aware layer selection, end to end in virtual time: simulated
//! browsers publish realistic three-layer VP8 simulcast (150 kbit/s,
//! 500 kbit/s, 1.5 Mbit/s at 30 fps, key frames on request and every 3 s),
//! mediad forwards through the allocator to a viewer behind a shaped link
//! (drop-tail bottleneck, delay, seeded loss), and the viewer answers with
//! transport-cc feedback every 50 ms. Everything is deterministic.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;

use std::time::Duration;

use common::{Link, Net};
use salon_mediad::{Command, ParticipantId};
use salon_proto::rtcp::{self, RtcpIter, RtcpPacket};
use salon_proto::rtp::RtpHeader;

const RIDS: [&[u8]; 3] = [b"q", b"h", b"f"];
const HEIGHTS: [u16; 3] = [180, 360, 720];
const CAMERA_BPS: [u64; 3] = [150_000, 500_000, 1_500_000];
const FPS: u32 = 30;
const PACKET: usize = 1100;

/// A publisher's encoder: per layer its SSRC, sequence number, bitrate and
/// whether its next frame is a key frame.
struct Encoder {
    browser: usize,
    ssrcs: Vec<u32>,
    bps: Vec<u64>,
    heights: Vec<u16>,
    /// rid extension per layer (simulcast) or none.
    simulcast: bool,
    seq: Vec<u16>,
    key: Vec<bool>,
    /// Each encoding numbers its own pictures (15-bit picture id, TL0PICIDX).
    pic: Vec<u16>,
    tl0: Vec<u8>,
    /// Three temporal layers per encoding (TIDs 0, 2, 1, 2, …; TL0PICIDX
    /// counts TID 0 frames).
    temporal: bool,
    frame: u32,
    rtcp_seen: usize,
}

impl Encoder {
    fn camera(net: &Net, browser: usize) -> Self {
        let base = 7000 + 10 * browser as u32;
        Self {
            browser,
            ssrcs: (1..=3).map(|i| base + i).collect(),
            bps: CAMERA_BPS.to_vec(),
            heights: HEIGHTS.to_vec(),
            simulcast: true,
            seq: vec![1; 3],
            key: vec![true; 3],
            pic: vec![100, 12_000, 32_700],
            tl0: vec![0, 100, 250],
            temporal: false,
            frame: 0,
            rtcp_seen: net.browsers[browser].publish.rtcp_in.len(),
        }
    }

    /// One layer (a screen share, not simulcast) at `bps`.
    fn single(net: &Net, browser: usize, bps: u64) -> Self {
        Self {
            browser,
            ssrcs: vec![net.browsers[browser].video_ssrc],
            bps: vec![bps],
            heights: vec![720],
            simulcast: false,
            seq: vec![1],
            key: vec![true],
            pic: vec![5],
            tl0: vec![5],
            temporal: false,
            frame: 0,
            rtcp_seen: net.browsers[browser].publish.rtcp_in.len(),
        }
    }

    /// Send one frame of every layer (a key frame where one was asked for).
    fn send_frame(&mut self, net: &mut Net) {
        let b = &mut net.browsers[self.browser];
        // Key frame requests (PLI) since the last frame.
        for p in &b.publish.rtcp_in[self.rtcp_seen..] {
            for pkt in RtcpIter::new(p).filter_map(Result::ok) {
                if let RtcpPacket::Pli(pli) = pkt
                    && let Some(i) = self.ssrcs.iter().position(|s| *s == pli.media_ssrc)
                {
                    self.key[i] = true;
                }
            }
        }
        self.rtcp_seen = b.publish.rtcp_in.len();
        if self.frame.is_multiple_of(3 * FPS) {
            self.key.iter_mut().for_each(|k| *k = true);
        }
        let ts = self.frame * (90_000 / FPS);
        // L1T3: TIDs 0 2 1 2; the first TID 2 and the TID 1 frame refer to
        // TID 0 only (layer sync).
        let (tid, sync) = match self.frame % 4 {
            0 => (0u8, false),
            1 => (2, true),
            2 => (1, true),
            _ => (2, false),
        };
        for i in 0..self.ssrcs.len() {
            let bytes = (self.bps[i] / 8 / u64::from(FPS)) as usize;
            let packets = bytes.div_ceil(PACKET).max(1);
            let key = std::mem::take(&mut self.key[i]);
            let pic = self.pic[i];
            self.pic[i] = (pic + 1) & 0x7fff;
            if !self.temporal || tid == 0 {
                self.tl0[i] = self.tl0[i].wrapping_add(1);
            }
            let tl0 = self.tl0[i];
            for k in 0..packets {
                // X, S on the first packet; I (15-bit picture id) and L.
                let mut vp8 = vec![
                    if k == 0 { 0x90u8 } else { 0x80 },
                    if self.temporal { 0xe0 } else { 0xc0 },
                    0x80 | (pic >> 8) as u8,
                    pic as u8,
                    tl0,
                ];
                if self.temporal {
                    vp8.push(tid << 6 | u8::from(sync) << 5);
                }
                if k == 0 && key {
                    vp8.extend_from_slice(&[0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
                    vp8.extend_from_slice(&(self.heights[i] * 16 / 9).to_le_bytes());
                    vp8.extend_from_slice(&self.heights[i].to_le_bytes());
                } else if k == 0 {
                    vp8.extend_from_slice(&[0x01, 0x00, 0x00]);
                }
                vp8.resize(bytes / packets, 0x42);
                *vp8.last_mut().unwrap() = i as u8;
                let rid = [(4u8, &b"1"[..]), (10u8, RIDS[i])];
                let exts: &[(u8, &[u8])] = if self.simulcast { &rid } else { &[] };
                let seq = self.seq[i];
                self.seq[i] = seq.wrapping_add(1);
                b.publish.send_rtp(96, seq, ts, self.ssrcs[i], exts, &vp8);
            }
        }
        self.frame += 1;
    }
}

/// What a viewer decodes of one publisher: (arrival, layer) per frame.
struct Watch {
    ssrc: u32,
    seen: usize,
    last_ts: Option<u32>,
    frames: Vec<(Duration, u8)>,
    /// Picture id, TL0PICIDX and TID of each frame, as received.
    pics: Vec<(u16, u8, Option<u8>)>,
    /// Sequence numbers of every packet received on the stream.
    seqs: Vec<(Duration, u16)>,
}

impl Watch {
    fn new(net: &Net, viewer: usize, publisher: usize) -> Self {
        let pid: ParticipantId = net.browsers[publisher].id;
        let ssrc = net.browsers[viewer]
            .out_ssrc(pid, salon_sdp::MediaKind::Video)
            .unwrap();
        Self {
            ssrc,
            seen: net.browsers[viewer].subscribe.rtp_in.len(),
            last_ts: None,
            frames: Vec::new(),
            pics: Vec::new(),
            seqs: Vec::new(),
        }
    }

    fn update(&mut self, net: &Net, viewer: usize, t: Duration) {
        let rx = &net.browsers[viewer].subscribe.rtp_in;
        for p in &rx[self.seen..] {
            let h = RtpHeader::parse(p).unwrap();
            // Padding-only probe packets carry no frame.
            if h.ssrc == self.ssrc {
                self.seqs.push((t, h.sequence));
            }
            if h.ssrc != self.ssrc || p[0] & 0x20 != 0 {
                continue;
            }
            if self.last_ts != Some(h.timestamp) {
                self.last_ts = Some(h.timestamp);
                self.frames.push((t, *h.payload(p).last().unwrap()));
                let d = salon_proto::vp8::Vp8Descriptor::parse(h.payload(p)).unwrap();
                self.pics
                    .push((d.picture_id.unwrap().value, d.tl0picidx.unwrap(), d.tid));
            }
        }
        self.seen = rx.len();
    }

    /// The layer of the last frame received by `t`.
    fn layer_at(&self, t: Duration) -> Option<u8> {
        self.frames.iter().rev().find(|f| f.0 <= t).map(|f| f.1)
    }

    /// First time at or after `from` from which every frame is of `layer`
    /// or at most `layer` (`at_most`).
    fn first_at(&self, from: Duration, layer: u8, at_most: bool) -> Option<Duration> {
        self.frames
            .iter()
            .find(|f| f.0 >= from && if at_most { f.1 <= layer } else { f.1 == layer })
            .map(|f| f.0)
    }

    /// Longest time without a frame between `from` and `to`.
    fn max_gap(&self, from: Duration, to: Duration) -> Duration {
        let mut last = from;
        let mut gap = Duration::ZERO;
        for f in self.frames.iter().filter(|f| f.0 >= from && f.0 <= to) {
            gap = gap.max(f.0 - last);
            last = f.0;
        }
        gap.max(to.saturating_sub(last))
    }

    /// Picture ids (and TL0PICIDX) only move forward, by at most a few
    /// lost frames, across every layer switch: the decoder sees one stream.
    fn assert_continuous(&self) {
        for w in self.pics.windows(2) {
            let dp = w[1].0.wrapping_sub(w[0].0) & 0x7fff;
            let dt = w[1].1.wrapping_sub(w[0].1);
            assert!((1..32).contains(&dp), "picture id jump {w:?}");
            // Equal between frames of higher temporal layers.
            assert!((0..32).contains(&dt), "TL0PICIDX jump {w:?}");
        }
    }

    /// Layer changes between `from` and `to`.
    fn switches(&self, from: Duration, to: Duration) -> usize {
        let layers: Vec<u8> = self
            .frames
            .iter()
            .filter(|f| f.0 >= from && f.0 <= to)
            .map(|f| f.1)
            .collect();
        layers.windows(2).filter(|w| w[0] != w[1]).count()
    }
}

/// A meeting: publishers (encoders), one viewer behind a shaped link.
struct Sim {
    net: Net,
    encoders: Vec<Encoder>,
    viewer: usize,
    t: Duration,
    next_frame: Duration,
    next_feedback: Duration,
    /// Video frames start at this time (audio, if on, from the start).
    video_from: Duration,
    audio: bool,
    next_audio: Duration,
    audio_seq: u16,
}

impl Sim {
    /// `cameras` simulcast publishers, optionally a screen share at
    /// `screen_bps`, and a viewer whose downlink is `link_bps`.
    fn new(seed: u64, cameras: usize, screen_bps: Option<u64>, link_bps: u64) -> Self {
        Self::build(seed, cameras, screen_bps, link_bps, false)
    }

    /// Like [`Sim::new`]; with `rtx`, the viewer accepts RTX streams.
    fn build(seed: u64, cameras: usize, screen_bps: Option<u64>, link_bps: u64, rtx: bool) -> Self {
        let mut net = Net::new(seed);
        let mut publishers = Vec::new();
        for _ in 0..cameras {
            publishers.push(net.join_with("Couches", |b| b.simulcast = true));
        }
        let screen = screen_bps.map(|_| net.join("Couches"));
        let viewer = net.join_with("Couches", |b| b.rtx = rtx);
        net.settle(Duration::from_millis(500));
        let mut encoders: Vec<Encoder> = publishers
            .iter()
            .map(|&p| Encoder::camera(&net, p))
            .collect();
        if let (Some(s), Some(bps)) = (screen, screen_bps) {
            let id = net.browsers[s].id;
            net.command(Command::SetScreenShare {
                participant: id,
                mid: Some("1".into()),
            });
            encoders.insert(0, Encoder::single(&net, s, bps));
        }
        let addr = net.browsers[viewer].subscribe.addr;
        net.links
            .insert(addr, Link::new(link_bps, Duration::from_millis(20), seed));
        Self {
            net,
            encoders,
            viewer,
            t: Duration::ZERO,
            next_frame: Duration::ZERO,
            next_feedback: Duration::ZERO,
            video_from: Duration::ZERO,
            audio: false,
            next_audio: Duration::ZERO,
            audio_seq: 1,
        }
    }

    fn watch(&self, encoder: usize) -> Watch {
        Watch::new(&self.net, self.viewer, self.encoders[encoder].browser)
    }

    /// Run `d` of simulated time in 5 ms steps.
    fn run(&mut self, d: Duration, watches: &mut [&mut Watch]) {
        let end = self.t + d;
        let step = Duration::from_millis(5);
        while self.t < end {
            if self.t >= self.next_frame {
                self.next_frame += Duration::from_micros(1_000_000 / u64::from(FPS));
                if self.t >= self.video_from {
                    for e in &mut self.encoders {
                        e.send_frame(&mut self.net);
                    }
                }
            }
            if self.audio && self.t >= self.next_audio {
                self.next_audio += Duration::from_millis(20);
                let seq = self.audio_seq;
                self.audio_seq = seq.wrapping_add(1);
                for e in &self.encoders {
                    let b = &mut self.net.browsers[e.browser];
                    let ssrc = b.audio_ssrc;
                    b.publish.send_rtp(
                        111,
                        seq,
                        u32::from(seq) * 960,
                        ssrc,
                        &[(1, &[0x80 | 40][..])],
                        &[0x55; 80],
                    );
                }
            }
            if self.t >= self.next_feedback {
                self.next_feedback += Duration::from_millis(50);
                self.net.browsers[self.viewer].subscribe.send_twcc(false);
            }
            self.net.deliver();
            self.net.now += step;
            self.t += step;
            let now = self.net.now;
            if self.net.worker.poll_timeout().is_some_and(|d| d.at <= now) {
                self.net.worker.handle_timeout(now, &mut self.net.tx);
            }
            // Browsers' own timers: consent checks every few seconds.
            for b in &mut self.net.browsers {
                b.publish.handle_timeout(now);
                b.subscribe.handle_timeout(now);
            }
            self.net.deliver();
            for w in watches.iter_mut() {
                w.update(&self.net, self.viewer, self.t);
            }
        }
    }

    fn link(&mut self) -> &mut Link {
        let addr = self.net.browsers[self.viewer].subscribe.addr;
        self.net.links.get_mut(&addr).unwrap()
    }

    fn estimate(&self) -> u64 {
        let id = self.net.browsers[self.viewer].id;
        self.net.worker.estimate_bps(id).unwrap_or(0)
    }
}

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

#[test]
fn link_drop_moves_to_the_low_layer_and_recovery_climbs_back() {
    let mut sim = Sim::new(71, 1, None, 3_000_000);
    let mut w = sim.watch(0);
    sim.run(s(10.0), &mut [&mut w]);
    let est = sim.estimate();
    assert_eq!(
        w.layer_at(sim.t),
        Some(2),
        "3 Mbit/s carries 720p (estimate {est})"
    );
    // The link drops to 300 kbit/s.
    let drop_at = sim.t;
    sim.link().capacity_bps = 300_000;
    sim.run(s(8.0), &mut [&mut w]);
    let low = w.first_at(drop_at, 0, true).expect("reached the low layer");
    let down = low - drop_at;
    let gap = w.max_gap(drop_at, sim.t);
    println!(
        "drop: low layer after {down:?}, longest frame gap {gap:?}, estimate {}",
        sim.estimate()
    );
    assert!(down <= s(1.0), "low layer within 1 s: {down:?}");
    assert!(gap <= s(0.5), "no frame gap over 500 ms: {gap:?}");
    assert_eq!(w.layer_at(sim.t), Some(0), "stays low on a 300 kbit/s link");
    // The link recovers.
    let up_at = sim.t;
    sim.link().capacity_bps = 3_000_000;
    for _ in 0..16 {
        sim.run(s(0.5), &mut [&mut w]);
        if std::env::var_os("SIM_TRACE").is_some() {
            println!(
                "t={:?} est={} layer={:?} probes={} padding={}",
                sim.t - up_at,
                sim.estimate(),
                w.layer_at(sim.t),
                sim.net.metrics().probes.get(),
                sim.net.metrics().tx_padding.get()
            );
        }
    }
    let high = w.first_at(up_at, 2, false).expect("back at the high layer");
    let up = high - up_at;
    println!(
        "recovery: high layer after {up:?}, estimate {}, probes {}",
        sim.estimate(),
        sim.net.metrics().probes.get()
    );
    // 720p now comes one spatial step at a time, each probed for (the
    // next step only) and held: 5.07 s here (3.3 s when one probe at
    // twice the estimate went straight for everything).
    assert!(up <= s(5.5), "high layer within 5.5 s: {up:?}");
    assert!(w.max_gap(up_at, sim.t) <= s(0.5));
    assert!(w.switches(Duration::ZERO, sim.t) >= 3);
    // Every layer's state, as the allocator sees it.
    let publisher = sim.net.browsers[sim.encoders[0].browser].id;
    let states = sim.net.worker.layer_states(publisher, "1", sim.net.now);
    let rids: Vec<Option<&str>> = states.iter().map(|l| l.rid.as_deref()).collect();
    assert_eq!(rids, [Some("q"), Some("h"), Some("f")]);
    for (l, (bps, h)) in states.iter().zip(CAMERA_BPS.iter().zip(HEIGHTS)) {
        assert!(l.active && l.keyframe_seen, "{l:?}");
        assert_eq!(l.size.map(|s| s.1), Some(h));
        assert!((28..=32).contains(&l.fps), "{l:?}");
        assert!(
            l.bitrate_bps > bps * 9 / 10 && l.bitrate_bps < bps * 13 / 10,
            "{l:?}"
        );
        assert_eq!(l.temporal_layers, 1);
    }
    w.assert_continuous();
}

#[test]
fn a_steady_link_switches_a_handful_of_times_in_ten_minutes() {
    if std::env::var_os("SIM_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("salon_mediad=debug")
            .with_test_writer()
            .try_init();
    }
    let mut sim = Sim::new(72, 1, None, 3_000_000);
    let mut w = sim.watch(0);
    sim.run(s(600.0), &mut [&mut w]);
    let switches = w.switches(Duration::ZERO, sim.t);
    let settled = w.switches(s(30.0), sim.t);
    println!(
        "10 min steady: {switches} switches ({settled} after the first 30 s), layer {:?}, estimate {}",
        w.layer_at(sim.t),
        sim.estimate()
    );
    assert!(switches <= 4, "{switches} switches");
    w.assert_continuous();
    assert_eq!(w.layer_at(sim.t), Some(2));
    assert!(w.max_gap(s(1.0), sim.t) <= s(0.5));
}

#[test]
fn one_percent_loss_keeps_the_video_up() {
    let mut sim = Sim::new(73, 1, None, 3_000_000);
    sim.link().loss = 0.01;
    sim.link().jitter = Duration::from_millis(5);
    let mut w = sim.watch(0);
    sim.run(s(40.0), &mut [&mut w]);
    let gap = w.max_gap(s(1.0), sim.t);
    println!(
        "1% loss: layer {:?}, longest gap {gap:?}, estimate {}, dropped {}",
        w.layer_at(sim.t),
        sim.estimate(),
        sim.link().dropped
    );
    assert!(sim.link().dropped > 50, "the loss happened");
    assert_eq!(w.layer_at(sim.t), Some(2), "1 % loss is not congestion");
    assert!(gap <= s(0.5), "{gap:?}");
    w.assert_continuous();
}

#[test]
fn the_screen_share_keeps_its_layer_while_cameras_drop() {
    if std::env::var_os("SIM_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("salon_mediad=debug")
            .with_test_writer()
            .try_init();
    }
    // A 1 Mbit/s screen share and two cameras through 1.6 Mbit/s.
    let mut sim = Sim::new(74, 2, Some(1_000_000), 1_600_000);
    let mut screen = sim.watch(0);
    let mut cam1 = sim.watch(1);
    let mut cam2 = sim.watch(2);
    sim.run(s(20.0), &mut [&mut screen, &mut cam1, &mut cam2]);
    let from = s(5.0);
    let gap = screen.max_gap(from, sim.t);
    println!(
        "screen + 2 cameras on 1.6 Mbit/s: screen gap {gap:?}, cameras at {:?}/{:?}, estimate {}",
        cam1.layer_at(sim.t),
        cam2.layer_at(sim.t),
        sim.estimate()
    );
    assert!(gap <= s(0.5), "the screen share never stalls: {gap:?}");
    assert!(screen.frames.len() > 500, "{}", screen.frames.len());
    for cam in [&cam1, &cam2] {
        let layer = cam.layer_at(sim.t);
        assert!(layer.is_some_and(|l| l < 2), "cameras drop: {layer:?}");
        cam.assert_continuous();
    }
    screen.assert_continuous();
}

/// In a browser, audio flows (and its feedback arrives) before the first
/// video key frame: the start-up probes must wait for a video stream to
/// carry them rather than be lost, so the estimate still climbs at once.
#[test]
fn probes_wait_for_video_when_audio_comes_first() {
    probes_wait_for_video(false);
}

/// The audio a viewer receives is counted off its video budget (issue 17:
/// "leaving room for audio and margin"): here one publisher's 100-byte
/// packets every 20 ms, 40 kbit/s; nothing without audio.
#[test]
fn the_audio_a_viewer_gets_is_its_first_share_of_the_link() {
    let mut sim = Sim::new(77, 1, None, 3_000_000);
    let viewer = sim.net.browsers[sim.viewer].id;
    sim.audio = true;
    sim.run(s(3.0), &mut []);
    let share = sim.net.worker.audio_share_bps(viewer, sim.net.now);
    assert!((30_000..=50_000).contains(&share), "{share}");
    // Audio at 8 Mbit/s (1000-byte packets every millisecond, from a
    // hostile page) takes 256 kbit/s of the budget at most, not all of it.
    let mut flood = Sim::new(77, 1, None, 3_000_000);
    let viewer = flood.net.browsers[flood.viewer].id;
    flood.run(s(1.0), &mut []);
    let b = flood.encoders[0].browser;
    let ssrc = flood.net.browsers[b].audio_ssrc;
    for i in 0..1_000u16 {
        flood.net.browsers[b].publish.send_rtp(
            111,
            i + 1,
            u32::from(i) * 48,
            ssrc,
            &[],
            &[0x55; 1000],
        );
        if i % 5 == 4 {
            flood.run(Duration::from_millis(5), &mut []);
        }
    }
    let share = flood.net.worker.audio_share_bps(viewer, flood.net.now);
    assert!((100_000..=256_000).contains(&share), "{share}");
    let mut quiet = Sim::new(77, 1, None, 3_000_000);
    quiet.run(s(3.0), &mut []);
    let viewer = quiet.net.browsers[quiet.viewer].id;
    assert_eq!(quiet.net.worker.audio_share_bps(viewer, quiet.net.now), 0);
}

/// The same with a viewer that accepted RTX (as Chrome does): the probes
/// go on the RTX stream, and the media stream's numbering has no gap.
#[test]
fn probes_go_on_the_rtx_stream_when_there_is_one() {
    probes_wait_for_video(true);
}

#[allow(clippy::print_stdout, reason = "figures for docs/layers.md")]
fn probes_wait_for_video(rtx: bool) {
    let mut sim = Sim::build(75, 1, None, 3_000_000, rtx);
    sim.audio = true;
    sim.video_from = s(2.0);
    let mut w = sim.watch(0);
    sim.run(s(2.0), &mut [&mut w]);
    assert!(w.frames.is_empty());
    let before = sim.estimate();
    sim.run(s(4.0), &mut [&mut w]);
    let est = sim.estimate();
    println!(
        "audio first: estimate {before} before video, {est} 4 s after; layer {:?}; probes {}",
        w.layer_at(sim.t),
        sim.net.metrics().probes.get()
    );
    // (2.15 Mbit/s before 720p came one spatial step at a time: less
    // media measured in the first 4 s; 313 kbit/s when probes were lost.)
    assert!(est > 1_900_000, "estimate {est}");
    assert_eq!(w.layer_at(sim.t), Some(2));
    // Where the padding went: the media stream, or only the RTX stream.
    let rx = &sim.net.browsers[sim.viewer].subscribe.rtp_in;
    let padding_on = |ssrc_is_media: bool| {
        rx.iter()
            .filter(|p| p[0] & 0x20 != 0)
            .filter(|p| (RtpHeader::parse(p).unwrap().ssrc == w.ssrc) == ssrc_is_media)
            .count()
    };
    let (on_media, elsewhere) = (padding_on(true), padding_on(false));
    println!("padding packets: {on_media} on the media stream, {elsewhere} elsewhere");
    if rtx {
        assert_eq!(on_media, 0);
        assert!(elsewhere > 50, "{elsewhere}");
        assert!(
            rx.iter()
                .filter(|p| p[0] & 0x20 != 0)
                .all(|p| RtpHeader::parse(p).unwrap().payload_type == 97)
        );
    } else {
        assert!(on_media > 50, "{on_media}");
    }
    w.assert_continuous();
}

/// A single-encoding stream with three temporal layers (a screen share at
/// 1.2 Mbit/s: 300 / 600 / 1200 kbit/s cumulative) through 800 kbit/s: the
/// receiver gets TIDs 0 and 1 (15 fps) with no sequence or picture id gap,
/// instead of a stream the link cannot carry.
#[test]
fn temporal_layers_thin_a_stream_the_link_cannot_carry() {
    if std::env::var_os("SIM_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("salon_mediad=debug")
            .with_test_writer()
            .try_init();
    }
    let mut sim = Sim::new(76, 0, Some(1_200_000), 800_000);
    sim.encoders[0].temporal = true;
    let mut w = sim.watch(0);
    sim.run(s(20.0), &mut [&mut w]);
    let from = s(15.0);
    let recent: Vec<usize> = (0..w.frames.len())
        .filter(|&i| w.frames[i].0 >= from)
        .collect();
    let tids: Vec<Option<u8>> = recent.iter().map(|&i| w.pics[i].2).collect();
    let fps = recent.len() as f64 / 5.0;
    let seqs: Vec<u16> = w.seqs.iter().filter(|x| x.0 >= from).map(|x| x.1).collect();
    println!(
        "temporal: {fps:.1} fps in the last 5 s, TIDs {:?}, estimate {}, dropped on the link {}",
        tids.iter().fold([0usize; 3], |mut a, t| {
            a[usize::from(t.unwrap())] += 1;
            a
        }),
        sim.estimate(),
        sim.link().dropped
    );
    assert!(tids.iter().all(|t| t.is_some_and(|t| t <= 1)), "{tids:?}");
    assert!((12.0..=18.0).contains(&fps), "{fps} fps");
    // The rewrite leaves no hole: every gap is a packet the link dropped
    // (a probe towards TID 2 may fill the 200 ms queue for a moment).
    let holes: usize = seqs
        .windows(2)
        .map(|x| usize::from(x[1].wrapping_sub(x[0]).wrapping_sub(1)))
        .sum();
    assert!(
        holes as u64 <= sim.link().dropped && holes <= 2,
        "{holes} holes, {} dropped: {seqs:?}",
        sim.link().dropped
    );
    w.assert_continuous();
    assert!(w.max_gap(from, sim.t) <= s(0.2));
    let publisher = sim.net.browsers[sim.encoders[0].browser].id;
    let states = sim.net.worker.layer_states(publisher, "1", sim.net.now);
    assert_eq!(states.len(), 1);
    assert_eq!(
        (states[0].temporal_layers, states[0].rid.as_deref()),
        (3, None)
    );

    // The network loses a packet; half a second later (many dropped TID 2
    // packets since, each shifting the numbering) the viewer NACKs it and
    // gets it: between its neighbours in timestamp and picture id, of a
    // forwarded temporal layer, filling the gap.
    let viewer = sim.viewer;
    let lost = *w.seqs.last().map(|(_, q)| q).unwrap() + 5;
    sim.net.browsers[viewer].subscribe.lose.push((w.ssrc, lost));
    sim.run(s(0.5), &mut [&mut w]);
    assert!(!w.seqs.iter().any(|x| x.1 == lost), "lost on the way");
    let stream = |net: &Net| -> Vec<Vec<u8>> {
        net.browsers[viewer]
            .subscribe
            .rtp_in
            .iter()
            .filter(|p| RtpHeader::parse(p).unwrap().ssrc == w.ssrc)
            .cloned()
            .collect()
    };
    let by_seq = |pkts: &[Vec<u8>], q: u16| -> Vec<u8> {
        pkts.iter()
            .find(|p| RtpHeader::parse(p).unwrap().sequence == q)
            .unwrap()
            .clone()
    };
    let got = stream(&sim.net);
    let (prev, next) = (by_seq(&got, lost - 1), by_seq(&got, lost + 1));
    let answered = sim.net.metrics().nack_answered.get();
    let mut buf = [0u8; 64];
    let n = rtcp::write_nack(&mut buf, 1, w.ssrc, &[lost]).unwrap();
    sim.net.browsers[viewer].subscribe.send_rtcp(&buf[..n]);
    sim.run(s(0.1), &mut []);
    let again = by_seq(&stream(&sim.net), lost);
    let info = |p: &[u8]| {
        let h = RtpHeader::parse(p).unwrap();
        let d = salon_proto::vp8::Vp8Descriptor::parse(h.payload(p)).unwrap();
        (h.timestamp, d.picture_id.unwrap().value, d.tid.unwrap())
    };
    let (p, a, n) = (info(&prev), info(&again), info(&next));
    assert!(p.0 <= a.0 && a.0 <= n.0, "timestamps {p:?} {a:?} {n:?}");
    assert!(p.1 <= a.1 && a.1 <= n.1, "picture ids {p:?} {a:?} {n:?}");
    assert!(
        a.1 <= p.1 + 1 && n.1 <= a.1 + 1,
        "picture ids {p:?} {a:?} {n:?}"
    );
    assert!(a.2 <= 1, "a forwarded temporal layer: {a:?}");
    assert_eq!(sim.net.metrics().nack_answered.get(), answered + 1);
}
