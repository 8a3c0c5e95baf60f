//! What the fuzz targets run on one input, shared with
//! `tests/fuzz_regressions.rs` so the regression corpus replays exactly the
//! fuzzed code. Each function runs every parser, iterator and check of its
//! module on `data`, and feeds what parsed back through the writers,
//! asserting the round trip (an assertion failure is a finding too).
//! Not part of the API.

#![deny(clippy::indexing_slicing)]

use crate::{demux, rtcp, rtp, stun};

/// The `demux` target.
pub fn demux(data: &[u8]) {
    let kind = demux::classify(data);
    if let Some(&b) = data.first() {
        let expected = match b {
            0..=3 => Some(demux::PacketKind::Stun),
            20..=63 => Some(demux::PacketKind::Dtls),
            128..=191 => None,
            _ => Some(demux::PacketKind::Unknown),
        };
        if let Some(e) = expected {
            assert_eq!(kind, e);
        }
    }
}

/// The `stun` target.
pub fn stun(data: &[u8]) {
    let Ok(m) = stun::StunMessage::parse(data) else {
        return;
    };
    let _ = (m.class(), m.method(), m.message_type(), m.raw());
    let _ = (m.priority(), m.use_candidate(), m.ice_controlling());
    let _ = (m.ice_controlled(), m.error_code(), m.error_reason());
    let _ = (m.unknown_required(), m.ice_username());
    let _ = m.verify_fingerprint();
    let _ = m.verify_integrity(b"password");
    let _ = m.verify_integrity(&[]);
    let _ = m.username().map(stun::split_ice_username);
    if let Some(at) = m.integrity_offset() {
        assert!(at + 24 <= data.len());
    }
    if let Some(at) = m.fingerprint_offset() {
        assert_eq!(at + 8, data.len());
    }
    // Answer it as mediad would, and check the answer.
    let mut buf = [0u8; 256];
    if let Some(addr) = m.xor_mapped_address() {
        let n = stun::write_binding_success(&mut buf, m.transaction_id(), addr, b"pw");
        let Ok(n) = n else {
            panic!("success response to {addr} not written");
        };
        let r = buf.get(..n).and_then(|b| stun::StunMessage::parse(b).ok());
        let Some(r) = r else {
            panic!("own success response does not parse");
        };
        let canonical = std::net::SocketAddr::new(addr.ip().to_canonical(), addr.port());
        assert_eq!(r.xor_mapped_address(), Some(canonical));
        assert!(r.verify_integrity(b"pw") && r.verify_fingerprint());
    }
    if let Some(u) = m.username()
        && let Ok(n) = stun::write_binding_request(&mut buf, m.transaction_id(), u, 1, 2, true, u)
    {
        let r = buf.get(..n).and_then(|b| stun::StunMessage::parse(b).ok());
        let Some(r) = r else {
            panic!("own binding request does not parse");
        };
        assert_eq!(r.username(), Some(u));
        assert!(r.verify_integrity(u) && r.verify_fingerprint());
    }
}

/// The `rtp` target.
pub fn rtp(data: &[u8]) {
    let Ok(h) = rtp::RtpHeader::parse(data) else {
        return;
    };
    assert!(h.payload_offset + h.payload_len + h.padding_len == data.len());
    let _ = h.payload(data);
    let _ = h.csrcs(data).count();
    let mut exts: [(u8, &[u8]); 16] = [(0, &[]); 16];
    let mut n = 0;
    let mut it = rtp::extensions(data, &h);
    for e in it.by_ref() {
        if let Some(slot) = exts.get_mut(n) {
            *slot = e;
            n += 1;
        }
    }
    let _ = (it.malformed(), it.is_two_byte());
    // Writing the fields and elements back gives a header that parses to
    // the same fields and elements.
    let fields = rtp::RtpFields {
        marker: h.marker,
        payload_type: h.payload_type,
        sequence: h.sequence,
        timestamp: h.timestamp,
        ssrc: h.ssrc,
    };
    let exts = exts.get(..n).unwrap_or(&[]);
    let mut buf = [0u8; 4400];
    if let Ok(len) = rtp::write_header(&mut buf, &fields, exts) {
        let out = buf.get(..len).unwrap_or(&[]);
        let Ok(h2) = rtp::RtpHeader::parse(out) else {
            panic!("own header does not parse");
        };
        assert_eq!(
            (
                h2.marker,
                h2.payload_type,
                h2.sequence,
                h2.timestamp,
                h2.ssrc
            ),
            (h.marker, h.payload_type, h.sequence, h.timestamp, h.ssrc)
        );
        assert!(rtp::extensions(out, &h2).eq(exts.iter().copied()));
    }
    let mut copy = [0u8; 64];
    let m = data.len().min(copy.len());
    if let (Some(c), Some(d)) = (copy.get_mut(..m), data.get(..m)) {
        c.copy_from_slice(d);
        let _ = rtp::set_seq(c, 1);
        let _ = rtp::set_timestamp(c, 2);
        let _ = rtp::set_ssrc(c, 3);
        let _ = rtp::set_pt(c, 4);
        let _ = rtp::set_marker(c, true);
    }
}

