//! Cost of one hook call with the shipped policy (`/lua`).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use salon_plugins::{
    Ctx, Identity, IdentitySource, PolicyConfig, PolicyHost, Role, RoleCounts, RoomInfo,
};

fn host() -> PolicyHost {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua");
    PolicyHost::new(PolicyConfig::new(dir)).expect("shipped policy loads")
}

fn bench(c: &mut Criterion) {
    let mut h = host();
    let agent = Identity {
        sub: Some("meet.example".into()),
        user_id: Some("u-1".into()),
        name: Some("Camille".into()),
        email: Some("camille@interieur.gouv.fr".into()),
        avatar: None,
        moderator: false,
        issuer: "salon".into(),
        room: "*".into(),
        claims: serde_json::json!({"iss": "salon", "aud": "jitsi", "room": "*",
            "context": {"user": {"id": "u-1", "email": "camille@interieur.gouv.fr"}}}),
        source: IdentitySource::Token,
    };
    let room = RoomInfo {
        name: "conseil",
        size: 12,
        locked: false,
        exists: true,
        roles: RoleCounts {
            moderator: 1,
            participant: 9,
            guest: 2,
        },
    };
    let guest = Ctx {
        identity: None,
        display_name: Some("Invité"),
        participant_id: None,
        room,
        role: None,
        now: 1_750_000_000,
    };
    let with_token = Ctx {
        identity: Some(&agent),
        ..guest
    };
    let member = Ctx {
        role: Some(Role::Participant),
        participant_id: Some("p-7"),
        ..guest
    };
    let msg = "Bonjour à tous, on commence dans cinq minutes.";

    c.bench_function("on_join guest", |b| {
        b.iter(|| black_box(h.on_join(black_box(&guest))))
    });
    c.bench_function("on_join agent (token)", |b| {
        b.iter(|| black_box(h.on_join(black_box(&with_token))))
    });
    c.bench_function("on_chat 46 bytes", |b| {
        b.iter(|| black_box(h.on_chat(black_box(&member), black_box(msg))))
    });
    assert_eq!(h.failure_counters().count(), 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
