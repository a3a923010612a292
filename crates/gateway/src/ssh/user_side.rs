//! The user's end of the relay, whatever carries it: an SSH channel today, a web terminal's
//! WebSocket next. The relay speaks only these two traits.

use std::future::Future;

use bytes::Bytes;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig, server};

/// Something from the user.
#[derive(Debug)]
pub enum UserInput {
    /// Keystrokes or stdin.
    Data(Bytes),
    /// End of stdin.
    Eof,
    /// The terminal was resized.
    Resize {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
        /// Width in pixels.
        pix_width: u32,
        /// Height in pixels.
        pix_height: u32,
    },
    /// A signal for the remote process.
    Signal(Sig),
    /// Nothing to do (a message the relay does not use).
    Ignored,
}

/// Reads the user's side; `None` once the user is gone.
pub trait UserIn: Send + 'static {
    /// The next input.
    fn recv(&mut self) -> impl Future<Output = Option<UserInput>> + Send;
}

/// Writes to the user's side; each call waits for the user's window (back-pressure).
pub trait UserOut: Send + Sync + 'static {
    /// Output for the terminal or stdout.
    fn data(&self, bytes: Bytes) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// Output for stderr.
    fn stderr(&self, bytes: Bytes) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// End of output.
    fn eof(&self) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The remote process exited.
    fn exit_status(&self, status: u32) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The remote process was killed by a signal.
    fn exit_signal(
        &self,
        signal: Sig,
        core_dumped: bool,
        message: String,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// The session is over.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

impl UserIn for ChannelReadHalf {
    async fn recv(&mut self) -> Option<UserInput> {
        Some(match self.wait().await? {
            ChannelMsg::Data { data } => UserInput::Data(data),
            ChannelMsg::Eof => UserInput::Eof,
            ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height } => {
                UserInput::Resize { cols: col_width, rows: row_height, pix_width, pix_height }
            }
            ChannelMsg::Signal { signal } => UserInput::Signal(signal),
            ChannelMsg::Close => return None,
            _ => UserInput::Ignored,
        })
    }
}

/// The user's SSH channel, with the connection handle exit signals need.
pub struct SshUser {
    /// The channel's write half.
    pub channel: ChannelWriteHalf<server::Msg>,
    /// The connection.
    pub handle: server::Handle,
}

impl UserOut for SshUser {
    async fn data(&self, bytes: Bytes) -> anyhow::Result<()> {
        Ok(self.channel.data_bytes(bytes).await?)
    }

    async fn stderr(&self, bytes: Bytes) -> anyhow::Result<()> {
        Ok(self.channel.extended_data_bytes(1, bytes).await?)
    }

    async fn eof(&self) -> anyhow::Result<()> {
        Ok(self.channel.eof().await?)
    }

    async fn exit_status(&self, status: u32) -> anyhow::Result<()> {
        Ok(self.channel.exit_status(status).await?)
    }

    async fn exit_signal(&self, signal: Sig, core_dumped: bool, message: String) -> anyhow::Result<()> {
        let id = self.channel.id();
        self.handle
            .exit_signal_request(id, signal, core_dumped, message, "en".into())
            .await
            .map_err(|()| anyhow::anyhow!("the connection is gone"))
    }

    async fn close(&self) {
        let _ = self.channel.close().await;
    }
}
