//! Server-side login sessions: random 256-bit ids, an expiry, a bound on
//! their count. Sans-IO: the caller gives the time and the random bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use salon_plugins::Identity;

/// A session id: 32 random bytes, base64url without padding (43 characters).
/// The cookie's value; never logged.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// The id made of 32 random bytes.
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The cookie value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(..)")
    }
}

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    /// Who signed in (personal data: never logged).
    pub identity: Arc<Identity>,
    /// The raw ID token, sent back as `id_token_hint` at logout.
    pub id_token: String,
    /// Unix seconds after which the session is gone.
    pub expires_at: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The sessions, bounded in count: when full, expired sessions go first,
/// then the one closest to its expiry.
#[derive(Debug)]
pub struct SessionStore {
    sessions: BTreeMap<SessionId, Session>,
    max: usize,
    ttl_secs: u64,
}

impl SessionStore {
    /// At most `max` sessions (at least 1), each living `ttl_secs`.
    pub fn new(max: usize, ttl_secs: u64) -> Self {
        Self {
            sessions: BTreeMap::new(),
            max: max.max(1),
            ttl_secs,
        }
    }

    /// Sessions held (expired ones included until they are swept).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session lifetime, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// Opens a session for `identity` at `now` (unix seconds), named by
    /// `random` (32 bytes from the OS's generator).
    pub fn create(
        &mut self,
        random: [u8; 32],
        identity: Arc<Identity>,
        id_token: String,
        now: u64,
    ) -> SessionId {
        if self.sessions.len() >= self.max {
            self.sweep(now);
        }
        while self.sessions.len() >= self.max {
            let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            self.sessions.remove(&oldest);
        }
        let id = SessionId::from_random(random);
        self.sessions.insert(
            id.clone(),
            Session {
                identity,
                id_token,
                expires_at: now.saturating_add(self.ttl_secs),
            },
        );
        id
    }

    /// The live session named by a cookie value, if any.
    pub fn get(&self, cookie: &str, now: u64) -> Option<&Session> {
        self.sessions
            .get(&SessionId(cookie.to_owned()))
            .filter(|s| now < s.expires_at)
    }

    /// Ends a session (logout); returns it if it existed and was live.
    pub fn remove(&mut self, cookie: &str, now: u64) -> Option<Session> {
        self.sessions
            .remove(&SessionId(cookie.to_owned()))
            .filter(|s| now < s.expires_at)
    }

    /// Drops expired sessions.
    pub fn sweep(&mut self, now: u64) {
        self.sessions.retain(|_, s| now < s.expires_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(email: &str) -> Arc<Identity> {
        Arc::new(Identity::from_oidc(
            "https://idp.example".into(),
            "sub-1".into(),
            None,
            Some("Camille Martin".into()),
            Some(email.into()),
            serde_json::json!({}),
        ))
    }

    fn bytes(n: u8) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0] = n;
        b[31] = n.wrapping_mul(7);
        b
    }

    #[test]
    fn a_session_lives_until_its_ttl() {
        let mut store = SessionStore::new(10, 3600);
        let id = store.create(bytes(1), who("a@mairie.example.fr"), "t".into(), 1000);
        assert_eq!(id.as_str().len(), 43, "256 bits in base64url");
        let s = store.get(id.as_str(), 1000).expect("live");
        assert_eq!(s.identity.email.as_deref(), Some("a@mairie.example.fr"));
        assert!(store.get(id.as_str(), 4599).is_some());
        assert!(
            store.get(id.as_str(), 4600).is_none(),
            "expired at now + ttl"
        );
        assert!(store.get("not-a-session", 1000).is_none());
        store.sweep(4600);
        assert!(store.is_empty());
    }

    #[test]
    fn logout_removes_the_session() {
        let mut store = SessionStore::new(10, 3600);
        let id = store.create(bytes(2), who("a@x.fr"), "t".into(), 0);
        assert!(store.remove(id.as_str(), 10).is_some());
        assert!(
            store.get(id.as_str(), 10).is_none(),
            "the old cookie is dead"
        );
        assert!(store.remove(id.as_str(), 10).is_none());
    }

    #[test]
    fn the_store_is_bounded_and_evicts_the_closest_to_expiry() {
        let mut store = SessionStore::new(3, 100);
        let a = store.create(bytes(1), who("a@x.fr"), "t".into(), 0);
        let b = store.create(bytes(2), who("b@x.fr"), "t".into(), 10);
        let c = store.create(bytes(3), who("c@x.fr"), "t".into(), 20);
        let d = store.create(bytes(4), who("d@x.fr"), "t".into(), 30);
        assert_eq!(store.len(), 3);
        assert!(store.get(a.as_str(), 30).is_none(), "the oldest went");
        for id in [&b, &c, &d] {
            assert!(store.get(id.as_str(), 30).is_some());
        }
        // Expired ones go before live ones.
        let e = store.create(bytes(5), who("e@x.fr"), "t".into(), 115);
        assert!(store.get(c.as_str(), 115).is_some());
        assert!(store.get(d.as_str(), 115).is_some());
        assert!(store.get(e.as_str(), 115).is_some());
        assert_eq!(store.len(), 3);
    }

    #[test]
    fn ids_come_from_the_random_bytes_and_differ() {
        let mut store = SessionStore::new(100, 100);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let id = store.create(rand::random(), who("a@x.fr"), "t".into(), 0);
            assert!(seen.insert(id.as_str().to_owned()), "ids do not repeat");
            assert!(
                id.as_str()
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
                "cookie-safe"
            );
        }
        assert_eq!(
            SessionId::from_random([0u8; 32]).as_str(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
    }
}
