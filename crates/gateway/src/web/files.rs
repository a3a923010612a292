//! `POST /api/files` uploads the request body to a file on a node, `GET /api/files` downloads
//! one, both through the gateway's SFTP client ([`SftpClient`]): an `sftp` session of the
//! caller's on the node, under the same policy and `file.*` audit events as `sftp` over SSH.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use portcullis_proto::sftp::client::{CHUNK, OPEN_READ, OPEN_REPLACE};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::error::ApiError;
use crate::file_transfer::{SftpClient, TransferError};
use crate::gateway::Gateway;
use crate::ssh::session::{Request, Start};

/// The most of a refused upload's body read before answering.
const DRAIN_LIMIT: usize = 1 << 20;

/// Which file, where.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileQuery {
    node: String,
    login: Option<String>,
    /// Absolute, or relative to the login's home directory.
    path: String,
}

/// `POST /api/files`: what was written.
#[derive(Serialize)]
pub struct Uploaded {
    /// The path as given.
    pub path: String,
    /// Bytes written.
    pub bytes: u64,
}

/// Writes the request body to the file (made or replaced), streaming it in SFTP-sized writes.
pub async fn upload(
    State(gateway): State<Arc<Gateway>>,
    caller: Result<Caller, ApiError>,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Json<Uploaded>, ApiError> {
    // A stranger or a bad query is refused like a refused session: after reading the body.
    let (caller, Query(query)) = match (caller, checked(query)) {
        (Ok(caller), Ok(query)) => (caller, query),
        (Err(err), _) | (_, Err(err)) => return Err(drained(body, err).await),
    };
    let mut sftp = match connect(&gateway, &caller, &query).await {
        Ok(sftp) => sftp,
        Err(err) => return Err(drained(body, err).await),
    };
    let handle = match sftp.open_file(&query.path, OPEN_REPLACE).await {
        Ok(handle) => handle,
        Err(err) => {
            sftp.finish().await;
            return Err(drained(body, err.into()).await);
        }
    };
    let mut written = 0u64;
    let result = async {
        let mut body = body.into_data_stream();
        while let Some(chunk) = body.next().await {
            let Ok(chunk) = chunk else {
                let _ = sftp.close(&handle).await;
                return Err(ApiError::BadRequest("the upload was cut off".into()));
            };
            for piece in chunk.chunks(CHUNK) {
                sftp.write(&handle, written, piece).await?;
                written += piece.len() as u64;
            }
        }
        sftp.close(&handle).await?;
        Ok(())
    }
    .await;
    sftp.finish().await;
    result?;
    Ok(Json(Uploaded { path: query.path, bytes: written }))
}

/// Streams the file as an attachment. The first chunk is read before answering, so a
/// missing file or a directory is an error status rather than a broken download.
pub async fn download(
    State(gateway): State<Arc<Gateway>>,
    caller: Caller,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = checked(query)?;
    let mut sftp = connect(&gateway, &caller, &query).await?;
    let opened = async {
        let handle = sftp.open_file(&query.path, OPEN_READ).await?;
        let first = sftp.read(&handle, 0).await?;
        Ok::<_, TransferError>((handle, first))
    }
    .await;
    let (handle, first) = match opened {
        Ok(opened) => opened,
        Err(err) => {
            sftp.finish().await;
            return Err(err.into());
        }
    };
    let reader = Reader { sftp: Some(sftp), handle, offset: 0, pending: first };
    let stream = futures_util::stream::unfold(reader, Reader::next);
    let disposition = format!("attachment; filename=\"{}\"", file_name(&query.path));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).map_err(anyhow::Error::from)?);
    Ok(response)
}

/// A download in progress: the chunk read ahead, then one SFTP read per chunk.
struct Reader {
    sftp: Option<SftpClient>,
    handle: Vec<u8>,
    offset: u64,
    pending: Option<Vec<u8>>,
}

impl Reader {
    async fn next(mut self) -> Option<(Result<Vec<u8>, std::io::Error>, Reader)> {
        let sftp = self.sftp.as_mut()?;
        let chunk = match self.pending.take() {
            Some(chunk) => Ok(Some(chunk)),
            None => sftp.read(&self.handle, self.offset).await,
        };
        match chunk {
            Ok(Some(chunk)) => {
                self.offset += chunk.len() as u64;
                Some((Ok(chunk), self))
            }
            Ok(None) => {
                let _ = sftp.close(&self.handle).await;
                self.sftp.take()?.finish().await;
                None
            }
            Err(err) => {
                // Ending the body with an error aborts the response: the browser sees a
                // failed download, never a short file that looks whole.
                self.sftp.take()?.finish().await;
                Some((Err(std::io::Error::other(err.to_string())), self))
            }
        }
    }
}

/// Reads (a bounded part of) a refused upload's body before answering: an HTTP/2 stream
/// answered with its body unread is reset, which clients report instead of the answer.
async fn drained(body: Body, err: ApiError) -> ApiError {
    let _ = axum::body::to_bytes(body, DRAIN_LIMIT).await;
    err
}

fn checked(
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Query<FileQuery>, ApiError> {
    let query = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if query.path.is_empty() || query.path.contains('\0') {
        return Err(ApiError::BadRequest("give the file's path on the node".into()));
    }
    Ok(query)
}

async fn connect(gateway: &Arc<Gateway>, caller: &Caller, query: &FileQuery) -> Result<SftpClient, ApiError> {
    let node = gateway.store.get_node(&query.node).await?;
    let request = Request {
        identity: &caller.identity,
        node: node.as_ref(),
        node_name: &query.node,
        login: query.login.as_deref(),
        client: caller.client,
        start: Start::Subsystem("sftp".into()),
        pty: None,
        env: Vec::new(),
    };
    Ok(SftpClient::open(gateway, request).await?)
}

/// The download's file name: the path's last part, with anything that could break the
/// header or name another directory replaced.
fn file_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or_default();
    let name: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || "._-+".contains(c) { c } else { '_' }).collect();
    if name.is_empty() || name.chars().all(|c| c == '.') { "download".into() } else { name }
}

impl From<TransferError> for ApiError {
    fn from(err: TransferError) -> Self {
        match err {
            TransferError::Refused(message) => ApiError::Refused(message),
            TransferError::Node(_) => ApiError::Unprocessable(err.to_string()),
            TransferError::Ended => ApiError::BadGateway(err.to_string()),
            TransferError::Internal(err) => ApiError::Internal(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn download_names_are_safe_in_a_header() {
        assert_eq!(file_name("/var/log/syslog"), "syslog");
        assert_eq!(file_name("nvidia-bug-report.log.gz"), "nvidia-bug-report.log.gz");
        assert_eq!(file_name("dir/a \"b\";c.txt"), "a__b__c.txt");
        assert_eq!(file_name("dir/"), "download");
        assert_eq!(file_name(".."), "download");
        assert_eq!(file_name("résumé\r\n.txt"), "r_sum___.txt");
    }
}
