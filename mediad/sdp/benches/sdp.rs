//! Parse / answer / offer costs on realistic inputs.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use salon_sdp::{
    Fingerprint, IcePwd, LocalTransport, MediaKind, OutTrack, answer_publish, offer_subscribe,
    parse,
};

const CHROME: &str = include_str!("../tests/fixtures/chrome_publish_offer.sdp");
const FIREFOX: &str = include_str!("../tests/fixtures/firefox_publish_offer.sdp");

fn local() -> LocalTransport {
    LocalTransport {
        ice_ufrag: "sAlN".to_owned(),
        ice_pwd: IcePwd::new("mediadPassw0rdForIceLite1"),
        fingerprint: Fingerprint::sha256([0x5a; 32]),
        candidate_ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10))],
        candidate_port: 50000,
        tcp_candidate_port: Some(50000),
        session_id: 42,
        session_version: 1,
    }
}

fn tracks(n: usize) -> Vec<OutTrack> {
    (0..n)
        .map(|i| {
            let video = i % 2 == 1;
            OutTrack {
                mid: i.to_string(),
                kind: if video {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                },
                ssrc: 1000 + i as u32,
                rtx_ssrc: video.then_some(5000 + i as u32),
                cname: format!("peer{}", i / 2),
                stream_id: format!("participant-{}", i / 2),
                track_id: format!("track-{i}"),
                pt: if video { 96 } else { 111 },
                rtx_pt: video.then_some(97),
                active: true,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let l = local();
    c.bench_function("parse_chrome_offer", |b| {
        b.iter(|| parse(black_box(CHROME)))
    });
    c.bench_function("parse_firefox_offer", |b| {
        b.iter(|| parse(black_box(FIREFOX)))
    });
    let offer = parse(CHROME).expect("fixture parses");
    c.bench_function("answer_publish_chrome", |b| {
        b.iter(|| answer_publish(black_box(&offer), &l))
    });
    let t = tracks(50);
    c.bench_function("offer_subscribe_50_tracks", |b| {
        b.iter(|| offer_subscribe(black_box(&t), &l))
    });
    let sub = offer_subscribe(&t, &l).expect("valid tracks");
    c.bench_function("parse_subscribe_offer_50_tracks", |b| {
        b.iter(|| parse(black_box(&sub)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
