//! End-to-end runs against the real `salon` binary (built by the project's
//! test script into the workspace target dir), and failure handling.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use salon_perf::metrics::Kind;
use salon_perf::run::{RunOptions, Target, run};
use salon_perf::scenario::Scenario;

fn salon_bin() -> Option<PathBuf> {
    let p = std::env::var_os("SALON_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/salon"));
    p.exists().then_some(p)
}

fn out_prefix(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("salon-perf-test-{}", std::process::id()))
        .join(name)
}

fn opts(scenario: Scenario, target: Target, out: PathBuf) -> RunOptions {
    RunOptions {
        scenario,
        target,
        io_backend: "auto".into(),
        sut_workers: 1,
        threads: 2,
        out: Some(out),
        progress: false,
        connect_grace: Duration::from_secs(10),
        tolerate_failures: false,
        room: None,
    }
}

const SMOKE: &str = "name = \"smoke-test\"\nrooms = 1\nroom_sizes = [3]\nvideo_fraction = 1.0\njoin_rate = 10.0\nduration_s = 4.0\n";

#[test]
fn smoke_run_against_real_salon() {
    let Some(bin) = salon_bin() else {
        eprintln!(
            "SKIPPED: no salon binary at ../target/debug/salon (run `cargo build -p salon-gateway --bin salon` first)"
        );
        return;
    };
    let out = out_prefix("smoke");
    let scenario = Scenario::parse(SMOKE).unwrap();
    let t0 = Instant::now();
    let r = run(&opts(scenario, Target::Spawn(bin), out.clone()));
    assert!(t0.elapsed() < Duration::from_secs(40));
    assert!(r.complete, "{:?}", r.error);
    assert_eq!((r.participants, r.participants_connected), (3, 3));
    assert_eq!(r.receivers.len(), 3);
    let ids: Vec<u64> = r.receivers.iter().map(|x| x.id).collect();
    for rx in &r.receivers {
        for &other in ids.iter().filter(|&&i| i != rx.id) {
            for kind in [Kind::Audio, Kind::Video] {
                let got: u64 = rx
                    .from
                    .iter()
                    .filter(|f| f.sender == other && f.kind == kind)
                    .map(|f| f.packets)
                    .sum();
                // 4 s at 50 audio / ~60 video packets per second.
                assert!(
                    got > 100,
                    "{} got {got} {kind:?} packets from {other}",
                    rx.id
                );
            }
        }
        assert!(rx.from.iter().all(|f| f.sender != rx.id), "no echo");
    }
    assert!(r.loss_percent < 5.0, "loss {}", r.loss_percent);
    // Each publisher sends audio + three simulcast layers (50 + 270 pps);
    // each subscriber gets audio + one layer (the top one: 50 + 180 pps)
    // from each of the two others.
    assert!(r.packets_in_per_s > 1.2 * r.packets_out_per_s);
    for rx in &r.receivers {
        for f in rx.from.iter().filter(|f| f.kind == Kind::Video) {
            let best = (0..4).max_by_key(|&l| f.layer_packets[l]).unwrap();
            assert_eq!(best, 3, "top layer forwarded: {:?}", f.layer_packets);
            assert_eq!(f.keyframe_size, Some((1280, 720)));
        }
    }
    assert!(r.latency_p99_ms.is_some_and(|v| v < 1000.0));
    assert!(r.sut_cpu_s.is_some_and(|c| c > 0.0));
    assert!(r.sut_peak_rss_mb.is_some_and(|m| m > 1.0));
    assert_eq!(r.run_totals.srtp_errors, 0);

    r.write(&out).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    for k in [
        "scenario",
        "backend",
        "participants",
        "packets_in_per_s",
        "packets_out_per_s",
        "loss_percent",
        "latency_p50_ms",
        "latency_p99_ms",
        "sut_cpu_s",
        "sut_peak_rss_mb",
        "forwarded_packets_per_cpu_s",
        "timeline",
    ] {
        assert!(json.get(k).is_some_and(|v| !v.is_null()), "missing {k}");
    }
    let svg = std::fs::read_to_string(out.with_extension("svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
}

fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn refused_target_gives_a_partial_report_quickly() {
    let port = dead_port();
    let scenario = Scenario::parse(SMOKE).unwrap();
    let t0 = Instant::now();
    let r = run(&opts(
        scenario,
        Target::Url(format!("http://127.0.0.1:{port}/")),
        out_prefix("refused"),
    ));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(!r.complete);
    let e = r.error.unwrap();
    assert!(e.contains("WebSocket connect"), "{e}");
    assert_eq!(r.participants_connected, 0);
}

#[test]
fn a_fixed_room_needs_a_one_room_scenario() {
    // `--room` fills one existing meeting: a scenario of two rooms is
    // refused before anybody joins.
    let port = dead_port();
    let two_rooms = SMOKE.replace("rooms = 1", "rooms = 2");
    let mut o = opts(
        Scenario::parse(&two_rooms).unwrap(),
        Target::Url(format!("http://127.0.0.1:{port}/")),
        out_prefix("room-two"),
    );
    o.room = Some("Grande-Salle".into());
    let r = run(&o);
    assert!(!r.complete);
    let e = r.error.unwrap();
    assert!(e.contains("--room needs a one-room scenario"), "{e}");
    assert_eq!(r.participants_joined, 0);
}

#[test]
fn cli_exits_non_zero_and_still_writes_the_report() {
    let port = dead_port();
    let dir = out_prefix("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let scen = dir.join("s.toml");
    std::fs::write(&scen, SMOKE).unwrap();
    let prefix = dir.join("report");
    let t0 = Instant::now();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_salon-perf"))
        .args(["run", "--quiet", "--scenario"])
        .arg(&scen)
        .args(["--target", &format!("http://127.0.0.1:{port}/"), "--out"])
        .arg(&prefix)
        .output()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(prefix.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(j["complete"], false);
    assert!(j["error"].as_str().unwrap().contains("WebSocket"));
    // A bad scenario names the line, exit code 2.
    std::fs::write(&scen, SMOKE.replace("rooms = 1", "rooms = \"one\"")).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_salon-perf"))
        .args(["check", "--scenario"])
        .arg(&scen)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2"));
}

#[test]
fn sut_dying_mid_run_ends_the_run() {
    let Some(bin) = salon_bin() else {
        eprintln!("SKIPPED: no salon binary at ../target/debug/salon");
        return;
    };
    let mut sut = salon_perf::sut::spawn(
        &bin,
        "auto",
        1,
        None,
        Duration::from_secs(20),
        Duration::ZERO,
    )
    .unwrap();
    let url = sut.url.clone();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        sut.stop();
    });
    let scenario =
        Scenario::parse(&SMOKE.replace("duration_s = 4.0", "duration_s = 60.0")).unwrap();
    let t0 = Instant::now();
    let r = run(&opts(scenario, Target::Url(url), out_prefix("dies")));
    killer.join().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    assert!(!r.complete);
    assert!(r.error.is_some());
    assert!(r.run_totals.packets_in > 0, "media flowed before the kill");
}

#[test]
fn reflector_run_forwards_every_layer_in_plain_rtp() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_reflector"));
    let scenario = Scenario::parse(SMOKE).unwrap();
    let t0 = Instant::now();
    let r = run(&opts(
        scenario,
        Target::Reflector(bin),
        out_prefix("reflector"),
    ));
    assert!(t0.elapsed() < Duration::from_secs(20));
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.target_kind, "reflector");
    assert_eq!(r.participants_connected, 3);
    // No SFU: every subscriber gets all three layers of both others.
    for rx in &r.receivers {
        let layers: Vec<[u64; 4]> = rx
            .from
            .iter()
            .filter(|f| f.kind == Kind::Video)
            .map(|f| f.layer_packets)
            .collect();
        assert_eq!(layers.len(), 6, "2 senders x 3 layers");
        assert!(
            layers
                .iter()
                .all(|l| l[0] == 0 && l[1..].iter().filter(|&&c| c > 0).count() == 1)
        );
        let sizes: Vec<_> = rx.from.iter().filter_map(|f| f.keyframe_size).collect();
        for s in [(320, 180), (640, 360), (1280, 720)] {
            assert!(sizes.contains(&s), "{s:?} in {sizes:?}");
        }
    }
    assert!(r.loss_percent < 5.0, "loss {}", r.loss_percent);
    assert!(r.packets_in_per_s > 1.8 * r.packets_out_per_s);
    assert!(r.sut_cpu_s.is_some());
    assert_eq!(r.run_totals.srtp_errors, 0);
}
