//! Fuzz the pad: arbitrary bytes as a y-protocols frame from one browser
//! must be accepted or refused (that socket closed), never panic, and never
//! disturb the document as seen by the others.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // The pad runs yrs under `catch_unwind` (its decoders and encoders
        // panic on some hostile input, and the gateway refuses the frame):
        // libfuzzer-sys's hook would abort on those caught panics too. This
        // hook only prints; a panic that escapes `fuzz_one` still aborts
        // (it cannot unwind out of the fuzzer's C entry point), so it is
        // still a crash.
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    },
    |data: &[u8]| {
        salon_gateway::pad::fuzz_one(data);
    }
);
