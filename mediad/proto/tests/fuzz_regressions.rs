//! The fuzz targets' corpus of hostile inputs, replayed as ordinary tests,
//! and a seeded mutation loop over valid packets: no parser may panic.

use salon_proto::fuzzing;
use salon_proto::rtcp::{self, RtcpIter, RtcpPacket};
use salon_proto::rtp::{self, RtpHeader};
use salon_proto::stun;

/// Everything the fuzz targets run on one input.
fn exercise(data: &[u8]) {
    let exercise_twcc = |fci: &[u8]| {
        if let Ok(fb) = salon_proto::twcc::TwccFeedback::parse(fci) {
            assert_eq!(fb.packets().count(), usize::from(fb.status_count));
        }
    };
    let exercise_vp8 = |payload: &[u8]| {
        if let Ok(d) = salon_proto::vp8::Vp8Descriptor::parse(payload) {
            let mut copy = payload.to_vec();
            let _ = salon_proto::vp8::set_picture_id(&mut copy, &d, 0x7fff);
            let _ = salon_proto::vp8::set_tl0picidx(&mut copy, &d, 1);
            assert!(salon_proto::vp8::Vp8Descriptor::parse(&copy).is_ok());
        }
    };
    // The same functions the cargo-fuzz targets call.
    fuzzing::demux(data);
    fuzzing::stun(data);
    fuzzing::rtp(data);
    fuzzing::rtcp(data);
    if let Ok(h) = RtpHeader::parse(data) {
        exercise_vp8(h.payload(data));
    }
    for p in RtcpIter::new(data) {
        if let Ok(RtcpPacket::TransportCc(t)) = p {
            exercise_twcc(t.fci);
        }
    }
    exercise_twcc(data);
    exercise_vp8(data);
}

#[test]
fn regression_corpus() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut n = 0;
    for target in ["stun", "rtp", "rtcp", "demux", "twcc", "vp8"] {
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
    let started = std::time::Instant::now();
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let mut buf = [0u8; 512];
    let n = stun::write_binding_request(&mut buf, &[1; 12], b"a:b", 1, 2, true, b"pw").unwrap();
    seeds.push(buf[..n].to_vec());
    for addr in ["192.0.2.1:3478", "[2001:db8::1]:3478"] {
        let n =
            stun::write_binding_success(&mut buf, &[2; 12], addr.parse().unwrap(), b"pw").unwrap();
        seeds.push(buf[..n].to_vec());
    }
    let n =
        stun::write_binding_error(&mut buf, &[3; 12], 487, "Role Conflict", Some(b"pw")).unwrap();
    seeds.push(buf[..n].to_vec());
    let f = rtp::RtpFields {
        marker: false,
        payload_type: 96,
        sequence: 1,
        timestamp: 2,
        ssrc: 3,
    };
    let n = rtp::write_header(&mut buf, &f, &[(1, &[1]), (3, b"xyz")]).unwrap();
    seeds.push(buf[..n + 20].to_vec());
    let n = rtp::write_header(&mut buf, &f, &[(1, &[]), (200, b"xyz")]).unwrap();
    buf[0] |= 0x20; // padding: 4 bytes
    buf[n + 7] = 4;
    seeds.push(buf[..n + 8].to_vec());
    let n = rtcp::write_receiver_report(&mut buf, 1, &[Default::default()]).unwrap();
    let m = rtcp::write_nack(&mut buf[n..], 1, 2, &[5, 7, 30]).unwrap();
    seeds.push(buf[..n + m].to_vec());
    let mut n = rtcp::write_sender_report(&mut buf, 1, 2, 3, 4, 5, &[Default::default()]).unwrap();
    n += rtcp::write_sdes_cname(&mut buf[n..], 1, b"cname").unwrap();
    n += rtcp::write_bye(&mut buf[n..], &[1, 2], Some(b"bye")).unwrap();
    n += rtcp::write_fir(&mut buf[n..], 1, 2, 3).unwrap();
    n += rtcp::write_pli(&mut buf[n..], 1, 2).unwrap();
    n += rtcp::write_remb(&mut buf[n..], 1, 1_000_000, &[2, 3]).unwrap();
    seeds.push(buf[..n].to_vec());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..120_000usize {
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
    let elapsed = started.elapsed();
    assert!(elapsed.as_secs() < 10, "mutation loop took {elapsed:?}");
}
