#![no_main]
// Runs salon_mediad::fuzzing::tcp_deframe: the RFC 4571 deframer of
// ICE-TCP connections, fed a stream in arbitrary reads, gives exactly the
// frames of a plain reading of the whole stream and never panics.
// tests/fuzz_regressions.rs replays fuzz/regressions/tcp_deframe/ on stable.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    salon_mediad::fuzzing::tcp_deframe(data);
});
