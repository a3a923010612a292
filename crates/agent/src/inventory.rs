//! Inventory labels the agent reports at its join: the host (name, OS, kernel, CPUs,
//! memory) and, where `nvidia-smi` is on PATH, its GPUs.
//!
//! | label | from | example |
//! |---|---|---|
//! | `host.name` | `/proc/sys/kernel/hostname` | `gpu-07` |
//! | `os` | `/etc/os-release` `PRETTY_NAME` (else `ID VERSION_ID`) | `Debian GNU/Linux 12 (bookworm)` |
//! | `os.id`, `os.version` | `/etc/os-release` `ID`, `VERSION_ID` | `debian`, `12` |
//! | `kernel` | `/proc/sys/kernel/osrelease` (`uname -r`) | `6.1.0-18-amd64` |
//! | `cpu.count` | `/sys/devices/system/cpu/online` | `64` |
//! | `memory_gib` | `/proc/meminfo` `MemTotal`, rounded | `1008` |
//! | `gpu.model` | `nvidia-smi`, the first GPU's name as printed | `NVIDIA H800` |
//! | `gpu.count` | `nvidia-smi`, GPUs listed (by UUID) | `8` |
//! | `gpu.memory_gib` | `nvidia-smi`, the first GPU's memory, rounded | `80` |
//! | `gpu.driver` | `nvidia-smi`, the first GPU's driver version | `535.129.03` |
//!
//! Nothing here can stop the agent: an unreadable file or a missing, failing, hanging
//! (past [`PROBE_TIMEOUT`]) or garbled `nvidia-smi` only leaves its labels out. Values are
//! single-line printable text of at most [`MAX_VALUE`] bytes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// How long `nvidia-smi` may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The query whose output [`parse_gpus`] reads.
pub const QUERY: [&str; 2] = ["--query-gpu=name,memory.total,driver_version,uuid", "--format=csv,noheader,nounits"];
/// Longest label value reported; longer ones are left out.
pub const MAX_VALUE: usize = 128;
/// Most output read from `nvidia-smi` (a GPU line is under 200 bytes).
const MAX_OUTPUT: usize = 256 * 1024;

type Labels = BTreeMap<String, String>;

/// Every inventory label of this machine: [`host`] and [`gpus`].
pub async fn collect() -> Labels {
    let mut labels = tokio::task::spawn_blocking(host).await.unwrap_or_default();
    labels.extend(gpus().await);
    labels
}

/// The host's labels, from `/proc`, `/sys` and `/etc/os-release`; what cannot be read is left out.
pub fn host() -> Labels {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let mut labels = Labels::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value.as_deref().and_then(clean) {
            labels.insert(key.to_string(), value.to_string());
        }
    };
    let hostname = read("/proc/sys/kernel/hostname").or_else(|| read("/etc/hostname"));
    put("host.name", hostname);
    if let Some(os) = read("/etc/os-release").or_else(|| read("/usr/lib/os-release")).map(|t| parse_os_release(&t)) {
        put("os", os.pretty);
        put("os.id", os.id);
        put("os.version", os.version);
    }
    put("kernel", read("/proc/sys/kernel/osrelease"));
    let cpus = read("/sys/devices/system/cpu/online")
        .and_then(|t| parse_cpu_list(&t))
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from));
    put("cpu.count", cpus.map(|n| n.to_string()));
    put("memory_gib", read("/proc/meminfo").and_then(|t| parse_meminfo(&t)).map(|g| g.to_string()));
    labels
}

/// What `/etc/os-release` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// `PRETTY_NAME`, else `ID VERSION_ID`, else `NAME`.
    pub pretty: Option<String>,
    /// `ID`.
    pub id: Option<String>,
    /// `VERSION_ID`.
    pub version: Option<String>,
}

/// Reads `/etc/os-release` (shell-style `KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut fields = BTreeMap::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else { continue };
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|&q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)))
            .unwrap_or(value)
            .replace("\\\"", "\"")
            .replace("\\\\", "\\");
        if !unquoted.is_empty() {
            fields.insert(key.trim().to_string(), unquoted);
        }
    }
    let id = fields.get("ID").cloned();
    let version = fields.get("VERSION_ID").cloned();
    let pretty = fields.get("PRETTY_NAME").cloned().or_else(|| match (&id, &version) {
        (Some(id), Some(version)) => Some(format!("{id} {version}")),
        (Some(id), None) => Some(id.clone()),
        _ => fields.get("NAME").cloned(),
    });
    OsRelease { pretty, id, version }
}

/// `MemTotal` of `/proc/meminfo` in GiB, rounded to the nearest (at least 1).
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let mut parts = line.split_whitespace();
    let kib: u64 = parts.next()?.parse().ok()?;
    if !matches!(parts.next(), Some("kB") | None) || kib == 0 {
        return None;
    }
    Some(((kib + (1 << 19)) >> 20).max(1))
}

