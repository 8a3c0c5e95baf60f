//! Adversarial policies: every escape, overrun or bad value fails closed,
#![allow(clippy::unwrap_used)] // tests may unwrap
//! is counted, and leaves the host usable.

mod common;

use std::time::{Duration, Instant};

use common::*;
use salon_plugins::{
    ChatDecision, Ctx, ErrorKind, FAIL_CLOSED_REASON, Hook, JoinDecision, PolicyConfig,
    PolicyError, PolicyHost, Role, Verdict,
};

fn denied() -> JoinDecision {
    JoinDecision::Deny {
        reason: FAIL_CLOSED_REASON.into(),
    }
}

fn named<'a>(id: Option<&'a salon_plugins::Identity>, name: &'a str) -> Ctx<'a> {
    let mut c = ctx(id, room("r", 1, true), Some(Role::Participant));
    c.display_name = Some(name);
    c
}

#[test]
fn infinite_loop_times_out_within_the_instruction_budget() {
    let mut cfg = PolicyConfig::new(policy_dir("loop"));
    cfg.wall_budget = None; // the instruction count alone must stop it
    let mut h = PolicyHost::new(cfg).unwrap();
    let c = ctx(None, room("r", 1, true), None);
    for n in 1..=3 {
        let t = Instant::now();
        assert_eq!(h.on_join(&c), denied());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(h.failure_count(Hook::Join, ErrorKind::Timeout), n);
    }
    // pcall cannot swallow the budget error.
    assert_eq!(
        h.on_chat(&c, "hi"),
        ChatDecision::Drop {
            reason: FAIL_CLOSED_REASON.into()
        }
    );
    assert_eq!(h.failure_count(Hook::Chat, ErrorKind::Timeout), 1);
    // Unbounded recursion grows the Lua stack until the memory limit stops it.
    assert!(!h.on_knock(&c).is_allow());
    assert_eq!(h.failure_count(Hook::Knock, ErrorKind::OutOfMemory), 1);
    // Still serving.
    assert_eq!(
        h.on_moderation(
            &c,
            &salon_plugins::ModerationAction {
                kind: salon_plugins::ModerationKind::Mute,
                target: Some("p-2"),
            }
        ),
        Verdict::Allow
    );
    assert_eq!(
        h.last_failure(),
        Some((Hook::Knock, ErrorKind::OutOfMemory))
    );
}

#[test]
fn wall_clock_budget_stops_a_loop_too() {
    let mut cfg = PolicyConfig::new(policy_dir("loop"));
    cfg.instruction_budget = u64::MAX;
    cfg.wall_budget = Some(Duration::from_millis(20));
    let mut h = PolicyHost::new(cfg).unwrap();
    let t = Instant::now();
    assert_eq!(h.on_join(&ctx(None, room("r", 1, true), None)), denied());
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(h.failure_count(Hook::Join, ErrorKind::Timeout), 1);
}

#[test]
fn unbounded_allocation_fails_closed_and_the_host_recovers() {
    let mut h = host(policy_dir("alloc"));
    let c = ctx(None, room("r", 1, true), None);
    for n in 1..=3 {
        assert_eq!(h.on_join(&c), denied());
        assert_eq!(h.failure_count(Hook::Join, ErrorKind::OutOfMemory), n);
        assert!(h.used_memory() < 4 * 1024 * 1024, "{}", h.used_memory());
        assert_eq!(
            h.on_chat(&c, "bonjour"),
            ChatDecision::Rewrite {
                text: "BONJOUR".into()
            }
        );
    }
    // pcall cannot swallow the memory error.
    assert!(!h.on_knock(&c).is_allow());
    assert_eq!(h.failure_count(Hook::Knock, ErrorKind::OutOfMemory), 1);
    // One allocation over the limit.
    assert!(!h.on_room_create(&c).is_allow());
    assert_eq!(h.failure_count(Hook::RoomCreate, ErrorKind::OutOfMemory), 1);
    assert_eq!(
        h.on_chat(&c, "ok"),
        ChatDecision::Rewrite { text: "OK".into() }
    );
}

