//! TURN credentials for the browsers: the TURN REST scheme
//! (draft-uberti-behave-turn-rest-00), which coturn checks with
//! `use-auth-secret` / `static-auth-secret`.
//!
//! The gateway and coturn share one secret. For each admitted participant
//! the gateway mints a username `<expiry unix seconds>:<participant id>`
//! and the password `base64(HMAC-SHA1(secret, username))`; coturn
//! recomputes the password from the username and refuses it once the
//! expiry has passed. Nothing is stored on either side, and a credential
//! that leaks is good for one TTL at most.
//!
//! Sans-IO: [`TurnConfig::ice_servers`] takes the time as an input. The
//! secret never leaves this module except as HMAC output: its `Debug`
//! prints `<redacted>`, so neither a log line nor a `{:?}` of the config
//! shows it.

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use serde::Serialize;

use crate::control::ParticipantId;

/// Shortest accepted credential lifetime: refreshes come every half TTL,
/// so this bounds their rate.
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// Longest accepted credential lifetime (a leaked credential relays for
/// this long).
pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The default credential lifetime: a day, longer than any meeting, so a
/// relayed call never depends on coturn accepting an expired credential
/// on its allocation's refreshes (coturn 4.6.1 does: `docs/deploy.md`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The secret shared with coturn (`static-auth-secret`). Its `Debug` hides
/// it.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnSecret(Vec<u8>);

impl TurnSecret {
    /// A secret from its bytes (e.g. a file's content without its final
    /// newline).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, TurnConfigError> {
        let bytes = bytes.into();
        if bytes.len() < 16 {
            return Err(TurnConfigError::ShortSecret);
        }
        Ok(Self(bytes))
    }
}

impl std::fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

/// Why a TURN configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnConfigError {
    /// No `turn:`/`turns:` URL.
    #[error("no TURN URL given")]
    NoUrl,
    /// A URL that is not `turn:…` or `turns:…` (or holds blanks).
    #[error("TURN URL {0:?} must start with turn: or turns: and hold no blanks")]
    BadUrl(String),
    /// Fewer than 16 bytes of secret.
    #[error("the TURN secret must be at least 16 bytes")]
    ShortSecret,
    /// A TTL outside [`MIN_TTL`]..=[`MAX_TTL`].
    #[error("the TURN credential lifetime must be 60 s to 7 days")]
    BadTtl,
}

/// The TURN servers the gateway hands out, and how.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    urls: Vec<String>,
    secret: TurnSecret,
    ttl: Duration,
}

/// One entry of `RTCConfiguration.iceServers`, as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `turn:host:port?transport=udp`, `turns:host:443?transport=tcp`, …
    pub urls: Vec<String>,
    /// `<expiry unix seconds>:<participant id>`.
    pub username: String,
    /// `base64(HMAC-SHA1(secret, username))`.
    pub credential: String,
}

impl TurnConfig {
    /// Checks the URLs, the secret and the lifetime.
    pub fn new(
        urls: Vec<String>,
        secret: TurnSecret,
        ttl: Duration,
    ) -> Result<Self, TurnConfigError> {
        if urls.is_empty() {
            return Err(TurnConfigError::NoUrl);
        }
        for url in &urls {
            let scheme_ok = url.starts_with("turn:") || url.starts_with("turns:");
            let host_ok = url.len() > "turns:".len() && url.len() <= 512;
            if !scheme_ok || !host_ok || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(TurnConfigError::BadUrl(url.clone()));
            }
        }
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(TurnConfigError::BadTtl);
        }
        Ok(Self { urls, secret, ttl })
    }

    /// The configured URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Host and port of each URL (deduplicated, in order): what to
    /// resolve for the addresses coturn relays from, when its relay
    /// address is its listening one.
    pub fn hosts(&self) -> Vec<(String, u16)> {
        let mut out: Vec<(String, u16)> = Vec::new();
        for hp in self.urls.iter().filter_map(|u| url_host_port(u)) {
            if !out.contains(&hp) {
                out.push(hp);
            }
        }
        out
    }

    /// How long a credential is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// When to send fresh credentials after minting some: half-way through
    /// their life, so a client that was away for a while still gets new
    /// ones before the old ones die.
    pub fn refresh_after(&self) -> Duration {
        self.ttl / 2
    }

    /// The `iceServers` for `participant` at `now_unix_s` (one entry with
    /// every URL: they share the credential).
    pub fn ice_servers(&self, participant: ParticipantId, now_unix_s: u64) -> Vec<IceServer> {
        self.ice_servers_for(participant, now_unix_s, self.ttl)
    }

    /// As [`Self::ice_servers`], with credentials that live `ttl` at most
    /// (never longer than the configured TTL): a connectivity probe's die
    /// with the probe.
    pub fn ice_servers_for(
        &self,
        participant: ParticipantId,
        now_unix_s: u64,
        ttl: Duration,
    ) -> Vec<IceServer> {
        let expiry = now_unix_s.saturating_add(ttl.min(self.ttl).as_secs());
        let username = format!("{expiry}:{}", participant.0);
        let credential = rest_credential(&self.secret, &username);
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }
}

