//! A loopback TCP forwarder that prepends a PROXY header, as a load balancer would.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

/// Forwards each connection on its own port to `target`, writing `header` first.
pub struct ProxyForwarder {
    /// Where clients connect.
    pub addr: SocketAddr,
}

impl ProxyForwarder {
    /// Starts the forwarder; it serves at most `max_conns` connections, then stops.
    pub fn start(target: SocketAddr, header: Vec<u8>, max_conns: usize) -> ProxyForwarder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        thread::spawn(move || {
            for client in listener.incoming().take(max_conns) {
                let Ok(client) = client else { continue };
                let header = header.clone();
                thread::spawn(move || {
                    let Ok(mut upstream) = TcpStream::connect(target) else { return };
                    if upstream.write_all(&header).is_err() {
                        return;
                    }
                    pipe(client, upstream);
                });
            }
        });
        ProxyForwarder { addr }
    }
}

fn pipe(a: TcpStream, b: TcpStream) {
    let (mut a2, mut b2) = (a.try_clone().expect("clone"), b.try_clone().expect("clone"));
    let up = thread::spawn(move || copy(&mut a2, &mut b2));
    let (mut a, mut b) = (a, b);
    copy(&mut b, &mut a);
    let _ = up.join();
}

fn copy(from: &mut TcpStream, to: &mut TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
