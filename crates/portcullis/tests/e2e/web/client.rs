//! A browser's worth of client for the web tests: HTTPS through curl (HTTP/2, trusting
//! only the gateway's certificate), WebSockets through tokio-tungstenite over rustls.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::support::gateway::TestGateway;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// A header's first value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A browser: the gateway's address, and a session once signed in.
#[derive(Clone)]
pub struct Browser {
    /// The gateway's port on 127.0.0.1.
    pub port: u16,
    /// The gateway's TLS certificate.
    pub cacert: PathBuf,
    /// `pc_session=...`, once signed in.
    pub cookie: Option<String>,
    /// The session's CSRF token, once signed in.
    pub csrf: Option<String>,
    /// Extra request headers.
    pub extra: Vec<(String, String)>,
}

impl Browser {
    /// A browser with no session.
    pub fn new(gw: &TestGateway) -> Browser {
        Browser {
            port: gw.addr.port(),
            cacert: gw.data_dir.join("tls_cert.pem"),
            cookie: None,
            csrf: None,
            extra: Vec::new(),
        }
    }

    /// The origin a browser on this gateway sends.
    pub fn origin(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, None, true)
    }

    /// `POST path` with a JSON body (and the CSRF token, if signed in).
    pub fn post(&self, path: &str, body: Option<Value>) -> Answer {
        self.request("POST", path, body, true)
    }

    /// Any request; `with_csrf` sends the session's CSRF token when there is one.
    pub fn request(&self, method: &str, path: &str, body: Option<Value>, with_csrf: bool) -> Answer {
        let mut cmd = self.curl(method, path, with_csrf);
        cmd.arg("-i");
        if body.is_some() {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary", "@-"]);
        }
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("curl runs");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(body) = body {
            stdin.write_all(body.to_string().as_bytes()).unwrap();
        }
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "curl {method} {path} failed");
        parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// `POST path` with a file as the raw body (and the CSRF token).
    pub fn upload(&self, path: &str, file: &Path) -> Answer {
        let mut cmd = self.curl("POST", path, true);
        cmd.args(["-i", "-H", "Content-Type: application/octet-stream", "--data-binary"]);
        cmd.arg(format!("@{}", file.display()));
        let out = cmd.output().expect("curl runs");
        assert!(out.status.success(), "curl POST {path} failed: {}", String::from_utf8_lossy(&out.stderr));
        parse(&String::from_utf8_lossy(&out.stdout))
    }

    /// `GET path`, the body saved to `to`; the answer's body is empty.
    pub fn download(&self, path: &str, to: &Path) -> Answer {
        let mut cmd = self.curl("GET", path, true);
        cmd.args(["-D", "-", "-o"]).arg(to);
        let out = cmd.output().expect("curl runs");
        assert!(out.status.success(), "curl GET {path} failed");
        parse(&String::from_utf8_lossy(&out.stdout))
    }

    fn curl(&self, method: &str, path: &str, with_csrf: bool) -> Command {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "-X", method, "--cacert"]).arg(&self.cacert);
        if let Some(cookie) = &self.cookie {
            cmd.args(["-H", &format!("Cookie: {cookie}")]);
        }
        if let (Some(csrf), true) = (&self.csrf, with_csrf) {
            cmd.args(["-H", &format!("X-CSRF-Token: {csrf}")]);
        }
        for (name, value) in &self.extra {
            cmd.args(["-H", &format!("{name}: {value}")]);
        }
        cmd.arg(format!("https://127.0.0.1:{}{path}", self.port));
        cmd
    }

    /// Takes the session from a sign-in answer (login or invite redemption).
    pub fn take_session(&mut self, answer: &Answer) {
        assert_eq!(answer.status, 200, "{answer:?}");
        let set = answer.header("set-cookie").expect("a session cookie");
        let pair = set.split(';').next().unwrap().trim();
        assert!(pair.starts_with("pc_session="), "{set}");
        self.cookie = Some(pair.to_owned());
        self.csrf = Some(answer.json()["csrf"].as_str().unwrap().to_owned());
    }

    /// Opens a terminal WebSocket with this browser's cookie and `origin`.
    pub async fn terminal(&self, query: &str, origin: Option<&str>) -> Result<Term, tungstenite::Error> {
        self.websocket(&format!("/api/terminal?{query}"), origin).await
    }

    /// Opens any WebSocket path with this browser's cookie and `origin`.
    pub async fn websocket(&self, path: &str, origin: Option<&str>) -> Result<Term, tungstenite::Error> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let pem = std::fs::read(&self.cacert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
        let mut request = format!("wss://127.0.0.1:{}{path}", self.port).into_client_request()?;
        if let Some(cookie) = &self.cookie {
            request.headers_mut().insert("cookie", cookie.parse().unwrap());
        }
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::client_async(request, tls).await?;
        Ok(Term { ws, output: String::new(), messages: Vec::new(), close: None, ended: false })
    }
}

fn parse(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers, body: body.to_owned() }
}

/// An open web terminal and what it has received.
pub struct Term {
    ws: WebSocketStream<TlsStream<TcpStream>>,
    /// Terminal output so far.
    pub output: String,
    /// JSON text messages so far.
    pub messages: Vec<Value>,
    /// The close frame, once received.
    pub close: Option<Option<CloseFrame>>,
    ended: bool,
}

impl Term {
    /// Sends keystrokes.
    pub async fn keys(&mut self, text: &str) {
        self.ws.send(Message::Binary(text.as_bytes().to_vec().into())).await.unwrap();
    }

    /// Sends any message.
    pub async fn send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(message).await
    }

    /// Sends a resize.
    pub async fn resize(&mut self, cols: u32, rows: u32) {
        let text = serde_json::json!({ "type": "resize", "cols": cols, "rows": rows }).to_string();
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// Reads until the output contains `text`; false if the socket ends or time runs out first.
    pub async fn until(&mut self, text: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.output.contains(text) {
            if self.ended || !self.read_one(deadline).await {
                return false;
            }
        }
        true
    }

    /// Reads until a JSON text message equal to `message` came; false if not within `limit`.
    pub async fn until_message(&mut self, message: &Value, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.messages.contains(message) {
            if self.ended || !self.read_one(deadline).await {
                return false;
            }
        }
        true
    }

    /// Reads until the socket ends; true if it did within `limit`.
    pub async fn until_closed(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while !self.ended {
            if !self.read_one(deadline).await {
                return self.ended;
            }
        }
        true
    }

    /// The `closed` message's reason, if one came.
    pub fn closed_reason(&self) -> Option<String> {
        self.messages.iter().find(|m| m["type"] == "closed").map(|m| m["reason"].as_str().unwrap().to_owned())
    }

    /// The close frame's code, if one came.
    pub fn close_code(&self) -> Option<u16> {
        self.close.as_ref().and_then(|c| c.as_ref()).map(|c| u16::from(c.code))
    }

    async fn read_one(&mut self, deadline: tokio::time::Instant) -> bool {
        match tokio::time::timeout_at(deadline, self.ws.next()).await {
            Err(_) => false,
            Ok(None) | Ok(Some(Err(_))) => {
                self.ended = true;
                true
            }
            Ok(Some(Ok(message))) => {
                match message {
                    Message::Binary(data) => self.output.push_str(&String::from_utf8_lossy(&data)),
                    Message::Text(text) => self.messages.push(serde_json::from_str(text.as_str()).unwrap()),
                    Message::Close(frame) => {
                        self.close = Some(frame);
                        self.ended = true;
                    }
                    _ => {}
                }
                true
            }
        }
    }
}