/// Host and port of a TURN URI (RFC 7065: `turn:host[:port][?…]`,
/// `turns:…`; an IPv6 host in brackets, returned without them). The port
/// defaults to 3478 (`turn:`) or 5349 (`turns:`).
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("turns:") {
        (r, 5349)
    } else {
        (url.strip_prefix("turn:")?, 3478)
    };
    let authority = rest.split('?').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

/// The TURN REST password of `username`: `base64(HMAC-SHA1(secret,
/// username))`, as coturn's `use-auth-secret` computes it.
pub fn rest_credential(secret: &TurnSecret, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &secret.0);
    let tag = hmac::sign(&key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// The expiry (unix seconds) of a TURN REST username, as coturn reads it:
/// the number before the first `:`.
pub fn username_expiry(username: &str) -> Option<u64> {
    username.split(':').next()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secret() -> TurnSecret {
        TurnSecret::new(b"north-ridge-secret".to_vec()).unwrap()
    }

    fn config(ttl: u64) -> TurnConfig {
        TurnConfig::new(
            vec![
                "turn:turn.example.org:3478?transport=udp".into(),
                "turns:turn.example.org:443?transport=tcp".into(),
            ],
            secret(),
            Duration::from_secs(ttl),
        )
        .unwrap()
    }

    /// The vector computed independently of this code:
    /// `printf '%s' '1700086400:42' | openssl dgst -sha1 -hmac
    /// 'north-ridge-secret' -binary | base64`.
    #[test]
    fn the_credential_is_the_base64_hmac_sha1_of_the_username() {
        assert_eq!(
            rest_credential(&secret(), "1700086400:42"),
            "fEbwYg1teyGrZLrvn7QQVPfdiTk="
        );
        // And a second one: `… '1700003600:7' …`.
        assert_eq!(
            rest_credential(&secret(), "1700003600:7"),
            "O02po2DJ42flwp2RGA6akS6M1xo="
        );
    }

    #[test]
    fn the_username_is_expiry_colon_participant_and_expires_one_ttl_later() {
        let servers = config(86_400).ice_servers(ParticipantId(42), 1_700_000_000);
        assert_eq!(servers.len(), 1);
        let s = &servers[0];
        assert_eq!(s.username, "1700086400:42");
        assert_eq!(s.credential, "fEbwYg1teyGrZLrvn7QQVPfdiTk=");
        assert_eq!(username_expiry(&s.username), Some(1_700_086_400));
        assert_eq!(
            s.urls,
            [
                "turn:turn.example.org:3478?transport=udp",
                "turns:turn.example.org:443?transport=tcp"
            ]
        );
        // A short TTL, an hour later: a later expiry, another password.
        let later = config(3600).ice_servers(ParticipantId(7), 1_700_000_000);
        assert_eq!(later[0].username, "1700003600:7");
        assert_eq!(later[0].credential, "O02po2DJ42flwp2RGA6akS6M1xo=");
        assert_eq!(config(3600).refresh_after(), Duration::from_secs(1800));
    }

    #[test]
    fn hosts_are_read_from_the_urls() {
        assert_eq!(
            config(600).hosts(),
            [
                ("turn.example.org".to_owned(), 3478),
                ("turn.example.org".to_owned(), 443)
            ]
        );
        let h = |u: &str| url_host_port(u);
        assert_eq!(h("turns:t.example"), Some(("t.example".into(), 5349)));
        assert_eq!(h("turn:192.0.2.7"), Some(("192.0.2.7".into(), 3478)));
        assert_eq!(
            h("turn:[2001:db8::7]:3479?transport=tcp"),
            Some(("2001:db8::7".into(), 3479))
        );
        assert_eq!(h("turn:[2001:db8::7]"), Some(("2001:db8::7".into(), 3478)));
        assert_eq!(h("turn:t.example:port"), None);
        assert_eq!(h("turn:[::1"), None);
        assert_eq!(h("stun:t.example"), None);
    }

    #[test]
    fn bad_urls_secrets_and_ttls_are_refused() {
        let ok = || vec!["turn:t.example:3478".to_owned()];
        let ttl = Duration::from_secs(600);
        assert_eq!(
            TurnConfig::new(vec![], secret(), ttl).unwrap_err(),
            TurnConfigError::NoUrl
        );
        for bad in ["stun:t.example", "https://t.example", "turn:", "turn:a b"] {
            assert!(matches!(
                TurnConfig::new(vec![bad.to_owned()], secret(), ttl),
                Err(TurnConfigError::BadUrl(_))
            ));
        }
        assert_eq!(
            TurnSecret::new(b"short".to_vec()).unwrap_err(),
            TurnConfigError::ShortSecret
        );
        for ttl in [59, 7 * 24 * 3600 + 1] {
            assert_eq!(
                TurnConfig::new(ok(), secret(), Duration::from_secs(ttl)).unwrap_err(),
                TurnConfigError::BadTtl
            );
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let c = config(600);
        let text = format!("{c:?} {:#?}", c);
        assert!(!text.contains("north-ridge-secret"), "{text}");
        assert!(text.contains("<redacted>"));
    }
}
