//! OpenID Connect login for agents (authorization code + PKCE), compatible
//! with ProConnect (`docs/oidc.md`).
//!
//! - [`flow`]: sans-IO checks of one login (state bound to the browser,
//!   nonce, PKCE verifier, single use), given `now` and random bytes.
//! - [`session`]: the server-side sessions (random 256-bit ids, expiry,
//!   bounded count), given `now`.
//! - [`client`]: the HTTP client openidconnect uses (hyper + tokio-rustls).
//! - [`Oidc`]: the driver the HTTP routes call: discovery (retried in the
//!   background), the authorization URL, the code exchange, the ID token and
//!   user info checks (openidconnect, against the provider's JWKS), logout.
//!
//! Tokens and personal data are never logged, and never put in a URL
//! except the provider's own (`id_token_hint` at logout, as the spec says).

pub mod client;
pub mod flow;
pub mod session;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreGenderClaim, CoreIdTokenClaims,
    CoreTokenResponse,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, LogoutRequest, Nonce,
    OAuth2TokenResponse as _, PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl,
    Scope, TokenResponse as _, UserInfoClaims,
};
use salon_plugins::Identity;
use serde::{Deserialize, Serialize};

pub use client::{HttpClient, HttpError};
pub use flow::{CallbackError, CallbackParams, OidcFlow};
pub use session::{SessionId, SessionStore};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "salon_session";
/// The short-lived cookie binding a login's `state` to the browser.
pub const STATE_COOKIE: &str = "salon_oidc_state";
/// ProConnect's scopes (`docs/oidc.md`).
pub const DEFAULT_SCOPES: &str = "openid given_name usual_name email uid siret";
/// Logins in progress at once (each is a few hundred bytes).
const MAX_PENDING_LOGINS: usize = 10_000;

