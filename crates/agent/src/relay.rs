//! One session channel ⇄ its process: input, resizes and signals in; output out with
//! back-pressure (each write waits for the channel's window); then exit status, EOF, close.

use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

use russh::server::{Handle, Msg};
use russh::{Channel, ChannelMsg, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::process::{Process, Stdio, pty_size};
use crate::unix;

/// Read size for process output.
const CHUNK: usize = 32 * 1024;
/// After a PTY's shell exits, how long output may pause before the session ends anyway
/// (a background job may hold the terminal open forever)...
const PTY_LINGER: Duration = Duration::from_millis(200);
/// ...and how long it may keep writing.
const PTY_LINGER_MAX: Duration = Duration::from_secs(5);
/// How long a hung-up session has to exit before it is killed.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// SSH signal name → signal number.
pub fn signal_number(signal: &Sig) -> Option<i32> {
    Some(match signal {
        Sig::ABRT => libc::SIGABRT,
        Sig::ALRM => libc::SIGALRM,
        Sig::FPE => libc::SIGFPE,
        Sig::HUP => libc::SIGHUP,
        Sig::ILL => libc::SIGILL,
        Sig::INT => libc::SIGINT,
        Sig::KILL => libc::SIGKILL,
        Sig::PIPE => libc::SIGPIPE,
        Sig::QUIT => libc::SIGQUIT,
        Sig::SEGV => libc::SIGSEGV,
        Sig::TERM => libc::SIGTERM,
        Sig::USR1 => libc::SIGUSR1,
        Sig::Custom(name) if name == "USR2" => libc::SIGUSR2,
        Sig::Custom(_) => return None,
    })
}

/// Signal number → SSH signal name (RFC 4254 names, without "SIG").
pub fn signal_name(number: i32) -> Sig {
    match number {
        libc::SIGABRT => Sig::ABRT,
        libc::SIGALRM => Sig::ALRM,
        libc::SIGFPE => Sig::FPE,
        libc::SIGHUP => Sig::HUP,
        libc::SIGILL => Sig::ILL,
        libc::SIGINT => Sig::INT,
        libc::SIGKILL => Sig::KILL,
        libc::SIGPIPE => Sig::PIPE,
        libc::SIGQUIT => Sig::QUIT,
        libc::SIGSEGV => Sig::SEGV,
        libc::SIGTERM => Sig::TERM,
        libc::SIGUSR1 => Sig::USR1,
        libc::SIGUSR2 => Sig::Custom("USR2".into()),
        other => Sig::Custom(other.to_string()),
    }
}

/// Where channel input goes.
enum Input {
    Pty(pty_process::OwnedWritePty),
    Pipe(Option<ChildStdin>),
}

impl Input {
    async fn write(&mut self, data: &[u8]) {
        let failed = match self {
            Input::Pty(pty) => pty.write_all(data).await.is_err(),
            Input::Pipe(Some(stdin)) => stdin.write_all(data).await.is_err(),
            Input::Pipe(None) => false,
        };
        if failed && let Input::Pipe(stdin) = self {
            // The child closed its stdin; later input is dropped, as sshd does.
            *stdin = None;
        }
    }

    /// EOF closes a pipe; a PTY has no EOF of its own (the user types ^D).
    fn eof(&mut self) {
        if let Input::Pipe(stdin) = self {
            *stdin = None;
        }
    }

    fn resize(&self, size: pty_process::Size) {
        if let Input::Pty(pty) = self {
            let _ = pty.resize(size);
        }
    }
}

/// Runs the session until its process exits (then reports it and closes the channel) or the
/// channel closes (then hangs up on the process). `closed` fires, or is dropped, when the
/// client closes the channel or the connection ends.
pub async fn run(channel: Channel<Msg>, handle: Handle, process: Process, mut closed: oneshot::Receiver<()>) {
    let (mut reader, writer) = channel.split();
    let id = writer.id();
    let Process { mut child, stdio } = process;
    let pid = child.id();
    let (exited, exited_rx) = watch::channel(false);
    let mut pumps = JoinSet::new();
    let mut input = match stdio {
        Stdio::Pty(pty) => {
            let (output, input) = pty.into_split();
            pumps.spawn(pump(output, writer.make_writer(), exited_rx, Some(PTY_LINGER)));
            Input::Pty(input)
        }
        Stdio::Pipes { stdin, stdout, stderr } => {
            pumps.spawn(pump(stdout, writer.make_writer(), exited_rx.clone(), None));
            pumps.spawn(pump(stderr, writer.make_writer_ext(Some(1)), exited_rx, None));
            Input::Pipe(Some(stdin))
        }
    };

    let status = loop {
        tokio::select! {
            biased;
            _ = &mut closed => return hang_up(&mut child, pid).await,
            status = child.wait() => break status,
            msg = reader.wait() => match msg {
                Some(ChannelMsg::Data { data }) => tokio::select! {
                    _ = input.write(&data) => {}
                    _ = &mut closed => return hang_up(&mut child, pid).await,
                },
                Some(ChannelMsg::Eof) => input.eof(),
                Some(ChannelMsg::WindowChange { col_width, row_height, pix_width, pix_height }) => {
                    input.resize(pty_size(col_width, row_height, pix_width, pix_height));
                }
                Some(ChannelMsg::Signal { signal }) => {
                    if let (Some(pid), Some(number)) = (pid, signal_number(&signal)) {
                        let _ = unix::signal(pid, number);
                    }
                }
                Some(ChannelMsg::Close) | None => return hang_up(&mut child, pid).await,
                Some(_) => {}
            },
        }
    };
    drop(input);
    let _ = exited.send(true);
    // All output first: the client must see every byte before the exit status.
    loop {
        tokio::select! {
            _ = &mut closed => {
                pumps.abort_all();
                return;
            }
            next = pumps.join_next() => if next.is_none() { break },
        }
    }
    match status {
        Ok(status) => {
            if let Some(code) = status.code() {
                let _ = writer.exit_status(code as u32).await;
            } else if let Some(number) = status.signal() {
                let (name, core) = (signal_name(number), status.core_dumped());
                let _ = handle.exit_signal_request(id, name, core, String::new(), String::new()).await;
            }
        }
        Err(err) => tracing::warn!(%err, "cannot wait for the session's process"),
    }
    let _ = writer.eof().await;
    let _ = writer.close().await;
}

/// Copies process output into the channel until EOF (a PTY after its shell exited: until
/// output pauses for `linger`).
async fn pump<R, W>(mut from: R, mut to: W, mut exited: watch::Receiver<bool>, linger: Option<Duration>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    let mut deadline = None;
    loop {
        let read = match linger {
            Some(linger) if *exited.borrow() => {
                let deadline = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + PTY_LINGER_MAX);
                let until = deadline.min(tokio::time::Instant::now() + linger);
                match tokio::time::timeout_at(until, from.read(&mut buf)).await {
                    Ok(read) => read,
                    Err(_) => break,
                }
            }
            Some(_) => tokio::select! {
                read = from.read(&mut buf) => read,
                changed = exited.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    continue;
                }
            },
            None => from.read(&mut buf).await,
        };
        // A PTY whose last holder closed it reads EIO: that is its EOF.
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// Hangs up on a session: SIGHUP to its process group, SIGKILL if it lingers.
async fn hang_up(child: &mut Child, pid: Option<u32>) {
    // The child is a session leader (setsid), so its pid is its process group's id; it has
    // not been reaped yet, so the id cannot have been reused.
    if let Some(pid) = pid {
        let _ = unix::signal_group(pid, libc::SIGHUP);
    }
    if tokio::time::timeout(KILL_GRACE, child.wait()).await.is_err() {
        if let Some(pid) = pid {
            let _ = unix::signal_group(pid, libc::SIGKILL);
        }
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_both_ways() {
        for sig in [Sig::HUP, Sig::INT, Sig::KILL, Sig::TERM, Sig::USR1, Sig::QUIT, Sig::Custom("USR2".into())] {
            let number = signal_number(&sig).unwrap();
            assert_eq!(format!("{:?}", signal_name(number)), format!("{sig:?}"));
        }
        assert_eq!(signal_number(&Sig::Custom("WINCH".into())), None);
        assert_eq!(
            format!("{:?}", signal_name(libc::SIGCHLD)),
            format!("{:?}", Sig::Custom(libc::SIGCHLD.to_string()))
        );
    }
}
