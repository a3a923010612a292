//! `portcullis ctl`: the admin CLI, over `DATA_DIR/admin.sock` only.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use clap::Subcommand;
use portcullis_gateway::admin::{Request, Response};
use portcullis_gateway::datadir::ADMIN_SOCK;
use portcullis_gateway::store::AuditFilter;

use crate::paths::Location;

/// Arguments of `ctl`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    location: Location,
    /// Print a JSON array of objects instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Group,
}

#[derive(Subcommand, Debug)]
enum Group {
    /// Gateway status and counters.
    Status,
    /// User accounts.
    #[command(subcommand)]
    Users(Users),
    /// Roles.
    #[command(subcommand)]
    Roles(Roles),
    /// Nodes.
    #[command(subcommand)]
    Nodes(Nodes),
    /// Sessions on nodes.
    #[command(subcommand)]
    Sessions(Sessions),
    /// Session recordings.
    #[command(subcommand)]
    Recordings(Recordings),
    /// Agent join tokens.
    #[command(subcommand)]
    Tokens(Tokens),
    /// Certificate authorities.
    #[command(subcommand)]
    Ca(Ca),
    /// The audit log.
    #[command(subcommand)]
    Audit(Audit),
}

#[derive(Subcommand, Debug)]
enum Users {
    /// Create a user; prints a one-time invite URL.
    Add {
        name: String,
        /// Comma-separated role names.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Account lifetime, e.g. 72h; the account and its sessions end at expiry.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List users.
    Ls,
    /// Remove a user.
    Rm { name: String },
    /// Lock a user.
    Lock { name: String },
    /// Unlock a user.
    Unlock { name: String },
    /// End a user's account now; their sessions end within seconds.
    Expire { name: String },
    /// Forget a user's TOTP secret; prints a one-time URL to enroll again.
    ResetTotp { name: String },
    /// Register an SSH public key for a user.
    AddKey {
        name: String,
        /// An OpenSSH public key file (id_ed25519.pub).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum Roles {
    /// List roles.
    Ls,
    /// Show one role as TOML.
    Show { name: String },
    /// Add or replace the roles of a TOML file.
    Apply { file: PathBuf },
}

#[derive(Subcommand, Debug)]
enum Nodes {
    /// List nodes.
    Ls,
    /// Add an agentless node.
    Add {
        name: String,
        /// HOST:PORT of the node's sshd.
        #[arg(long)]
        addr: String,
        /// Labels, k=v,k=v.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
    },
    /// Remove a node.
    Rm { name: String },
    /// Forget a node's pinned host key; the next connection pins the key it presents.
    Repin { name: String },
    /// Replace a node's static labels (an agent's inventory labels stay).
    Label {
        name: String,
        /// Labels, k=v,k=v (empty for none).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum Sessions {
    /// List sessions, newest first.
    Ls {
        /// Only live sessions.
        #[arg(long)]
        active: bool,
    },
    /// End a live session; its user sees a generic close.
    Kill { id: String },
    /// Show a live session's output here, from its recent screen on; its user is not told.
    Watch { id: String },
}

#[derive(Subcommand, Debug)]
enum Recordings {
    /// List recordings, newest first.
    Ls {
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        node: Option<String>,
        /// RFC 3339 time, or a duration ago like 2h.
        #[arg(long)]
        since: Option<String>,
        /// Only recordings whose output contains TEXT.
        #[arg(long, value_name = "TEXT")]
        grep: Option<String>,
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Replay a recording in this terminal with its timing.
    Play {
        id: String,
        /// Playback speed factor.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
    },
    /// Write a recording's .cast file.
    Export {
        id: String,
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum Tokens {
    /// Make a one-time join token for `portcullis agent --token`.
    Create {
        /// Lifetime, e.g. 1h (the default).
        #[arg(long)]
        ttl: Option<String>,
        /// Labels the joining node gets, k=v,k=v.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
    },
    /// List join tokens.
    Ls,
    /// Revoke an unused token.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
enum Ca {
    /// Print a CA public key in OpenSSH form.
    Export {
        /// user (for nodes' TrustedUserCAKeys) or host (for clients' @cert-authority).
        #[arg(long, value_parser = ["user", "host"])]
        kind: String,
    },
}

#[derive(Subcommand, Debug)]
enum Audit {
    /// List audit events (newest 1000 unless --limit).
    Ls {
        /// RFC 3339 time, or a duration ago like 2h.
        #[arg(long)]
        since: Option<String>,
        /// Event type or prefix (user.login, user).
        #[arg(long = "type")]
        kind: Option<String>,
        /// User.
        #[arg(long)]
        user: Option<String>,
        /// Most events shown.
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Verify the hash chain; fails naming the first bad seq.
    Verify,
}

/// Sends one request and prints the answer.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.location.config()?;
    let socket = config.data_dir.join(ADMIN_SOCK);
    match args.command {
        Group::Sessions(Sessions::Watch { id }) => {
            let mut rest = open_stream(&socket, &Request::SessionsWatch { id })?;
            std::io::copy(&mut rest, &mut std::io::stdout().lock())?;
            return Ok(ExitCode::SUCCESS);
        }
        Group::Recordings(Recordings::Export { id, output }) => {
            let mut rest = open_stream(&socket, &Request::RecordingsGet { id })?;
            let mut file =
                std::fs::File::create(&output).with_context(|| format!("cannot create {}", output.display()))?;
            std::io::copy(&mut rest, &mut file)?;
            return Ok(ExitCode::SUCCESS);
        }
        Group::Recordings(Recordings::Play { id, speed }) => {
            if !(speed > 0.0 && speed.is_finite()) {
                bail!("--speed must be a positive number");
            }
            let rest = open_stream(&socket, &Request::RecordingsGet { id })?;
            crate::play::play(rest, speed, &mut std::io::stdout().lock())?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let request = request(args.command)?;
    let response = call(&socket, &request)?;
    if !response.ok {
        eprintln!("error: {}", response.error.as_deref().unwrap_or("request failed"));
        return Ok(ExitCode::FAILURE);
    }
    print(&response, args.json)?;
    Ok(ExitCode::SUCCESS)
}

fn request(group: Group) -> anyhow::Result<Request> {
    Ok(match group {
        Group::Status => Request::Status,
        Group::Users(Users::Add { name, roles, ttl }) => Request::UsersAdd { name, roles, ttl },
        Group::Users(Users::Ls) => Request::UsersLs,
        Group::Users(Users::Rm { name }) => Request::UsersRm { name },
        Group::Users(Users::Lock { name }) => Request::UsersLock { name },
        Group::Users(Users::Unlock { name }) => Request::UsersUnlock { name },
        Group::Users(Users::Expire { name }) => Request::UsersExpire { name },
        Group::Users(Users::ResetTotp { name }) => Request::UsersResetTotp { name },
        Group::Users(Users::AddKey { name, key_file }) => {
            let key =
                std::fs::read_to_string(&key_file).with_context(|| format!("cannot read {}", key_file.display()))?;
            Request::UsersAddKey { name, key }
        }
        Group::Roles(Roles::Ls) => Request::RolesLs,
        Group::Roles(Roles::Show { name }) => Request::RolesShow { name },
        Group::Roles(Roles::Apply { file }) => {
            let toml = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            Request::RolesApply { toml }
        }
        Group::Nodes(Nodes::Ls) => Request::NodesLs,
        Group::Nodes(Nodes::Add { name, addr, labels }) => {
            Request::NodesAdd { name, addr, labels: parse_labels(&labels)? }
        }
        Group::Nodes(Nodes::Rm { name }) => Request::NodesRm { name },
        Group::Nodes(Nodes::Repin { name }) => Request::NodesRepin { name },
        Group::Nodes(Nodes::Label { name, labels }) => Request::NodesLabel { name, labels: parse_labels(&labels)? },
        Group::Sessions(Sessions::Ls { active }) => Request::SessionsLs { active },
        Group::Sessions(Sessions::Kill { id }) => Request::SessionsKill { id },
        Group::Recordings(Recordings::Ls { user, node, since, grep, limit }) => {
            let since = since.map(|s| parse_since(&s)).transpose()?;
            Request::RecordingsLs { user, node, since, grep, limit }
        }
        Group::Sessions(Sessions::Watch { .. }) | Group::Recordings(_) => {
            unreachable!("streaming commands return earlier")
        }
        Group::Ca(Ca::Export { kind }) => Request::CaExport { kind },
        Group::Tokens(Tokens::Create { ttl, labels }) => Request::TokensCreate { ttl, labels: parse_labels(&labels)? },
        Group::Tokens(Tokens::Ls) => Request::TokensLs,
        Group::Tokens(Tokens::Revoke { id }) => Request::TokensRevoke { id },
        Group::Audit(Audit::Ls { since, kind, user, limit }) => {
            let since = since.map(|s| parse_since(&s)).transpose()?;
            Request::AuditLs { filter: AuditFilter { since, kind, user }, limit }
        }
        Group::Audit(Audit::Verify) => Request::AuditVerify,
    })
}

fn parse_labels(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    portcullis_proto::labels::parse(pairs).map_err(|e| anyhow::anyhow!("--labels: {e}"))
}

/// An RFC 3339 time as given, or `now - duration`.
fn parse_since(text: &str) -> anyhow::Result<String> {
    if humantime::parse_rfc3339_weak(text).is_ok() {
        return Ok(text.to_string());
    }
    let ago = humantime::parse_duration(text).with_context(|| format!("--since {text:?}: not a time or a duration"))?;
    let at = SystemTime::now() - ago;
    Ok(humantime::format_rfc3339_micros(at).to_string())
}

fn call(socket: &std::path::Path, request: &Request) -> anyhow::Result<Response> {
    let (response, _) = exchange(socket, request, Some(Duration::from_secs(60)))?;
    Ok(response)
}

/// Sends a request whose answer is followed by a byte stream; fails on an error answer.
fn open_stream(socket: &std::path::Path, request: &Request) -> anyhow::Result<BufReader<UnixStream>> {
    let (response, rest) = exchange(socket, request, None)?;
    if !response.ok {
        bail!("{}", response.error.unwrap_or_else(|| "request failed".into()));
    }
    Ok(rest)
}

fn exchange(
    socket: &std::path::Path,
    request: &Request,
    timeout: Option<Duration>,
) -> anyhow::Result<(Response, BufReader<UnixStream>)> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!("cannot reach the gateway at {} (is it running, and is this its data dir?)", socket.display())
    })?;
    stream.set_read_timeout(timeout)?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).context("no answer from the gateway")?;
    let response = serde_json::from_str(&answer).context("unreadable answer from the gateway")?;
    Ok((response, reader))
}

fn print(response: &Response, json: bool) -> anyhow::Result<()> {
    if let Some(text) = &response.text {
        if json {
            println!("{}", serde_json::json!({ "text": text }));
        } else {
            println!("{}", text.trim_end());
        }
        return Ok(());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&response.rows)?);
        return Ok(());
    }
    let cell = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "-".to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        // Label maps read as k=v,k=v in a table; --json keeps the object.
        Some(serde_json::Value::Object(map)) if map.is_empty() => "-".to_string(),
        Some(serde_json::Value::Object(map)) => {
            map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    };
    let table: Vec<Vec<String>> =
        response.rows.iter().map(|row| response.columns.iter().map(|c| cell(row.get(c))).collect()).collect();
    let widths: Vec<usize> = response
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| table.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(&response.columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>());
    for row in &table {
        line(row);
    }
    Ok(())
}
