//! The abuse suite against the real `salon` binary: every attack of the
//! abuse-hardening issue while a bystander meeting on the same mediad
//! worker keeps talking (`docs/security.md`). Prints the table and
//! writes it to `target/abuse-report.md`.
//!
//! `ABUSE_ONLY=message-flood,nack-storm` runs only those attacks.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use salon_perf::abuse::{SuiteOptions, check_gap_monitor, run_suite};

fn salon_bin() -> Option<PathBuf> {
    let p = std::env::var_os("SALON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/salon"));
    p.exists().then_some(p)
}

#[test]
fn every_attack_spares_the_bystanders() {
    let Some(salon) = salon_bin() else {
        eprintln!(
            "SKIPPED: no salon binary at ../target/debug/salon (run `cargo build -p salon-gateway --bin salon` first)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("salon-abuse-{}", std::process::id()));
    let only = std::env::var("ABUSE_ONLY")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let opts = SuiteOptions {
        salon,
        dir: dir.clone(),
        only,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(run_suite(&opts));
    let md = report.markdown();
    eprintln!("{md}");
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/abuse-report.md");
    if let Err(e) = std::fs::write(&out, &md) {
        eprintln!("could not write {}: {e}", out.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!report.rows.is_empty(), "no attack ran: {:?}", report.notes);
    assert!(
        report.secs < Duration::from_secs(240).as_secs_f64(),
        "the suite took {:.0} s",
        report.secs
    );
    let failed: Vec<&str> = report.failed().iter().map(|r| r.name).collect();
    assert!(
        failed.is_empty(),
        "attacks that got through: {failed:?} (table and reasons above, and in {})",
        out.display()
    );
}

/// The bystander check is not vacuous: when the bystanders pause their
/// media for 1.2 s, the window reports that gap (and nothing else).
#[test]
fn the_gap_monitor_sees_a_silence() {
    let Some(salon) = salon_bin() else {
        eprintln!("SKIPPED: no salon binary at ../target/debug/salon");
        return;
    };
    let dir = std::env::temp_dir().join(format!("salon-abuse-gap-{}", std::process::id()));
    let opts = SuiteOptions {
        salon,
        dir: dir.clone(),
        only: Vec::new(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let row = rt.block_on(check_gap_monitor(&opts)).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{row:?}");
    let gap = row.gap_ms.unwrap();
    assert!((1000.0..1800.0).contains(&gap), "{row:?}");
    assert_eq!(row.failures.len(), 4, "one per stream: {row:?}");
    assert!(
        row.failures
            .iter()
            .all(|f| f.contains("went") && f.contains("without")),
        "{row:?}"
    );
}
