//! `kubectl top node` and `kubectl top pod` for a wasmlet node, through the
//! real metrics-server (v0.8.0, built from Go modules) behind the test
//! bed's aggregation layer.

use std::time::{Duration, Instant};

use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, testbed, tool_bin_dir};

/// metrics-server scrapes every 10 s and needs two scrapes for a CPU rate.
const TOP_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `kubectl top ...` until a line starting with `name` shows up with
/// parseable CPU (millicores) and memory (Mi) columns; those two figures.
async fn top_row(args: &[&str], name: &str, node: &WasmletNode) -> (u64, u64) {
    let deadline = Instant::now() + TOP_TIMEOUT;
    loop {
        let out = pods::kubectl(args).await;
        let last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success()
            && let Some(row) = last.lines().find(|l| l.split_whitespace().next() == Some(name))
        {
            let cols: Vec<&str> = row.split_whitespace().collect();
            let cpu = cols[1].strip_suffix('m').and_then(|c| c.parse().ok());
            let mem = cols[if args.contains(&"node") { 3 } else { 2 }].strip_suffix("Mi").and_then(|m| m.parse().ok());
            if let (Some(cpu), Some(mem)) = (cpu, mem) {
                return (cpu, mem);
            }
            panic!("kubectl {args:?}: unexpected row {row:?}");
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?} never listed {name} within {TOP_TIMEOUT:?}; last output:\n{last}\n---- metrics-server ----\n{}\n---- wasmlet ----\n{}",
            wasmlet_testbed::process::log_tail(testbed().await.dir(), wasmlet_testbed::metrics_server::COMPONENT, 30),
            node.log_tail(30)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn kubectl_top_shows_a_wasmlet_node_and_its_pods() {
    let tb = testbed().await;
    let bin = tool_bin_dir("tools/metrics-server/build.sh");
    tb.ensure_metrics_server(&bin).await.unwrap_or_else(|e| panic!("starting metrics-server: {e}"));

    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "top").await;
    let ns = Namespace::create(&admin_client().await, "top").await;
    let image = fixture_image("forever").await;
    pods::create(&ns, pods::bare("idle", &node.name, &image, &[], "Always")).await;
    pods::wait_for(&ns.api(), "idle", POD_TIMEOUT, || node.log_tail(40), |p| pods::phase(p) == "Running").await;

    let (cpu, mem) = top_row(&["top", "node", &node.name], &node.name, &node).await;
    assert!(mem > 0, "node memory {mem}Mi");
    // The node's CPU is the host's: some use, never more than all its cores.
    let cores = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
    assert!(cpu <= cores * 1000, "node CPU {cpu}m on {cores} cores");

    let (_, pod_mem) = top_row(&["top", "pod", "-n", ns.name(), "idle"], "idle", &node).await;
    // An idle guest: its linear memory and stacks, well under a MiB rounded.
    assert!(pod_mem <= 64, "pod memory {pod_mem}Mi");
}
