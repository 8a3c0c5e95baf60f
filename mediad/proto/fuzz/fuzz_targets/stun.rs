#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = salon_proto::stun::StunMessage::parse(data) {
        let _ = m.verify_fingerprint();
        let _ = m.verify_integrity(b"password");
        let _ = m.username().map(salon_proto::stun::split_ice_username);
        let _ = m.xor_mapped_address();
    }
});
