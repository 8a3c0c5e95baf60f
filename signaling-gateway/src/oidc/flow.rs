//! The login flow's checks, sans-IO: [`OidcFlow::begin`] makes the state,
//! nonce and PKCE verifier of one login (from random bytes the caller
//! draws); [`OidcFlow::callback`] checks the provider's redirect against
//! them (state known, bound to this browser's cookie, not expired, used
//! once). What comes out ([`Exchange`]) is what the driver needs to redeem
//! the code; [`Exchange::check_nonce`] checks the ID token's `nonce`.

use std::collections::BTreeMap;

use base64::Engine as _;
use openidconnect::{PkceCodeChallenge, PkceCodeVerifier};

/// How long a login may take at the provider, in seconds.
pub const LOGIN_TTL_SECS: u64 = 600;

/// Why a callback was refused. Shown to the user (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The provider answered with an error (`error=` in the redirect).
    #[error("the identity provider refused the login ({0})")]
    Provider(String),
    /// `code` or `state` missing.
    #[error("the answer of the identity provider is incomplete")]
    Malformed,
    /// `state` names no login in progress: forged, expired, or already used
    /// (a replayed callback).
    #[error("unknown, expired or already used login (state)")]
    UnknownState,
    /// `state` does not match this browser's login cookie.
    #[error("this login was not started by this browser (state)")]
    StateMismatch,
    /// The redirect names another issuer (`iss`, RFC 9207: a mix-up).
    #[error("the answer comes from another identity provider (iss)")]
    IssuerMismatch,
    /// The ID token's `nonce` is missing or not the login's.
    #[error("the ID token was not issued for this login (nonce)")]
    NonceMismatch,
    /// Redeeming the code or checking the tokens failed.
    #[error("the identity provider's tokens could not be verified ({0})")]
    Tokens(String),
}

/// A login begun: what goes into the authorization URL and the state cookie.
#[derive(Debug)]
pub struct Begin {
    /// `state`, also the value of the short-lived state cookie.
    pub state: String,
    /// `nonce`, to find again in the ID token.
    pub nonce: String,
    /// The PKCE S256 challenge of the login's verifier.
    pub pkce_challenge: PkceCodeChallenge,
}

/// A callback that passed the flow's checks: redeem `code` with `verifier`.
#[derive(Debug)]
pub struct Exchange {
    /// The authorization code (single use at the provider).
    pub code: String,
    /// The PKCE verifier of this login.
    verifier: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// Where to send the browser once signed in (a local path).
    pub return_to: String,
}

impl Exchange {
    /// The PKCE verifier to send with the code.
    pub fn verifier(&self) -> PkceCodeVerifier {
        PkceCodeVerifier::new(self.verifier.clone())
    }

    /// Whether the ID token's `nonce` is this login's.
    pub fn check_nonce(&self, claimed: Option<&str>) -> Result<(), CallbackError> {
        match claimed {
            Some(n) if constant_time_eq(n.as_bytes(), self.nonce.as_bytes()) => Ok(()),
            _ => Err(CallbackError::NonceMismatch),
        }
    }
}

/// What the provider's redirect to `/auth/callback` carried.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallbackParams {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `error` (the provider refused or the user cancelled).
    pub error: Option<String>,
    /// `iss` (RFC 9207), when the provider sends it.
    pub iss: Option<String>,
}

impl CallbackParams {
    /// Parses the query string of the callback.
    pub fn parse(query: &str) -> Self {
        let mut p = Self::default();
        for (k, v) in form_urlencoded(query) {
            match k.as_str() {
                "code" => p.code = Some(v),
                "state" => p.state = Some(v),
                "error" => p.error = Some(v),
                "iss" => p.iss = Some(v),
                _ => {}
            }
        }
        p
    }
}

