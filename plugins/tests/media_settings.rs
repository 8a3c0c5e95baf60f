//! `room_settings` and `media_limits`: optional hooks that set last-N per
//! room and a receive cap per participant; bad values keep the defaults.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::*;
use salon_plugins::{ErrorKind, Hook, MediaLimits, PolicyHost, Role, RoomSettings};

fn host_with(src: &str) -> PolicyHost {
    let dir = temp_dir("media-settings");
    std::fs::write(dir.join("policy.lua"), src).unwrap();
    PolicyHost::new(config(&dir)).unwrap()
}

const BASE: &str = r#"
local p = {}
function p.on_join(ctx) return { action = "allow" } end
"#;

#[test]
fn absent_hooks_keep_the_defaults() {
    let mut h = host_with(&format!("{BASE} return p"));
    let c = ctx(None, room("r", 0, false), None);
    assert_eq!(h.room_settings(&c), RoomSettings::default());
    assert_eq!(h.media_limits(&c), MediaLimits::default());
}

#[test]
fn settings_by_room_and_limits_by_role() {
    let mut h = host_with(&format!(
        r#"{BASE}
function p.room_settings(ctx)
  if ctx.room.name == "plenary" then return {{ last_n = 4 }} end
end
function p.media_limits(ctx)
  if ctx.role == "guest" then return {{ max_bitrate_kbps = 800 }} end
  return nil
end
return p"#
    ));
    let plenary = ctx(None, room("plenary", 0, false), None);
    assert_eq!(h.room_settings(&plenary).last_n, Some(4));
    let other = ctx(None, room("other", 0, false), None);
    assert_eq!(h.room_settings(&other).last_n, None);
    let guest = ctx(None, room("r", 2, true), Some(Role::Guest));
    assert_eq!(h.media_limits(&guest).max_receive_bps, Some(800_000));
    let member = ctx(None, room("r", 2, true), Some(Role::Participant));
    assert_eq!(h.media_limits(&member).max_receive_bps, None);
}

#[test]
fn bad_values_keep_the_defaults_and_are_counted() {
    let cases = [
        "return { last_n = -1 }",
        "return { last_n = 1e9 }",
        "return { last_n = 2.5 }",
        "return { last_n = 'all' }",
        "return 7",
        "error('boom')",
    ];
    for (n, body) in cases.iter().enumerate() {
        let mut h = host_with(&format!(
            "{BASE} function p.room_settings(ctx) {body} end
             function p.media_limits(ctx) {} end return p",
            body.replace("last_n", "max_bitrate_kbps")
        ));
        let c = ctx(None, room("r", 0, false), Some(Role::Guest));
        assert_eq!(h.room_settings(&c), RoomSettings::default(), "{body}");
        assert_eq!(h.media_limits(&c), MediaLimits::default(), "{body}");
        let kind = if body.starts_with("error") {
            ErrorKind::Runtime
        } else {
            ErrorKind::BadReturn
        };
        assert_eq!(h.failure_count(Hook::RoomSettings, kind), 1, "case {n}");
        assert_eq!(h.failure_count(Hook::MediaLimits, kind), 1, "case {n}");
    }
    // Zero kbps is not a cap, it is a mistake; whole floats are fine.
    let mut h = host_with(&format!(
        "{BASE} function p.media_limits(ctx) return {{ max_bitrate_kbps = 0 }} end
         function p.room_settings(ctx) return {{ last_n = 3.0 }} end return p"
    ));
    let c = ctx(None, room("r", 0, false), None);
    assert_eq!(h.media_limits(&c), MediaLimits::default());
    assert_eq!(h.room_settings(&c).last_n, Some(3));
}
