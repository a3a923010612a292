//! The session server, driven through a tunnel as the gateway drives it.

use std::time::Duration;

use russh::{ChannelMsg, Sig};

use crate::support::{Tunnel, collect, exec, key, own_login};

#[tokio::test]
async fn exec_relays_stdout_stderr_and_the_exit_status() {
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    let out = exec(&session, "echo hi; echo err >&2; exit 3").await;
    assert_eq!(out.stdout(), "hi\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status, Some(3));
    assert!(out.eof);
    // Several sessions share one tunnel, and one connection runs several channels.
    let second = tunnel.session(&login, &[&login]).await.unwrap();
    assert_eq!(exec(&second, "echo two").await.stdout(), "two\n");
    assert_eq!(exec(&session, "echo again").await.stdout(), "again\n");
}

#[tokio::test]
async fn the_environment_is_the_logins_not_the_agents() {
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    let mut channel = session.channel_open_session().await.unwrap();
    channel.set_env(true, "LANG", "C.UTF-8").await.unwrap();
    channel.set_env(true, "EVIL", "1").await.unwrap();
    channel
        .exec(true, r#"echo "$USER|$LOGNAME|$LANG|${EVIL:-unset}|${CARGO_MANIFEST_DIR:-clean}"; pwd"#)
        .await
        .unwrap();
    let out = collect(&mut channel).await;
    let account = portcullis_agent::account::by_name(&login).await.unwrap();
    let home = if account.home.is_dir() { account.home.display().to_string() } else { "/".to_string() };
    assert_eq!(out.stdout(), format!("{login}|{login}|C.UTF-8|unset|clean\n{home}\n"));
    assert_eq!(out.status, Some(0));
}

#[tokio::test]
async fn stdin_reaches_the_command_and_eof_closes_it() {
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, "cat; echo done").await.unwrap();
    let big = vec![b'x'; 300 * 1024];
    channel.data(&b"hello\n"[..]).await.unwrap();
    channel.data(&big[..]).await.unwrap();
    channel.eof().await.unwrap();
    let out = collect(&mut channel).await;
    let expected = [&b"hello\n"[..], &big, b"done\n"].concat();
    assert!(out.stdout == expected, "{} bytes back, {} expected", out.stdout.len(), expected.len());
    assert_eq!(out.status, Some(0));
}

#[tokio::test]
async fn a_pty_shell_gets_term_size_and_resizes() {
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    let mut channel = session.channel_open_session().await.unwrap();
    channel.request_pty(true, "xterm-256color", 100, 30, 0, 0, &[]).await.unwrap();
    channel.request_shell(true).await.unwrap();
    channel.data(&b"echo TERM=$TERM; stty size; tty; read line; stty size; exit 7\n"[..]).await.unwrap();
    let mut seen = Vec::new();
    let mut resized = false;
    let mut status = None;
    let reading = async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    seen.extend_from_slice(&data);
                    if !resized && String::from_utf8_lossy(&seen).contains("30 100") {
                        resized = true;
                        channel.window_change(120, 40, 0, 0).await.unwrap();
                        channel.data(&b"\n"[..]).await.unwrap();
                    }
                }
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), reading).await.expect("the shell exits");
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("TERM=xterm-256color"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("40 120"), "{text}");
    assert_eq!(status, Some(7), "{text}");
}

#[tokio::test]
async fn signals_reach_the_command_and_come_back_as_exit_signal() {
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, "echo ready; exec sleep 30").await.unwrap();
    loop {
        match channel.wait().await.unwrap() {
            ChannelMsg::Data { data } if data.as_ref() == b"ready\n" => break,
            _ => {}
        }
    }
    // `exec` above replaced the shell, so the signal meets sleep itself.
    tokio::time::sleep(Duration::from_millis(100)).await;
    channel.signal(Sig::TERM).await.unwrap();
    let out = collect(&mut channel).await;
    assert_eq!(out.signal.as_deref(), Some("TERM"));
    assert_eq!(out.status, None);
}