fn form_urlencoded(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[derive(Debug)]
struct Pending {
    nonce: String,
    verifier: String,
    return_to: String,
    expires_at: u64,
}

/// Logins in progress, bounded in count (the oldest is dropped when full).
#[derive(Debug)]
pub struct OidcFlow {
    pending: BTreeMap<String, Pending>,
    max_pending: usize,
}

impl OidcFlow {
    /// At most `max_pending` logins at the provider at once.
    pub fn new(max_pending: usize) -> Self {
        Self {
            pending: BTreeMap::new(),
            max_pending: max_pending.max(1),
        }
    }

    /// Logins in progress.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Begins a login that returns to `return_to` (checked by
    /// [`safe_return_path`]), from 96 random bytes (state, nonce, PKCE
    /// verifier: 256 bits each).
    pub fn begin(&mut self, return_to: &str, random: [u8; 96], now: u64) -> Begin {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let state = b64(random.get(..32).unwrap_or_default());
        let nonce = b64(random.get(32..64).unwrap_or_default());
        let verifier = b64(random.get(64..).unwrap_or_default());
        let pkce_challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        self.pending.retain(|_, p| now < p.expires_at);
        while self.pending.len() >= self.max_pending {
            let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.expires_at)
                .map(|(s, _)| s.clone())
            else {
                break;
            };
            self.pending.remove(&oldest);
        }
        self.pending.insert(
            state.clone(),
            Pending {
                nonce: nonce.clone(),
                verifier,
                return_to: safe_return_path(return_to).to_owned(),
                expires_at: now.saturating_add(LOGIN_TTL_SECS),
            },
        );
        Begin {
            state,
            nonce,
            pkce_challenge,
        }
    }

    /// Checks the provider's redirect. `state_cookie` is this browser's
    /// state cookie, `issuer` the provider's (an `iss` parameter must name
    /// it). A known state is consumed whatever the outcome: a callback can
    /// be tried once.
    pub fn callback(
        &mut self,
        params: &CallbackParams,
        state_cookie: Option<&str>,
        issuer: &str,
        now: u64,
    ) -> Result<Exchange, CallbackError> {
        let state = params.state.as_deref().ok_or(CallbackError::Malformed)?;
        let pending = self
            .pending
            .remove(state)
            .filter(|p| now < p.expires_at)
            .ok_or(CallbackError::UnknownState)?;
        if !state_cookie.is_some_and(|c| constant_time_eq(c.as_bytes(), state.as_bytes())) {
            return Err(CallbackError::StateMismatch);
        }
        if params.iss.as_deref().is_some_and(|i| i != issuer) {
            return Err(CallbackError::IssuerMismatch);
        }
        if let Some(error) = &params.error {
            let shown: String = error
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(64)
                .collect();
            return Err(CallbackError::Provider(shown));
        }
        let code = params.code.clone().ok_or(CallbackError::Malformed)?;
        Ok(Exchange {
            code,
            verifier: pending.verifier,
            nonce: pending.nonce,
            return_to: pending.return_to,
        })
    }
}

