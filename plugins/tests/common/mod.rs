//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use salon_plugins::{
    Ctx, Identity, IdentitySource, PolicyConfig, PolicyHost, Role, RoleCounts, RoomInfo,
};

pub const NOW: u64 = 1_750_000_000;

/// The shipped policy folder (`/lua` at the workspace root).
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lua")
}

/// An adversarial policy folder under `tests/policies/`.
pub fn policy_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/policies")
        .join(name)
}

/// A host with only the deterministic limits (instructions, memory): the
/// wall-clock safety net is off so a loaded CI machine cannot change a result.
pub fn host(dir: PathBuf) -> PolicyHost {
    PolicyHost::new(config(dir)).expect("policy loads")
}

pub fn config(dir: impl Into<PathBuf>) -> PolicyConfig {
    let mut c = PolicyConfig::new(dir);
    c.wall_budget = None;
    c
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "salon-plugins-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn identity(email: &str, moderator: bool) -> Identity {
    Identity {
        sub: Some("meet.example".into()),
        user_id: Some("u-1".into()),
        name: Some("Agent".into()),
        email: Some(email.into()),
        avatar: None,
        moderator,
        issuer: "salon".into(),
        room: "*".into(),
        claims: serde_json::json!({
            "iss": "salon",
            "context": { "user": { "email": email }, "groups": ["a", "b"] }
        }),
        source: IdentitySource::Token,
    }
}

pub fn room(name: &str, size: u32, exists: bool) -> RoomInfo<'_> {
    RoomInfo {
        name,
        size,
        locked: false,
        exists,
        roles: RoleCounts {
            moderator: u32::from(size > 0),
            participant: size.saturating_sub(1),
            guest: 0,
        },
    }
}

pub fn ctx<'a>(identity: Option<&'a Identity>, room: RoomInfo<'a>, role: Option<Role>) -> Ctx<'a> {
    Ctx {
        identity,
        display_name: Some("Camille"),
        participant_id: Some("p-1"),
        room,
        role,
        now: NOW,
    }
}
