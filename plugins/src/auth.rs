//! Jitsi-compatible JWT authentication.
//!
//! A Jitsi token travels as `?jwt=<token>` in the room URL. Its claims are
//! `iss`, `aud`, `sub` (the tenant in Jitsi deployments), `room` (a room name or
//! `*`), `exp`, `nbf`, `context.user.{id,name,email,avatar}` and a moderator flag
//! given either as `context.user.moderator` (bool or `"true"`) or as a
//! top-level `moderator`.
//!
//! Each configured key carries its own allow-list of algorithms, and only that
//! list is tried with that key: an RS256 public key can never be used as an
//! HS256 secret (algorithm confusion), and `alg: none` is never accepted.
//!
//! Each key is also bound to the issuer(s) it signs for (`issuers` of the
//! key; a configuration with a single accepted issuer binds every key to it):
//! a token whose `iss` names issuer A but whose signature verifies with
//! issuer B's key is refused ([`AuthError::KeyNotForIssuer`]).
//!
//! The `room` claim must equal the room name exactly (room names are
//! case-sensitive in Salon), or be `*`.
//!
//! Time is given by the caller (`now_unix`): this module never reads the clock.

use std::collections::HashSet;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Default clock-skew leeway, in seconds.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;

/// Longest token accepted, in bytes (a Jitsi token is well under 4 KiB).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Authentication configuration, deserializable from TOML or JSON:
///
/// ```toml
/// issuers = ["salon"]
/// audiences = ["jitsi"]
/// leeway_secs = 30
///
/// [[keys]]
/// id = "shared"
/// algorithms = ["HS256"]
/// secret = "…"
///
/// [[keys]]
/// id = "idp-2025"
/// issuers = ["idp.example"]   # required when `issuers` above has several
/// algorithms = ["RS256"]
/// public_key_pem = """-----BEGIN PUBLIC KEY-----…"""
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Verification keys; a token's `kid` header, when present, picks one by id.
    pub keys: Vec<KeyConfig>,
    /// Accepted `iss` values (must not be empty).
    pub issuers: Vec<String>,
    /// Accepted `aud` values (must not be empty).
    pub audiences: Vec<String>,
    /// Clock-skew leeway applied to `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_leeway() -> u64 {
    DEFAULT_LEEWAY_SECS
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("keys", &self.keys)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway_secs", &self.leeway_secs)
            .finish()
    }
}

/// One verification key. Exactly one of `secret` (HMAC) and `public_key_pem`
/// (RSA or EC public key) must be set.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Key id, matched against the token's `kid` header when it has one.
    pub id: String,
    /// The only algorithms tried with this key.
    pub algorithms: Vec<Algorithm>,
    /// The issuers whose tokens this key verifies (each one also in
    /// [`AuthConfig::issuers`]). May be left out when the configuration
    /// accepts a single issuer: the key is then bound to it.
    #[serde(default)]
    pub issuers: Option<Vec<String>>,
    /// Shared secret for HS256/HS384/HS512 (the raw bytes of the string).
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM public key for RS*/PS* (RSA) or ES256/ES384 (EC).
    #[serde(default)]
    pub public_key_pem: Option<String>,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyConfig")
            .field("id", &self.id)
            .field("algorithms", &self.algorithms)
            .field("issuers", &self.issuers)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key_pem", &self.public_key_pem.is_some())
            .finish()
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// No key configured.
    #[error("no key configured")]
    NoKeys,
    /// `issuers` or `audiences` is empty.
    #[error("issuers and audiences must not be empty")]
    NoIssuerOrAudience,
    /// A key has neither or both of `secret` and `public_key_pem`.
    #[error("key {0:?}: set exactly one of secret and public_key_pem")]
    KeyMaterial(String),
    /// A key has an empty algorithm list, or an algorithm that does not fit its material.
    #[error("key {0:?}: algorithm list empty or not matching the key type")]
    AlgorithmMismatch(String),
    /// The PEM could not be parsed as the key type its algorithms need.
    #[error("key {0:?}: unreadable public key")]
    BadPem(String),
    /// Two keys share an id.
    #[error("duplicate key id {0:?}")]
    DuplicateId(String),
    /// A key is bound to no issuer although several are accepted, to an
    /// empty list, or to an issuer not in the accepted `issuers`.
    #[error("key {0:?}: set its issuers (a non-empty subset of the accepted issuers)")]
    KeyIssuers(String),
}

