//! HTTP: routes, responses, the WebSocket upgrade.

// Request input: never index or slice, never `expect` (CONTRIBUTING.md).
#![deny(clippy::indexing_slicing, clippy::expect_used)]

use super::guard::PreJoin;
use super::limits::Refusal;
use super::*;

pub(super) fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self), geolocation=()"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

pub(super) fn redirect(location: &str) -> Response<Body> {
    let mut res = respond(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// The redirect listener's answer to every request: 308 to the same path
/// and query over HTTPS, on the public listener's port, for a `Host` the
/// public listener serves; 421 for any other (the name in `Location` is
/// always one the operator allowed, never one merely sent).
pub(super) fn redirect_to_https(req: &Request<Incoming>, shared: &Shared) -> Response<Body> {
    Metrics::inc(&shared.metrics.http_requests);
    let Some(host) = request_host(req).filter(|h| shared.hosts.allows(h)) else {
        Metrics::inc(&shared.metrics.refused_host);
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "Hôte non servi ici.\nHost not served here.\n",
        );
    };
    let name = super::limits::host_name(host);
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let location = match shared.https_port {
        443 => format!("https://{name}{path}"),
        port => format!("https://{name}:{port}{path}"),
    };
    let mut res = text(
        StatusCode::PERMANENT_REDIRECT,
        "Ce service est en HTTPS.\nThis service is served over HTTPS.\n",
    );
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
            res
        }
        Err(_) => bad_room(),
    }
}

/// The host a request names: its `Host` header, else its URI's authority
/// (HTTP/2, absolute-form targets).
fn request_host(req: &Request<Incoming>) -> Option<&str> {
    match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => req.uri().authority().map(|a| a.as_str()),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    respond(status, "text/plain; charset=utf-8", body)
}

fn metrics_page(shared: &Shared) -> Response<Body> {
    let gateway = shared.metrics.collect().encode();
    let media = shared.media.metrics_text();
    respond(
        StatusCode::OK,
        salon_mediad::exposition::CONTENT_TYPE,
        salon_mediad::exposition::join(&[&gateway, &media]),
    )
}

pub(super) fn route(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    listener: Listener,
) -> Response<Body> {
    Metrics::inc(&shared.metrics.http_requests);
    if listener == Listener::Admin {
        // Loopback or a private network, the operator's choice: no Host
        // check (Prometheus scrapes by address).
        return match req.uri().path() {
            "/metrics" => metrics_page(&shared),
            "/healthz" => text(StatusCode::OK, "ok\n"),
            _ => text(StatusCode::NOT_FOUND, "Not found.\n"),
        };
    }
    if !request_host(&req).is_some_and(|h| shared.hosts.allows(h)) {
        Metrics::inc(&shared.metrics.refused_host);
        if !HOST_REFUSAL_LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "a request for a Host name that is not allowed was refused (421; counted in \
                 salon_gateway_host_refused_total, logged once): behind a reverse proxy, \
                 list the public name with --allowed-host"
            );
        }
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "Hôte non servi ici.\nHost not served here.\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut res = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "Méthode non autorisée.\nMethod not allowed.\n",
        );
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let path = req.uri().path();
    match path {
        "/" => {
            // Works without JavaScript: the home form submits `?room=`.
            if let Some(room) = req.uri().query().and_then(room_query) {
                return match validate_room(&room) {
                    Ok(room) => redirect(&format!("/{}", room.0)),
                    Err(_) => bad_room(),
                };
            }
            respond(StatusCode::OK, "text/html; charset=utf-8", web::HOME_HTML)
        }
        "/test" => respond(StatusCode::OK, "text/html; charset=utf-8", web::TEST_HTML),
        "/healthz" => respond(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/config.json" => respond(
            StatusCode::OK,
            "application/json",
            shared.opts.brand.config_json(),
        ),
        "/brand/logo" => match &shared.opts.brand.logo {
            Some((ct, body)) => {
                let mut res = respond(StatusCode::OK, ct, body.clone());
                // An SVG logo must not run anything even if opened directly.
                res.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(
                        "default-src 'none'; style-src 'unsafe-inline'; sandbox",
                    ),
                );
                res
            }
            None => respond(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", ""),
        },
        "/brand/font" => match &shared.opts.brand.font {
            Some(body) => respond(StatusCode::OK, "font/woff2", body.clone()),
            None => respond(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", ""),
        },
        "/metrics" if shared.opts.metrics_on_public => metrics_page(&shared),
        // On the admin listener only (not a room called `metrics`).
        "/metrics" => text(StatusCode::NOT_FOUND, "Not found.\n"),
        "/ws" => {
            // A signed-in browser's socket carries its session (the cookie
            // of the upgrade request; never a token in the URL).
            let session = req
                .headers()
                .get(header::COOKIE)
                .and_then(|c| c.to_str().ok())
                .and_then(|c| crate::oidc::cookie(c, crate::oidc::SESSION_COOKIE))
                .map(str::to_owned);
            upgrade(req, shared, peer, None, session)
        }
        "/pad" => {
            let token = pad_token(&req);
            upgrade(req, shared, peer, Some(token), None)
        }
        "/favicon.ico" => respond(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", ""),
        _ => {
            if let Some(name) = path.strip_prefix("/static/") {
                return match web::asset(name) {
                    Some(a) => {
                        let fresh = req
                            .headers()
                            .get(header::IF_NONE_MATCH)
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| web::etag_matches(v, a.etag));
                        let mut res = if fresh {
                            respond(StatusCode::NOT_MODIFIED, a.content_type, Bytes::new())
                        } else {
                            respond(StatusCode::OK, a.content_type, a.body)
                        };
                        if let Ok(v) = HeaderValue::from_str(a.etag) {
                            res.headers_mut().insert(header::ETAG, v);
                        }
                        res
                    }
                    None => respond(
                        StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        "Introuvable.\nNot found.\n",
                    ),
                };
            }
            // An authority-form or asterisk-form target (`CONNECT a:1`,
            // `OPTIONS *`) has a path that does not start with `/`.
            let Some(room) = path.strip_prefix('/') else {
                return bad_room();
            };
            match validate_room(room) {
                Ok(_) => respond(StatusCode::OK, "text/html; charset=utf-8", web::ROOM_HTML),
                Err(_) => bad_room(),
            }
        }
    }
}

