//! `portcullis config nginx`: prints an nginx `server` block that fronts the gateway.
//!
//! One block that works verbatim inside nginx's `http { }` (a file in `conf.d/` or
//! `sites-enabled/`): TLS on `--listen`, `proxy_pass https://` to the gateway, WebSocket
//! upgrades for terminals, `X-Forwarded-For` for roles and audit, and hour-long timeouts.
//! `Connection "upgrade"` is sent on every request instead of the usual
//! `map $http_upgrade $connection_upgrade`, which would have to sit at `http` level; the
//! gateway treats it as a plain request unless `Upgrade` is present too.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

/// `portcullis config ...`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print an nginx server block that fronts the gateway (TLS, WebSocket, X-Forwarded-For).
    Nginx(Nginx),
}

/// What the server block needs.
#[derive(clap::Args, Debug, Clone)]
struct Nginx {
    /// The name browsers use (nginx `server_name`).
    #[arg(long)]
    server_name: String,
    /// Where nginx listens: a port, or ADDRESS:PORT.
    #[arg(long, default_value = "443")]
    listen: String,
    /// The gateway's address, as nginx reaches it.
    #[arg(long, default_value = "127.0.0.1:3080")]
    upstream: String,
    /// nginx's certificate for --server-name (PEM).
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Verify the gateway's certificate against this file (e.g. DATA_DIR/tls_cert.pem)
    /// instead of trusting the upstream unchecked.
    #[arg(long)]
    upstream_ca: Option<PathBuf>,
}

/// Runs `config`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Nginx(nginx) => {
            print!("{}", render(&nginx)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn render(args: &Nginx) -> anyhow::Result<String> {
    let name = word("--server-name", &args.server_name)?;
    let upstream = word("--upstream", &args.upstream)?;
    let listen = word("--listen", &args.listen)?;
    let port = listen.rsplit(':').next().unwrap_or(listen);
    if port.parse::<u16>().is_err() {
        bail!("--listen {listen:?}: expected a port or ADDRESS:PORT");
    }
    let upstream_host = match upstream.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host.trim_start_matches('[').trim_end_matches(']'),
        _ => bail!("--upstream {upstream:?}: expected HOST:PORT"),
    };
    let (cert, key) = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => (path("--cert", cert)?, path("--key", key)?),
        _ => (format!("/etc/ssl/certs/{name}.pem"), format!("/etc/ssl/private/{name}.key")),
    };

    let mut out = String::new();
    let w = &mut out;
    writeln!(w, "# portcullis behind nginx, printed by `portcullis config nginx`.")?;
    writeln!(w, "# Put this block inside nginx's http {{ }} (a file in conf.d/ or sites-enabled/ is).")?;
    writeln!(w, "# In portcullis.toml, trust nginx's X-Forwarded-For and accept browsers' Origin:")?;
    writeln!(w, "#   [listen]")?;
    writeln!(w, "#   trusted_proxies = [\"127.0.0.1/32\"]   # the address nginx connects to the gateway from")?;
    writeln!(w, "#   public_addr = [\"{name}:{port}\"]")?;
    if args.cert.is_none() {
        writeln!(w, "# No --cert/--key given: put the certificate for {name} at the two paths below.")?;
    }
    writeln!(w, "server {{")?;
    if listen.contains(':') {
        writeln!(w, "    listen {listen} ssl;")?;
    } else {
        writeln!(w, "    listen {port} ssl;")?;
        writeln!(w, "    listen [::]:{port} ssl;")?;
    }
    writeln!(w, "    server_name {name};")?;
    writeln!(w)?;
    writeln!(w, "    ssl_certificate     {cert};")?;
    writeln!(w, "    ssl_certificate_key {key};")?;
    writeln!(w, "    ssl_protocols TLSv1.2 TLSv1.3;")?;
    writeln!(w)?;
    writeln!(w, "    location / {{")?;
    writeln!(w, "        proxy_pass https://{upstream};")?;
    writeln!(w, "        proxy_http_version 1.1;")?;
    writeln!(w, "        # Web terminals are WebSockets; \"upgrade\" without an Upgrade header is a plain request.")?;
    writeln!(w, "        proxy_set_header Upgrade $http_upgrade;")?;
    writeln!(w, "        proxy_set_header Connection \"upgrade\";")?;
    writeln!(w, "        proxy_set_header Host $host;")?;
    writeln!(w, "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")?;
    writeln!(w, "        proxy_set_header X-Forwarded-Proto https;")?;
    writeln!(w, "        # A terminal may sit idle; the gateway pings open terminals every 30 s.")?;
    writeln!(w, "        proxy_read_timeout 1h;")?;
    writeln!(w, "        proxy_send_timeout 1h;")?;
    writeln!(w, "        proxy_buffering off;")?;
    writeln!(w, "        # File uploads stream through to the node, whatever their size.")?;
    writeln!(w, "        client_max_body_size 0;")?;
    writeln!(w, "        proxy_request_buffering off;")?;
    // nginx checks the upstream certificate's DNS names, never its IP addresses; the
    // gateway's self-signed certificate always names localhost.
    let ssl_name = if upstream_host.parse::<std::net::IpAddr>().is_ok() { "localhost" } else { upstream_host };
    writeln!(w, "        proxy_ssl_server_name on;")?;
    writeln!(w, "        proxy_ssl_name {ssl_name};")?;
    match &args.upstream_ca {
        Some(ca) => {
            writeln!(w, "        proxy_ssl_verify on;")?;
            writeln!(w, "        proxy_ssl_trusted_certificate {};", path("--upstream-ca", ca)?)?;
        }
        None => {
            writeln!(w, "        # The gateway's certificate is self-signed unless [tls] names one; to check it,")?;
            writeln!(w, "        # print this again with --upstream-ca DATA_DIR/tls_cert.pem.")?;
            writeln!(w, "        proxy_ssl_verify off;")?;
        }
    }
    writeln!(w, "    }}")?;
    writeln!(w, "}}")?;
    Ok(out)
}