/// Why a token was refused. The variants say what kind of problem it was and
/// nothing about the token's content, so they can be logged and shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Not a well-formed JWT, or a required claim is missing or of the wrong type.
    #[error("malformed token")]
    Malformed,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// No configured key verifies the signature.
    #[error("bad signature")]
    BadSignature,
    /// The header's algorithm is not allowed by any (or by the selected) key; includes `none`.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header's `kid` names no configured key.
    #[error("unknown key id")]
    UnknownKey,
    /// `iss` is not an accepted issuer.
    #[error("unknown issuer")]
    UnknownIssuer,
    /// The signature verifies with a key bound to another issuer than the
    /// token's `iss`.
    #[error("key not valid for this issuer")]
    KeyNotForIssuer,
    /// `aud` is not an accepted audience.
    #[error("wrong audience")]
    WrongAudience,
    /// The `room` claim is neither the room being joined (exactly, case
    /// included) nor `*`.
    #[error("token not valid for this room")]
    WrongRoom,
}

/// A verified identity. Personal data: never log it.
#[derive(Clone, PartialEq)]
pub struct Identity {
    /// The token's `sub` claim (the tenant in Jitsi deployments), if any.
    pub sub: Option<String>,
    /// `context.user.id`, if any.
    pub user_id: Option<String>,
    /// `context.user.name`, if any.
    pub name: Option<String>,
    /// `context.user.email`, if any.
    pub email: Option<String>,
    /// `context.user.avatar`, if any.
    pub avatar: Option<String>,
    /// The moderator flag (`context.user.moderator` or top-level `moderator`).
    pub moderator: bool,
    /// The `iss` claim.
    pub issuer: String,
    /// The token's `room` claim (`*` or a room name).
    pub room: String,
    /// All claims, as JSON, for policies that read custom ones.
    pub claims: Value,
    /// How the identity was verified (a token, or an OIDC login).
    pub source: IdentitySource,
}

/// How an [`Identity`] was verified; policies see it as
/// `ctx.identity.source` (`"token"` or `"oidc"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySource {
    /// A signed token (`?jwt=`), minted by a trusted service.
    Token,
    /// An OpenID Connect login (authorization code flow) with the server's
    /// configured provider: the ID token and user info were verified.
    Oidc,
}

impl IdentitySource {
    /// The name policies see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Oidc => "oidc",
        }
    }
}

