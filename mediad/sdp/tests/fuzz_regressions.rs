//! Runs every input kept in `fuzz/regressions/sdp_parse/` through the same
//! code as the `sdp_parse` fuzz target.

mod common;

use std::fs;
use std::path::Path;

use salon_sdp::{answer_publish, parse, parse_bytes};

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/sdp_parse");
    let mut n = 0;
    let l = common::local();
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).unwrap();
        if let Ok(offer) = parse_bytes(&data)
            && let Ok(ans) = answer_publish(&offer, &l)
        {
            assert!(
                parse(&ans.sdp).is_ok(),
                "{}: answer does not reparse",
                path.display()
            );
        }
        n += 1;
    }
    assert!(n > 0, "no regression inputs in {}", dir.display());
}
