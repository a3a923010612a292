use std::path::PathBuf;
use std::time::Instant;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The nvidia-smi stand-in (and its recorded output), copied to a temporary directory so its
/// mode does not depend on the checkout; `mode` picks a misbehaviour.
fn stand_in(dir: &Path, mode: Option<&str>) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    for name in ["nvidia-smi", "nvidia-smi-h800x8.csv"] {
        std::fs::copy(fixtures().join(name), dir.join(name)).unwrap();
    }
    let script = match mode {
        None => dir.join("nvidia-smi"),
        Some(mode) => {
            let wrapper = dir.join(format!("nvidia-smi-{mode}"));
            let text = format!("#!/bin/sh\nNVIDIA_SMI_MODE={mode} exec {:?} \"$@\"\n", dir.join("nvidia-smi"));
            std::fs::write(&wrapper, text).unwrap();
            wrapper
        }
    };
    for path in [dir.join("nvidia-smi"), script.clone()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    script
}

#[test]
fn one_gpu() {
    let csv = "NVIDIA H100 80GB HBM3, 81559, 550.54.15, GPU-5d3c1b2a-0000-1111-2222-333344445555\n";
    assert_eq!(
        parse_gpus(csv),
        labels(&[
            ("gpu.count", "1"),
            ("gpu.driver", "550.54.15"),
            ("gpu.memory_gib", "80"),
            ("gpu.model", "NVIDIA H100 80GB HBM3"),
        ])
    );
}

#[test]
fn the_recorded_h800_machine() {
    let csv = std::fs::read_to_string(fixtures().join("nvidia-smi-h800x8.csv")).unwrap();
    assert_eq!(
        parse_gpus(&csv),
        labels(&[
            ("gpu.count", "8"),
            ("gpu.driver", "535.129.03"),
            ("gpu.memory_gib", "80"),
            ("gpu.model", "NVIDIA H800"),
        ])
    );
}

#[test]
fn rounding_odd_names_and_repeated_uuids() {
    let parsed = parse_gpus("  Tesla V100-SXM2-16GB , 16160 , 470.57.02 , GPU-a  \r\n");
    assert_eq!(parsed["gpu.model"], "Tesla V100-SXM2-16GB");
    assert_eq!(parsed["gpu.memory_gib"], "16");
    assert_eq!(parse_gpus("Weird, Inc. GPU, 1536, 1.0, GPU-a")["gpu.model"], "Weird, Inc. GPU");
    assert_eq!(parse_gpus("Small, 1535, 1.0, GPU-a")["gpu.memory_gib"], "1");
    assert_eq!(parse_gpus("Small, 1536, 1.0, GPU-a")["gpu.memory_gib"], "2");
    assert_eq!(parse_gpus("A100, 40960, 525.1, GPU-a\nA100, 40960, 525.1, GPU-a\n")["gpu.count"], "1");
    assert_eq!(parse_gpus("A100, 40960, 525.1, MIG-a\nA100, 40960, 525.1, MIG-b\n")["gpu.count"], "2");
}

#[test]
fn empty_and_garbage_give_no_gpu_labels() {
    for garbage in [
        "",
        "\n\n",
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
        "name, memory.total [MiB], driver_version, uuid",
        "GPU, [N/A], 550.1, GPU-a",
        ", 1024, 550.1, GPU-a",
        "A100, 40960, [N/A], GPU-a",
        "A100, 40960, 525.1",
        "A100, 40960, 525.1, not-a-uuid",
        "A1\u{1b}[31m00, 40960, 525.1, GPU-a",
        "\u{fffd}\u{fffd}, 1, 2, 3",
    ] {
        assert!(parse_gpus(garbage).is_empty(), "{garbage:?}");
    }
    let long = format!("{}, 1024, 550.1, GPU-a", "X".repeat(MAX_VALUE + 1));
    assert!(parse_gpus(&long).is_empty());
}

#[test]
fn garbage_lines_between_gpus_are_skipped() {
    let parsed = parse_gpus("A100, 40960, 525.1, GPU-a\nwarning: something\nA100, 40960, 525.1, GPU-b\n");
    assert_eq!(parsed["gpu.count"], "2");
    assert_eq!(parsed["gpu.memory_gib"], "40");
}

#[test]
fn os_release() {
    let debian =
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";
    assert_eq!(
        parse_os_release(debian),
        OsRelease {
            pretty: Some("Debian GNU/Linux 12 (bookworm)".into()),
            id: Some("debian".into()),
            version: Some("12".into())
        }
    );
    let bare = "# no pretty name\nID='rocky'\nVERSION_ID=9.3\n";
    assert_eq!(parse_os_release(bare).pretty.as_deref(), Some("rocky 9.3"));
    assert_eq!(parse_os_release("NAME=Linux\n").pretty.as_deref(), Some("Linux"));
    assert_eq!(parse_os_release("garbage\n\0\n"), OsRelease::default());
}

#[test]
fn meminfo_and_cpu_lists() {
    assert_eq!(parse_meminfo("MemTotal:       1056561176 kB\nMemFree: 1 kB\n"), Some(1008));
    assert_eq!(parse_meminfo("MemTotal: 16303428 kB\n"), Some(16));
    assert_eq!(parse_meminfo("MemTotal: 1000 kB\n"), Some(1));
    assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
    assert_eq!(parse_meminfo("MemTotal: lots\n"), None);
    assert_eq!(parse_cpu_list("0-63\n"), Some(64));
    assert_eq!(parse_cpu_list("0,2-5,7"), Some(6));
    assert_eq!(parse_cpu_list("0"), Some(1));
    assert_eq!(parse_cpu_list(""), None);
    assert_eq!(parse_cpu_list("5-2"), None);
}

#[test]
fn this_hosts_labels() {
    let host = host();
    for key in ["host.name", "kernel", "cpu.count", "memory_gib"] {
        assert!(host.get(key).is_some_and(|v| clean(v) == Some(v.as_str())), "{key} in {host:?}");
    }
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(host["kernel"], kernel.trim());
    assert!(host["cpu.count"].parse::<usize>().unwrap() >= 1);
    assert!(host["memory_gib"].parse::<u64>().unwrap() >= 1);
    if Path::new("/etc/os-release").exists() {
        assert!(host.contains_key("os"), "{host:?}");
    }
}

#[tokio::test]
async fn nvidia_smi_on_an_h800_machine() {
    let dir = tempfile::tempdir().unwrap();
    let gpus = gpus_from(&stand_in(dir.path(), None), PROBE_TIMEOUT).await;
    assert_eq!(gpus["gpu.model"], "NVIDIA H800");
    assert_eq!(gpus["gpu.count"], "8");
}

#[tokio::test]
async fn a_missing_failing_garbled_or_hanging_nvidia_smi_gives_no_gpu_labels() {
    let dir = tempfile::tempdir().unwrap();
    assert!(gpus_from(&dir.path().join("no-such-nvidia-smi"), PROBE_TIMEOUT).await.is_empty());
    assert!(gpus_from(dir.path(), PROBE_TIMEOUT).await.is_empty(), "a directory is not a program");
    assert!(gpus_from(&stand_in(dir.path(), Some("fail")), PROBE_TIMEOUT).await.is_empty());
    assert!(gpus_from(&stand_in(dir.path(), Some("garbage")), PROBE_TIMEOUT).await.is_empty());
    let started = Instant::now();
    let hanging = stand_in(dir.path(), Some("hang"));
    assert!(gpus_from(&hanging, Duration::from_millis(500)).await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
