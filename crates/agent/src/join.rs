//! The join exchange: one [`JoinRequest`] line out, one [`JoinResponse`] line back.

use std::time::Duration;

use anyhow::{Context, bail};
use portcullis_proto::tunnel::{JoinRequest, JoinResponse, MAX_JOIN_LINE};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// How long the gateway may take to answer a join.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` and reads the answer, within [`JOIN_TIMEOUT`].
pub async fn exchange<S>(stream: S, request: &JoinRequest) -> anyhow::Result<JoinResponse>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(JOIN_TIMEOUT, exchange_inner(stream, request)).await.context("the join timed out")?
}

async fn exchange_inner<S>(mut stream: S, request: &JoinRequest) -> anyhow::Result<JoinResponse>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes()).await.context("sending the join request")?;
    stream.flush().await?;
    let mut reader = BufReader::new(stream).take(MAX_JOIN_LINE as u64 + 1);
    let mut answer = Vec::new();
    reader.read_until(b'\n', &mut answer).await.context("reading the join answer")?;
    if answer.is_empty() {
        bail!("the gateway closed the connection without answering the join");
    }
    if answer.len() > MAX_JOIN_LINE {
        bail!("the gateway's join answer exceeds {MAX_JOIN_LINE} bytes");
    }
    let text = String::from_utf8_lossy(&answer);
    serde_json::from_str(text.trim()).map_err(|_| {
        let shown: String = text.trim().chars().take(200).collect();
        anyhow::anyhow!("the gateway's answer is not a join response (older gateway?): {shown:?}")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn request() -> JoinRequest {
        JoinRequest {
            token: "s".repeat(32),
            name: "gpu-01".into(),
            labels: BTreeMap::from([("gpu.count".to_string(), "8".to_string())]),
            host_key: "ssh-ed25519 AAAA".into(),
        }
    }

    /// Runs the exchange against a gateway that answers `answer` after reading one line.
    async fn against(answer: Vec<u8>) -> (anyhow::Result<JoinResponse>, String) {
        let (near, far) = tokio::io::duplex(256 * 1024);
        let gateway = tokio::spawn(async move {
            let mut reader = BufReader::new(far);
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let _ = reader.get_mut().write_all(&answer).await;
            let _ = reader.get_mut().shutdown().await;
            line
        });
        let result = exchange(near, &request()).await;
        (result, gateway.await.unwrap())
    }

    #[tokio::test]
    async fn one_line_each_way() {
        let joined = JoinResponse::Joined {
            node: "gpu-01".into(),
            cert_pem: "C".into(),
            key_pem: "K".into(),
            user_ca: "ssh-ed25519 AAAA ca".into(),
        };
        let (result, sent) = against(format!("{}\n", joined.to_line()).into_bytes()).await;
        assert_eq!(result.unwrap(), joined);
        assert!(sent.ends_with('\n'));
        assert_eq!(serde_json::from_str::<JoinRequest>(&sent).unwrap(), request());
    }

    #[tokio::test]
    async fn refusals_and_garbage_are_told_apart() {
        let refused = JoinResponse::Refused { reason: "token unknown, used or expired".into() };
        let (result, _) = against(refused.to_line().into_bytes()).await;
        assert_eq!(result.unwrap(), refused);
        let (result, _) = against(b"portcullis: agent tunnels are not available in this version\n".to_vec()).await;
        let err = result.unwrap_err().to_string();
        assert!(err.contains("not a join response") && err.contains("not available"), "{err}");
        let (result, _) = against(Vec::new()).await;
        assert!(result.unwrap_err().to_string().contains("without answering"));
    }

    #[tokio::test]
    async fn answers_are_bounded() {
        let (result, _) = against(vec![b'x'; MAX_JOIN_LINE + 10]).await;
        assert!(result.unwrap_err().to_string().contains("exceeds"));
    }
}
