//! `GET /ui/`: the read-only web page (built from `web/` by Vite, committed in `web/dist/`,
//! embedded in the binary at compile time, so the node stays one file).
//!
//! These routes serve static files only and need no token: the page itself reads the token
//! from its address's fragment (`#token=...`, which browsers never send to a server) and sends
//! it as a bearer header on every API request. The response headers forbid the page to load
//! anything from elsewhere or be framed.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use rust_embed::RustEmbed;

use super::ApiError;

/// The bundle `npm run build` writes in `web/dist/`.
#[derive(RustEmbed)]
#[folder = "../web/dist/"]
struct Bundle;

/// What the page may load: its own scripts, styles and API, nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /ui`: the page lives at `/ui/`, so its relative asset paths resolve.
pub(super) async fn redirect() -> Redirect {
    Redirect::permanent("/ui/")
}

/// `GET /ui/`: the page.
pub(super) async fn index() -> Response {
    serve("index.html")
}

/// `GET /ui/{*path}`: one file of the bundle.
pub(super) async fn file(Path(path): Path<String>) -> Response {
    serve(&path)
}

fn serve(path: &str) -> Response {
    let Some(file) = Bundle::get(path) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the web page has no file {path:?}: open /ui/"),
        )
        .into_response();
    };
    let mut response = file.data.into_owned().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Asset names carry no hash, so the browser must revalidate after an upgrade.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}