/// A value that goes into the config as one token: no whitespace, quotes, `;`, braces or `$`.
fn word<'a>(flag: &str, value: &'a str) -> anyhow::Result<&'a str> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "\"';{}$#\\".contains(c);
    if value.is_empty() || value.contains(bad) {
        bail!("{flag} {value:?}: must be one word without quotes, ';', braces or '$'");
    }
    Ok(value)
}

fn path(flag: &str, value: &std::path::Path) -> anyhow::Result<String> {
    let text = value.to_str().ok_or_else(|| anyhow::anyhow!("{flag}: the path must be UTF-8"))?;
    Ok(word(flag, text)?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> Nginx {
        Nginx {
            server_name: name.into(),
            listen: "443".into(),
            upstream: "127.0.0.1:3080".into(),
            cert: None,
            key: None,
            upstream_ca: None,
        }
    }

    #[test]
    fn defaults_print_one_working_server_block() {
        let text = render(&args("gw.example.com")).unwrap();
        for line in [
            "server {",
            "    listen 443 ssl;",
            "    listen [::]:443 ssl;",
            "    server_name gw.example.com;",
            "    ssl_certificate     /etc/ssl/certs/gw.example.com.pem;",
            "    ssl_certificate_key /etc/ssl/private/gw.example.com.key;",
            "        proxy_pass https://127.0.0.1:3080;",
            "        proxy_http_version 1.1;",
            "        proxy_set_header Upgrade $http_upgrade;",
            "        proxy_set_header Connection \"upgrade\";",
            "        proxy_set_header Host $host;",
            "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "        proxy_set_header X-Forwarded-Proto https;",
            "        proxy_read_timeout 1h;",
            "        proxy_send_timeout 1h;",
            "        proxy_ssl_verify off;",
            "#   public_addr = [\"gw.example.com:443\"]",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("map "), "no http-level block");
        assert_eq!(text.matches('{').count(), text.matches('}').count());
        // Every directive line ends with ';' or opens/closes a block.
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            assert!(line.ends_with(';') || line.ends_with('{') || line == "}", "{line:?}");
        }
    }

    #[test]
    fn flags_reach_the_block() {
        let mut a = args("gw");
        a.listen = "127.0.0.1:8443".into();
        a.upstream = "10.0.0.5:3080".into();
        a.cert = Some("/etc/nginx/gw.crt".into());
        a.key = Some("/etc/nginx/gw.key".into());
        a.upstream_ca = Some("/var/lib/portcullis/tls_cert.pem".into());
        let text = render(&a).unwrap();
        assert!(text.contains("    listen 127.0.0.1:8443 ssl;\n"));
        assert!(!text.contains("[::]"));
        assert!(text.contains("    ssl_certificate     /etc/nginx/gw.crt;\n"));
        assert!(text.contains("    ssl_certificate_key /etc/nginx/gw.key;\n"));
        assert!(text.contains("proxy_pass https://10.0.0.5:3080;"));
        assert!(
            text.contains("proxy_ssl_name localhost;"),
            "an IP upstream is checked by the name every gateway certificate has"
        );
        a.upstream = "gw-internal.example:3080".into();
        assert!(render(&a).unwrap().contains("proxy_ssl_name gw-internal.example;"));
        assert!(
            text.contains(
                "proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate /var/lib/portcullis/tls_cert.pem;"
            )
        );
        assert!(text.contains("public_addr = [\"gw:8443\"]"));
    }

    #[test]
    fn values_that_would_break_the_config_are_refused() {
        for name in ["", "a b", "gw;evil", "gw{", "$host", "gw\"x"] {
            assert!(render(&args(name)).is_err(), "{name:?}");
        }
        let mut a = args("gw");
        a.upstream = "127.0.0.1".into();
        assert!(render(&a).is_err());
        a.upstream = "127.0.0.1:3080".into();
        a.listen = "https".into();
        assert!(render(&a).is_err());
    }
}
