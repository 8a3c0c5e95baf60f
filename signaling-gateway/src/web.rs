//! The browser client, embedded in the binary (files in `web/`).

/// The home page (type a room name).
pub(crate) const HOME_HTML: &str = include_str!("../web/home.html");
/// The room page (same for every room; the script reads the path).
pub(crate) const ROOM_HTML: &str = include_str!("../web/room.html");
/// The connection-test page (camera, microphone, network checks).
pub(crate) const TEST_HTML: &str = include_str!("../web/test.html");
/// The 400 page for invalid room names (French, then English).
pub(crate) const BAD_ROOM_HTML: &str = include_str!("../web/bad-room.html");

/// Static assets under `/static/`: name → (content type, bytes).
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
    (
        "i18n.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/i18n.js"),
    ),
    (
        "home.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/home.js"),
    ),
    (
        "auth.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/auth.js"),
    ),
    (
        "room.js",
        "text/javascript; charset=utf-8",
        // Built from web/src/ by esbuild (web/build.mjs) and committed.
        include_bytes!("../web/dist/room.js"),
    ),
    (
        "connection-test.js",
        "text/javascript; charset=utf-8",
        // Built from web/src/connection-test.js by esbuild and committed.
        include_bytes!("../web/dist/connection-test.js"),
    ),
    (
        "signaling.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/signaling.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../web/favicon.svg"),
    ),
];

/// A static asset: its content type, bytes and entity tag.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// A strong entity tag (quoted): the first 16 hex digits of the
    /// bytes' SHA-256. With it a browser that reloads revalidates
    /// (`Cache-Control: no-cache`) and gets `304 Not Modified` instead of
    /// the 711 kB room client again: a guest reloading behind a 400 kbit/s
    /// link waited 36 s for the page.
    pub etag: &'static str,
}

/// The assets' entity tags, computed once.
fn etags() -> &'static [String] {
    static TAGS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| {
                let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
                let hex: String = d
                    .as_ref()
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// Looks up a static asset by its name under `/static/`.
pub(crate) fn asset(name: &str) -> Option<Asset> {
    let i = ASSETS.iter().position(|(n, _, _)| *n == name)?;
    let (_, content_type, body) = ASSETS.get(i)?;
    Some(Asset {
        content_type,
        body,
        etag: etags().get(i).map_or("", String::as_str),
    })
}

/// Whether an `If-None-Match` header value names `etag` (or is `*`).
pub(crate) fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t == etag || t.strip_prefix("W/") == Some(etag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ` on<letters>=` inside the page: an inline event handler attribute.
    fn has_inline_handler(page: &str) -> bool {
        page.match_indices(" on").any(|(i, _)| {
            let rest = &page[i + 3..];
            let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            letters > 0 && rest.as_bytes().get(letters) == Some(&b'=')
        })
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let tag = asset("room.js").map(|a| a.etag).unwrap_or_default();
        assert!(etag_matches(tag, tag));
        assert!(etag_matches(&format!("\"x\", {tag}"), tag));
        assert!(etag_matches(&format!("W/{tag}"), tag));
        assert!(etag_matches("*", tag));
        assert!(!etag_matches("\"x\"", tag));
        assert!(!etag_matches("", tag));
    }

    #[test]
    fn assets_resolve_and_pages_have_no_inline_script() {
        assert!(asset("room.js").is_some());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
        for page in [HOME_HTML, ROOM_HTML, BAD_ROOM_HTML, TEST_HTML] {
            // Every <script> must have a src (CSP forbids inline scripts).
            for (i, _) in page.match_indices("<script") {
                let tag_end = page[i..].find('>').map(|e| i + e).unwrap_or(page.len());
                assert!(page[i..tag_end].contains("src="), "inline script in page");
            }
            assert!(!has_inline_handler(page), "no inline event handlers");
            assert!(!page.contains("style=\""), "no inline styles");
        }
        // Every referenced /static/ asset exists.
        for page in [HOME_HTML, ROOM_HTML, TEST_HTML] {
            for (i, _) in page.match_indices("/static/") {
                let rest = &page[i + 8..];
                let end = rest.find('"').unwrap_or(rest.len());
                assert!(
                    asset(&rest[..end]).is_some(),
                    "missing asset {}",
                    &rest[..end]
                );
            }
        }
    }
}
