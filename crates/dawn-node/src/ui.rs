//! The web UI: a hand-written single-page app (HTML, CSS, JavaScript, no build step) embedded
//! in the binary and served at `GET /`.
//!
//! Every asset is sent with a strict Content-Security-Policy (scripts and styles only from
//! this origin, no inline script or style, no framing), `nosniff`, and a strong `ETag` with
//! `Cache-Control: no-cache`, so a browser revalidates and gets `304 Not Modified` until the
//! node is upgraded.

use std::sync::OnceLock;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::http::AppState;

/// The Content-Security-Policy of every UI response.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(content_type: &'static str, body: &'static [u8]) -> Self {
        Self {
            content_type,
            body,
            etag: OnceLock::new(),
        }
    }

    /// A strong validator: the FNV-1a hash of the content and its length.
    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in self.body {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            HeaderValue::from_str(&format!("\"{hash:016x}-{:x}\"", self.body.len()))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
        })
    }
}

static INDEX: Asset = Asset::new(
    "text/html; charset=utf-8",
    include_bytes!("../ui/index.html"),
);
static APP_JS: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_bytes!("../ui/app.js"),
);
static THEME_JS: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_bytes!("../ui/theme.js"),
);
static APP_CSS: Asset = Asset::new("text/css; charset=utf-8", include_bytes!("../ui/app.css"));
static ICON: Asset = Asset::new("image/svg+xml", include_bytes!("../ui/icon.svg"));
static MANIFEST: Asset = Asset::new(
    "application/manifest+json",
    include_bytes!("../ui/manifest.webmanifest"),
);

/// The routes of this module: the app and its assets.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route(
            "/index.html",
            get(|h: HeaderMap| async move { serve(&INDEX, &h) }),
        )
        .route(
            "/assets/app.js",
            get(|h: HeaderMap| async move { serve(&APP_JS, &h) }),
        )
        .route(
            "/assets/theme.js",
            get(|h: HeaderMap| async move { serve(&THEME_JS, &h) }),
        )
        .route(
            "/assets/app.css",
            get(|h: HeaderMap| async move { serve(&APP_CSS, &h) }),
        )
        .route(
            "/assets/icon.svg",
            get(|h: HeaderMap| async move { serve(&ICON, &h) }),
        )
        .route(
            "/favicon.ico",
            get(|h: HeaderMap| async move { serve(&ICON, &h) }),
        )
        .route(
            "/manifest.webmanifest",
            get(|h: HeaderMap| async move { serve(&MANIFEST, &h) }),
        )
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(wanted) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    wanted
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let etag = asset.etag();
    let mut response = if matches(request, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = asset.body.into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        response
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_stable_and_distinct() {
        assert_eq!(INDEX.etag(), INDEX.etag());
        assert_ne!(INDEX.etag(), APP_JS.etag());
        assert!(INDEX.etag().to_str().unwrap().starts_with('"'));
    }

    #[test]
    fn if_none_match() {
        let etag = APP_CSS.etag().clone();
        let mut headers = HeaderMap::new();
        assert!(!matches(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, etag.clone());
        assert!(matches(&headers, &etag));
        let list = format!("\"other\", W/{}", etag.to_str().unwrap());
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&list).unwrap());
        assert!(matches(&headers, &etag));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!matches(&headers, &etag));
    }

    #[test]
    fn the_page_loads_nothing_inline_or_foreign() {
        let html = std::str::from_utf8(INDEX.body).unwrap();
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("style="), "inline style");
        assert!(!html.contains("<style"), "inline style sheet");
        assert!(!html.contains("http://") && !html.contains("https://"));
        assert!(html.contains("src=\"/assets/app.js\""));
    }
}