/// The `rtcp` target.
pub fn rtcp(data: &[u8]) {
    let mut buf = [0u8; 1500];
    for p in rtcp::RtcpIter::new(data) {
        match p {
            Ok(rtcp::RtcpPacket::SenderReport(sr)) => for _ in sr.reports() {},
            Ok(rtcp::RtcpPacket::ReceiverReport(rr)) => {
                let mut blocks = [rtcp::ReportBlock::default(); rtcp::MAX_COUNT];
                let mut n = 0;
                for (slot, b) in blocks.iter_mut().zip(rr.reports()) {
                    *slot = b;
                    n += 1;
                }
                let blocks = blocks.get(..n).unwrap_or(&[]);
                let len = rtcp::write_receiver_report(&mut buf, rr.ssrc, blocks);
                let Ok(len) = len else {
                    panic!("receiver report not written");
                };
                let again = rtcp::RtcpIter::new(buf.get(..len).unwrap_or(&[])).next();
                let Some(Ok(rtcp::RtcpPacket::ReceiverReport(rr2))) = again else {
                    panic!("own receiver report does not parse");
                };
                assert!(rr2.reports().eq(blocks.iter().copied()));
            }
            Ok(rtcp::RtcpPacket::Sdes(s)) => {
                for c in s.chunks() {
                    for _ in c.items() {}
                    let _ = s.cname(c.ssrc);
                }
            }
            Ok(rtcp::RtcpPacket::Bye(b)) => {
                let _ = (b.ssrcs().count(), b.reason());
            }
            Ok(rtcp::RtcpPacket::Nack(nack)) => {
                let _ = (nack.items().count(), nack.pairs());
                let mut lost = [0u16; 512];
                let mut n = 0;
                for (slot, s) in lost.iter_mut().zip(nack.lost()) {
                    *slot = s;
                    n += 1;
                }
                let lost = lost.get(..n).unwrap_or(&[]);
                if let Ok(len) = rtcp::write_nack(&mut buf, 1, 2, lost) {
                    let again = rtcp::RtcpIter::new(buf.get(..len).unwrap_or(&[])).next();
                    let Some(Ok(rtcp::RtcpPacket::Nack(n2))) = again else {
                        panic!("own NACK does not parse");
                    };
                    // Same set of sequence numbers (order and repeats may
                    // differ: the writer merges what fits one pair).
                    let (mut a, mut b) = ([0u64; 1024], [0u64; 1024]);
                    let mut again = [0u16; 512];
                    let lost_again = lost2(&n2, &mut again);
                    for (map, seqs) in [(&mut a, lost), (&mut b, lost_again)] {
                        for &s in seqs {
                            if let Some(w) = map.get_mut(usize::from(s / 64)) {
                                *w |= 1 << (s % 64);
                            }
                        }
                    }
                    assert!(a == b, "NACK round trip");
                }
            }
            Ok(rtcp::RtcpPacket::Fir(f)) => for _ in f.entries() {},
            Ok(rtcp::RtcpPacket::Remb(r)) => for _ in r.ssrcs() {},
            Ok(_) | Err(_) => {}
        }
    }
}

/// The lost sequence numbers of `nack`, into `out`.
fn lost2<'o>(nack: &rtcp::Nack<'_>, out: &'o mut [u16; 512]) -> &'o [u16] {
    let mut n = 0;
    for (slot, s) in out.iter_mut().zip(nack.lost()) {
        *slot = s;
        n += 1;
    }
    out.get(..n).unwrap_or(&[])
}
