//! The shipped policy in `/lua`, decision by decision.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod common;

use common::*;
use salon_plugins::{
    ChatDecision, ErrorKind, Hook, JoinDecision, ModerationAction, ModerationKind, PolicyHost,
    Role, Verdict,
};

fn no_failures(h: &PolicyHost) {
    assert_eq!(h.failure_counters().count(), 0, "{:?}", h.last_failure());
}

#[test]
fn agent_creates_a_room_and_is_moderator() {
    let mut h = host(shipped_dir());
    let agent = identity("camille@interieur.gouv.fr", false);
    let c = ctx(Some(&agent), room("conseil", 0, false), None);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Allow {
            role: Role::Moderator
        }
    );
    assert_eq!(h.on_room_create(&c), Verdict::Allow);
    no_failures(&h);
}

/// The token's moderator flag decides, not merely holding a token: a token
/// without the flag (even one for every room, `room: "*"`) moderates no
/// running room; with the flag it moderates.
#[test]
fn only_the_moderator_flag_moderates_a_running_room() {
    let mut h = host(shipped_dir());
    let plain = identity("camille@interieur.gouv.fr", false);
    assert_eq!(plain.room, "*", "a token for every room");
    for name in ["conseil", "autre", "Conseil"] {
        let c = ctx(Some(&plain), room(name, 3, true), None);
        assert_eq!(
            h.on_join(&c),
            JoinDecision::Allow {
                role: Role::Participant
            },
            "{name}"
        );
    }
    let mut locked = room("conseil", 3, true);
    locked.locked = true;
    let c = ctx(Some(&plain), locked, None);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Lobby,
        "a locked room: the lobby"
    );
    let flagged = identity("camille@interieur.gouv.fr", true);
    let c = ctx(Some(&flagged), room("conseil", 3, true), None);
    assert_eq!(
        h.on_join(&c),
        JoinDecision::Allow {
            role: Role::Moderator
        }
    );
    no_failures(&h);
}

#[test]
fn guest_cannot_create_or_join_a_missing_room() {
    let mut h = host(shipped_dir());
    let c = ctx(None, room("conseil", 0, false), None);
    assert!(
        matches!(h.on_join(&c), JoinDecision::Deny { reason } if reason.contains("does not exist"))
    );
    assert!(matches!(h.on_room_create(&c), Verdict::Deny { .. }));
    no_failures(&h);
}

#[test]
fn guest_on_an_existing_room_goes_to_the_lobby_and_waits() {
    let mut h = host(shipped_dir());
    let c = ctx(None, room("conseil", 3, true), None);
    assert_eq!(h.on_join(&c), JoinDecision::Lobby);
    assert!(
        matches!(h.on_knock(&c), Verdict::Deny { reason } if reason == "waiting for a moderator")
    );
    no_failures(&h);
}

#[test]
fn full_room_denies_everyone() {
    let mut h = host(shipped_dir());
    let agent = identity("a@gouv.fr", true);
    for who in [None, Some(&agent)] {
        let c = ctx(who, room("conseil", 100, true), None);
        assert_eq!(
            h.on_join(&c),
            JoinDecision::Deny {
                reason: "this room is full".into()
            }
        );
    }
    let c = ctx(None, room("conseil", 99, true), None);
    assert_eq!(h.on_join(&c), JoinDecision::Lobby);
    no_failures(&h);
}

#[test]
fn chat_longer_than_2000_chars_is_dropped() {
    let mut h = host(shipped_dir());
    let c = ctx(None, room("conseil", 3, true), Some(Role::Guest));
    assert_eq!(h.on_chat(&c, "bonjour"), ChatDecision::Allow);
    assert_eq!(h.on_chat(&c, &"x".repeat(2000)), ChatDecision::Allow);
    // Characters, not bytes: 2000 two-byte characters pass.
    assert_eq!(h.on_chat(&c, &"é".repeat(2000)), ChatDecision::Allow);
    assert_eq!(
        h.on_chat(&c, &"x".repeat(2001)),
        ChatDecision::Drop {
            reason: "message too long".into()
        }
    );
    no_failures(&h);
}

#[test]
fn only_moderators_moderate() {
    let mut h = host(shipped_dir());
    let kick = ModerationAction {
        kind: ModerationKind::Kick,
        target: Some("p-2"),
    };
    let c = ctx(None, room("conseil", 3, true), Some(Role::Participant));
    assert!(matches!(h.on_moderation(&c, &kick), Verdict::Deny { .. }));
    let c = ctx(None, room("conseil", 3, true), Some(Role::Moderator));
    assert_eq!(h.on_moderation(&c, &kick), Verdict::Allow);
    let end = ModerationAction {
        kind: ModerationKind::End,
        target: None,
    };
    assert_eq!(h.on_moderation(&c, &end), Verdict::Allow);
    no_failures(&h);
}

#[test]
fn notifications_run_without_error() {
    let mut h = host(shipped_dir());
    let c = ctx(None, room("conseil", 0, true), None);
    h.on_leave(&c);
    h.on_room_end(&c);
    no_failures(&h);
}

