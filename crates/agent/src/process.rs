//! Starting a session's process: the login's shell, a command, or `sftp-server`, attached
//! to a PTY or to pipes, with a clean environment, as the login.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio as StdStdio;

use anyhow::Context;
use russh::Pty;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

use crate::account::Account;
use crate::unix::{self, Credentials};

/// Where distributions install OpenSSH's `sftp-server`, in the order tried.
pub const SFTP_SERVERS: [&str; 4] = [
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/ssh/sftp-server",
];

/// A PTY request as the client sent it.
#[derive(Debug, Clone)]
pub struct PtyRequest {
    /// TERM.
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
    /// Width in pixels.
    pub pix_width: u32,
    /// Height in pixels.
    pub pix_height: u32,
    /// Terminal modes (kept; the kernel's defaults apply).
    pub modes: Vec<(Pty, u32)>,
}

/// A PTY size from SSH's 32-bit fields; zero or absurd sizes become 80x24.
pub fn pty_size(cols: u32, rows: u32, pix_width: u32, pix_height: u32) -> pty_process::Size {
    let clamp = |v: u32, default: u16| u16::try_from(v).ok().filter(|&v| v > 0).unwrap_or(default);
    let pixels = |v: u32| u16::try_from(v).unwrap_or(0);
    pty_process::Size::new_with_pixel(clamp(rows, 24), clamp(cols, 80), pixels(pix_width), pixels(pix_height))
}

/// What a session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// The login shell, as a login shell.
    Shell,
    /// A command line, through the login shell's `-c`.
    Exec(Vec<u8>),
    /// This `sftp-server` binary.
    Sftp(PathBuf),
}

/// The first `sftp-server` installed here.
pub fn sftp_server() -> Option<PathBuf> {
    SFTP_SERVERS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Program, argv\[0\] and arguments. A login shell is marked the way `login` and sshd do it,
/// with a `-` before argv\[0\]'s name, which every shell understands (not all take `-l`).
pub fn command_line(account: &Account, program: &Program) -> (PathBuf, OsString, Vec<OsString>) {
    let name = |path: &Path| path.file_name().map(OsStr::to_os_string).unwrap_or_else(|| path.as_os_str().into());
    match program {
        Program::Shell => {
            let mut arg0 = OsString::from("-");
            arg0.push(name(&account.shell));
            (account.shell.clone(), arg0, Vec::new())
        }
        Program::Exec(command) => {
            let args = vec![OsString::from("-c"), OsString::from_vec(command.clone())];
            (account.shell.clone(), name(&account.shell), args)
        }
        Program::Sftp(path) => (path.clone(), name(path), Vec::new()),
    }
}

/// The environment a session starts with: nothing of the agent's, the account's basics,
/// TERM with a PTY, and the client's LANG / LC_* only.
pub fn environment(account: &Account, term: Option<&str>, requested: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("HOME".into(), account.home.clone().into()),
        ("USER".into(), account.name.clone().into()),
        ("LOGNAME".into(), account.name.clone().into()),
        ("SHELL".into(), account.shell.clone().into()),
        ("PATH".into(), account.path().into()),
    ];
    if let Some(term) = term {
        env.push(("TERM".into(), term.into()));
    }
    for (name, value) in requested {
        if (name == "LANG" || name.starts_with("LC_")) && !value.contains('\0') {
            env.push((name.into(), value.into()));
        }
    }
    env
}

/// How the session talks to its process.
pub enum Stdio {
    /// One PTY for input and output.
    Pty(pty_process::Pty),
    /// Pipes; stderr goes out as extended data.
    Pipes {
        /// The child's stdin.
        stdin: ChildStdin,
        /// The child's stdout.
        stdout: ChildStdout,
        /// The child's stderr.
        stderr: ChildStderr,
    },
}

/// A started session process.
pub struct Process {
    /// The child (killed if dropped while running).
    pub child: Child,
    /// Its stdio.
    pub stdio: Stdio,
}

/// What to start, for whom.
pub struct Launch<'a> {
    /// The login.
    pub account: &'a Account,
    /// Credentials to switch to (the agent runs as root), or `None` to stay as the agent's user.
    pub credentials: Option<Credentials>,
    /// What runs.
    pub program: Program,
    /// The PTY, when one was requested.
    pub pty: Option<&'a PtyRequest>,
    /// Environment the client asked for.
    pub env: &'a [(String, String)],
}