pub(super) fn bad_room() -> Response<Body> {
    respond(
        StatusCode::BAD_REQUEST,
        "text/html; charset=utf-8",
        web::BAD_ROOM_HTML,
    )
}

/// Extracts `room` from a query string (`room=...`), percent-decoding only
/// what a valid room could contain (anything else stays invalid).
pub(super) fn room_query(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("room="))
        .map(|v| v.trim_matches('+').to_owned())
}

/// The pad WebSocket's token: offered as the subprotocol
/// `salon-pad-token.<token>` next to `salon-pad` (so it stays out of URLs
/// and the logs of proxies), else in the query string (`?token=`, older
/// clients).
pub(super) fn pad_token(req: &Request<Incoming>) -> String {
    let offered = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(PAD_TOKEN_PROTOCOL));
    offered
        .or_else(|| {
            req.uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        })
        .unwrap_or("")
        .to_owned()
}

/// The subprotocol a pad client offers (and the server selects) when it
/// passes its token in `Sec-WebSocket-Protocol`.
pub(super) const PAD_PROTOCOL: &str = "salon-pad";
/// Prefix of the subprotocol that carries the pad token.
pub(super) const PAD_TOKEN_PROTOCOL: &str = "salon-pad-token.";

pub(super) fn header_has_token(
    req: &Request<Incoming>,
    name: header::HeaderName,
    token: &str,
) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Same-origin check against cross-site WebSocket hijacking: a browser
/// always sends `Origin`; if present, its host must be our `Host`.
pub(super) fn origin_ok(headers: &hyper::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true; // not a browser (tests, tools)
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    authority.is_some_and(|a| a.eq_ignore_ascii_case(host))
}