/// With `TRUST_TOKENS = false`, only the allow-listed e-mail domains are agents.
#[test]
fn agents_by_email_domain() {
    let dir = temp_dir("domains");
    for f in ["policy.lua", "agents.lua"] {
        let src = std::fs::read_to_string(shipped_dir().join(f)).unwrap();
        let src = src.replace("local TRUST_TOKENS = true", "local TRUST_TOKENS = false");
        std::fs::write(dir.join(f), src).unwrap();
    }
    let mut h = PolicyHost::new(config(&dir)).unwrap();
    let cases = [
        ("camille@gouv.fr", true),
        ("camille@interieur.gouv.fr", true),
        ("camille@prefecture.interieur.gouv.FR", true),
        ("camille@notgouv.fr", false),
        ("camille@gouv.fr.example.com", false),
        ("not-an-address", false),
    ];
    for (email, agent) in cases {
        let id = identity(email, false);
        let c = ctx(Some(&id), room("conseil", 0, false), None);
        assert_eq!(h.on_room_create(&c).is_allow(), agent, "{email}");
        // The agent who opens the room hosts it.
        let c = ctx(Some(&id), room("conseil", 0, false), None);
        if agent {
            assert_eq!(
                h.on_join(&c),
                JoinDecision::Allow {
                    role: Role::Moderator
                },
                "{email}"
            );
        }
        // In a running room, without the moderator flag: a participant.
        let c = ctx(Some(&id), room("conseil", 2, true), None);
        assert_eq!(
            h.on_join(&c),
            JoinDecision::Allow {
                role: Role::Participant
            },
            "{email}"
        );
    }
    assert_eq!(h.failure_count(Hook::Join, ErrorKind::Runtime), 0);
    no_failures(&h);
    let _ = std::fs::remove_dir_all(dir);
}

/// Arbitrary chat text and room names never panic or fail the policy (seeded, bounded).
#[test]
fn arbitrary_chat_and_names_never_fail() {
    let mut h = host(shipped_dir());
    let mut x: u64 = 0xD1B5_4A32_D192_ED03;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = std::time::Instant::now();
    for _ in 0..2000 {
        let n = (rnd() % 3000) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let c = ctx(
            None,
            room(&text, (rnd() % 200) as u32, rnd() % 2 == 0),
            Some(Role::Guest),
        );
        let d = h.on_chat(&c, &text);
        let chars = text.chars().count();
        assert_eq!(matches!(d, ChatDecision::Allow), chars <= 2000, "{chars}");
        let _ = h.on_join(&c);
        if start.elapsed().as_secs_f64() > 1.5 {
            break;
        }
    }
    no_failures(&h);
}

/// Every room gets last-N 20; guests receive at most 2.5 Mbit/s of video,
/// agents and participants are not capped.
#[test]
fn last_n_for_every_room_and_a_cap_for_guests() {
    let mut h = host(shipped_dir());
    let c = ctx(None, room("conseil", 0, false), None);
    assert_eq!(h.room_settings(&c).last_n, Some(20));
    let guest = ctx(None, room("conseil", 2, true), Some(Role::Guest));
    assert_eq!(h.media_limits(&guest).max_receive_bps, Some(2_500_000));
    let agent = identity("camille@interieur.gouv.fr", false);
    let moderator = ctx(
        Some(&agent),
        room("conseil", 2, true),
        Some(Role::Moderator),
    );
    assert_eq!(h.media_limits(&moderator).max_receive_bps, None);
    no_failures(&h);
}

/// An OIDC login is judged by its e-mail domain (AGENT_DOMAINS, subdomains
/// included): the provider vouches for the address, not for the role. A
/// token stays trusted whatever its e-mail.
#[test]
fn an_oidc_login_opens_a_room_only_from_an_agent_domain() {
    let mut h = host(shipped_dir());
    let oidc = |email: &str| {
        salon_plugins::Identity::from_oidc(
            "https://auth.agentconnect.gouv.fr/api/v2".into(),
            "sub-1".into(),
            Some("uid-1".into()),
            Some("Camille Martin".into()),
            Some(email.into()),
            serde_json::json!({ "email": email, "siret": "21750001600019" }),
        )
    };
    for (email, agent) in [
        ("camille@interieur.gouv.fr", true),
        ("camille@prefecture.interieur.gouv.fr", true),
        ("camille@gouv.fr.evil.example", false),
        ("someone@other.example", false),
    ] {
        let who = oidc(email);
        let c = ctx(Some(&who), room("conseil", 0, false), None);
        if agent {
            assert_eq!(
                h.on_join(&c),
                JoinDecision::Allow {
                    role: Role::Moderator
                },
                "{email}"
            );
            assert_eq!(h.on_room_create(&c), Verdict::Allow, "{email}");
        } else {
            assert!(
                matches!(h.on_join(&c), JoinDecision::Deny { .. }),
                "{email}"
            );
            assert!(
                matches!(h.on_room_create(&c), Verdict::Deny { .. }),
                "{email}"
            );
        }
        // An existing room: a participant, like any verified identity.
        let c = ctx(Some(&who), room("conseil", 2, true), None);
        assert_eq!(
            h.on_join(&c),
            JoinDecision::Allow {
                role: Role::Participant
            },
            "{email}"
        );
    }
    // A token with an e-mail outside the domains: still an agent.
    let token = identity("camille@other.example", false);
    let c = ctx(Some(&token), room("conseil", 0, false), None);
    assert_eq!(h.on_room_create(&c), Verdict::Allow);
    no_failures(&h);
}
