//! HTTPS on the shared port: the browser UI and the JSON API under `/api/`.
//!
//! The vendor UI, accounts and terminal arrive with the web issue. What is here is the
//! real serving path (TLS → HTTP/1.1 or HTTP/2 → axum), the security headers every answer
//! carries, a health endpoint, the agent installer and binary, and 404 for everything else.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::gateway::Gateway;
use crate::listen::Peer;

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

fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/health", get(health))
        .route("/install.sh", get(install_script))
        .route("/download/portcullis", get(download_binary))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(gateway)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("web/index.html"))
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
    let address = match gateway.config.listen.public_addr.first() {
        Some(public) => public.clone(),
        None => gateway.local_addr.get().copied().unwrap_or(gateway.config.listen.addr).to_string(),
    };
    let script = include_str!("web/install.sh").replace("@GATEWAY@", &address).replace("@SHA256@", &digest);
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

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
