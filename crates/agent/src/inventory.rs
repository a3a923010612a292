//! GPU inventory labels from `nvidia-smi`.

use std::collections::BTreeMap;
use std::time::Duration;

/// How long `nvidia-smi` may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The query whose output [`parse`] reads.
pub const QUERY: [&str; 2] = ["--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"];

/// Labels `gpu.model`, `gpu.count`, `gpu.memory_gib`, `gpu.driver` from the CSV output of [`QUERY`];
/// empty when no line parses. Model, memory and driver are the first GPU's.
pub fn parse(csv: &str) -> BTreeMap<String, String> {
    let gpus: Vec<(&str, u64, &str)> = csv
        .lines()
        .filter_map(|line| {
            // The name may itself contain commas; the last two fields never do.
            let mut fields = line.trim().rsplitn(3, ',').map(str::trim);
            let (driver, memory, name) = (fields.next()?, fields.next()?, fields.next()?);
            let memory = memory.parse::<u64>().ok()?;
            let plausible = |s: &str| !s.is_empty() && !s.starts_with('[');
            (plausible(name) && plausible(driver)).then_some((name, memory, driver))
        })
        .collect();
    let mut labels = BTreeMap::new();
    if let Some(&(name, memory_mib, driver)) = gpus.first() {
        labels.insert("gpu.model".to_string(), name.to_string());
        labels.insert("gpu.count".to_string(), gpus.len().to_string());
        labels.insert("gpu.memory_gib".to_string(), ((memory_mib + 512) / 1024).to_string());
        labels.insert("gpu.driver".to_string(), driver.to_string());
    }
    labels
}

/// Runs `nvidia-smi`; no binary, a failure or a timeout give no labels.
pub async fn probe() -> BTreeMap<String, String> {
    let mut command = tokio::process::Command::new("nvidia-smi");
    command.args(QUERY).stdin(std::process::Stdio::null()).stderr(std::process::Stdio::null()).kill_on_drop(true);
    match tokio::time::timeout(PROBE_TIMEOUT, command.output()).await {
        Ok(Ok(output)) if output.status.success() => parse(&String::from_utf8_lossy(&output.stdout)),
        Ok(Ok(output)) => {
            tracing::info!(status = %output.status, "nvidia-smi failed; no GPU labels");
            BTreeMap::new()
        }
        Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Ok(Err(err)) => {
            tracing::info!(%err, "cannot run nvidia-smi; no GPU labels");
            BTreeMap::new()
        }
        Err(_) => {
            tracing::warn!("nvidia-smi timed out after {PROBE_TIMEOUT:?}; no GPU labels");
            BTreeMap::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn one_gpu() {
        let csv = "NVIDIA H100 80GB HBM3, 81559, 550.54.15\n";
        assert_eq!(
            parse(csv),
            labels(&[
                ("gpu.count", "1"),
                ("gpu.driver", "550.54.15"),
                ("gpu.memory_gib", "80"),
                ("gpu.model", "NVIDIA H100 80GB HBM3"),
            ])
        );
    }

    #[test]
    fn eight_gpus() {
        let csv = "NVIDIA H800, 81559, 535.129.03\n".repeat(8);
        let parsed = parse(&csv);
        assert_eq!(parsed["gpu.count"], "8");
        assert_eq!(parsed["gpu.model"], "NVIDIA H800");
        assert_eq!(parsed["gpu.memory_gib"], "80");
        assert_eq!(parsed["gpu.driver"], "535.129.03");
    }

    #[test]
    fn rounding_and_odd_names() {
        let parsed = parse("  Tesla V100-SXM2-16GB , 16160 , 470.57.02  \r\n");
        assert_eq!(parsed["gpu.model"], "Tesla V100-SXM2-16GB");
        assert_eq!(parsed["gpu.memory_gib"], "16");
        assert_eq!(parse("Weird, Inc. GPU, 1536, 1.0")["gpu.model"], "Weird, Inc. GPU");
        assert_eq!(parse("Small, 1535, 1.0")["gpu.memory_gib"], "1");
        assert_eq!(parse("Small, 1536, 1.0")["gpu.memory_gib"], "2");
    }

    #[test]
    fn empty_and_garbage_give_no_labels() {
        assert!(parse("").is_empty());
        assert!(parse("\n\n").is_empty());
        assert!(parse("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.").is_empty());
        assert!(parse("name, memory.total [MiB], driver_version").is_empty());
        assert!(parse("GPU, [N/A], 550.1").is_empty());
        assert!(parse(", 1024, 550.1").is_empty());
    }

    #[test]
    fn garbage_lines_between_gpus_are_skipped() {
        let parsed = parse("A100, 40960, 525.1\nwarning: something\nA100, 40960, 525.1\n");
        assert_eq!(parsed["gpu.count"], "2");
        assert_eq!(parsed["gpu.memory_gib"], "40");
    }
}
