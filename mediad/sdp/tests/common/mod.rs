#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use salon_sdp::{Fingerprint, IcePwd, LocalTransport, MediaKind, OutTrack};

pub const CHROME: &str = include_str!("../fixtures/chrome_publish_offer.sdp");
pub const FIREFOX: &str = include_str!("../fixtures/firefox_publish_offer.sdp");

pub fn local() -> LocalTransport {
    let mut digest = [0u8; 32];
    for (i, b) in digest.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37).wrapping_add(0xA5);
    }
    LocalTransport {
        ice_ufrag: "sAlN".to_owned(),
        ice_pwd: IcePwd::new("mediadPassw0rdForIceLite1"),
        fingerprint: Fingerprint::sha256(digest),
        candidate_ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))],
        candidate_port: 50000,
        tcp_candidate_port: Some(50000),
        session_id: 0x8123_4567_89ab_cdef,
        session_version: 3,
    }
}

pub fn audio_track(mid: &str, ssrc: u32) -> OutTrack {
    OutTrack {
        mid: mid.to_owned(),
        kind: MediaKind::Audio,
        ssrc,
        rtx_ssrc: None,
        cname: "peer-a".to_owned(),
        stream_id: "participant-a".to_owned(),
        track_id: format!("mic-{mid}"),
        pt: salon_sdp::OPUS_PT,
        rtx_pt: None,
        active: true,
    }
}

pub fn video_track(mid: &str, ssrc: u32, rtx_ssrc: u32) -> OutTrack {
    OutTrack {
        mid: mid.to_owned(),
        kind: MediaKind::Video,
        ssrc,
        rtx_ssrc: Some(rtx_ssrc),
        cname: "peer-a".to_owned(),
        stream_id: "participant-a".to_owned(),
        track_id: format!("cam-{mid}"),
        pt: salon_sdp::VP8_PT,
        rtx_pt: Some(salon_sdp::VP8_RTX_PT),
        active: true,
    }
}

/// Removes every line for which `drop` is true.
pub fn without_lines(sdp: &str, drop: impl Fn(&str) -> bool) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| !drop(l.trim_end()))
        .collect()
}

/// splitmix64: small, seeded, deterministic.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}
