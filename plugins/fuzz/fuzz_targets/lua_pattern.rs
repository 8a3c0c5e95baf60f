//! Fuzz the metered Lua pattern matcher (the sandbox's `string.find`,
//! `match`, `gmatch`, `gsub`): arbitrary patterns on arbitrary subjects end
//! within the step budget, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    salon_plugins::fuzzing::pattern(data);
});
