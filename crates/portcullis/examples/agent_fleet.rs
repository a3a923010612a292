//! `bench/agents`' measuring half: N node agents (the real agent library, as tasks in
//! this one process) join one running gateway and hold their tunnels; the gateway's
//! memory is read from `/proc/PID/smaps_rollup` with 1 tunnel, with all N, and after they
//! have idled, and its CPU while they idle. With `--restart`, it then asks for the gateway
//! to be restarted (it creates `DIR/restart-now`; the caller restarts the gateway on the same
//! data dir and writes the new pid to the pid file) and reads the same figures once the
//! whole fleet has reconnected by itself: a gateway's steady state, without the joins'
//! garbage. One JSON object goes to stdout.
//!
//! ```text
//! agent_fleet --gateway 127.0.0.1:PORT --admin-socket DATA/admin.sock --gateway-pid-file FILE \
//!             --agents 10000 --dir /tmp/fleet [--batch 500] [--idle-secs 30] [--label fleet=bench] [--restart]
//! ```
//!
//! Agents join in batches; each batch must be connected (the gateway's `status` counts
//! them) before the next starts, within a bounded wait. Every wait is bounded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use portcullis_agent::{AgentConfig, ProxySetting};
use portcullis_gateway::admin::{Request, Response};
use portcullis_proto::tunnel::JoinToken;

struct Args {
    gateway: String,
    socket: PathBuf,
    pid_file: PathBuf,
    agents: usize,
    restart: bool,
    dir: PathBuf,
    batch: usize,
    idle: Duration,
    labels: BTreeMap<String, String>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        gateway: String::new(),
        socket: PathBuf::new(),
        pid_file: PathBuf::new(),
        agents: 100,
        restart: false,
        dir: PathBuf::new(),
        batch: 500,
        idle: Duration::from_secs(30),
        labels: BTreeMap::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--restart" {
            args.restart = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--gateway" => args.gateway = value,
            "--admin-socket" => args.socket = value.into(),
            "--gateway-pid-file" => args.pid_file = value.into(),
            "--agents" => args.agents = value.parse().context("--agents")?,
            "--dir" => args.dir = value.into(),
            "--batch" => args.batch = value.parse::<usize>().context("--batch")?.max(1),
            "--idle-secs" => args.idle = Duration::from_secs(value.parse().context("--idle-secs")?),
            "--label" => {
                let (k, v) = value.split_once('=').context("--label KEY=VALUE")?;
                args.labels.insert(k.into(), v.into());
            }
            other => bail!("unknown flag {other}"),
        }
    }
    if [&args.socket, &args.pid_file, &args.dir].iter().any(|p| p.as_os_str().is_empty()) || args.gateway.is_empty() {
        bail!("--gateway, --admin-socket, --gateway-pid-file and --dir are required");
    }
    Ok(args)
}

fn admin(socket: &Path, request: &Request) -> anyhow::Result<Response> {
    let mut stream = UnixStream::connect(socket).with_context(|| format!("admin socket {}", socket.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    let response: Response = serde_json::from_str(&answer).context("admin answer")?;
    if !response.ok {
        bail!("admin: {}", response.error.unwrap_or_default());
    }
    Ok(response)
}

fn connected(socket: &Path) -> anyhow::Result<u64> {
    let response = admin(socket, &Request::Status)?;
    Ok(response.rows.first().and_then(|r| r.get("agents")).and_then(|v| v.as_u64()).unwrap_or(0))
}

/// Waits (bounded) until the gateway counts `n` connected agents.
fn wait_connected(socket: &Path, n: u64, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let now = connected(socket)?;
        if now >= n {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!("{now} of {n} agents connected after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `Rss`, `Pss`, `Anonymous` … of a process, in KiB.
fn memory(pid: u32) -> anyhow::Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).context("smaps_rollup")?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            Some((key.to_string(), rest.split_whitespace().next()?.parse().ok()?))
        })
        .collect())
}

/// User + system CPU seconds of a process.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// The gateway's pid, from the file the caller keeps.
fn gateway_pid(file: &Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    text.trim().parse().with_context(|| format!("{}: not a pid", file.display()))
}

/// Memory with all tunnels up, then after `idle` (and the CPU spent meanwhile).
fn settle(args: &Args) -> anyhow::Result<(BTreeMap<String, u64>, BTreeMap<String, u64>, f64)> {
    let pid = gateway_pid(&args.pid_file)?;
    std::thread::sleep(Duration::from_secs(2));
    let full = memory(pid)?;
    let cpu_before = cpu_seconds(pid)?;
    std::thread::sleep(args.idle);
    let cpu_idle = cpu_seconds(pid)? - cpu_before;
    Ok((full, memory(pid)?, cpu_idle))
}

