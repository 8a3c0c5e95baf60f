//! Replays every input kept in `fuzz/regressions/<target>/` through the
//! same function the `control_wire`, `worker_datagram` and `tcp_deframe` fuzz targets run
//! (`salon_mediad::fuzzing`), so a crash input is an ordinary test.

#![allow(clippy::unwrap_used)]

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            run(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    n
}

#[test]
fn control_wire_regressions() {
    let n = replay("control_wire", salon_mediad::fuzzing::control_wire);
    assert!(n >= 3, "expected the seed regressions ({n} files)");
}

#[test]
fn worker_datagram_regressions() {
    let n = replay("worker_datagram", salon_mediad::fuzzing::worker_datagram);
    assert!(n >= 3, "expected the seed regressions ({n} files)");
}

#[test]
fn tcp_deframe_regressions() {
    let n = replay("tcp_deframe", salon_mediad::fuzzing::tcp_deframe);
    assert!(n >= 3, "expected the seed regressions ({n} files)");
}