impl Identity {
    /// The identity of an OIDC login: `sub` is the provider's subject,
    /// `user_id` its `uid` claim, `room` is `*` (a login is for every room)
    /// and `moderator` is false (the policy decides, e.g. by e-mail domain).
    pub fn from_oidc(
        issuer: String,
        sub: String,
        user_id: Option<String>,
        name: Option<String>,
        email: Option<String>,
        claims: Value,
    ) -> Self {
        Self {
            sub: Some(sub),
            user_id,
            name,
            email,
            avatar: None,
            moderator: false,
            issuer,
            room: "*".to_owned(),
            claims,
            source: IdentitySource::Oidc,
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Redacted: identities are personal data.
        f.debug_struct("Identity")
            .field("moderator", &self.moderator)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Key {
    id: String,
    algorithms: Vec<Algorithm>,
    /// The issuers this key signs for.
    issuers: Vec<String>,
    key: DecodingKey,
}

/// Verifies Jitsi-style tokens against an [`AuthConfig`].
#[derive(Debug)]
pub struct Authenticator {
    keys: Vec<Key>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: u64,
}

fn is_hmac(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}
fn is_rsa(a: Algorithm) -> bool {
    matches!(
        a,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
    )
}
fn is_ec(a: Algorithm) -> bool {
    matches!(a, Algorithm::ES256 | Algorithm::ES384)
}

impl Authenticator {
    /// Checks the configuration and parses the keys.
    pub fn new(config: &AuthConfig) -> Result<Self, AuthConfigError> {
        if config.keys.is_empty() {
            return Err(AuthConfigError::NoKeys);
        }
        if config.issuers.is_empty() || config.audiences.is_empty() {
            return Err(AuthConfigError::NoIssuerOrAudience);
        }
        let mut keys: Vec<Key> = Vec::with_capacity(config.keys.len());
        for k in &config.keys {
            if keys.iter().any(|o| o.id == k.id) {
                return Err(AuthConfigError::DuplicateId(k.id.clone()));
            }
            if k.algorithms.is_empty() {
                return Err(AuthConfigError::AlgorithmMismatch(k.id.clone()));
            }
            let key = match (&k.secret, &k.public_key_pem) {
                (Some(secret), None) => {
                    if !k.algorithms.iter().all(|a| is_hmac(*a)) {
                        return Err(AuthConfigError::AlgorithmMismatch(k.id.clone()));
                    }
                    DecodingKey::from_secret(secret.as_bytes())
                }
                (None, Some(pem)) => {
                    if k.algorithms.iter().all(|a| is_rsa(*a)) {
                        DecodingKey::from_rsa_pem(pem.as_bytes())
                            .map_err(|_| AuthConfigError::BadPem(k.id.clone()))?
                    } else if k.algorithms.iter().all(|a| is_ec(*a)) {
                        DecodingKey::from_ec_pem(pem.as_bytes())
                            .map_err(|_| AuthConfigError::BadPem(k.id.clone()))?
                    } else {
                        return Err(AuthConfigError::AlgorithmMismatch(k.id.clone()));
                    }
                }
                _ => return Err(AuthConfigError::KeyMaterial(k.id.clone())),
            };
            let issuers = match (&k.issuers, config.issuers.as_slice()) {
                (Some(list), accepted)
                    if !list.is_empty() && list.iter().all(|i| accepted.contains(i)) =>
                {
                    list.clone()
                }
                // The migration path: a single accepted issuer binds every key.
                (None, [only]) => vec![only.clone()],
                _ => return Err(AuthConfigError::KeyIssuers(k.id.clone())),
            };
            keys.push(Key {
                id: k.id.clone(),
                algorithms: k.algorithms.clone(),
                issuers,
                key,
            });
        }
        Ok(Self {
            keys,
            issuers: config.issuers.clone(),
            audiences: config.audiences.clone(),
            leeway: config.leeway_secs,
        })
    }

    /// Verifies `token` for joining `room` at `now_unix` (seconds).
    ///
    /// Order of checks: header (algorithm, key id), signature, issuer (an
    /// accepted one, and one the verifying key is bound to) and audience,
    /// `exp`/`nbf` with leeway, then the `room` claim (exactly the room, or
    /// `*`: Salon's room names are case-sensitive, so `equipe` does not
    /// open `Equipe`).
    pub fn verify(&self, token: &str, room: &str, now_unix: u64) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::Malformed);
        }
        let header = RawHeader::parse(token)?;
        // `none` and any name jsonwebtoken does not know are refused here.
        let alg: Algorithm = header
            .alg
            .parse()
            .map_err(|_| AuthError::AlgorithmNotAllowed)?;

        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|k| &k.id == kid)
                    .ok_or(AuthError::UnknownKey)?;
                vec![key]
            }
            None => self.keys.iter().collect(),
        };
        let mut any_alg = false;
        let mut verified = None;
        for key in candidates {
            // A key's own list is the only one tried with it.
            if !key.algorithms.contains(&alg) {
                continue;
            }
            any_alg = true;
            match jsonwebtoken::decode::<Value>(token, &key.key, &self.validation(alg)) {
                Ok(data) => {
                    verified = Some((data.claims, key));
                    break;
                }
                Err(e) => match map_error(e.kind()) {
                    AuthError::BadSignature => continue,
                    other => return Err(other),
                },
            }
        }
        let (claims, key) = match verified {
            Some(v) => v,
            None if any_alg => return Err(AuthError::BadSignature),
            None => return Err(AuthError::AlgorithmNotAllowed),
        };
        // jsonwebtoken checked that `iss` is an accepted issuer; the key
        // that verified the signature must also sign for that one.
        if let Some(Value::String(iss)) = claims.get("iss")
            && !key.issuers.contains(iss)
        {
            return Err(AuthError::KeyNotForIssuer);
        }
        self.check_claims(claims, room, now_unix)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        // exp/nbf are checked against the caller's clock in `check_claims`.
        v.validate_exp = false;
        v.validate_nbf = false;
        v.leeway = 0;
        v.required_spec_claims = HashSet::new();
        v.validate_aud = true;
        v.set_issuer(&self.issuers);
        v.set_audience(&self.audiences);
        v
    }

    fn check_claims(&self, claims: Value, room: &str, now: u64) -> Result<Identity, AuthError> {
        let obj = claims.as_object().ok_or(AuthError::Malformed)?;
        // jsonwebtoken checked iss/aud when present; they are required here.
        let issuer = match obj.get("iss") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(AuthError::Malformed),
            None => return Err(AuthError::UnknownIssuer),
        };
        if obj.get("aud").is_none() {
            return Err(AuthError::WrongAudience);
        }
        let exp = numeric_time(obj.get("exp"))?.ok_or(AuthError::Malformed)?;
        if now > exp.saturating_add(self.leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = numeric_time(obj.get("nbf"))?
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(AuthError::NotYetValid);
        }
        let token_room = match obj.get("room") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(AuthError::Malformed),
        };
        if token_room != "*" && token_room != room {
            return Err(AuthError::WrongRoom);
        }
        let user = obj
            .get("context")
            .and_then(|c| c.get("user"))
            .and_then(Value::as_object);
        let user_str = |k: &str| -> Result<Option<String>, AuthError> {
            match user.and_then(|u| u.get(k)) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(AuthError::Malformed),
            }
        };
        let moderator = flag(user.and_then(|u| u.get("moderator"))) || flag(obj.get("moderator"));
        let sub = match obj.get("sub") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(AuthError::Malformed),
        };
        Ok(Identity {
            sub,
            user_id: user_str("id")?,
            name: user_str("name")?,
            email: user_str("email")?,
            avatar: user_str("avatar")?,
            moderator,
            issuer,
            room: token_room,
            claims,
            source: IdentitySource::Token,
        })
    }
}

