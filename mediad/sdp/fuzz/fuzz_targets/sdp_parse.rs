//! `cargo +nightly fuzz run sdp_parse` (from `mediad/sdp/`).
//!
//! Parses arbitrary bytes; when they form an acceptable offer, answers it and
//! checks that the answer parses again. Crashes go into
//! `regressions/sdp_parse/`, which `tests/fuzz_regressions.rs` replays on stable.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use salon_sdp::{Fingerprint, IcePwd, LocalTransport, answer_publish, parse, parse_bytes};

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = parse_bytes(data) else {
        return;
    };
    let local = LocalTransport {
        ice_ufrag: "fuzz".to_owned(),
        ice_pwd: IcePwd::new("fuzzfuzzfuzzfuzzfuzzfuzz"),
        fingerprint: Fingerprint::sha256([0xab; 32]),
        candidate_ips: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        candidate_port: 3478,
        session_id: 1,
        session_version: 1,
    };
    if let Ok(answer) = answer_publish(&offer, &local) {
        assert!(parse(&answer.sdp).is_ok(), "answer does not reparse");
    }
});