#[test]
fn sandbox_escapes_all_fail_closed() {
    let mut h = host(policy_dir("escape"));
    let agent = identity("a@gouv.fr", false);
    // (attempt, kind it is counted as)
    let cases = [
        ("io_open", ErrorKind::Runtime),
        ("os_execute", ErrorKind::Runtime),
        ("os_exit", ErrorKind::Runtime),
        ("os_getenv", ErrorKind::Runtime),
        ("load_dump", ErrorKind::Runtime),
        ("dofile", ErrorKind::Runtime),
        ("require_passwd", ErrorKind::Sandbox),
        ("require_dotted", ErrorKind::Sandbox),
        ("require_missing", ErrorKind::Runtime),
        ("debug_getinfo", ErrorKind::Runtime),
        ("ctx_write", ErrorKind::Sandbox),
        ("ctx_nested_write", ErrorKind::Sandbox),
        ("ctx_room_write", ErrorKind::Sandbox),
        ("ctx_claims_write", ErrorKind::Sandbox),
        ("rawset_ctx", ErrorKind::Runtime),
        ("setmetatable_ctx", ErrorKind::Runtime),
        ("gc_metamethod", ErrorKind::Sandbox),
        ("pcall_ctx_write", ErrorKind::Sandbox),
        ("collectgarbage", ErrorKind::Runtime),
        ("coroutine", ErrorKind::Runtime),
        ("package", ErrorKind::Runtime),
    ];
    for (attempt, kind) in cases {
        let before = h.failure_count(Hook::Join, kind);
        let c = named(Some(&agent), attempt);
        assert_eq!(h.on_join(&c), denied(), "{attempt}");
        assert_eq!(h.failure_count(Hook::Join, kind), before + 1, "{attempt}");
        assert_eq!(h.last_failure(), Some((Hook::Join, kind)), "{attempt}");
    }
    // The same policy still allows when nothing is attempted.
    assert_eq!(
        h.on_join(&named(Some(&agent), "nothing")),
        JoinDecision::Allow {
            role: Role::Moderator
        }
    );
}

#[test]
fn what_the_sandbox_leaves() {
    let mut h = host(policy_dir("escape"));
    let agent = identity("a@gouv.fr", false);
    let c = named(Some(&agent), "x");
    assert_eq!(
        h.on_chat(&c, "probe"),
        ChatDecision::Rewrite {
            text: String::new()
        }
    );
    assert_eq!(
        h.on_chat(&c, "ctx"),
        ChatDecision::Rewrite {
            text: r#"exists,locked,name,roles,size|2|{"guest":0,"moderator":1,"participant":0}|read-only"#
                .into()
        }
    );
    assert_eq!(
        h.on_chat(&c, "json"),
        ChatDecision::Rewrite {
            text: r#"[1,2,{}]|d|nil|invalid json|false"#.into()
        }
    );
    // salon.log is rate-limited per second of ctx.now (20 lines by default).
    assert_eq!(h.on_chat(&c, "log"), ChatDecision::Allow);
    assert_eq!(h.log_lines_dropped(), 80);
    assert_eq!(h.failure_counters().count(), 0);
}

