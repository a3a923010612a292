//! A minimal HTTP CONNECT proxy on 127.0.0.1, as the isolated nodes' only way out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

/// A running proxy.
pub struct ConnectProxy {
    /// Its address.
    pub addr: SocketAddr,
    /// Tunnels it opened.
    pub tunnels: Arc<AtomicUsize>,
}

impl ConnectProxy {
    /// Starts a proxy; with `credentials` it demands `Proxy-Authorization: Basic`.
    pub fn start(credentials: Option<&str>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tunnels = Arc::new(AtomicUsize::new(0));
        let expected = credentials.map(|c| format!("Basic {}", base64(c.as_bytes())));
        let count = tunnels.clone();
        thread::spawn(move || {
            for client in listener.incoming().take(10_000) {
                let Ok(client) = client else { continue };
                let (expected, count) = (expected.clone(), count.clone());
                thread::spawn(move || {
                    let _ = serve(client, expected.as_deref(), &count);
                });
            }
        });
        ConnectProxy { addr, tunnels }
    }
}

fn serve(client: TcpStream, expected: Option<&str>, count: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorized = expected.is_none();
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("proxy-authorization")
        {
            authorized = Some(value.trim()) == expected;
        }
    }
    let mut client_w = client.try_clone()?;
    let parts: Vec<&str> = request.split_whitespace().collect();
    if parts.len() != 3 || parts[0] != "CONNECT" {
        client_w.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")?;
        return Ok(());
    }
    if !authorized {
        client_w.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")?;
        return Ok(());
    }
    let Ok(upstream) = TcpStream::connect(parts[1]) else {
        client_w.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")?;
        return Ok(());
    };
    count.fetch_add(1, Ordering::Relaxed);
    client_w.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    let buffered = reader.buffer().to_vec();
    let mut up_w = upstream.try_clone()?;
    up_w.write_all(&buffered)?;
    let mut up_r = upstream;
    let mut client_r = reader.into_inner();
    let t = thread::spawn(move || {
        copy(&mut client_r, &mut up_w);
    });
    copy(&mut up_r, &mut client_w);
    let _ = t.join();
    Ok(())
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) {
    let mut buf = [0u8; 16384];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
