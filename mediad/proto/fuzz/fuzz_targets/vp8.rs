#![no_main]
use libfuzzer_sys::fuzz_target;
use salon_proto::vp8::{Vp8Descriptor, set_picture_id, set_tl0picidx};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Vp8Descriptor::parse(data) {
        assert!(d.header_len <= data.len());
        let mut copy = data.to_vec();
        let _ = set_picture_id(&mut copy, &d, 0x7fff);
        let _ = set_tl0picidx(&mut copy, &d, 0xff);
        let e = Vp8Descriptor::parse(&copy).expect("rewrite keeps it parseable");
        assert_eq!(e.header_len, d.header_len);
    }
});