#[test]
fn bad_return_values_fail_closed() {
    let mut h = host(policy_dir("badreturn"));
    for (n, name) in [
        "number",
        "none",
        "unknown_action",
        "unknown_role",
        "role_type",
        "long_reason",
        "reason_type",
        "control_reason",
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(h.on_join(&named(None, name)), denied(), "{name}");
        assert_eq!(
            h.failure_count(Hook::Join, ErrorKind::BadReturn),
            n as u64 + 1,
            "{name}"
        );
        assert!(
            matches!(
                h.try_on_join(&named(None, name)),
                Err(PolicyError::BadReturn {
                    hook: Hook::Join,
                    ..
                })
            ),
            "{name}"
        );
    }
    assert_eq!(
        h.on_join(&named(None, "ok_deny")),
        JoinDecision::Deny {
            reason: "closed today".into()
        }
    );
    // No role: the least that fits (guest without identity, participant with one).
    assert_eq!(
        h.on_join(&named(None, "ok_allow_no_role")),
        JoinDecision::Allow { role: Role::Guest }
    );
    let id = identity("a@b.fr", false);
    assert_eq!(
        h.on_join(&named(Some(&id), "ok_allow_no_role")),
        JoinDecision::Allow {
            role: Role::Participant
        }
    );
    let c = named(None, "x");
    assert!(!h.on_room_create(&c).is_allow());
    assert_eq!(h.failure_count(Hook::RoomCreate, ErrorKind::BadReturn), 1);
    assert!(!h.on_knock(&c).is_allow());
    assert_eq!(h.failure_count(Hook::Knock, ErrorKind::BadReturn), 1);
    for msg in ["long", "rewrite-without-text"] {
        assert_eq!(
            h.on_chat(&c, msg),
            ChatDecision::Drop {
                reason: FAIL_CLOSED_REASON.into()
            }
        );
    }
    assert_eq!(h.failure_count(Hook::Chat, ErrorKind::BadReturn), 2);
    assert_eq!(
        h.on_chat(&c, "drop"),
        ChatDecision::Drop {
            reason: "not allowed".into()
        }
    );
}

fn write(dir: &std::path::Path, name: &str, src: &str) {
    std::fs::write(dir.join(name), src).unwrap();
}

const GOOD_V1: &str = r#"return { on_join = function(ctx) return { action = "lobby" } end }"#;
const GOOD_V2: &str = r#"local h = require("helper")
return { on_join = function(ctx) return { action = "deny", reason = h.reason } end }"#;

