//! HTTP: routes, responses, the WebSocket upgrade.

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

pub(super) fn route(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Body> {
    Metrics::inc(&shared.metrics.http_requests);
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
        "/metrics" => {
            let mut text = shared.metrics.render();
            text.push_str(&shared.media.metrics_text());
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        "/ws" => upgrade(req, shared, None),
        "/pad" => {
            let token = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
                .unwrap_or("")
                .to_owned();
            upgrade(req, shared, Some(token))
        }
        "/favicon.ico" => respond(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", ""),
        _ => {
            if let Some(name) = path.strip_prefix("/static/") {
                return match web::asset(name) {
                    Some((ct, body)) => respond(StatusCode::OK, ct, body),
                    None => respond(
                        StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        "Introuvable.\nNot found.\n",
                    ),
                };
            }
            let room = &path[1..];
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
    pad_token: Option<String>,
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
    let accept = derive_accept_key(key.as_bytes());
    // abuse-hub: the client's address, for the hub's bans and knock limits.
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
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
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                match pad_token {
                    Some(token) => run_pad_socket(ws, token, shared).await,
                    None => run_socket(ws, shared, peer).await,
                }
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut res = respond(StatusCode::SWITCHING_PROTOCOLS, "text/plain", "");
    let h = res.headers_mut();
    h.remove(header::CONTENT_TYPE);
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

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
