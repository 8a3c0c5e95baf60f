#![no_main]
// Runs salon_mediad::fuzzing::worker_datagram: the first byte picks the
// source (bit 0: unknown or latched address; bit 1: run the timers a second
// later), the rest is one datagram into a Worker whose publish transport
// passed ICE and waits for DTLS. A fresh worker per input.
// tests/fuzz_regressions.rs replays fuzz/regressions/worker_datagram/.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    salon_mediad::fuzzing::worker_datagram(data);
});
