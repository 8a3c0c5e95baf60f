#![no_main]
// Runs salon_mediad::fuzzing::control_wire: decode_command and decode_event
// never panic, and what decodes survives encode → decode unchanged.
// tests/fuzz_regressions.rs replays fuzz/regressions/control_wire/ on stable.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    salon_mediad::fuzzing::control_wire(data);
});
