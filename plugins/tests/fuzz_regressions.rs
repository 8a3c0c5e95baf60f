//! Replays every input kept in `fuzz/regressions/lua_pattern/` through the
//! same code the `lua_pattern` fuzz target runs.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn lua_pattern_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/lua_pattern");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        let t = Instant::now();
        salon_plugins::fuzzing::pattern(&data);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{} took {:?}",
            path.display(),
            t.elapsed()
        );
        n += 1;
    }
    assert!(n >= 5, "expected the seed regressions in {}", dir.display());
}