/// Upgrades to a WebSocket: signaling (`pad_token` None) or a pad socket.
pub(super) fn upgrade(
    mut req: Request<Incoming>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    pad_token: Option<String>,
    session: Option<String>,
) -> Response<Body> {
    let is_ws = header_has_token(&req, header::CONNECTION, "upgrade")
        && header_has_token(&req, header::UPGRADE, "websocket")
        && req
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (is_ws, key) else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "Requête WebSocket attendue.\nWebSocket upgrade expected.\n",
        );
    };
    if !origin_ok(req.headers()) {
        return respond(
            StatusCode::FORBIDDEN,
            "text/plain; charset=utf-8",
            "Origine refusée.\nOrigin refused.\n",
        );
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let client = super::limits::client_addr(peer.ip(), &forwarded, &shared.opts.trusted_proxies);
    let permit = match shared.conns.acquire(client) {
        Ok(permit) => permit,
        Err(Refusal::Global) => {
            Metrics::inc(&shared.metrics.refused_global);
            let mut res = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "Serveur complet.\nServer full.\n",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            return res;
        }
        Err(Refusal::PerIp) => {
            Metrics::inc(&shared.metrics.refused_per_ip);
            tracing::debug!(peer = %client, "per-address connection cap reached");
            let mut res = text(
                StatusCode::TOO_MANY_REQUESTS,
                "Trop de connexions depuis cette adresse.\nToo many connections from this address.\n",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            return res;
        }
    };
    let offers_pad_protocol =
        pad_token.is_some() && header_has_token(&req, header::SEC_WEBSOCKET_PROTOCOL, PAD_PROTOCOL);
    let accept = derive_accept_key(key.as_bytes());
    // abuse-hub: the client's address, for the hub's bans and knock limits.
    let peer = Some(client);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let _permit = permit;
        match on_upgrade.await {
            Ok(upgraded) => {
                let limit = if pad_token.is_some() {
                    PAD_HARD_LIMIT
                } else {
                    shared.opts.ws_hard_limit
                };
                let config = WebSocketConfig::default()
                    .max_message_size(Some(limit))
                    .max_frame_size(Some(limit));
                // Before it joins, a signaling socket reads at most its
                // pre-join frame limit (and a little for control frames)
                // past its last whole frame.
                let budget = pad_token.is_none().then(|| {
                    shared
                        .opts
                        .prejoin_frame_limit
                        .saturating_add(PREJOIN_SLACK)
                });
                let ws = WebSocketStream::from_raw_socket(
                    PreJoin::new(TokioIo::new(upgraded), budget),
                    Role::Server,
                    Some(config),
                )
                .await;
                match pad_token {
                    Some(token) => run_pad_socket(ws, token, shared).await,
                    None => run_socket(ws, shared, peer, session).await,
                }
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut res = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    let h = res.headers_mut();
    if offers_pad_protocol {
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(PAD_PROTOCOL),
        );
    }
    h.remove(header::CONTENT_TYPE);
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// `/auth/*`: OIDC login, callback, logout and the signed-in state
/// (`docs/oidc.md`).
pub(super) async fn auth_route(req: Request<Incoming>, shared: &Shared) -> Response<Body> {
    use crate::oidc::{SESSION_COOKIE, STATE_COOKIE};
    Metrics::inc(&shared.metrics.http_requests);
    if !request_host(&req).is_some_and(|h| shared.hosts.allows(h)) {
        Metrics::inc(&shared.metrics.refused_host);
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "Hôte non servi ici.\nHost not served here.\n",
        );
    }
    let path = req.uri().path();
    let Some(oidc) = &shared.opts.oidc else {
        if path == "/auth/me" {
            return no_store(respond(
                StatusCode::OK,
                "application/json",
                r#"{"enabled":false}"#,
            ));
        }
        return text(
            StatusCode::NOT_FOUND,
            "La connexion n’est pas configurée sur ce serveur.\nLogin is not configured on this server.\n",
        );
    };
    let now = crate::hub::Now::system().unix_ms / 1000;
    let cookies = req
        .headers()
        .get(header::COOKIE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let method = req.method().clone();
    match (path, &method) {
        ("/auth/me", &Method::GET) => {
            let body = match oidc.identity(&cookies, now) {
                Some(id) => serde_json::json!({
                    "enabled": true,
                    "ready": oidc.ready(),
                    "signed_in": true,
                    "name": id.name,
                    "email": id.email,
                }),
                None => serde_json::json!({
                    "enabled": true,
                    "ready": oidc.ready(),
                    "signed_in": false,
                }),
            };
            no_store(respond(
                StatusCode::OK,
                "application/json",
                body.to_string(),
            ))
        }
        ("/auth/login", &Method::GET) => {
            let ret = req
                .uri()
                .query()
                .and_then(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "return")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_else(|| "/".to_owned());
            match oidc.login(&ret, now) {
                Ok(login) => {
                    let mut res = no_store(redirect(&login.location));
                    set_cookie(&mut res, &login.state_cookie);
                    res
                }
                Err(_) => auth_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Le fournisseur d’identité est injoignable pour le moment. Réessayez dans une minute.",
                    "The identity provider cannot be reached at the moment. Try again in a minute.",
                ),
            }
        }
        ("/auth/callback", &Method::GET) => {
            let query = req.uri().query().unwrap_or("").to_owned();
            match oidc.callback(&query, &cookies, now).await {
                Ok(done) => {
                    let mut res = no_store(redirect(&done.return_to));
                    set_cookie(&mut res, &done.session_cookie);
                    set_cookie(&mut res, &oidc.clear_cookie(STATE_COOKIE, "/auth/"));
                    res
                }
                Err(e) => {
                    tracing::info!(error = %e, "OIDC callback refused");
                    let reason = e.to_string();
                    // The state cookie stays: a forged callback must not
                    // spoil the login this browser has in progress.
                    auth_page(
                        StatusCode::BAD_REQUEST,
                        &format!("Connexion refusée : {reason}."),
                        &format!("Login refused: {reason}."),
                    )
                }
            }
        }
        // A POST from this site's page only (Origin must be this host; the
        // session cookie is SameSite=Lax, so other sites' POSTs lack it).
        ("/auth/logout", &Method::POST) => {
            if req.headers().get(header::ORIGIN).is_none() || !origin_ok(req.headers()) {
                return text(StatusCode::FORBIDDEN, "Origine refusée.\nOrigin refused.\n");
            }
            let location = oidc.logout(&cookies, now);
            let body = serde_json::json!({ "location": location });
            let mut res = no_store(respond(
                StatusCode::OK,
                "application/json",
                body.to_string(),
            ));
            set_cookie(&mut res, &oidc.clear_cookie(SESSION_COOKIE, "/"));
            res
        }
        ("/auth/me" | "/auth/login" | "/auth/callback" | "/auth/logout", _) => {
            let allow = if path == "/auth/logout" {
                "POST"
            } else {
                "GET"
            };
            let mut res = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "Méthode non autorisée.\nMethod not allowed.\n",
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            res
        }
        _ => text(StatusCode::NOT_FOUND, "Introuvable.\nNot found.\n"),
    }
}

fn no_store(mut res: Response<Body>) -> Response<Body> {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn set_cookie(res: &mut Response<Body>, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A small page for a login outcome the user must read (French, then English).
fn auth_page(status: StatusCode, fr: &str, en: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html>\n<html lang=\"fr\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Salon — connexion</title><link rel=\"stylesheet\" href=\"/static/app.css\"></head>\
         <body class=\"home\"><main><h1 class=\"brand\">Salon</h1>\
         <p id=\"auth-error\" role=\"alert\">{}</p><p lang=\"en\">{}</p>\
         <p><a href=\"/auth/login\">Réessayer</a> · <a href=\"/\">Accueil</a></p>\
         </main></body></html>\n",
        html_escape(fr),
        html_escape(en)
    );
    no_store(respond(status, "text/html; charset=utf-8", page))
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether the first `Host` refusal was logged (once per process: the
/// operator learns of a missing `--allowed-host`, an attacker cannot fill
/// the log).
static HOST_REFUSAL_LOGGED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// What a pre-join read budget allows past the frame limit: the frame's
/// header and control frames (pings, pongs, a close).
const PREJOIN_SLACK: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_must_match_host() {
        let mut h = hyper::HeaderMap::new();
        assert!(origin_ok(&h), "no Origin: not a browser");
        h.insert(header::HOST, HeaderValue::from_static("salon.example:8080"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://salon.example:8080"),
        );
        assert!(origin_ok(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://SALON.example:8080"),
        );
        assert!(origin_ok(&h));
        for bad in [
            "https://evil.example",
            "https://salon.example:8080.evil.example",
            "https://salon.example",
            "null",
            "salon.example:8080",
        ] {
            h.insert(header::ORIGIN, HeaderValue::from_static(bad));
            assert!(!origin_ok(&h), "{bad}");
        }
        h.remove(header::HOST);
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://salon.example:8080"),
        );
        assert!(!origin_ok(&h), "Origin without Host");
    }

    #[test]
    fn room_query_extracts_value() {
        assert_eq!(room_query("room=Abc").as_deref(), Some("Abc"));
        assert_eq!(room_query("x=1&room=A-b").as_deref(), Some("A-b"));
        assert_eq!(room_query("x=1"), None);
    }
}