fn kib(m: &BTreeMap<String, u64>) -> serde_json::Value {
    serde_json::json!({ "rss": m["Rss"], "pss": m["Pss"], "anon": m["Anonymous"] })
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    let minting = Instant::now();
    let mut tokens = Vec::with_capacity(args.agents);
    for _ in 0..args.agents {
        let request = Request::TokensCreate { ttl: Some("2h".into()), labels: args.labels.clone() };
        let text = admin(&args.socket, &request)?.text.context("token text")?;
        tokens.push(JoinToken::parse(text.trim()).context("token")?);
    }
    let minted_s = minting.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let spawn = |i: usize, token: JoinToken| {
        let mut config = AgentConfig::new(format!("fleet-{i:05}"), args.dir.join(format!("{i:05}")));
        config.gateway = Some(args.gateway.clone());
        config.token = Some(token);
        config.proxy = ProxySetting::Direct;
        config.inventory = false;
        config.reconnect_max = Duration::from_secs(5);
        let mut stopped = stopped.clone();
        runtime.spawn(portcullis_agent::run(config, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    };
    let mut tokens = tokens.into_iter().enumerate();
    let mut agents = Vec::with_capacity(args.agents);
    // One tunnel first: the baseline holds what any tunnel needs once.
    let (i, token) = tokens.next().context("--agents must be at least 1")?;
    agents.push(spawn(i, token));
    wait_connected(&args.socket, 1, Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(2));
    let base = memory(gateway_pid(&args.pid_file)?)?;
    let joining = Instant::now();
    let mut batches = Vec::new();
    loop {
        let batch: Vec<_> = tokens.by_ref().take(args.batch).collect();
        if batch.is_empty() {
            break;
        }
        let count = batch.len();
        for (i, token) in batch {
            agents.push(spawn(i, token));
        }
        // A batch of 500 joins and tunnels takes a few seconds here; allow a minute a batch.
        let took = wait_connected(&args.socket, agents.len() as u64, Duration::from_secs(60 + count as u64 / 10))?;
        batches.push(took.as_secs_f64());
    }
    let joined_s = joining.elapsed().as_secs_f64();
    let (full, idle, cpu_idle) = settle(&args)?;
    let mut held = connected(&args.socket)?;
    let n = args.agents as f64;
    let per = |m: &BTreeMap<String, u64>, key: &str| (m[key] as f64 - base[key] as f64) / (n - 1.0).max(1.0);
    let mut figures = serde_json::json!({
        "agents": args.agents,
        "connected_after_idle": held,
        "tokens_minted_s": minted_s,
        "joined_s": joined_s,
        "batch_s": batches,
        "gateway_kib": { "one": kib(&base), "all": kib(&full), "idle": kib(&idle) },
        "per_tunnel_kib": { "rss_all": per(&full, "Rss"), "rss_idle": per(&idle, "Rss"), "pss_idle": per(&idle, "Pss") },
        "idle_secs": args.idle.as_secs(),
        "gateway_cpu_idle_s": cpu_idle,
    });
    if args.restart && held == args.agents as u64 {
        let old = gateway_pid(&args.pid_file)?;
        let marker = args.dir.join("restart-now");
        std::fs::write(&marker, b"")?;
        let asked = Instant::now();
        // The caller restarts the gateway; the agents come back by themselves (back-off
        // capped at 5 s). Bounded: two minutes for the restart, then the reconnects.
        while gateway_pid(&args.pid_file).ok().is_none_or(|pid| pid == old) {
            if asked.elapsed() > Duration::from_secs(120) {
                bail!("the gateway was not restarted within 2 minutes");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let mut reconnected = None;
        for _ in 0..600 {
            if connected(&args.socket).is_ok_and(|c| c == args.agents as u64) {
                reconnected = Some(asked.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let reconnected = reconnected.context("the fleet did not reconnect within 5 minutes of the restart")?;
        let (full, idle, cpu_idle) = settle(&args)?;
        held = connected(&args.socket)?;
        figures["restarted"] = serde_json::json!({
            "reconnected_s": reconnected.as_secs_f64(),
            "gateway_kib": { "all": kib(&full), "idle": kib(&idle) },
            "gateway_cpu_idle_s": cpu_idle,
            "connected_after_idle": held,
        });
    }
    figures["wall_s"] = serde_json::json!(started.elapsed().as_secs_f64());
    println!("{figures}");

    stop.send(true)?;
    runtime.block_on(async {
        for agent in agents {
            match tokio::time::timeout(Duration::from_secs(30), agent).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => eprintln!("an agent failed: {e:#}"),
                Ok(Err(e)) => eprintln!("an agent task panicked: {e}"),
                Err(_) => eprintln!("an agent did not stop within 30 s"),
            }
        }
    });
    if held != args.agents as u64 {
        bail!("only {held} of {} tunnels still held after {:?} idle", args.agents, args.idle);
    }
    Ok(())
}
