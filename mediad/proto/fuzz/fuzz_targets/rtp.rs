#![no_main]
// Runs salon_proto::fuzzing::rtp: every parser, iterator and check of the
// module, and the writer round trips. tests/fuzz_regressions.rs replays
// fuzz/regressions/rtp/ through the same function on stable.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    salon_proto::fuzzing::rtp(data);
});
