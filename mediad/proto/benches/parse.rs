//! Per-packet cost of the parsers and writers mediad runs on every
//! datagram (and on every transport-cc feedback):
//! `cargo bench -p salon-proto --bench parse`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use salon_proto::{demux, rtcp, rtp, stun, twcc, vp8};

fn benches(c: &mut Criterion) {
    let pwd = b"x3ZlqIYMqJkTJ2P7kVh9rGoF";
    let mut req = [0u8; 256];
    let n =
        stun::write_binding_request(&mut req, &[7; 12], b"Sx1a:q7Zk", 1, 2, true, pwd).unwrap_or(0);
    let req = &req[..n];
    c.bench_function("stun parse", |b| {
        b.iter(|| stun::StunMessage::parse(black_box(req)).is_ok())
    });
    c.bench_function("stun parse+fingerprint+integrity", |b| {
        b.iter(|| {
            stun::StunMessage::parse(black_box(req))
                .is_ok_and(|m| m.verify_fingerprint() && m.verify_integrity(pwd))
        })
    });
    let mut out = [0u8; 256];
    let addr = "192.0.2.1:50000"
        .parse()
        .unwrap_or(([0, 0, 0, 0], 0).into());
    c.bench_function("stun write_binding_success", |b| {
        b.iter(|| stun::write_binding_success(&mut out, &[7; 12], black_box(addr), pwd))
    });

    let f = rtp::RtpFields {
        marker: true,
        payload_type: 96,
        sequence: 1,
        timestamp: 2,
        ssrc: 3,
    };
    let mut pkt = [0u8; 1200];
    let exts: [(u8, &[u8]); 4] = [(1, &[0x85]), (2, &[1, 2, 3]), (3, &[0, 7]), (4, b"0")];
    let hl = rtp::write_header(&mut pkt, &f, &exts).unwrap_or(12);
    let pkt = &pkt[..hl + 1000];
    c.bench_function("rtp parse+extensions", |b| {
        b.iter(|| {
            rtp::RtpHeader::parse(black_box(pkt))
                .map(|h| rtp::extensions(pkt, &h).count())
                .ok()
        })
    });
    let mut hdr = [0u8; 64];
    c.bench_function("rtp write_header 4 ext", |b| {
        b.iter(|| rtp::write_header(&mut hdr, black_box(&f), &exts))
    });
    c.bench_function("demux classify", |b| {
        b.iter(|| demux::classify(black_box(pkt)))
    });

    let mut comp = [0u8; 512];
    let mut n =
        rtcp::write_sender_report(&mut comp, 1, 2, 3, 4, 5, &[Default::default()]).unwrap_or(0);
    n += rtcp::write_sdes_cname(&mut comp[n..], 1, b"abcdefghijklmnop").unwrap_or(0);
    n += rtcp::write_nack(&mut comp[n..], 1, 2, &[10, 11, 14, 40, 41]).unwrap_or(0);
    n += rtcp::write_pli(&mut comp[n..], 1, 2).unwrap_or(0);
    let comp = &comp[..n];
    c.bench_function("rtcp iterate SR+SDES+NACK+PLI", |b| {
        b.iter(|| {
            rtcp::RtcpIter::new(black_box(comp))
                .map(|p| match p {
                    Ok(rtcp::RtcpPacket::Nack(n)) => n.lost().count(),
                    Ok(rtcp::RtcpPacket::SenderReport(sr)) => sr.reports().count(),
                    _ => 1,
                })
                .sum::<usize>()
        })
    });
    let lost: Vec<u16> = (0..64).map(|i| 1000 + i * 3).collect();
    let mut out = [0u8; 512];
    c.bench_function("rtcp write_nack 64 seqs", |b| {
        b.iter(|| rtcp::write_nack(&mut out, 1, 2, black_box(&lost)))
    });

    // A VP8 key frame start: X, I (15-bit PictureID), L, T/K, then the
    // frame tag, start code and 640x360.
    let mut vp8_payload = [0u8; 1000];
    vp8_payload[..16].copy_from_slice(&[
        0x90, 0xe0, 0x81, 0x23, 0x05, 0x40, 0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68,
        0x01,
    ]);
    c.bench_function("vp8 parse+set_picture_id", |b| {
        b.iter(|| {
            let p = black_box(&mut vp8_payload);
            vp8::Vp8Descriptor::parse(p.as_slice())
                .is_ok_and(|d| d.is_key_frame_start() && vp8::set_picture_id(p, &d, 77).is_ok())
        })
    });

    // 100 packets, every tenth lost, 1 ms apart with a 40 ms jump.
    let arrivals: Vec<(u16, Option<i64>)> = (0..100u16)
        .map(|i| {
            let at = 5_000_000 + i64::from(i) * 1000 + if i == 50 { 40_000 } else { 0 };
            (65_500u16.wrapping_add(i), (i % 10 != 9).then_some(at))
        })
        .collect();
    let params = twcc::TwccParams {
        sender_ssrc: 1,
        media_ssrc: 2,
        fb_count: 3,
        max_len: 1200,
    };
    let mut fb = [0u8; 1200];
    c.bench_function("twcc write_feedback 100 pkts", |b| {
        b.iter(|| twcc::write_feedback(&mut fb, black_box(&params), black_box(&arrivals)))
    });
    let n = twcc::write_feedback(&mut fb, &params, &arrivals).map_or(0, |w| w.len);
    let fci = fb.get(12..n).unwrap_or_default();
    c.bench_function("twcc parse+iterate 100 pkts", |b| {
        b.iter(|| twcc::TwccFeedback::parse(black_box(fci)).map(|f| f.packets().count()))
    });
}

criterion_group!(proto, benches);
criterion_main!(proto);
