//! HTTPS on the shared port: the browser UI and the JSON API under `/api/`.
//!
//! The API (described by `/api/openapi.json`) signs users in with password + TOTP,
//! redeems invites, lists the caller's nodes and opens terminals over a WebSocket into
//! the same relay as SSH. Every answer carries the security headers; unknown paths,
//! wrong methods and paths the caller may not know of all answer the same 404.

mod admin;
mod assets;
mod auth;
mod client_addr;
mod error;
mod files;
mod invite;
mod login;
mod nodes;
mod openapi;
mod origin;
mod recordings;
mod routes;
pub mod session;
mod state;
mod terminal;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Extension, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};

pub use client_addr::{BadForwardedFor, client_address};
pub use session::reap;
pub use state::WebState;

use crate::gateway::Gateway;
use crate::listen::Peer;
use crate::policy::Permission;

/// Largest request body the API reads.
const MAX_BODY: usize = 16 * 1024;

/// Serves HTTP on one accepted TLS stream.
pub async fn serve<S>(gateway: Arc<Gateway>, stream: S, peer: Peer) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router(gateway).layer(Extension(peer)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http2().enable_connect_protocol();
    builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
        .map_err(|e| anyhow::anyhow!("http: {e}"))
}

/// Every API route, in the order the OpenAPI document lists them.
fn api() -> routes::Api {
    routes::Api::new()
        .get("/api/health", health)
        .get("/api/openapi.json", openapi::document)
        .post("/api/login", login::login)
        .post("/api/logout", login::logout)
        .get("/api/me", login::me)
        .get("/api/nodes", nodes::list)
        .get("/api/invite/{token}", invite::show)
        .post("/api/invite/{token}", invite::redeem)
        .post("/api/invite/{token}/enroll", invite::enroll)
        .websocket("/api/terminal", terminal::upgrade)
        .post("/api/files", files::upload)
        .get("/api/files", files::download)
        .restricted("/api/recordings", Permission::RecordingsRead, recordings::list)
        .restricted("/api/recordings/search", Permission::RecordingsRead, recordings::search)
        .restricted("/api/recordings/{id}", Permission::RecordingsRead, recordings::show)
        .restricted("/api/recordings/{id}/cast", Permission::RecordingsRead, recordings::cast)
        .restricted("/api/recordings/{id}/frames", Permission::RecordingsRead, recordings::frames)
        .restricted("/api/sessions", Permission::SessionsObserve, admin::sessions::list)
        .restricted_websocket("/api/sessions/{id}/watch", Permission::SessionsObserve, admin::sessions::watch)
        .restricted_post("/api/sessions/{id}/kill", Permission::SessionsKill, admin::sessions::kill)
        .restricted("/api/audit", Permission::AuditRead, admin::audit::list)
        .restricted("/api/audit/verify", Permission::AuditRead, admin::audit::verify)
        .restricted("/api/users", Permission::UsersManage, admin::users::list)
        .restricted_post("/api/users", Permission::UsersManage, admin::users::invite)
        .restricted_post("/api/users/{name}/{action}", Permission::UsersManage, admin::users::act)
        .restricted_put("/api/nodes/{name}/labels", Permission::NodesManage, admin::nodes::set_labels)
        .restricted_post("/api/nodes/{name}/repin", Permission::NodesManage, admin::nodes::repin)
        .restricted("/api/tokens", Permission::NodesManage, admin::nodes::tokens)
        .restricted_post("/api/tokens", Permission::NodesManage, admin::nodes::create_token)
        .restricted_post("/api/tokens/{id}/revoke", Permission::NodesManage, admin::nodes::revoke_token)
        .restricted("/api/roles", Permission::RolesManage, admin::roles::list)
        .restricted_post("/api/roles", Permission::RolesManage, admin::roles::apply)
}

fn router(gateway: Arc<Gateway>) -> Router {
    let routes = api()
        .router
        .route("/", get(assets::page))
        .route("/invite/{token}", get(assets::page))
        .route("/setup/{token}", get(assets::page))
        .route("/assets/{*file}", get(assets::file))
        .route("/install.sh", get(install_script))
        .route("/download/portcullis", get(download_binary))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(gateway);
    // Outside the routes, so it also sees the `Allow` header axum adds to a wrong method's answer.
    Router::new().fallback_service(routes).layer(axum::middleware::from_fn(security_headers))
}

/// The addresses browsers reach this gateway on: the bound listen address and every `public_addr`.
pub fn addresses(gateway: &Gateway) -> Vec<String> {
    std::iter::once(gateway.bound_address().to_string())
        .chain(gateway.config.listen.public_addr.iter().cloned())
        .collect()
}

async fn health(Extension(peer): Extension<Peer>) -> Json<serde_json::Value> {
    tracing::debug!(client = %peer.client, "health check");
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// The agent installer, with this gateway's address and its binary's digest filled in.
async fn install_script(State(gateway): State<Arc<Gateway>>) -> Response {
    let Some(digest) = binary_digest().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "the gateway cannot read its own binary\n").into_response();
    };
    let script =
        include_str!("web/install.sh").replace("@GATEWAY@", &gateway.public_address()).replace("@SHA256@", &digest);
    ([(header::CONTENT_TYPE, "text/x-shellscript; charset=utf-8")], script).into_response()
}

/// The gateway's own binary, which is also the agent.
async fn download_binary() -> Response {
    match tokio::fs::read(std::env::current_exe().unwrap_or_default()).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "the gateway cannot read its own binary\n").into_response(),
    }
}

async fn binary_digest() -> Option<String> {
    static DIGEST: tokio::sync::OnceCell<Option<String>> = tokio::sync::OnceCell::const_new();
    DIGEST
        .get_or_init(|| async {
            use sha2::Digest;
            let bytes = tokio::fs::read(std::env::current_exe().ok()?).await.ok()?;
            Some(hex::encode(sha2::Sha256::digest(&bytes)))
        })
        .await
        .clone()
}

async fn not_found(request: Request) -> Response {
    // Read (a bounded part of) any body first: an HTTP/2 stream answered before its body
    // was read is reset, which some clients report as an error rather than a 404.
    let _ = axum::body::to_bytes(request.into_body(), MAX_BODY).await;
    error::not_found()
}

async fn security_headers(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let not_found = response.status() == StatusCode::NOT_FOUND;
    let headers = response.headers_mut();
    if not_found {
        // A wrong method's `Allow` header would tell that the path exists.
        headers.remove(header::ALLOW);
    }
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; object-src 'none'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if api {
        // Answers carry CSRF tokens and TOTP secrets: no cache may keep them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
