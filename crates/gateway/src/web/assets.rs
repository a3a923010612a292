//! The browser UI, embedded at build time from `web/dist` (see the gateway's build.rs).
//!
//! `index.html` answers the page paths (`/`, `/invite/{token}`, `/setup/{token}`); every
//! other file answers its own path, content-hashed by Vite and so cached for good.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

/// One embedded file.
pub struct Asset {
    /// URL path, from the root (`/index.html`, `/assets/index-1a2b.js`).
    pub path: &'static str,
    /// Contents.
    pub bytes: &'static [u8],
    /// `Content-Type`.
    pub content_type: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// Shown when the binary was built without the UI.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>portcullis</title></head>\
<body><h1>portcullis</h1><p>This gateway was built without its browser UI. Build it with <code>make ui</code> \
(npm ci and npm run build in web/), then rebuild the gateway. <code>ssh</code> works meanwhile.</p></body></html>";

fn find(path: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.path == path)
}

/// The UI's page, for every path the UI routes itself.
pub async fn page() -> Response {
    match find("/index.html") {
        Some(index) => reply(index, "no-cache"),
        None => Html(NOT_BUILT).into_response(),
    }
}

/// A built file under `/assets/`, or the common 404.
pub async fn file(request: Request) -> Response {
    match find(request.uri().path()) {
        Some(asset) => reply(asset, "public, max-age=31536000, immutable"),
        None => super::error::not_found(),
    }
}

fn reply(asset: &'static Asset, cache: &'static str) -> Response {
    let mut response = (StatusCode::OK, asset.bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
