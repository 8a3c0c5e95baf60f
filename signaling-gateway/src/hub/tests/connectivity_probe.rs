//! Connectivity probes (the `/test` page): a socket that has not joined may
//! offer a probe transport; it is a hidden participant alone in its own
//! mediad room, never in a hub room and never seen by anyone; one per
//! socket at a time, rate-limited per socket and per address, gone when
//! the socket closes or its lifetime ends.

use std::time::Duration;

use serde_json::json;

use super::support::*;
use crate::control::RequestId;
use crate::turn::{TurnConfig, TurnSecret};

const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

fn probe(hub: &mut Hub, id: u64, now: Now) -> Vec<Output> {
    frame(hub, id, json!({"type": "probe", "sdp": OFFER}), now)
}

/// The hidden participant and mediad room of a probe's commands.
fn probe_commands(out: &[Output]) -> (ParticipantId, String, RequestId) {
    let cmds = commands(out);
    let (pid, room) = cmds
        .iter()
        .find_map(|c| match c {
            Command::Join { room, participant } => Some((*participant, room.0.clone())),
            _ => None,
        })
        .expect("a probe joins mediad");
    let request = cmds
        .iter()
        .find_map(|c| match c {
            Command::PublishOffer {
                participant,
                request,
                sdp,
            } if *participant == pid => {
                assert_eq!(sdp, OFFER);
                Some(*request)
            }
            _ => None,
        })
        .expect("and offers");
    (pid, room, request)
}

fn leaves(out: &[Output]) -> Vec<ParticipantId> {
    commands(out)
        .into_iter()
        .filter_map(|c| match c {
            Command::Leave { participant } => Some(participant),
            _ => None,
        })
        .collect()
}

fn answer(hub: &mut Hub, pid: ParticipantId, request: RequestId) -> Vec<Output> {
    hub.handle_media_event(Event::PublishAnswer {
        participant: pid,
        request,
        sdp: "v=0 answer".into(),
    });
    drain(hub)
}

fn turn() -> TurnConfig {
    TurnConfig::new(
        vec![
            "turn:127.0.0.5:3478?transport=udp".into(),
            "turns:127.0.0.5:5349?transport=tcp".into(),
        ],
        TurnSecret::new(b"a-test-secret-of-the-turn-server".to_vec()).unwrap(),
        Duration::from_secs(600),
    )
    .unwrap()
}

#[test]
fn a_probe_before_any_join_gets_an_answer_and_turn_servers_and_is_in_no_room() {
    let mut hub = Hub::with_seed(1);
    hub.set_turn(turn());
    let member = join(&mut hub, 2, "R", "Alice");
    assert!(matches!(
        sends_to(&member, p(2))[0],
        ServerMessage::Joined { .. }
    ));
    hub.handle_open(p(1));
    let out = probe(&mut hub, 1, t0());
    let (pid, room, request) = probe_commands(&out);
    assert!(pid != p(1) && pid != p(2), "a hidden id of its own");
    assert!(
        room.starts_with("~probe-"),
        "a mediad room no join can name: {room}"
    );
    assert!(sends_to(&out, p(2)).is_empty(), "the member hears nothing");
    assert_eq!(hub.room_count(), 1);
    assert_eq!(hub.participant_count(), 1);
    assert_eq!(hub.probe_count(), 1);

    let out = answer(&mut hub, pid, request);
    let msgs = sends_to(&out, p(1));
    let [
        ServerMessage::ProbeAnswer {
            sdp,
            ice_servers,
            ttl_ms,
        },
    ] = msgs.as_slice()
    else {
        panic!("one probe-answer, got {msgs:?}");
    };
    assert_eq!(sdp, "v=0 answer");
    assert_eq!(*ttl_ms, 20_000);
    assert_eq!(ice_servers.len(), 1);
    assert_eq!(
        ice_servers[0].username.split(':').nth(1),
        Some(pid.0.to_string().as_str()),
        "credentials for the probe's id"
    );
    assert!(sends_to(&out, p(2)).is_empty());

    // Other events of the probe reach nobody.
    hub.handle_media_event(Event::SubscribeOffer {
        participant: pid,
        sdp: "v=0".into(),
    });
    assert!(drain(&mut hub).is_empty());

    // The socket may still join a meeting afterwards.
    let out = frame(
        &mut hub,
        1,
        json!({"type": "join", "room": "R", "name": "Bob"}),
        at(10),
    );
    assert!(matches!(
        sends_to(&out, p(1))[0],
        ServerMessage::Joined { .. }
    ));
}

