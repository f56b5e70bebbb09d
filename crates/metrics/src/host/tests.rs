//! The `/proc` parsers on captured text, and the readers on this host.

use super::*;

const STAT: &str = "cpu  1000 20 300 50000 40 5 6 7 0 0\n\
                    cpu0 500 10 150 25000 20 2 3 3 0 0\n\
                    intr 12345\nbtime 1790000000\nprocesses 99\n";

#[test]
fn host_cpu_is_busy_time() {
    // user + nice + system + irq + softirq = 1331 ticks of 10 ms.
    assert_eq!(host_cpu_nanos(STAT).unwrap(), 13_310_000_000);
    assert!(host_cpu_nanos("cpu  1 2\n").is_err());
    assert!(host_cpu_nanos("intr 1\n").is_err());
}

#[test]
fn boot_time_is_btime() {
    assert_eq!(boot_time(STAT).unwrap(), UNIX_EPOCH + Duration::from_secs(1_790_000_000));
    assert!(boot_time("cpu 1\n").is_err());
}

#[test]
fn process_stat_survives_odd_command_names() {
    let stat = "4242 (my (odd) agent) S 1 4242 4242 0 -1 4194560 \
                1500 0 3 0 250 50 0 0 20 0 12 0 98765 1000000 2000 18446744073709551615";
    // minflt (10), majflt (12), utime (14) + stime (15), starttime (22).
    assert_eq!(process_stat(stat).unwrap(), (1500, 3, 300, 98765));
    assert!(process_stat("4242 (x) S 1").is_err());
}

#[test]
fn meminfo_fields_are_bytes() {
    let meminfo = "MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nHugePages_Total:       4\n";
    assert_eq!(kb_field(meminfo, "MemTotal"), Some(24_576_000 * 1024));
    assert_eq!(kb_field(meminfo, "MemAvailable"), Some(20_000_000 * 1024));
    assert_eq!(kb_field(meminfo, "HugePages_Total"), Some(4));
    assert_eq!(kb_field(meminfo, "Mem"), None);
}

/// On this (Linux) machine every figure is there and plausible.
#[test]
fn this_host_has_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let node = node_sample("wasm-1", dir.path());
    assert_eq!(node.name, "wasm-1");
    assert!(node.start_time > UNIX_EPOCH && node.start_time < SystemTime::now());
    assert!(node.cpu.unwrap().usage_core_nanos > 0);
    let memory = node.memory.unwrap();
    assert!(memory.working_set_bytes.unwrap() > 0 && memory.available_bytes.unwrap() > 0);
    let fs = node.fs.unwrap();
    assert!(fs.capacity_bytes.unwrap() >= fs.used_bytes.unwrap());
    let agent = node.agent.unwrap();
    assert!(agent.start_time >= node.start_time && agent.start_time <= SystemTime::now());
    assert!(agent.memory.working_set_bytes.unwrap() > 1 << 20);
}
