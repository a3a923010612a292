//! portcullis: an access gateway for GPU clusters, in one binary.
#![deny(unsafe_code)]

mod agent;
mod config_nginx;
mod ctl;
mod demo;
mod doctor;
mod paths;
mod play;
mod start;
mod trim;

use clap::{Parser, Subcommand};

/// Access gateway for GPU clusters: SSH and web terminals to nodes, recorded and audited, on one port.
#[derive(Parser)]
#[command(name = "portcullis", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Start(start::Args),
    /// Administer a running gateway over its local admin socket.
    Ctl(ctl::Args),
    /// Run the node agent: dial out to the gateway, join once, then serve sessions over the tunnel.
    Agent(agent::Args),
    /// Print configuration for what runs around the gateway (nginx in front).
    Config(config_nginx::Args),
    /// Check exposure and setup (listeners, admin socket, TLS, nodes, recordings, Docker); exits 1 on findings.
    Doctor(doctor::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,russh=warn,sqlx=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let result = match cli.command {
        Command::Start(args) => start::run(args),
        Command::Ctl(args) => ctl::run(args),
        Command::Agent(args) => agent::run(args),
        Command::Config(args) => config_nginx::run(args),
        Command::Doctor(args) => doctor::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
