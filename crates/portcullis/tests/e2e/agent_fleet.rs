//! 200 agents (the real agent code, as tasks in this process) hold tunnels to one gateway at
//! once; the gateway's memory per tunnel is measured from /proc/PID/smaps_rollup and printed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use portcullis_agent::{AgentConfig, ProxySetting};
use portcullis_proto::tunnel::JoinToken;

use crate::support::agents::{apply_roles, me};
use crate::support::gateway::TestGateway;
use crate::support::{ssh_base, text};

const AGENTS: usize = 200;

/// The gateway's process id: the process started with its config file.
fn gateway_pid(gw: &TestGateway) -> u32 {
    let config = gw.dir.path().join("portcullis.toml");
    let wanted = config.to_str().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&&b"start"[..]) && args.contains(&wanted.as_bytes()) {
            return pid;
        }
    }
    panic!("no gateway process for {wanted}");
}

/// `Rss`, `Pss`, `Private_Dirty`, `Anonymous` … of a process, in KiB.
fn memory(pid: u32) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps_rollup");
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let kib = rest.split_whitespace().next()?.parse().ok()?;
            Some((key.to_string(), kib))
        })
        .collect()
}

fn connected(gw: &TestGateway) -> u64 {
    gw.ctl_json(&["status"])[0]["agents"].as_u64().unwrap_or(0)
}

fn wait_connected(gw: &TestGateway, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = connected(gw);
        if now == n {
            return;
        }
        assert!(Instant::now() < deadline, "{now} of {n} agents connected after {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn two_hundred_agents_hold_tunnels_to_one_gateway_at_once() {
    let started = Instant::now();
    // Every agent connects from 127.0.0.1: lift the per-source cap (default 256) above
    // the fleet's tunnels plus their joins.
    let gw = TestGateway::start("max_connections_per_source = 2048", "");
    apply_roles(&gw, &[("fleet", "fleet = \"bench\"")]);
    let key = gw.user_with_key("fleetuser", "fleet");
    let pid = gateway_pid(&gw);
    let minted = Instant::now();
    let tokens: Vec<JoinToken> = (0..AGENTS)
        .map(|_| JoinToken::parse(gw.ctl_ok(&["tokens", "create", "--labels", "fleet=bench"]).trim()).unwrap())
        .collect();
    let minted = minted.elapsed();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let spawn = |i: usize| {
        let mut config = AgentConfig::new(format!("fleet-{i:03}"), gw.dir.path().join(format!("fleet/{i:03}")));
        config.gateway = Some(gw.addr.to_string());
        config.token = Some(tokens[i].clone());
        config.proxy = ProxySetting::Direct;
        config.inventory = false;
        config.reconnect_max = Duration::from_secs(5);
        let mut stopped = stopped.clone();
        runtime.spawn(portcullis_agent::run(config, async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    };
    // Warm up with one tunnel, so the baseline holds what any tunnel needs once (TLS, SSH, pools).
    let mut agents = vec![spawn(0)];
    wait_connected(&gw, 1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(1));
    let base = memory(pid);
    let joining = Instant::now();
    agents.extend((1..AGENTS / 2).map(spawn));
    wait_connected(&gw, (AGENTS / 2) as u64, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(1));
    let half = memory(pid);
    agents.extend((AGENTS / 2..AGENTS).map(spawn));
    wait_connected(&gw, AGENTS as u64, Duration::from_secs(60));
    let joined = joining.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let full = memory(pid);
    assert_eq!(connected(&gw), AGENTS as u64, "all tunnels held at once");

    // Every tunnel is live: sessions through the first, a middle and the last agent.
    for name in ["fleet-000", "fleet-100", "fleet-199"] {
        let out =
            ssh_base(&key, gw.addr.port()).arg(format!("{}@{name}@127.0.0.1", me())).arg("echo up").output().unwrap();
        assert_eq!(text(&out.stdout), "up\n", "{name}: {}", text(&out.stderr));
    }

    let per = |from: &BTreeMap<String, u64>, to: &BTreeMap<String, u64>, key: &str, n: usize| {
        (to[key] as f64 - from[key] as f64) / n as f64
    };
    let tunnels = AGENTS - 1;
    report(format!(
        "fleet: {AGENTS} agents, {AGENTS} tunnels held at once; tokens minted in {minted:.1?}, \
         {tunnels} joins + tunnels in {joined:.1?}; test {:.1?}",
        started.elapsed()
    ));
    report(format!(
        "fleet: gateway pid {pid}: Rss {} -> {} -> {} KiB, Pss {} -> {} -> {} KiB (1, {}, {AGENTS} tunnels)",
        base["Rss"],
        half["Rss"],
        full["Rss"],
        base["Pss"],
        half["Pss"],
        full["Pss"],
        AGENTS / 2
    ));
    report(format!(
        "fleet: gateway memory per tunnel: Rss {:.1} KiB, Pss {:.1} KiB, Anonymous {:.1} KiB (1 -> {AGENTS}); \
         Rss {:.1} KiB ({} -> {AGENTS})",
        per(&base, &full, "Rss", tunnels),
        per(&base, &full, "Pss", tunnels),
        per(&base, &full, "Anonymous", tunnels),
        per(&half, &full, "Rss", AGENTS / 2),
        AGENTS / 2
    ));
    let per_tunnel = per(&base, &full, "Rss", tunnels);
    assert!(per_tunnel < 1024.0, "a tunnel costs the gateway {per_tunnel:.0} KiB: more than 1 MiB");

    stop.send(true).unwrap();
    runtime.block_on(async {
        for agent in agents {
            let result = tokio::time::timeout(Duration::from_secs(20), agent).await.expect("the agent stops");
            result.unwrap().unwrap();
        }
    });
}

/// A line on stderr that the test harness does not capture: the figures show in every run.
fn report(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
