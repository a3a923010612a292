//! `portcullis doctor`: checks exposure and setup of a gateway, from its config and the live system.
//!
//! Facts are gathered first (files, the database, sockets, `iptables`); the checks are pure
//! functions from those facts to results, so every verdict is unit-tested on recorded facts.

mod certificate;
mod checks;
mod docker;
mod facts;

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::paths::Location;

/// Arguments of `doctor`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    location: Location,
    /// Print a JSON array of `{check, status, detail, fix}` objects instead of lines.
    #[arg(long)]
    json: bool,
}

/// What a check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Checked; nothing to fix.
    Ok,
    /// Something to fix; `fix` says how.
    Finding,
    /// Could not be checked here (the reason is in `detail`).
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable name of the check (`listen.exposure`, `node.gpu-01`, ...).
    pub check: String,
    /// The verdict.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// For a finding, what to do about it.
    pub fix: Option<String>,
}

impl Check {
    /// A passed check.
    pub fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Ok, detail: detail.into(), fix: None }
    }

    /// A finding and its fix.
    pub fn finding(check: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Finding, detail: detail.into(), fix: Some(fix.into()) }
    }

    /// A check that could not be made, and why.
    pub fn skipped(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { check: check.into(), status: Status::Skipped, detail: detail.into(), fix: None }
    }
}

/// Runs every check and prints the report; the exit status is 1 when anything was found.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.location.config()?;
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let facts = runtime.block_on(facts::gather(&config));
    let report = checks::all(&config, &facts);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    let found = report.iter().any(|c| c.status == Status::Finding);
    Ok(if found { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The human report: one line per check, each finding's fix indented under it, a summary last.
fn render(report: &[Check]) -> String {
    let width = report.iter().map(|c| c.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in report {
        let status = match c.status {
            Status::Ok => "ok",
            Status::Finding => "FINDING",
            Status::Skipped => "skipped",
        };
        out.push_str(&format!("{status:<8} {:<width$}  {}\n", c.check, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{:<8} {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    let count = |s: Status| report.iter().filter(|c| c.status == s).count();
    let findings = count(Status::Finding);
    out.push_str(&format!(
        "{findings} finding{}, {} ok, {} not checked\n",
        if findings == 1 { "" } else { "s" },
        count(Status::Ok),
        count(Status::Skipped)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_aligns_and_puts_the_fix_under_its_finding() {
        let report = vec![
            Check::ok("listen.exposure", "loopback only"),
            Check::finding("admin.socket", "mode 0666", "chmod 600 admin.sock"),
            Check::skipped("docker.firewall", "iptables not found"),
        ];
        let text = render(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ok       listen.exposure  loopback only");
        assert_eq!(lines[1], "FINDING  admin.socket     mode 0666");
        assert_eq!(lines[2], "                          fix: chmod 600 admin.sock");
        assert_eq!(lines[3], "skipped  docker.firewall  iptables not found");
        assert_eq!(lines[4], "1 finding, 1 ok, 1 not checked");
    }

    #[test]
    fn json_has_the_four_fields() {
        let value = serde_json::to_value(vec![Check::finding("a", "b", "c"), Check::ok("d", "e")]).unwrap();
        assert_eq!(value[0], serde_json::json!({"check": "a", "status": "finding", "detail": "b", "fix": "c"}));
        assert_eq!(value[1]["fix"], serde_json::Value::Null);
        assert_eq!(value[1]["status"], "ok");
    }
}
