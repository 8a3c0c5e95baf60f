//! `lua/open.lua`: Jitsi's anonymous default (anyone creates and joins, the
//! first one in moderates), decision by decision.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::*;
use salon_plugins::{
    ChatDecision, JoinDecision, ModerationAction, ModerationKind, PolicyHost, Role, Verdict,
};

fn open_host() -> PolicyHost {
    let mut c = config(shipped_dir());
    c.entry = "open".to_owned();
    PolicyHost::new(c).expect("open.lua loads")
}

fn no_failures(h: &PolicyHost) {
    assert_eq!(h.failure_counters().count(), 0, "{:?}", h.last_failure());
}

#[test]
fn first_guest_creates_the_room_and_moderates() {
    let mut h = open_host();
    let c = ctx(None, room("conseil", 0, false), None);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Allow {
            role: Role::Moderator
        }
    );
    assert_eq!(h.on_room_create(&c), Verdict::Allow);
    no_failures(&h);
}

#[test]
fn later_guests_are_participants_and_token_moderators_moderate() {
    let mut h = open_host();
    let c = ctx(None, room("conseil", 3, true), None);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Allow {
            role: Role::Participant
        }
    );
    let plain = identity("x@example.org", false);
    let c = ctx(Some(&plain), room("conseil", 3, true), None);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Allow {
            role: Role::Participant
        }
    );
    let moderator = identity("m@example.org", true);
    let c = ctx(Some(&moderator), room("conseil", 3, true), None);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Allow {
            role: Role::Moderator
        }
    );
    // A guest back in a lobby (after a kick) may knock its way in.
    assert_eq!(
        h.on_knock(&ctx(None, room("conseil", 3, true), None)),
        Verdict::Allow
    );
    no_failures(&h);
}

#[test]
fn chat_is_free_and_only_moderators_moderate() {
    let mut h = open_host();
    let c = ctx(None, room("conseil", 2, true), Some(Role::Participant));
    assert_eq!(h.on_chat(&c, "bonjour"), ChatDecision::Allow);
    let kick = ModerationAction {
        kind: ModerationKind::Kick,
        target: Some("7"),
    };
    assert!(matches!(h.on_moderation(&c, &kick), Verdict::Deny { .. }));
    let m = ctx(None, room("conseil", 2, true), Some(Role::Moderator));
    assert_eq!(h.on_moderation(&m, &kick), Verdict::Allow);
    h.on_leave(&m);
    h.on_room_end(&m);
    no_failures(&h);
}
