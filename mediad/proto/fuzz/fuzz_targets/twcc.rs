#![no_main]
use libfuzzer_sys::fuzz_target;
use salon_proto::twcc::TwccFeedback;

fuzz_target!(|data: &[u8]| {
    if let Ok(fb) = TwccFeedback::parse(data) {
        assert_eq!(fb.packets().count(), usize::from(fb.status_count));
    }
});
