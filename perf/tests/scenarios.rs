//! Scenario files: the shipped ones parse; errors name the line.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use salon_perf::scenario::{Scenario, ScenarioError};

fn shipped(name: &str) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::load(&p).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn shipped_scenarios_parse() {
    let s = shipped("smoke.toml");
    assert_eq!((s.rooms, s.participants(), s.video_fraction), (1, 3, 1.0));
    assert_eq!(s.duration_s, 10.0);
    assert_eq!(s.plan().iter().filter(|p| p.video).count(), 3);

    let m = shipped("meetings-small.toml");
    let sizes: Vec<u32> = (0..m.rooms).map(|r| m.room_size(r)).collect();
    assert!(sizes.iter().all(|s| (3..=5).contains(s)));
    let avg = m.participants() as f64 / f64::from(m.rooms);
    assert!((3.0..3.5).contains(&avg), "{avg}");

    let l = shipped("large-room.toml");
    assert_eq!((l.rooms, l.participants()), (1, 100));

    let n = shipped("national-2020-peak.toml");
    assert_eq!((n.rooms, n.participants()), (150, 500));
    let video = n.plan().iter().filter(|p| p.video).count();
    assert!((160..=170).contains(&video), "{video}");
    assert!(n.media.simulcast, "three layers by default");

    let churn = shipped("churn.toml");
    let c = churn.churn.as_ref().unwrap();
    assert_eq!((churn.rooms, churn.participants()), (3, 15));
    assert_eq!((c.mean_stay_s, c.seed), (20.0, 2026));
    assert!(shipped("smoke.toml").churn.is_none());

    let single = shipped("national-2020-peak-single.toml");
    assert_eq!((single.rooms, single.participants()), (150, 500));
    assert!(!single.media.simulcast);
    assert_eq!(single.plan(), n.plan(), "same people, same rooms");
}

#[test]
fn plan_fills_rooms_in_order_and_spreads_video() {
    let s = Scenario::parse(
        "name = \"t\"\nrooms = 2\nroom_sizes = [2, 3]\nvideo_fraction = 0.5\njoin_rate = 1\nduration_s = 1\n",
    )
    .unwrap();
    let p = s.plan();
    assert_eq!(
        p.iter().map(|p| p.room).collect::<Vec<_>>(),
        [0, 0, 1, 1, 1]
    );
    assert_eq!(
        p.iter().map(|p| p.video).collect::<Vec<_>>(),
        [false, true, false, true, false]
    );
    assert_eq!(s.ramp_s(), 5.0);
}

fn err_line(text: &str) -> (usize, String) {
    match Scenario::parse(text) {
        Err(ScenarioError::Parse { line, message, .. }) => (line, message),
        Err(ScenarioError::Invalid { line, message }) => (line, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

const GOOD: &str = "name = \"x\"\nrooms = 1\nroom_sizes = [3]\nvideo_fraction = 1.0\njoin_rate = 5.0\nduration_s = 4\n";

#[test]
fn unknown_key_names_its_line() {
    let text = format!("{GOOD}\n[media]\nvideo_fps = 30\nbitrate = 5\n");
    let (line, msg) = err_line(&text);
    assert_eq!(line, 10, "{msg}");
    assert!(msg.contains("bitrate"), "{msg}");
    let text = GOOD.replace("rooms = 1\n", "rooms = 1\nroomz = 2\n");
    let (line, msg) = err_line(&text);
    assert_eq!(line, 3, "{msg}");
    assert!(msg.contains("roomz"), "{msg}");
}

#[test]
fn bad_type_names_its_line() {
    let text = GOOD.replace("join_rate = 5.0", "join_rate = \"fast\"");
    let (line, msg) = err_line(&text);
    assert_eq!(line, 5, "{msg}");
    let e = Scenario::parse(&text).unwrap_err().to_string();
    assert!(e.starts_with("line 5"), "{e}");
}

#[test]
fn bad_values_name_their_line() {
    let (line, _) = err_line(&GOOD.replace("video_fraction = 1.0", "video_fraction = 1.5"));
    assert_eq!(line, 4);
    let (line, _) = err_line(&GOOD.replace("room_sizes = [3]", "room_sizes = []"));
    assert_eq!(line, 3);
    let (line, _) = err_line(&GOOD.replace("duration_s = 4", "duration_s = 0"));
    assert_eq!(line, 6);
    let (line, _) = err_line(&GOOD.replace("name = \"x\"", "name = \"a b\""));
    assert_eq!(line, 1);
}

#[test]
fn churn_keys_are_checked() {
    let ok = format!("{GOOD}[churn]\nmean_stay_s = 5.0\nseed = 3\n");
    let c = Scenario::parse(&ok).unwrap().churn.unwrap();
    assert_eq!((c.mean_stay_s, c.seed, c.reload_fraction), (5.0, 3, 0.2));
    let bad = format!("{GOOD}[churn]\nreload_fraction = 0.7\ndrop_fraction = 0.7\n");
    assert!(
        Scenario::parse(&bad)
            .unwrap_err()
            .to_string()
            .contains("churn")
    );
    let unknown = format!("{GOOD}[churn]\nmean_stay = 5.0\n");
    assert!(matches!(
        Scenario::parse(&unknown),
        Err(ScenarioError::Parse { .. })
    ));
}

#[test]
fn missing_key_and_broken_toml_are_errors() {
    assert!(Scenario::parse(&GOOD.replace("rooms = 1\n", "")).is_err());
    let (line, _) = err_line(&GOOD.replace("rooms = 1", "rooms = = 1"));
    assert_eq!(line, 2);
}

#[test]
fn arbitrary_text_never_panics() {
    let mut x = 0x0123_4567_89ab_cdefu64;
    let base = format!("{GOOD}[media]\nvideo_fps = 30\n").into_bytes();
    for _ in 0..3000 {
        let mut m = base.clone();
        for _ in 0..3 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x % m.len() as u64) as usize;
            m[i] = (x >> 8) as u8;
        }
        let _ = Scenario::parse(&String::from_utf8_lossy(&m));
    }
}