#[test]
fn without_turn_the_answer_has_no_ice_servers() {
    let mut hub = Hub::with_seed(2);
    hub.handle_open(p(1));
    let (pid, _, request) = probe_commands(&probe(&mut hub, 1, t0()));
    let out = answer(&mut hub, pid, request);
    assert!(matches!(
        sends_to(&out, p(1)).as_slice(),
        [ServerMessage::ProbeAnswer { ice_servers, .. }] if ice_servers.is_empty()
    ));
}

#[test]
fn a_probe_needs_no_token_and_creates_no_room() {
    // The shipped policy lets only agents (with a token) create rooms.
    let mut hub = policy_hub("policy");
    let out = join_at(&mut hub, 3, "R", "Guest", None, t0());
    assert!(
        error_code(&sends_to(&out, p(3))).is_some(),
        "a guest cannot create R"
    );
    hub.handle_open(p(1));
    let out = probe(&mut hub, 1, t0());
    probe_commands(&out);
    assert_eq!(error_code(&sends_to(&out, p(1))), None);
    assert_eq!(hub.room_count(), 0);
}

/// A policy whose every hook fails: any call shows in its failure counters.
fn tripwire_hub() -> (Hub, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("salon-probe-tripwire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tripwire.lua"),
        r#"local p = {}
function p.on_room_create(ctx) error("called") end
function p.on_join(ctx) error("called") end
function p.on_knock(ctx) error("called") end
function p.on_moderation(ctx, action) error("called") end
return p
"#,
    )
    .unwrap();
    let mut c = salon_plugins::PolicyConfig::new(&dir);
    c.entry = "tripwire".to_owned();
    c.wall_budget = None;
    let mut hub = Hub::with_seed(8);
    hub.set_policy(salon_plugins::PolicyHost::new(c).unwrap());
    (hub, dir)
}

fn policy_failures(hub: &Hub) -> u64 {
    hub.policy()
        .unwrap()
        .failure_counters()
        .map(|(_, _, n)| n)
        .sum()
}

