//! The gateway's own SFTP client, for file transfers the web UI asks for.
//!
//! It does not connect to the node itself: it is the user's side of an ordinary `sftp`
//! subsystem session opened through [`session::prepare`] and the one relay, so policy
//! (`file_transfer`), the SFTP watcher's `file.*` audit events, the session registry and
//! its kill switch apply exactly as they do to `sftp` and `scp` over SSH.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use portcullis_proto::sftp::client::{self, FX_EOF, Replies, Reply};
use russh::Sig;
use tokio::sync::mpsc;

use crate::gateway::Gateway;
use crate::ssh::session::{self, Request};
use crate::ssh::user_side::{UserIn, UserInput, UserOut};

/// How long the node may take to answer one request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the node's sftp-server may take to exit once its input ends.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The session was refused (the one line the user may see; the reason is audited).
    #[error("{0}")]
    Refused(String),
    /// The node's SFTP server answered with an error.
    #[error("the node answered: {0}")]
    Node(String),
    /// The session ended or the node stopped answering.
    #[error("the file transfer session ended")]
    Ended,
    /// A gateway fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What the node side sends the client.
enum FromNode {
    Data(Bytes),
    End,
}

/// An SFTP session with a node, opened for one transfer.
pub struct SftpClient {
    to_node: mpsc::Sender<UserInput>,
    from_node: mpsc::Receiver<FromNode>,
    replies: Replies,
    next_id: u32,
}

impl SftpClient {
    /// Opens an `sftp` session on the request's node (the request's `start` is ignored) and
    /// negotiates version 3.
    pub async fn open(gateway: &Arc<Gateway>, request: Request<'_>) -> Result<SftpClient, TransferError> {
        let request = Request { start: session::Start::Subsystem("sftp".into()), pty: None, ..request };
        let opened = session::prepare(gateway, request).await?.map_err(TransferError::Refused)?;
        let (to_node, user_in) = mpsc::channel(4);
        let (user_out, from_node) = mpsc::channel(4);
        opened.spawn(PipeIn(user_in), PipeOut(user_out));
        let mut client = SftpClient { to_node, from_node, replies: Replies::default(), next_id: 1 };
        client.send(client::init()).await?;
        match client.reply().await? {
            Reply::Version(3..) => Ok(client),
            other => Err(TransferError::Node(format!("unexpected SFTP greeting {other:?}"))),
        }
    }

    /// Opens a remote file; `pflags` as in [`client::OPEN_READ`] or [`client::OPEN_REPLACE`].
    pub async fn open_file(&mut self, path: &str, pflags: u32) -> Result<Vec<u8>, TransferError> {
        match self.call(|id| client::open(id, path, pflags)).await? {
            Reply::Handle { handle, .. } => Ok(handle),
            other => Err(unexpected(other)),
        }
    }

    /// Reads the next chunk at `offset`; `None` at the end of the file.
    pub async fn read(&mut self, handle: &[u8], offset: u64) -> Result<Option<Vec<u8>>, TransferError> {
        match self.call(|id| client::read(id, handle, offset, client::CHUNK as u32)).await? {
            Reply::Data { data, .. } => Ok(Some(data)),
            Reply::Status { code: FX_EOF, .. } => Ok(None),
            other => Err(unexpected(other)),
        }
    }

    /// Writes `data` (at most [`client::CHUNK`] bytes) at `offset`.
    pub async fn write(&mut self, handle: &[u8], offset: u64, data: &[u8]) -> Result<(), TransferError> {
        match self.call(|id| client::write(id, handle, offset, data)).await? {
            Reply::Status { code: 0, .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Closes a remote file.
    pub async fn close(&mut self, handle: &[u8]) -> Result<(), TransferError> {
        match self.call(|id| client::close(id, handle)).await? {
            Reply::Status { code: 0, .. } => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Ends the session as `sftp` does: end of input, after which the node's server exits
    /// and the relay ends the session (waited for, up to a few seconds).
    pub async fn finish(mut self) {
        let _ = self.to_node.send(UserInput::Eof).await;
        let ended = async {
            while let Some(message) = self.from_node.recv().await {
                if matches!(message, FromNode::End) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(FINISH_TIMEOUT, ended).await;
    }

    async fn call(&mut self, request: impl FnOnce(u32) -> Vec<u8>) -> Result<Reply, TransferError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.send(request(id)).await?;
        let reply = self.reply().await?;
        if reply.id() != id {
            return Err(TransferError::Node(format!("answered request {} instead of {id}", reply.id())));
        }
        Ok(reply)
    }

    async fn send(&mut self, packet: Vec<u8>) -> Result<(), TransferError> {
        self.to_node.send(UserInput::Data(packet.into())).await.map_err(|_| TransferError::Ended)
    }

    async fn reply(&mut self) -> Result<Reply, TransferError> {
        let next = async {
            loop {
                if let Some(reply) = self.replies.next_reply().map_err(|e| TransferError::Node(e.to_string()))? {
                    return Ok(reply);
                }
                match self.from_node.recv().await {
                    Some(FromNode::Data(bytes)) => self.replies.feed(&bytes),
                    Some(FromNode::End) | None => return Err(TransferError::Ended),
                }
            }
        };
        tokio::time::timeout(REPLY_TIMEOUT, next).await.map_err(|_| TransferError::Ended)?
    }
}

fn unexpected(reply: Reply) -> TransferError {
    match reply {
        Reply::Status { message, code, .. } if message.is_empty() => TransferError::Node(format!("error code {code}")),
        Reply::Status { message, .. } => TransferError::Node(message),
        other => TransferError::Node(format!("unexpected reply {other:?}")),
    }
}

/// The relay's view of the client's requests.
struct PipeIn(mpsc::Receiver<UserInput>);

impl UserIn for PipeIn {
    async fn recv(&mut self) -> Option<UserInput> {
        self.0.recv().await
    }
}

/// The relay's way to the client; the node's stderr and exit status only go to the log.
struct PipeOut(mpsc::Sender<FromNode>);

impl UserOut for PipeOut {
    async fn data(&self, bytes: Bytes) -> anyhow::Result<()> {
        self.0.send(FromNode::Data(bytes)).await.map_err(|_| anyhow::anyhow!("the file transfer is gone"))
    }

    async fn stderr(&self, bytes: Bytes) -> anyhow::Result<()> {
        tracing::debug!(stderr = %String::from_utf8_lossy(&bytes), "node's sftp server");
        Ok(())
    }

    async fn eof(&self) -> anyhow::Result<()> {
        Ok(())
    }

    async fn exit_status(&self, status: u32) -> anyhow::Result<()> {
        tracing::debug!(status, "node's sftp server exited");
        Ok(())
    }

    async fn exit_signal(&self, signal: Sig, _core_dumped: bool, _message: String) -> anyhow::Result<()> {
        tracing::debug!(?signal, "node's sftp server was killed");
        Ok(())
    }

    async fn close(&self) {
        let _ = self.0.send(FromNode::End).await;
    }
}
