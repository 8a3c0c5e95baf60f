//! The fuzz targets' corpus of hostile inputs, replayed as ordinary tests,
//! and a seeded mutation loop over valid packets: no parser may panic.

use salon_proto::demux::classify;
use salon_proto::rtcp::{RtcpIter, RtcpPacket};
use salon_proto::rtp::{RtpHeader, extensions};
use salon_proto::stun::{StunMessage, split_ice_username};

/// Everything the fuzz targets run on one input.
fn exercise(data: &[u8]) {
    let _ = classify(data);
    if let Ok(m) = StunMessage::parse(data) {
        let _ = m.verify_fingerprint();
        let _ = m.verify_integrity(b"password");
        let _ = m.username().map(split_ice_username);
        let _ = m.xor_mapped_address();
        let _ = m.transaction_id();
    }
    if let Ok(h) = RtpHeader::parse(data) {
        let _ = h.payload(data);
        let mut it = extensions(data, &h);
        for _ in it.by_ref() {}
        let _ = it.malformed();
    }
    for p in RtcpIter::new(data).take(64) {
        match p {
            Ok(RtcpPacket::SenderReport(sr)) => for _ in sr.reports() {},
            Ok(RtcpPacket::ReceiverReport(rr)) => for _ in rr.reports() {},
            Ok(RtcpPacket::Nack(n)) => for _ in n.lost() {},
            Ok(RtcpPacket::Fir(f)) => for _ in f.entries() {},
            Ok(RtcpPacket::Remb(r)) => for _ in r.ssrcs() {},
            _ => {}
        }
    }
}

#[test]
fn regression_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for target in ["stun", "rtp", "rtcp", "demux"] {
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            exercise(&data);
            n += 1;
        }
    }
    assert!(n >= 8, "corpus present ({n} files)");
}

#[test]
fn seeded_mutations_never_panic() {
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 512];
    let n = salon_proto::stun::write_binding_request(&mut buf, &[1; 12], b"a:b", 1, 2, true, b"pw")
        .unwrap();
    seeds.push(buf[..n].to_vec());
    let f = salon_proto::rtp::RtpFields {
        marker: false,
        payload_type: 96,
        sequence: 1,
        timestamp: 2,
        ssrc: 3,
    };
    let n = salon_proto::rtp::write_header(&mut buf, &f, &[(1, &[1]), (3, b"xyz")]).unwrap();
    seeds.push(buf[..n + 20].to_vec());
    let n = salon_proto::rtcp::write_receiver_report(&mut buf, 1, &[Default::default()]).unwrap();
    let m = salon_proto::rtcp::write_nack(&mut buf[n..], 1, 2, &[5, 7, 30]).unwrap();
    seeds.push(buf[..n + m].to_vec());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..200_000usize {
        let mut d = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rnd() % 4 {
            let r = rnd();
            match r % 4 {
                0 if !d.is_empty() => {
                    let at = (r >> 8) as usize % d.len();
                    d[at] = (r >> 32) as u8;
                }
                1 if !d.is_empty() => d.truncate((r >> 8) as usize % d.len()),
                2 => d.push((r >> 8) as u8),
                _ => {
                    if d.len() > 4 {
                        let at = 2 + (r >> 8) as usize % (d.len() - 3);
                        d[at] = 0xff;
                    }
                }
            }
        }
        exercise(&d);
    }
}
