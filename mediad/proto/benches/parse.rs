//! Per-packet cost of the parsers and writers mediad runs on every
//! datagram: `cargo bench -p salon-proto --bench parse`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use salon_proto::{demux, rtcp, rtp, stun};

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
}

criterion_group!(proto, benches);
criterion_main!(proto);
