//! `portcullis start`: run the gateway.

use std::process::ExitCode;

use anyhow::Context;
use portcullis_gateway::Gateway;

use crate::paths::Location;

/// Arguments of `start`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    location: Location,
    /// Also run a local node `demo` (an in-process agent serving shells as the current user).
    #[arg(long)]
    demo: bool,
}

/// Runs the gateway until SIGINT or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.location.config()?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let gateway = Gateway::open(config).await?;
        let (tcp, unix) = gateway.bind().await?;
        let local = tcp.local_addr()?;
        let _ = gateway.local_addr.set(local);
        println!("web: {}/", gateway.base_url());
        println!("ssh: ssh -p {} LOGIN@NODE@{}", local.port(), local.ip());
        println!("admin socket: {}", gateway.admin_socket().display());
        if let Some(url) = gateway.setup_url() {
            println!("first start: set up the admin account within 24h at {url}");
        }
        if args.demo {
            let login = crate::demo::start(gateway.clone(), local).await?;
            println!(
                "demo node: `portcullis ctl users add me --roles {role}` and `portcullis ctl users add-key me --key-file ~/.ssh/id_ed25519.pub`, then `ssh -p {port} {login}@{node}@127.0.0.1`",
                role = crate::demo::ROLE,
                port = local.port(),
                node = crate::demo::NODE,
            );
        }
        // Printed last: scripts and tests wait for this line.
        println!("portcullis listening on {local}");
        crate::trim::spawn_periodic();
        let signals = gateway.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            signals.shutdown();
        });
        gateway.run(tcp, unix).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
