#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = salon_proto::rtp::RtpHeader::parse(data) {
        let _ = h.payload(data);
        for _ in salon_proto::rtp::extensions(data, &h) {}
    }
});