/// Held while a PTY is opened and while a session process is forked. pty-process opens the
/// PTY master first and marks it close-on-exec a moment later; a session forked by another
/// thread in between would carry this session's terminal into another login's process.
static SPAWNING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts a session process, in its own session (process group), in the login's home.
pub fn spawn(launch: Launch<'_>) -> anyhow::Result<Process> {
    let _spawning = SPAWNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (program, arg0, args) = command_line(launch.account, &launch.program);
    let env = environment(launch.account, launch.pty.map(|p| p.term.as_str()), launch.env);
    let home = CString::new(launch.account.home.as_os_str().as_bytes()).unwrap_or_else(|_| c"/".to_owned());
    if let Some(request) = launch.pty {
        let (pty, pts) = pty_process::open().context("cannot allocate a PTY")?;
        pty.resize(pty_size(request.cols, request.rows, request.pix_width, request.pix_height))
            .context("cannot size the PTY")?;
        if let Some(credentials) = &launch.credentials {
            // The terminal belongs to the login, as with sshd, so `mesg`, `tty` and `script` work.
            std::os::unix::fs::fchown(&pts, Some(credentials.uid), Some(credentials.gid))
                .context("cannot give the PTY to the login")?;
        }
        let command =
            pty_process::Command::new(&program).arg0(arg0).args(args).env_clear().envs(env).kill_on_drop(true);
        let command = unix::prepare_pty(command, launch.credentials, home);
        let child = command.spawn(pts).with_context(|| format!("cannot start {}", program.display()))?;
        return Ok(Process { child, stdio: Stdio::Pty(pty) });
    }
    let mut command = tokio::process::Command::new(&program);
    command
        .arg0(arg0)
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(StdStdio::piped())
        .stdout(StdStdio::piped())
        .stderr(StdStdio::piped())
        .kill_on_drop(true);
    unix::prepare_pipes(&mut command, launch.credentials, home);
    let mut child = command.spawn().with_context(|| format!("cannot start {}", program.display()))?;
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        anyhow::bail!("the child's pipes are missing");
    };
    Ok(Process { child, stdio: Stdio::Pipes { stdin, stdout, stderr } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vendor() -> Account {
        Account { name: "vendor".into(), uid: 1001, gid: 1001, home: "/home/vendor".into(), shell: "/bin/bash".into() }
    }

    #[test]
    fn shells_are_login_shells_and_commands_go_through_dash_c() {
        let (program, arg0, args) = command_line(&vendor(), &Program::Shell);
        assert_eq!((program.to_str(), arg0.to_str(), args.len()), (Some("/bin/bash"), Some("-bash"), 0));
        let (program, arg0, args) = command_line(&vendor(), &Program::Exec(b"nvidia-smi -L".to_vec()));
        assert_eq!((program.to_str(), arg0.to_str()), (Some("/bin/bash"), Some("bash")));
        assert_eq!(args, [OsString::from("-c"), OsString::from("nvidia-smi -L")]);
        let sftp = Program::Sftp("/usr/lib/openssh/sftp-server".into());
        let (program, arg0, args) = command_line(&vendor(), &sftp);
        assert_eq!(
            (program.to_str(), arg0.to_str(), args.len()),
            (Some("/usr/lib/openssh/sftp-server"), Some("sftp-server"), 0)
        );
    }

    #[test]
    fn the_environment_is_clean_with_only_locale_from_the_client() {
        let requested = [
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("LC_ALL".to_string(), "C".to_string()),
            ("LD_PRELOAD".to_string(), "/tmp/evil.so".to_string()),
            ("PATH".to_string(), "/tmp".to_string()),
        ];
        let env = environment(&vendor(), Some("xterm-256color"), &requested);
        let get = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.to_str().unwrap().to_string());
        assert_eq!(get("HOME").as_deref(), Some("/home/vendor"));
        assert_eq!(get("USER").as_deref(), Some("vendor"));
        assert_eq!(get("LOGNAME").as_deref(), Some("vendor"));
        assert_eq!(get("SHELL").as_deref(), Some("/bin/bash"));
        assert_eq!(get("PATH").as_deref(), Some(vendor().path()));
        assert_eq!(get("TERM").as_deref(), Some("xterm-256color"));
        assert_eq!(get("LANG").as_deref(), Some("C.UTF-8"));
        assert_eq!(get("LC_ALL").as_deref(), Some("C"));
        assert_eq!(get("LD_PRELOAD"), None);
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(environment(&vendor(), None, &[]).iter().all(|(k, _)| k != "TERM"));
    }

    #[test]
    fn pty_sizes_are_clamped() {
        let size = |c, r| format!("{:?}", pty_size(c, r, 0, 0));
        assert_eq!(size(120, 40), format!("{:?}", pty_process::Size::new(40, 120)));
        assert_eq!(size(0, 0), format!("{:?}", pty_process::Size::new(24, 80)));
        assert_eq!(size(100_000, 50), format!("{:?}", pty_process::Size::new(50, 80)));
    }
}
