//! A churn soak against the real `salon` binary, small and bounded: two
//! rooms of up to four, participants joining, leaving, reloading and
//! dropping their socket at random for ~40 s (some drops are resumed with
//! the resume token, keeping their media or, as a page reload, with new
//! transports; the others linger for a 3 s grace), every invariant of
//! `salon_perf::churn` checked continuously (`docs/perf.md`, "Churn").

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use salon_perf::run::{RunOptions, Target, run};
use salon_perf::scenario::Scenario;

fn salon_bin() -> Option<PathBuf> {
    let p = std::env::var_os("SALON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/salon"));
    p.exists().then_some(p)
}

const CHURN: &str = r#"
name = "churn-test"
rooms = 2
room_sizes = [4]
video_fraction = 0.5
join_rate = 8.0
duration_s = 40.0
[media]
simulcast = false
[churn]
mean_stay_s = 8.0
min_stay_s = 3.0
reload_fraction = 0.3
drop_fraction = 0.3
reload_pause_s = 0.5
arrival_gap_s = 1.5
resume_fraction = 0.4
resume_reload_fraction = 0.5
resume_pause_s = 1.0
reconnect_grace_s = 3.0
seed = 7
"#;

#[test]
fn churn_soak_keeps_every_invariant() {
    let Some(bin) = salon_bin() else {
        eprintln!(
            "SKIPPED: no salon binary at ../target/debug/salon (run `cargo build -p salon-gateway --bin salon` first)"
        );
        return;
    };
    let out = std::env::temp_dir()
        .join(format!("salon-perf-test-{}", std::process::id()))
        .join("churn");
    let scenario = Scenario::parse(CHURN).unwrap();
    let t0 = Instant::now();
    let r = run(&RunOptions {
        scenario,
        target: Target::Spawn(bin),
        io_backend: "auto".into(),
        sut_workers: 1,
        threads: 1,
        out: Some(out.clone()),
        progress: std::env::var_os("CHURN_PROGRESS").is_some(),
        connect_grace: Duration::from_secs(10),
        tolerate_failures: false,
        room: None,
    });
    let took = t0.elapsed();
    let _ = r.write(&out);
    eprintln!("{}", r.table());
    assert!(took < Duration::from_secs(70), "took {took:?}");
    let c = r.churn.as_ref().expect("churn figures");
    assert_eq!(c.violations_total, 0, "{:#?}", c.violations);
    assert!(r.complete, "{:?}", r.error);
    assert!(c.joins >= 20, "joins {}", c.joins);
    assert!(c.leaves + c.reloads + c.drops >= 12, "{c:?}");
    assert!(c.leaves >= 1 && c.reloads >= 1 && c.drops >= 1, "{c:?}");
    assert!(c.resumes >= 1 && c.resume_reloads >= 1, "{c:?}");
    assert!(c.pair_checks >= 40, "pair checks {}", c.pair_checks);
    assert!(c.time_to_media_samples >= 5, "{c:?}");
    // Four present, plus those lingering in their grace period or reloading.
    assert!(c.max_present.iter().all(|&m| (4..=8).contains(&m)), "{c:?}");
}
