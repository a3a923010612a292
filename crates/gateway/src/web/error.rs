//! API errors and the one place they become HTTP status codes.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// What an API call may fail with; the body is always `{"error": "..."}`.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request is malformed or breaks a rule; the text says which.
    BadRequest(String),
    /// 401: no valid session.
    Unauthorized,
    /// 401: wrong user name, password or code, or an account that may not sign in.
    LoginRefused,
    /// 403: a session, but a state change without the CSRF token, or a foreign origin.
    Forbidden,
    /// 403 with the one line the user may see: a session the policy or the node refused.
    Refused(String),
    /// 404: exactly like a path that does not exist.
    NotFound,
    /// 429: too many failed sign-ins lately.
    TooManyAttempts,
    /// 422: the node could not do what was asked (no such file, permission denied, ...).
    Unprocessable(String),
    /// 502: the node stopped answering or the session ended.
    BadGateway(String),
    /// 500: a gateway fault, logged here and never shown.
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::Internal(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(text) => (StatusCode::BAD_REQUEST, text),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "sign in first".into()),
            ApiError::LoginRefused => (StatusCode::UNAUTHORIZED, "wrong user name, password or code".into()),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden".into()),
            ApiError::Refused(text) => (StatusCode::FORBIDDEN, text),
            ApiError::NotFound => return not_found(),
            ApiError::TooManyAttempts => {
                (StatusCode::TOO_MANY_REQUESTS, "too many failed sign-ins; try again in 15 minutes".into())
            }
            ApiError::Unprocessable(text) => (StatusCode::UNPROCESSABLE_ENTITY, text),
            ApiError::BadGateway(text) => (StatusCode::BAD_GATEWAY, text),
            ApiError::Internal(err) => {
                tracing::error!("web request failed: {err:#}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into())
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// The one "not found" answer, for unknown paths and for paths the caller may not know of alike.
pub fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "not found" }))).into_response()
}

/// A JSON body whose rejections are [`ApiError`]s, so every error has the same shape.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::BadRequest("send JSON with Content-Type: application/json".into()))
            }
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}