#[tokio::test]
async fn closing_the_channel_hangs_up_on_the_process_group() {
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    let mut channel = session.channel_open_session().await.unwrap();
    channel.exec(true, "sleep 300 & echo $!; wait").await.unwrap();
    let pid = loop {
        if let ChannelMsg::Data { data } = channel.wait().await.unwrap() {
            break String::from_utf8_lossy(&data).trim().parse::<u32>().unwrap();
        }
    };
    let proc = format!("/proc/{pid}");
    assert!(std::path::Path::new(&proc).exists());
    channel.close().await.unwrap();
    let gone = async {
        while std::fs::read_to_string(format!("{proc}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone).await.expect("the background job was killed");
}

#[tokio::test]
async fn sftp_runs_the_system_sftp_server() {
    if portcullis_agent::process::sftp_server().is_none() {
        eprintln!("SKIPPED: no sftp-server installed");
        return;
    }
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    let mut channel = session.channel_open_session().await.unwrap();
    channel.request_subsystem(true, "sftp").await.unwrap();
    // SSH_FXP_INIT, version 3.
    channel.data(&[0u8, 0, 0, 5, 1, 0, 0, 0, 3][..]).await.unwrap();
    let mut reply = Vec::new();
    while reply.len() < 9 {
        match channel.wait().await.unwrap() {
            ChannelMsg::Data { data } => reply.extend_from_slice(&data),
            ChannelMsg::Success => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(reply[4], 2, "SSH_FXP_VERSION");
    assert_eq!(&reply[5..9], &[0, 0, 0, 3]);
}

#[tokio::test]
async fn logins_need_our_ca_and_the_login_among_the_principals() {
    let tunnel = Tunnel::start().await;
    let login = own_login().await;
    assert!(tunnel.session(&login, &["someone-else"]).await.is_err());
    assert!(tunnel.session(&login, &[]).await.is_err());
    let (other_ca, user_key) = (key(), key());
    let foreign = crate::support::certificate(&other_ca, &user_key, &[&login]);
    assert!(tunnel.session_with(&login, user_key, foreign).await.is_err());
    assert!(tunnel.session("no-such-user-here", &["no-such-user-here"]).await.is_err());
    if login != "root" {
        assert!(tunnel.session("root", &["root"]).await.is_err(), "an unprivileged agent serves its own user only");
    }
    // A plain key, even the CA's own, is no login.
    let channel = tunnel.outer.channel_open_direct_tcpip(portcullis_proto::tunnel::SESSION_HOST, 22, "x", 0).await;
    let pinned = tunnel.host_key.public_key().clone();
    let mut inner = russh::client::connect_stream(
        crate::support::client_config(),
        channel.unwrap().into_stream(),
        crate::support::Client { pinned },
    )
    .await
    .unwrap();
    let plain = russh::keys::PrivateKeyWithHashAlg::new(std::sync::Arc::new(tunnel.ca.clone()), None);
    assert!(!inner.authenticate_publickey(&login, plain).await.unwrap().success());
}

#[tokio::test]
async fn the_tunnel_and_sessions_refuse_everything_else() {
    let tunnel = Tunnel::start().await;
    assert!(tunnel.outer.channel_open_session().await.is_err(), "no shell on the tunnel itself");
    assert!(tunnel.outer.channel_open_direct_tcpip("127.0.0.1", 22, "x", 0).await.is_err(), "no forwarding");
    let login = own_login().await;
    let session = tunnel.session(&login, &[&login]).await.unwrap();
    assert!(session.channel_open_direct_tcpip("127.0.0.1", 22, "x", 0).await.is_err(), "no port forwarding");
    let mut channel = session.channel_open_session().await.unwrap();
    channel.agent_forward(true).await.unwrap();
    assert!(matches!(channel.wait().await, Some(ChannelMsg::Failure)), "no agent forwarding");
    channel.request_x11(true, false, "MIT-MAGIC-COOKIE-1", "00", 0).await.unwrap();
    assert!(matches!(channel.wait().await, Some(ChannelMsg::Failure)), "no X11");
    channel.request_subsystem(true, "netconf").await.unwrap();
    assert!(matches!(channel.wait().await, Some(ChannelMsg::Failure)), "unknown subsystem");
}

#[tokio::test]
async fn as_root_sessions_run_as_the_login() {
    if portcullis_agent::account::current().await.unwrap().uid != 0 {
        eprintln!("SKIPPED: switching logins needs root");
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let Some(other) = passwd
        .lines()
        .filter_map(portcullis_agent::account::parse_passwd_line)
        .find(|a| a.uid >= 1000 && a.uid < 60000 && a.shell.ends_with("sh"))
    else {
        eprintln!("SKIPPED: no unprivileged account with a shell");
        return;
    };
    let tunnel = Tunnel::start().await;
    let session = tunnel.session(&other.name, &[&other.name]).await.unwrap();
    let out = exec(&session, "id -u; id -g; echo $HOME; pwd").await;
    let home = if other.home.is_dir() { other.home.display().to_string() } else { "/".to_string() };
    assert_eq!(out.stdout(), format!("{}\n{}\n{}\n{home}\n", other.uid, other.gid, other.home.display()));
    let mut channel = session.channel_open_session().await.unwrap();
    channel.request_pty(true, "xterm", 80, 24, 0, 0, &[]).await.unwrap();
    channel.exec(true, "stat -c %u $(tty)").await.unwrap();
    let out = collect(&mut channel).await;
    assert_eq!(out.stdout().trim(), other.uid.to_string(), "the PTY belongs to the login");
}
