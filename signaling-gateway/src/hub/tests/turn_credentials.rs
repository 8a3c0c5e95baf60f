//! TURN credentials: an admitted participant gets `iceServers` in `joined`
//! (fresh ones in `resumed`, and `ice-servers` half-way through their
//! life); a guest waiting in the lobby gets none until a moderator admits
//! it; the secret never appears in what the hub sends.

use std::time::Duration;

use serde_json::json;

use super::support::*;
use crate::protocol::IceServer;
use crate::turn::{TurnConfig, TurnSecret, rest_credential, username_expiry};

const SECRET: &[u8] = b"a-test-secret-of-the-turn-server";
const TTL_S: u64 = 600;

fn turn() -> TurnConfig {
    TurnConfig::new(
        vec![
            "turn:127.0.0.5:3478?transport=udp".into(),
            "turns:127.0.0.5:5349?transport=tcp".into(),
        ],
        TurnSecret::new(SECRET.to_vec()).unwrap(),
        Duration::from_secs(TTL_S),
    )
    .unwrap()
}

/// The `ice_servers` of every `joined`, `resumed` and `ice-servers` in
/// `msgs`.
fn ice_servers(msgs: &[ServerMessage]) -> Vec<Vec<IceServer>> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMessage::Joined { ice_servers, .. }
            | ServerMessage::Resumed { ice_servers, .. }
            | ServerMessage::IceServers { ice_servers } => Some(ice_servers.clone()),
            _ => None,
        })
        .collect()
}

/// Checks one credential as coturn would: the username names `id` and
/// expires one TTL after `now`, the password is the HMAC of the username.
fn assert_valid_for(servers: &[IceServer], id: u64, now: Now) {
    assert_eq!(servers.len(), 1);
    let s = &servers[0];
    assert_eq!(
        s.urls,
        [
            "turn:127.0.0.5:3478?transport=udp",
            "turns:127.0.0.5:5349?transport=tcp"
        ]
    );
    assert_eq!(s.username.split(':').nth(1), Some(id.to_string().as_str()));
    assert_eq!(
        username_expiry(&s.username),
        Some(now.unix_ms / 1000 + TTL_S)
    );
    let secret = TurnSecret::new(SECRET.to_vec()).unwrap();
    assert_eq!(s.credential, rest_credential(&secret, &s.username));
}

fn no_secret_in(out: &[Output]) {
    let secret = std::str::from_utf8(SECRET).unwrap();
    for o in out {
        if let Output::Send { msg, .. } = o {
            assert!(!msg.to_json().contains(secret));
        }
    }
}

#[test]
fn a_joined_participant_gets_ice_servers_and_fresh_ones_before_expiry() {
    let mut hub = Hub::with_seed(1);
    hub.set_turn(turn());
    let out = join(&mut hub, 1, "R", "Ana");
    no_secret_in(&out);
    let got = ice_servers(&sends_to(&out, p(1)));
    assert_eq!(got.len(), 1);
    assert_valid_for(&got[0], 1, t0());
    // The JSON the browser reads: `ice_servers` as RTCIceServer objects.
    let joined = sends_to(&out, p(1))
        .into_iter()
        .find(|m| matches!(m, ServerMessage::Joined { .. }))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&joined.to_json()).unwrap();
    assert_eq!(v["ice_servers"][0]["username"], got[0][0].username.as_str());
    assert_eq!(
        v["ice_servers"][0]["urls"][1],
        "turns:127.0.0.5:5349?transport=tcp"
    );

    // Half-way through their life (300 s), fresh ones; nothing before.
    assert_eq!(
        hub.poll_timeout(),
        Some((at(300_000).mono, crate::hub::TimeoutReason::TurnRefresh))
    );
    hub.handle_timeout(at(299_999));
    assert!(drain(&mut hub).is_empty());
    let out = run_timers(&mut hub, at(300_000));
    assert_eq!(types(&sends_to(&out, p(1))), ["ice-servers"]);
    let fresh = ice_servers(&sends_to(&out, p(1)));
    assert_valid_for(&fresh[0], 1, at(300_000));
    assert!(
        username_expiry(&fresh[0][0].username) > username_expiry(&got[0][0].username),
        "the fresh credential outlives the first one"
    );
    // And again 300 s later, for as long as it stays.
    let out = run_timers(&mut hub, at(600_000));
    assert_valid_for(&ice_servers(&sends_to(&out, p(1)))[0], 1, at(600_000));

    // Gone: no more refreshes.
    frame(&mut hub, 1, json!({"type": "leave"}), at(601_000));
    let out = run_timers(&mut hub, at(900_000));
    assert!(ice_servers(&sends_to(&out, p(1))).is_empty());
    assert_eq!(hub.poll_timeout(), None);
}

#[test]
fn without_turn_the_list_is_empty_and_nothing_is_scheduled() {
    let mut hub = Hub::with_seed(1);
    let out = join(&mut hub, 1, "R", "Ana");
    assert_eq!(ice_servers(&sends_to(&out, p(1))), vec![Vec::new()]);
    assert_eq!(hub.poll_timeout(), None);
}

#[test]
fn a_guest_in_the_lobby_gets_no_credentials_until_admitted() {
    let mut hub = agent_and_waiting_guest();
    hub.set_turn(turn());
    // Knocking and waiting: still nothing for the guest (2).
    let out = frame(&mut hub, 2, json!({"type": "knock"}), at(40_000));
    assert!(ice_servers(&sends_to(&out, p(2))).is_empty());
    let out = run_timers(&mut hub, at(1_000_000));
    assert!(ice_servers(&sends_to(&out, p(2))).is_empty());
    for m in sends_to(&out, p(2)) {
        assert!(!m.to_json().contains("ice_servers"), "{}", m.to_json());
    }
    // Admitted: `joined` brings them.
    let now = at(1_000_000);
    let out = frame(&mut hub, 1, json!({"type": "admit", "id": 2}), now);
    no_secret_in(&out);
    let to_guest = sends_to(&out, p(2));
    assert_eq!(types(&to_guest)[..2], ["admitted", "joined"]);
    assert_valid_for(&ice_servers(&to_guest)[0], 2, now);
}

#[test]
fn resume_brings_fresh_credentials_and_moves_the_refresh() {
    let mut hub = Hub::with_seed(1);
    hub.set_turn(turn());
    hub.set_reconnect_grace(Duration::from_secs(30));
    let out = join(&mut hub, 1, "R", "Ana");
    let token = resume_token_of(&out, p(1));
    hub.handle_close(p(1), at(290_000));
    drain(&mut hub);
    // While it has no socket, the refresh at 300 s goes nowhere.
    let out = run_timers(&mut hub, at(300_000));
    assert!(out.iter().all(|o| !matches!(o, Output::Send { .. })));
    hub.handle_open(p(9));
    let now = at(310_000);
    let out = frame(
        &mut hub,
        9,
        json!({"type": "resume", "token": token, "media": "kept"}),
        now,
    );
    let to_socket = sends_to(&out, p(9));
    assert_eq!(types(&to_socket)[0], "resumed");
    assert_valid_for(&ice_servers(&to_socket)[0], 1, now);
    // The next refresh is half a TTL after the resume (the one set at
    // 300 s for 600 s is void), once.
    let out = run_timers(&mut hub, at(609_999));
    assert!(ice_servers(&sends_to(&out, p(9))).is_empty());
    let out = run_timers(&mut hub, at(610_000));
    assert_eq!(ice_servers(&sends_to(&out, p(9))).len(), 1);
    assert_eq!(hub.poll_timeout().map(|(t, _)| t), Some(at(910_000).mono));
}