fn flag(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn numeric_time(v: Option<&Value>) -> Result<Option<u64>, AuthError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if let Some(f) = n.as_f64() {
                if f.is_finite() && f >= 0.0 {
                    // Truncation is intended: fractional seconds are allowed by RFC 7519.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    Ok(Some(f as u64))
                } else {
                    Err(AuthError::Malformed)
                }
            } else {
                Err(AuthError::Malformed)
            }
        }
        Some(_) => Err(AuthError::Malformed),
    }
}

fn map_error(kind: &jsonwebtoken::errors::ErrorKind) -> AuthError {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => AuthError::BadSignature,
        K::ExpiredSignature => AuthError::Expired,
        K::ImmatureSignature => AuthError::NotYetValid,
        K::InvalidIssuer => AuthError::UnknownIssuer,
        K::InvalidAudience => AuthError::WrongAudience,
        K::InvalidAlgorithm | K::MissingAlgorithm | K::UnsupportedAlgorithm => {
            AuthError::AlgorithmNotAllowed
        }
        _ => AuthError::Malformed,
    }
}

/// The header, read without trusting it, to pick the algorithm and key.
struct RawHeader {
    alg: String,
    kid: Option<String>,
}

impl RawHeader {
    fn parse(token: &str) -> Result<Self, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed);
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| AuthError::Malformed)?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
        let alg = v
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(AuthError::Malformed)?
            .to_owned();
        let kid = match v.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(AuthError::Malformed),
        };
        Ok(Self { alg, kid })
    }
}