/// What `salon` was told about the provider.
#[derive(Clone)]
pub struct OidcConfig {
    /// The issuer; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Salon's client id at the provider.
    pub client_id: String,
    /// Salon's client secret (from a file); `None` for a public client.
    pub client_secret: Option<String>,
    /// `https://<salon>/auth/callback`, as registered at the provider.
    pub redirect_url: String,
    /// Scopes asked for (`openid` is always asked).
    pub scopes: Vec<String>,
    /// `acr_values` of the authorization request, if any.
    pub acr_values: Option<String>,
    /// Where the provider sends the browser after logout (registered there).
    pub post_logout_redirect_url: Option<String>,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Most sessions held at once.
    pub max_sessions: usize,
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("acr_values", &self.acr_values)
            .field("post_logout_redirect_url", &self.post_logout_redirect_url)
            .field("session_ttl", &self.session_ttl)
            .field("max_sessions", &self.max_sessions)
            .finish()
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcConfigError {
    /// A URL is not valid, or is plain HTTP to something other than loopback.
    #[error("{0}: an https URL is needed (plain http only to a loopback address)")]
    Url(&'static str),
    /// The TLS client could not be set up.
    #[error("TLS client: {0}")]
    Tls(String),
}

/// Why discovery failed (the provider is unreachable or its metadata unusable).
#[derive(Debug, thiserror::Error)]
#[error("OIDC discovery at {issuer}/.well-known/openid-configuration failed: {reason}")]
pub struct DiscoveryError {
    issuer: String,
    reason: String,
}

/// `/auth/login` while the provider has not been discovered yet.
#[derive(Debug, thiserror::Error)]
#[error("the identity provider is not reachable yet")]
pub struct Unavailable;

/// ProConnect's claims beyond the standard ones.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ProConnectClaims {
    /// Family name as used (ProConnect: `usual_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usual_name: Option<String>,
    /// The agent's id at its identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The employer's SIRET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub siret: Option<String>,
    /// ProConnect: the identity provider the agent used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_id: Option<String>,
}

impl AdditionalClaims for ProConnectClaims {}

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

struct Provider {
    client: Client,
    /// The issuer of the discovery document (checked against `iss`).
    issuer: String,
    end_session: Option<EndSessionUrl>,
}

struct State {
    flow: OidcFlow,
    sessions: SessionStore,
}

/// The OIDC driver: shared by the HTTP routes and the sockets.
pub struct Oidc {
    config: OidcConfig,
    http: HttpClient,
    provider: RwLock<Option<Arc<Provider>>>,
    state: Mutex<State>,
    /// Whether cookies carry `Secure` (the redirect URL is https).
    secure_cookies: bool,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What a login's start gives the browser.
#[derive(Debug)]
pub struct LoginRedirect {
    /// The provider's authorization URL.
    pub location: String,
    /// `Set-Cookie` for the state cookie.
    pub state_cookie: String,
}

/// A finished login.
#[derive(Debug)]
pub struct LoggedIn {
    /// `Set-Cookie` for the session.
    pub session_cookie: String,
    /// Where to send the browser (a local path).
    pub return_to: String,
}

fn check_url(url: &str, what: &'static str) -> Result<url::Url, OidcConfigError> {
    let u = url::Url::parse(url).map_err(|_| OidcConfigError::Url(what))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if u.host_str().is_some_and(client::is_loopback) => Ok(u),
        _ => Err(OidcConfigError::Url(what)),
    }
}

/// Why the token endpoint refused, without anything the provider echoed
/// back (its error code only: no token, no claim, no body).
fn token_reason(
    e: &openidconnect::RequestTokenError<
        HttpError,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> String {
    use openidconnect::RequestTokenError as E;
    match e {
        E::ServerResponse(r) => format!("token endpoint: {}", r.error().as_ref()),
        E::Request(e) => format!("token endpoint: {e}"),
        E::Parse(..) => "token endpoint: unreadable answer".to_owned(),
        E::Other(_) => "token endpoint: unexpected answer".to_owned(),
    }
}

/// The ID token's `acr` against the `acr_values` asked for (none asked:
/// anything goes).
fn acr_accepted(wanted: &[String], acr: Option<&str>) -> Result<(), String> {
    if wanted.is_empty() {
        return Ok(());
    }
    match acr {
        Some(a) if wanted.iter().any(|w| w == a) => Ok(()),
        Some(_) => Err("acr not among those asked for".to_owned()),
        None => Err("no acr in the ID token".to_owned()),
    }
}

/// Which check of the ID token or user info failed (no claim value: the
/// library's messages may quote a subject or an audience).
fn claims_reason(e: &openidconnect::ClaimsVerificationError) -> &'static str {
    use openidconnect::ClaimsVerificationError as E;
    match e {
        E::Expired(_) => "expired",
        E::InvalidAudience(_) => "audience",
        E::InvalidAuthContext(_) => "acr",
        E::InvalidAuthTime(_) => "auth_time",
        E::InvalidIssuer(_) => "issuer",
        E::InvalidNonce(_) => "nonce",
        E::InvalidSubject(_) => "subject",
        E::SignatureVerification(_) => "signature",
        E::Unsupported(_) => "unsupported algorithm or format",
        _ => "claims",
    }
}

fn user_info_reason(e: &openidconnect::UserInfoError<HttpError>) -> String {
    use openidconnect::UserInfoError as E;
    match e {
        E::ClaimsVerification(c) => format!("user info: {}", claims_reason(c)),
        E::Request(e) => format!("user info: {e}"),
        E::Response(status, ..) => format!("user info: HTTP {}", status.as_u16()),
        E::Parse(_) => "user info: unreadable answer".to_owned(),
        _ => "user info: unexpected answer".to_owned(),
    }
}

impl Oidc {
    /// Checks the configuration; `roots` are the CA certificates trusted
    /// for the provider's https.
    pub fn new(config: OidcConfig, roots: rustls::RootCertStore) -> Result<Self, OidcConfigError> {
        check_url(&config.issuer, "--oidc-issuer")?;
        let redirect = check_url(&config.redirect_url, "--oidc-redirect-url")?;
        if let Some(u) = &config.post_logout_redirect_url {
            check_url(u, "--oidc-post-logout-redirect-url")?;
        }
        let http = HttpClient::new(roots).map_err(|e| OidcConfigError::Tls(e.to_string()))?;
        let sessions = SessionStore::new(config.max_sessions, config.session_ttl.as_secs());
        Ok(Self {
            secure_cookies: redirect.scheme() == "https",
            config,
            http,
            provider: RwLock::new(None),
            state: Mutex::new(State {
                flow: OidcFlow::new(MAX_PENDING_LOGINS),
                sessions,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn provider(&self) -> Option<Arc<Provider>> {
        self.provider
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether discovery has succeeded.
    pub fn ready(&self) -> bool {
        self.provider().is_some()
    }

    /// Reads the provider's metadata and keys (discovery).
    pub async fn discover(&self) -> Result<(), DiscoveryError> {
        let fail = |reason: String| DiscoveryError {
            issuer: self.config.issuer.trim_end_matches('/').to_owned(),
            reason,
        };
        let issuer = IssuerUrl::new(self.config.issuer.clone()).map_err(|e| fail(e.to_string()))?;
        let http = self.http.as_fn();
        let meta = ProviderMetadataWithLogout::discover_async(issuer, &http)
            .await
            .map_err(|e| fail(error_chain(&e)))?;
        let end_session = meta.additional_metadata().end_session_endpoint.clone();
        let issuer_url = meta.issuer().as_str().to_owned();
        // client_secret_basic unless the provider lists only
        // client_secret_post (the spec's default is basic).
        let post_only = meta
            .token_endpoint_auth_methods_supported()
            .is_some_and(|m| {
                m.contains(&CoreClientAuthMethod::ClientSecretPost)
                    && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
            });
        let redirect =
            RedirectUrl::new(self.config.redirect_url.clone()).map_err(|e| fail(e.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            meta,
            ClientId::new(self.config.client_id.clone()),
            self.config.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(if post_only {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        });
        *self.provider.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(Provider {
            client,
            issuer: issuer_url,
            end_session,
        }));
        Ok(())
    }

    /// Rediscovers in the background: until it works after 2 s, then a wait
    /// doubling up to 30 s; once it works, hourly (new signing keys).
    pub fn spawn_refresh(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut retry = Duration::from_secs(2);
            loop {
                let ready = match me.upgrade() {
                    Some(o) => o.ready(),
                    None => return,
                };
                let wait = if ready {
                    retry = Duration::from_secs(2);
                    Duration::from_secs(3600)
                } else {
                    let wait = retry;
                    retry = (retry * 2).min(Duration::from_secs(30));
                    wait
                };
                tokio::time::sleep(wait).await;
                let Some(o) = me.upgrade() else { return };
                match o.discover().await {
                    Ok(()) if !ready => tracing::info!("OIDC provider discovered"),
                    Ok(()) => {}
                    Err(e) => tracing::warn!(error = %e, "OIDC discovery failed; retrying"),
                }
            }
        });
    }

    /// Starts a login: the provider's URL and the state cookie.
    pub fn login(&self, return_to: &str, now: u64) -> Result<LoginRedirect, Unavailable> {
        let provider = self.provider().ok_or(Unavailable)?;
        let mut random = [0u8; 96];
        rand::fill(&mut random);
        let begin = self.state().flow.begin(return_to, random, now);
        let (state, nonce) = (begin.state.clone(), begin.nonce.clone());
        let mut req = provider
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(begin.pkce_challenge);
        for s in self.config.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if let Some(acr) = &self.config.acr_values {
            req = req.add_extra_param("acr_values", acr.clone());
        }
        let (url, _, _) = req.url();
        Ok(LoginRedirect {
            location: url.to_string(),
            state_cookie: self.cookie(STATE_COOKIE, &begin.state, "/auth/", flow::LOGIN_TTL_SECS),
        })
    }

    /// Finishes a login from the provider's redirect: flow checks, code
    /// exchange (PKCE), ID token (signature against the JWKS, issuer,
    /// audience, expiry, nonce), user info (same subject), then a session.
    pub async fn callback(
        &self,
        query: &str,
        cookies: &str,
        now: u64,
    ) -> Result<LoggedIn, CallbackError> {
        let provider = self
            .provider()
            .ok_or_else(|| CallbackError::Tokens("provider not reachable".into()))?;
        let params = CallbackParams::parse(query);
        let exchange = self.state().flow.callback(
            &params,
            cookie(cookies, STATE_COOKIE),
            &provider.issuer,
            now,
        )?;
        let tokens_err = |e: String| CallbackError::Tokens(e);
        let http = self.http.as_fn();
        let token: CoreTokenResponse = provider
            .client
            .exchange_code(AuthorizationCode::new(exchange.code.clone()))
            .map_err(|e| tokens_err(e.to_string()))?
            .set_pkce_verifier(exchange.verifier())
            .request_async(&http)
            .await
            .map_err(|e| tokens_err(token_reason(&e)))?;
        let id_token = token
            .id_token()
            .ok_or_else(|| tokens_err("no ID token".into()))?;
        let now_dt = chrono::DateTime::from_timestamp(i64::try_from(now).unwrap_or(0), 0)
            .unwrap_or_default();
        // With `acr_values` asked for, the ID token must say which level
        // the provider authenticated at, and it must be one of those asked
        // (ProConnect: "vérifier le acr"): a provider that fell back to a
        // weaker level is refused, not trusted.
        let wanted: Vec<String> = self
            .config
            .acr_values
            .as_deref()
            .map(|v| v.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let verifier = provider
            .client
            .id_token_verifier()
            .set_time_fn(move || now_dt)
            .set_auth_context_verifier_fn(move |acr| {
                acr_accepted(&wanted, acr.map(|a| a.as_str()))
            });
        let mut nonce_result = Ok(());
        let claims: &CoreIdTokenClaims = id_token
            .claims(&verifier, |n: Option<&Nonce>| {
                nonce_result = exchange.check_nonce(n.map(|n| n.secret().as_str()));
                nonce_result.clone().map_err(|e| e.to_string())
            })
            .map_err(|e| {
                if nonce_result.is_err() {
                    CallbackError::NonceMismatch
                } else {
                    tokens_err(format!("ID token: {}", claims_reason(&e)))
                }
            })?;
        let info: UserInfoClaims<ProConnectClaims, CoreGenderClaim> = provider
            .client
            .user_info(
                AccessToken::new(token.access_token().secret().clone()),
                Some(claims.subject().clone()),
            )
            .map_err(|e| tokens_err(e.to_string()))?
            .request_async(&http)
            .await
            .map_err(|e| tokens_err(user_info_reason(&e)))?;
        let identity = identity_of(claims, &info);
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let mut st = self.state();
        let id = st
            .sessions
            .create(random, Arc::new(identity), id_token.to_string(), now);
        let ttl = st.sessions.ttl_secs();
        drop(st);
        tracing::info!("OIDC login");
        Ok(LoggedIn {
            session_cookie: self.cookie(SESSION_COOKIE, id.as_str(), "/", ttl),
            return_to: exchange.return_to,
        })
    }

    /// The identity of a live session named in a `Cookie` header.
    pub fn identity(&self, cookies: &str, now: u64) -> Option<Arc<Identity>> {
        let id = cookie(cookies, SESSION_COOKIE)?;
        self.state()
            .sessions
            .get(id, now)
            .map(|s| s.identity.clone())
    }

    /// The identity of a session id (the socket keeps the id, so a logout
    /// takes effect at its next join).
    pub fn session_identity(&self, session: &str, now: u64) -> Option<Arc<Identity>> {
        self.state()
            .sessions
            .get(session, now)
            .map(|s| s.identity.clone())
    }

    /// Ends the session of a `Cookie` header. Returns where to send the
    /// browser: the provider's end-session URL (with `id_token_hint` and
    /// `post_logout_redirect_uri`), else `/`.
    pub fn logout(&self, cookies: &str, now: u64) -> String {
        let Some(id) = cookie(cookies, SESSION_COOKIE) else {
            return "/".to_owned();
        };
        let Some(session) = self.state().sessions.remove(id, now) else {
            return "/".to_owned();
        };
        let Some(provider) = self.provider() else {
            return "/".to_owned();
        };
        let Some(end) = &provider.end_session else {
            return "/".to_owned();
        };
        let mut req = LogoutRequest::from(end.clone());
        if let Ok(token) = session.id_token.parse::<openidconnect::core::CoreIdToken>() {
            req = req.set_id_token_hint(&token);
        }
        req = req.set_client_id(ClientId::new(self.config.client_id.clone()));
        if let Some(u) = &self.config.post_logout_redirect_url
            && let Ok(u) = PostLogoutRedirectUrl::new(u.clone())
        {
            req = req.set_post_logout_redirect_uri(u);
        }
        req.http_get_url().to_string()
    }

    /// A `Set-Cookie` value.
    pub fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64) -> String {
        let secure = if self.secure_cookies { "; Secure" } else { "" };
        format!("{name}={value}; HttpOnly{secure}; SameSite=Lax; Path={path}; Max-Age={max_age}")
    }

    /// The `Set-Cookie` value that deletes a cookie.
    pub fn clear_cookie(&self, name: &str, path: &str) -> String {
        self.cookie(name, "", path, 0)
    }
}

/// The identity policies see: the user info claims over the ID token's.
fn identity_of(
    id: &CoreIdTokenClaims,
    info: &UserInfoClaims<ProConnectClaims, CoreGenderClaim>,
) -> Identity {
    let mut claims = serde_json::to_value(id).unwrap_or_default();
    if let (Some(obj), Ok(serde_json::Value::Object(more))) =
        (claims.as_object_mut(), serde_json::to_value(info))
    {
        obj.extend(more);
    }
    let extra = info.additional_claims();
    let given = info
        .given_name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned());
    let name = match (given, &extra.usual_name) {
        (Some(g), Some(u)) => Some(format!("{g} {u}")),
        (Some(g), None) => Some(g),
        (None, Some(u)) => Some(u.clone()),
        (None, None) => info
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
    };
    let email = info.email().or(id.email()).map(|e| e.as_str().to_owned());
    Identity::from_oidc(
        id.issuer().as_str().to_owned(),
        id.subject().as_str().to_owned(),
        extra.uid.clone(),
        name,
        email,
        claims,
    )
}

/// A cookie's value in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name && !v.is_empty()).then_some(v)
    })
}

/// An error and its sources, for the operator's log (no token or URL in them).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        src = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_acr_must_be_one_asked_for() {
        let wanted = vec!["eidas1".to_owned(), "eidas2".to_owned()];
        assert!(acr_accepted(&wanted, Some("eidas1")).is_ok());
        assert!(acr_accepted(&wanted, Some("eidas2")).is_ok());
        assert!(acr_accepted(&wanted, Some("eidas0")).is_err());
        assert!(acr_accepted(&wanted, None).is_err());
        assert!(acr_accepted(&[], None).is_ok());
        assert!(acr_accepted(&[], Some("anything")).is_ok());
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let h = "a=1; salon_session=abc; salon_session_x=zzz";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie("salon_session_x=zzz", SESSION_COOKIE), None);
        assert_eq!(cookie("salon_session=", SESSION_COOKIE), None);
        assert_eq!(cookie("", SESSION_COOKIE), None);
    }

    fn config(redirect: &str) -> OidcConfig {
        OidcConfig {
            issuer: "http://127.0.0.1:9/".into(),
            client_id: "salon".into(),
            client_secret: Some("s3cret".into()),
            redirect_url: redirect.into(),
            scopes: DEFAULT_SCOPES.split(' ').map(str::to_owned).collect(),
            acr_values: None,
            post_logout_redirect_url: None,
            session_ttl: Duration::from_secs(3600),
            max_sessions: 10,
        }
    }

    #[test]
    fn cookies_are_secure_unless_plain_http_loopback() {
        let roots = rustls::RootCertStore::empty;
        let dev = Oidc::new(config("http://127.0.0.1:8080/auth/callback"), roots()).unwrap();
        let c = dev.cookie(SESSION_COOKIE, "x", "/", 60);
        assert_eq!(
            c,
            "salon_session=x; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
        let prod = Oidc::new(config("https://salon.example/auth/callback"), roots()).unwrap();
        let c = prod.cookie(SESSION_COOKIE, "x", "/", 60);
        assert_eq!(
            c,
            "salon_session=x; HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=60"
        );
        assert!(Oidc::new(config("http://salon.example/auth/callback"), roots()).is_err());
        assert!(!format!("{:?}", prod).contains("s3cret"), "secret redacted");
    }

    #[tokio::test]
    async fn login_waits_for_discovery_and_discovery_errors_name_the_issuer() {
        let o = Oidc::new(
            config("http://127.0.0.1:8080/auth/callback"),
            rustls::RootCertStore::empty(),
        )
        .unwrap();
        assert!(o.login("/", 0).is_err());
        let e = o.discover().await.unwrap_err().to_string();
        assert!(
            e.contains("http://127.0.0.1:9/.well-known/openid-configuration"),
            "{e}"
        );
    }
}