#[test]
fn reload_keeps_the_previous_policy_on_failure() {
    let dir = temp_dir("reload");
    write(&dir, "policy.lua", GOOD_V1);
    let mut h = PolicyHost::new(config(&dir)).unwrap();
    let c = ctx(None, room("r", 1, true), None);
    assert_eq!(h.on_join(&c), JoinDecision::Lobby);

    let broken = [
        (
            "syntax",
            "return { on_join = function(ctx) return { action = end }",
            ErrorKind::Load,
        ),
        (
            "runtime at load",
            "error('boom') return {}",
            ErrorKind::Runtime,
        ),
        (
            "no on_join",
            "return { on_chat = function() end }",
            ErrorKind::Load,
        ),
        ("not a table", "return 1", ErrorKind::Load),
        (
            "hook not a function",
            "return { on_join = 1 }",
            ErrorKind::Load,
        ),
        ("loop at load", "while true do end", ErrorKind::Timeout),
        (
            "alloc at load",
            "local t = {} while true do t[#t+1] = string.rep('x', 1e6) end",
            ErrorKind::OutOfMemory,
        ),
        ("bytecode", "\x1bLua", ErrorKind::Load),
    ];
    for (what, src, kind) in broken {
        write(&dir, "policy.lua", src);
        let err = h.reload().expect_err(what);
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert_eq!(h.last_failure(), Some((Hook::Load, kind)), "{what}");
        assert_eq!(
            h.on_join(&c),
            JoinDecision::Lobby,
            "{what}: previous policy serves"
        );
    }
    assert!(matches!(
        {
            write(
                &dir,
                "policy.lua",
                "return { on_join = function(ctx) return { action = end }",
            );
            h.reload()
        },
        Err(PolicyError::Syntax(_))
    ));
    // A syntax error in a helper fails the reload too, even if not yet required.
    write(&dir, "policy.lua", GOOD_V2);
    write(&dir, "helper.lua", "return {");
    assert!(matches!(h.reload(), Err(PolicyError::Syntax(_))));
    assert_eq!(h.reload_count(), 0);

    write(&dir, "helper.lua", "return { reason = 'v2' }");
    h.reload().unwrap();
    assert_eq!(h.reload_count(), 1);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Deny {
            reason: "v2".into()
        }
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn reload_if_changed_polls_the_folder() {
    let dir = temp_dir("poll");
    write(&dir, "policy.lua", GOOD_V1);
    let mut h = PolicyHost::new(config(&dir)).unwrap();
    let c = ctx(None, room("r", 1, true), None);
    assert!(!h.reload_if_changed().unwrap());
    // A broken edit is tried once, then not again until it changes.
    write(&dir, "policy.lua", "return {");
    assert!(h.reload_if_changed().is_err());
    assert!(!h.reload_if_changed().unwrap());
    assert_eq!(h.on_join(&c), JoinDecision::Lobby);
    // A new module file counts as a change.
    write(&dir, "policy.lua", GOOD_V2);
    write(&dir, "helper.lua", "return { reason = 'polled' }");
    assert!(h.reload_if_changed().unwrap());
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Deny {
            reason: "polled".into()
        }
    );
    assert!(!h.reload_if_changed().unwrap());
    // Files that are not modules are ignored.
    write(&dir, "notes.txt", "x");
    write(&dir, "Bad-Name.lua", "x");
    assert!(!h.reload_if_changed().unwrap());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn missing_folder_or_entry_is_an_error() {
    assert!(matches!(
        PolicyHost::new(PolicyConfig::new("/nonexistent/salon-policy")),
        Err(PolicyError::Io { .. })
    ));
    let dir = temp_dir("noentry");
    write(&dir, "other.lua", GOOD_V1);
    assert!(matches!(
        PolicyHost::new(config(&dir)),
        Err(PolicyError::Invalid(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_hostile_pattern_on_a_megabyte_message_fails_closed_within_the_budget() {
    let mut h = PolicyHost::new(PolicyConfig::new(policy_dir("patterns"))).unwrap();
    let c = ctx(None, room("r", 1, true), Some(Role::Participant));
    let message = "a".repeat(1 << 20);
    for n in 1..=2 {
        let t = Instant::now();
        assert_eq!(
            h.on_chat(&c, &message),
            ChatDecision::Drop {
                reason: FAIL_CLOSED_REASON.into()
            }
        );
        // The hook's budget is 1 000 000 instructions or 50 ms; stock Lua
        // would run this match for hours.
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(h.failure_count(Hook::Chat, ErrorKind::Timeout), n);
    }
    // A short message is matched normally.
    assert_eq!(h.on_chat(&c, "hello"), ChatDecision::Allow);
    assert_eq!(
        h.on_chat(&c, "xylophone"),
        ChatDecision::Drop { reason: "x".into() }
    );
    // pcall cannot swallow a runaway match.
    let action = salon_plugins::ModerationAction {
        kind: salon_plugins::ModerationKind::Mute,
        target: Some("p-2"),
    };
    assert_eq!(
        h.on_moderation(&c, &action),
        Verdict::Deny {
            reason: FAIL_CLOSED_REASON.into()
        }
    );
    assert_eq!(h.failure_count(Hook::Moderation, ErrorKind::Timeout), 1);
}

#[test]
fn a_gigabyte_string_rep_is_refused() {
    let mut h = PolicyHost::new(PolicyConfig::new(policy_dir("patterns"))).unwrap();
    let t = Instant::now();
    assert_eq!(h.on_join(&ctx(None, room("r", 1, true), None)), denied());
    assert!(t.elapsed() < Duration::from_millis(500));
    // Refused before allocating, counted as what the memory limit would
    // have said.
    assert_eq!(h.failure_count(Hook::Join, ErrorKind::OutOfMemory), 1);
    // Ordinary patterns keep working in the same VM.
    let mut c = ctx(None, room("r", 1, true), Some(Role::Guest));
    c.display_name = Some("Ada   Lovelace");
    assert!(h.on_knock(&c).is_allow());
    c.display_name = Some("Ada");
    assert!(!h.on_knock(&c).is_allow());
}