/// How many CPUs a kernel CPU list (`0-63`, `0,2-5`) names.
pub fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut count = 0usize;
    for part in text.trim().split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<usize>().ok()?, b.trim().parse::<usize>().ok()?),
            None => {
                let n = part.trim().parse::<usize>().ok()?;
                (n, n)
            }
        };
        count = count.checked_add(last.checked_sub(first)? + 1)?;
    }
    (count > 0).then_some(count)
}

/// A label value as reported: trimmed, printable, one line, at most [`MAX_VALUE`] bytes; else `None`.
pub fn clean(value: &str) -> Option<&str> {
    let value = value.trim();
    let ok = !value.is_empty() && value.len() <= MAX_VALUE && value.chars().all(|c| !c.is_control());
    ok.then_some(value)
}

/// Labels `gpu.model`, `gpu.count`, `gpu.memory_gib`, `gpu.driver` from the CSV output of
/// [`QUERY`] (`name, memory MiB, driver, uuid` per line); empty when no line parses. Model,
/// memory and driver are the first GPU's; a UUID listed twice counts once.
pub fn parse_gpus(csv: &str) -> Labels {
    let mut seen = BTreeSet::new();
    let gpus: Vec<(&str, u64, &str)> = csv
        .lines()
        .filter_map(|line| {
            // The name may itself contain commas; the last three fields never do.
            let mut fields = line.trim().rsplitn(4, ',').map(str::trim);
            let (uuid, driver, memory, name) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            let memory = memory.parse::<u64>().ok()?;
            let plausible = |s: &str| clean(s).is_some_and(|s| !s.starts_with('['));
            let uuid_ok = uuid.starts_with("GPU-") || uuid.starts_with("MIG-");
            (plausible(name) && plausible(driver) && uuid_ok && seen.insert(uuid)).then_some((name, memory, driver))
        })
        .collect();
    let mut labels = Labels::new();
    if let Some(&(name, memory_mib, driver)) = gpus.first() {
        labels.insert("gpu.model".to_string(), name.to_string());
        labels.insert("gpu.count".to_string(), gpus.len().to_string());
        labels.insert("gpu.memory_gib".to_string(), ((memory_mib + 512) / 1024).to_string());
        labels.insert("gpu.driver".to_string(), driver.to_string());
    }
    labels
}

/// GPU labels from the `nvidia-smi` on PATH; none when it is missing, fails, hangs or prints garbage.
pub async fn gpus() -> Labels {
    gpus_from(Path::new("nvidia-smi"), PROBE_TIMEOUT).await
}

/// Spawns `command`, trying again a few times while its program is busy being written
/// (ETXTBSY: a driver upgrade replacing nvidia-smi, or any process forked while another held
/// the file open for writing, which keeps it open until that child's exec).
async fn spawn(command: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    const TRIES: u32 = 5;
    let mut tries = 1;
    loop {
        match command.spawn() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < TRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

/// GPU labels from running `program` with [`QUERY`], waiting at most `timeout`.
pub async fn gpus_from(program: &Path, timeout: Duration) -> Labels {
    use tokio::io::AsyncReadExt;
    let mut command = tokio::process::Command::new(program);
    command
        .args(QUERY)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match spawn(&mut command).await {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Labels::new(),
        Err(err) => {
            tracing::info!(%err, "cannot run nvidia-smi; no GPU labels");
            return Labels::new();
        }
    };
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let run = async {
        let mut out = Vec::new();
        (&mut stdout).take(MAX_OUTPUT as u64).read_to_end(&mut out).await?;
        let status = child.wait().await?;
        std::io::Result::Ok((status, out))
    };
    let result = tokio::time::timeout(timeout, run).await;
    match result {
        Ok(Ok((status, out))) if status.success() => {
            let labels = parse_gpus(&String::from_utf8_lossy(&out));
            if labels.is_empty() {
                tracing::info!("nvidia-smi listed no GPU this agent understands; no GPU labels");
            }
            labels
        }
        Ok(Ok((status, _))) => {
            tracing::info!(%status, "nvidia-smi failed; no GPU labels");
            Labels::new()
        }
        Ok(Err(err)) => {
            tracing::info!(%err, "reading nvidia-smi failed; no GPU labels");
            Labels::new()
        }
        Err(_) => {
            tracing::warn!("nvidia-smi timed out after {timeout:?}; no GPU labels");
            // Its whole process group: a wrapper script's children go too.
            if let Some(pid) = child.id() {
                let _ = crate::unix::signal_group(pid, libc::SIGKILL);
            }
            let _ = child.start_kill();
            Labels::new()
        }
    }
}

#[cfg(test)]
mod tests;
