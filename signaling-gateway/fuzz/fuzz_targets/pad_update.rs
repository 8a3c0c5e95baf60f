//! Fuzz the pad: arbitrary bytes as a y-protocols frame from one browser
//! must be accepted or refused (that socket closed), never panic, and never
//! disturb the document as seen by the others.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    salon_gateway::pad::fuzz_one(data);
});