/// `return` of `/auth/login`, if it is a local path (`/Room`, `/`);
/// anything else (another site, `//evil`, `/\evil`) becomes `/`.
pub fn safe_return_path(p: &str) -> &str {
    let ok = p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && p.len() <= 200
        && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if ok { p } else { "/" }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    const ISS: &str = "https://idp.example";

    fn random(n: u8) -> [u8; 96] {
        let mut r = [0u8; 96];
        for (i, b) in r.iter_mut().enumerate() {
            *b = n
                .wrapping_mul(31)
                .wrapping_add(u8::try_from(i).unwrap_or(0));
        }
        r
    }

    fn params(code: &str, state: &str) -> CallbackParams {
        CallbackParams {
            code: Some(code.into()),
            state: Some(state.into()),
            error: None,
            iss: None,
        }
    }

    #[test]
    fn a_login_goes_through_once() {
        let mut flow = OidcFlow::new(16);
        let b = flow.begin("/Room", random(1), 1000);
        assert_ne!(b.state, b.nonce);
        let ex = flow
            .callback(&params("code-1", &b.state), Some(&b.state), ISS, 1010)
            .expect("accepted");
        assert_eq!(ex.code, "code-1");
        assert_eq!(ex.return_to, "/Room");
        // PKCE: the verifier redeemed is the one whose S256 went out.
        let digest = sha2::Sha256::digest(ex.verifier().secret().as_bytes());
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
        assert_eq!(b.pkce_challenge.as_str(), expected);
        assert_eq!(b.pkce_challenge.method().as_str(), "S256");
        assert_eq!(ex.verifier().secret().len(), 43, "256-bit verifier");
        // Replayed: the state was used.
        assert_eq!(
            flow.callback(&params("code-1", &b.state), Some(&b.state), ISS, 1011)
                .unwrap_err(),
            CallbackError::UnknownState
        );
    }

    #[test]
    fn state_must_be_known_and_bound_to_the_browser() {
        let mut flow = OidcFlow::new(16);
        let b = flow.begin("/", random(2), 0);
        let other = flow.begin("/", random(3), 0);
        // A state changed in transit.
        let mut tampered = b.state.clone();
        tampered.replace_range(0..1, if tampered.starts_with('A') { "B" } else { "A" });
        assert_eq!(
            flow.callback(&params("c", &tampered), Some(&b.state), ISS, 1)
                .unwrap_err(),
            CallbackError::UnknownState
        );
        // Another browser's login (login CSRF): the cookie does not match.
        assert_eq!(
            flow.callback(&params("c", &other.state), Some(&b.state), ISS, 1)
                .unwrap_err(),
            CallbackError::StateMismatch
        );
        assert_eq!(
            flow.callback(&params("c", &b.state), None, ISS, 1)
                .unwrap_err(),
            CallbackError::StateMismatch
        );
        // Consumed by the refused attempt: one try per login.
        assert_eq!(
            flow.callback(&params("c", &b.state), Some(&b.state), ISS, 1)
                .unwrap_err(),
            CallbackError::UnknownState
        );
        assert_eq!(
            flow.callback(&CallbackParams::default(), None, ISS, 1)
                .unwrap_err(),
            CallbackError::Malformed
        );
    }

    #[test]
    fn a_login_expires() {
        let mut flow = OidcFlow::new(16);
        let b = flow.begin("/", random(4), 0);
        assert_eq!(
            flow.callback(&params("c", &b.state), Some(&b.state), ISS, LOGIN_TTL_SECS)
                .unwrap_err(),
            CallbackError::UnknownState
        );
    }

    #[test]
    fn provider_errors_are_reported_without_markup() {
        let mut flow = OidcFlow::new(16);
        let b = flow.begin("/", random(5), 0);
        let p = CallbackParams::parse(&format!(
            "error=access_denied%3Cscript%3E&state={}",
            b.state
        ));
        assert_eq!(
            flow.callback(&p, Some(&b.state), ISS, 1).unwrap_err(),
            CallbackError::Provider("access_deniedscript".into())
        );
    }

    #[test]
    fn the_iss_parameter_must_name_the_provider() {
        let mut flow = OidcFlow::new(16);
        let b = flow.begin("/", random(10), 0);
        let mut p = params("c", &b.state);
        p.iss = Some("https://other-idp.example".into());
        assert_eq!(
            flow.callback(&p, Some(&b.state), ISS, 1).unwrap_err(),
            CallbackError::IssuerMismatch
        );
        let b = flow.begin("/", random(11), 0);
        let mut p = params("c", &b.state);
        p.iss = Some(ISS.into());
        assert!(flow.callback(&p, Some(&b.state), ISS, 1).is_ok());
    }

    #[test]
    fn nonce_must_match() {
        let mut flow = OidcFlow::new(16);
        let b = flow.begin("/", random(6), 0);
        let ex = flow
            .callback(&params("c", &b.state), Some(&b.state), ISS, 1)
            .expect("accepted");
        assert_eq!(ex.check_nonce(Some(&b.nonce)), Ok(()));
        assert_eq!(
            ex.check_nonce(Some("another")),
            Err(CallbackError::NonceMismatch)
        );
        assert_eq!(ex.check_nonce(None), Err(CallbackError::NonceMismatch));
    }

    #[test]
    fn pending_logins_are_bounded() {
        let mut flow = OidcFlow::new(2);
        let a = flow.begin("/", random(7), 0);
        let _b = flow.begin("/", random(8), 1);
        let _c = flow.begin("/", random(9), 2);
        assert_eq!(flow.pending(), 2);
        assert_eq!(
            flow.callback(&params("c", &a.state), Some(&a.state), ISS, 3)
                .unwrap_err(),
            CallbackError::UnknownState
        );
    }

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(safe_return_path("/Room-1"), "/Room-1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "",
            "Room",
            "/a b",
        ] {
            assert_eq!(safe_return_path(bad), "/", "{bad}");
        }
    }
}