#[test]
fn a_probe_calls_no_policy_hook() {
    let (mut hub, dir) = tripwire_hub();
    hub.handle_open(p(1));
    let (pid, _, request) = probe_commands(&probe(&mut hub, 1, t0()));
    answer(&mut hub, pid, request);
    hub.handle_close(p(1), at(100));
    drain(&mut hub);
    assert_eq!(policy_failures(&hub), 0, "no hook was called");
    // The tripwire works: a join calls a hook, which fails.
    join(&mut hub, 2, "R", "Alice");
    assert!(policy_failures(&hub) > 0);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn one_probe_per_socket_at_a_time() {
    let mut hub = Hub::with_seed(3);
    hub.handle_open(p(1));
    let (first, _, first_req) = probe_commands(&probe(&mut hub, 1, t0()));
    let out = probe(&mut hub, 1, at(100));
    let (second, _, _) = probe_commands(&out);
    assert_ne!(first, second);
    assert_eq!(leaves(&out), [first], "the first one ends");
    assert_eq!(hub.probe_count(), 1);
    // A late answer for the first probe goes nowhere.
    assert!(answer(&mut hub, first, first_req).is_empty());
}

#[test]
fn a_closed_socket_takes_its_probe_along() {
    let mut hub = Hub::with_seed(4);
    hub.handle_open(p(1));
    let (pid, _, request) = probe_commands(&probe(&mut hub, 1, t0()));
    hub.handle_close(p(1), at(500));
    let out = drain(&mut hub);
    assert_eq!(leaves(&out), [pid]);
    assert_eq!(hub.probe_count(), 0);
    assert!(answer(&mut hub, pid, request).is_empty());
    // Its timer fires into nothing.
    assert!(run_timers(&mut hub, at(30_000)).is_empty());
    assert_eq!(hub.probe_counts().expired, 0);
}

#[test]
fn a_probe_ends_after_its_lifetime() {
    let mut hub = Hub::with_seed(5);
    hub.handle_open(p(1));
    let (pid, _, _) = probe_commands(&probe(&mut hub, 1, t0()));
    let (due, reason) = hub.poll_timeout().unwrap();
    assert_eq!(due, at(20_000).mono);
    assert_eq!(reason, crate::hub::TimeoutReason::ProbeEnd);
    assert!(run_timers(&mut hub, at(19_999)).is_empty());
    let out = run_timers(&mut hub, at(20_000));
    assert_eq!(leaves(&out), [pid]);
    assert_eq!(hub.probe_count(), 0);
    assert_eq!(hub.probe_counts().expired, 1);
    assert_eq!(hub.probe_counts().started, 1);
}

#[test]
fn probes_are_rate_limited_per_socket_and_per_address() {
    let mut hub = Hub::with_seed(6);
    hub.handle_open(p(1));
    for i in 0..4 {
        probe_commands(&probe(&mut hub, 1, at(i)));
    }
    let out = probe(&mut hub, 1, at(5));
    assert_eq!(
        error_code(&sends_to(&out, p(1))),
        Some(ErrorCode::RateLimited)
    );
    assert!(
        commands(&out).is_empty(),
        "no transport for a refused probe"
    );
    assert_eq!(hub.probe_count(), 1, "the last allowed one lives on");
    // A token comes back after 60/8 s.
    probe_commands(&probe(&mut hub, 1, at(7_600)));

    // Many sockets from one address: 24 probes, then refused; another
    // address is not affected.
    let mut started = 0;
    let mut refused = 0;
    for id in 100..130 {
        hub.handle_open_from(p(id), Some([10, 0, 0, 7].into()));
        let out = probe(&mut hub, id, at(8_000));
        match error_code(&sends_to(&out, p(id))) {
            None => started += 1,
            Some(ErrorCode::RateLimited) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((started, refused), (24, 6));
    hub.handle_open_from(p(200), Some([10, 0, 0, 8].into()));
    probe_commands(&probe(&mut hub, 200, at(8_000)));
    assert_eq!(hub.probe_counts().refused, 7);
    // Each socket holds at most one: 1 + 24 + 1 live.
    assert_eq!(hub.probe_count(), 26);
}

#[test]
fn a_member_or_a_waiting_guest_cannot_probe() {
    let mut hub = agent_and_waiting_guest();
    for id in [1, 2] {
        let out = probe(&mut hub, id, at(10));
        assert_eq!(
            error_code(&sends_to(&out, p(id))),
            Some(ErrorCode::AlreadyJoined)
        );
        assert!(commands(&out).is_empty());
    }
    assert_eq!(hub.probe_count(), 0);
}

#[test]
fn a_probe_without_an_offer_is_refused() {
    let mut hub = Hub::with_seed(7);
    hub.handle_open(p(1));
    let out = frame(&mut hub, 1, json!({"type": "probe"}), t0());
    assert_eq!(
        error_code(&sends_to(&out, p(1))),
        Some(ErrorCode::BadMessage)
    );
    assert!(commands(&out).is_empty());
}

/// A probe's TURN credentials expire with the probe (plus a minute for
/// the clocks of Salon and coturn), not a whole `--turn-ttl-secs` later:
/// any visitor may probe, and a day-long credential from a 20-second
/// probe would be a day of relay for someone never admitted (a guest
/// held in a lobby opens a second socket and probes).
#[test]
fn a_probes_turn_credentials_expire_with_the_probe() {
    let mut hub = Hub::with_seed(1);
    hub.set_turn(
        TurnConfig::new(
            vec!["turn:127.0.0.5:3478?transport=udp".into()],
            TurnSecret::new(b"a-test-secret-of-the-turn-server".to_vec()).unwrap(),
            Duration::from_secs(86_400),
        )
        .unwrap(),
    );
    hub.handle_open(p(1));
    let now = t0();
    let out = probe(&mut hub, 1, now);
    let (pid, _, request) = probe_commands(&out);
    let out = answer(&mut hub, pid, request);
    let msgs = sends_to(&out, p(1));
    let [ServerMessage::ProbeAnswer { ice_servers, .. }] = msgs.as_slice() else {
        panic!("one probe-answer, got {msgs:?}");
    };
    let expiry = crate::turn::username_expiry(&ice_servers[0].username).unwrap();
    let now_s = now.unix_ms / 1000;
    assert!(
        expiry > now_s + 20 && expiry <= now_s + 20 + 60,
        "expires {} s after the probe, not a TTL later",
        expiry - now_s
    );
    // A member still gets the whole TTL.
    let out = join(&mut hub, 2, "R", "Alice");
    let msgs = sends_to(&out, p(2));
    let [ServerMessage::Joined { ice_servers, .. }] = msgs.as_slice() else {
        panic!("joined");
    };
    assert_eq!(
        crate::turn::username_expiry(&ice_servers[0].username),
        Some(now_s + 86_400)
    );
}
