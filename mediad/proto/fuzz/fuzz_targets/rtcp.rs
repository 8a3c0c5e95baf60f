#![no_main]
use libfuzzer_sys::fuzz_target;
use salon_proto::rtcp::{RtcpIter, RtcpPacket};

fuzz_target!(|data: &[u8]| {
    for p in RtcpIter::new(data) {
        match p {
            Ok(RtcpPacket::SenderReport(sr)) => for _ in sr.reports() {},
            Ok(RtcpPacket::ReceiverReport(rr)) => for _ in rr.reports() {},
            Ok(RtcpPacket::Nack(n)) => for _ in n.lost() {},
            Ok(RtcpPacket::Fir(f)) => for _ in f.entries() {},
            Ok(RtcpPacket::Remb(r)) => for _ in r.ssrcs() {},
            _ => {}
        }
    }
});
