//! The `/stats/summary` payload: field names exactly as `stats/v1alpha1`,
//! what `only_cpu_and_memory` leaves out, and the CPU rates.

use serde_json::{Value, json};
use wasmlet_metrics::{Config, Stats, Summary};

use crate::Fake;

const MI: u64 = 1 << 20;

fn config() -> Config {
    Config { pod_overhead_bytes: 64 << 10, container_overhead_bytes: 256 << 10, ..Config::default() }
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[test]
fn summary_has_the_kubelet_shape() {
    let stats = Stats::new(config());
    let summary = stats.summary(&Fake::standard(), false);
    let json = serde_json::to_value(&summary).unwrap();
    assert_eq!(keys(&json), ["node", "pods"]);
    let node = &json["node"];
    assert_eq!(keys(node), ["cpu", "fs", "memory", "nodeName", "startTime", "systemContainers"]);
    assert_eq!(node["nodeName"], "wasm-1");
    assert_eq!(node["startTime"], "2027-01-14T08:00:00Z");
    // The first reading has no rate yet.
    assert_eq!(node["cpu"], json!({"time": "2027-01-15T08:00:00Z", "usageCoreNanoSeconds": 6_197_005_020_909_u64}));
    assert_eq!(
        node["memory"],
        json!({
            "time": "2027-01-15T08:00:00Z",
            "availableBytes": 20_u64 << 30,
            "usageBytes": 5_u64 << 30,
            "workingSetBytes": 1_137_475_584_u64,
            "pageFaults": 1000,
            "majorPageFaults": 3
        })
    );
    assert_eq!(
        keys(&node["fs"]),
        ["availableBytes", "capacityBytes", "inodes", "inodesFree", "inodesUsed", "time", "usedBytes"]
    );
    let kubelet = &node["systemContainers"][0];
    assert_eq!(keys(kubelet), ["cpu", "memory", "name", "startTime"]);
    assert_eq!(kubelet["name"], "kubelet");
    assert_eq!(
        kubelet["memory"],
        json!({"time": "2027-01-15T08:00:00Z", "workingSetBytes": 50 * MI, "rssBytes": 50 * MI})
    );

    let web = &json["pods"][0];
    assert_eq!(keys(web), ["containers", "cpu", "memory", "podRef", "startTime", "volume"]);
    // A CSI volume's NodeGetVolumeStats figures: FsStats inline, the name,
    // the claim and the driver's condition.
    assert_eq!(
        web["volume"],
        json!([{
            "time": "2027-01-15T07:59:55Z",
            "availableBytes": 900 * MI,
            "capacityBytes": 1024 * MI,
            "usedBytes": 124 * MI,
            "inodesFree": 1000,
            "inodes": 1024,
            "inodesUsed": 24,
            "name": "data",
            "pvcRef": {"name": "data-web-0", "namespace": "demo"},
            "volumeHealthStats": {"abnormal": false}
        }])
    );
    assert_eq!(web["podRef"], json!({"name": "web-0", "namespace": "demo", "uid": "uid-web"}));
    assert_eq!(web["startTime"], "2027-01-15T07:59:29Z");
    assert_eq!(web["cpu"]["usageCoreNanoSeconds"], 2_000_000_000_u64);
    // 16 MiB + 1 MiB of guests, 64 KiB for the pod, 256 KiB for its one running container.
    let pod_memory = 17 * MI + (64 << 10) + (256 << 10);
    for field in ["usageBytes", "workingSetBytes", "rssBytes"] {
        assert_eq!(web["memory"][field], pod_memory, "{field}");
    }
    let app = &web["containers"][0];
    assert_eq!(keys(app), ["cpu", "memory", "name", "startTime"]);
    assert_eq!(app["name"], "app");
    assert_eq!(app["startTime"], "2027-01-15T07:59:30Z");
    assert_eq!(
        app["memory"],
        json!({
            "time": "2027-01-15T08:00:00Z",
            "availableBytes": 48 * MI,
            "usageBytes": 16 * MI,
            "workingSetBytes": 16 * MI,
            "rssBytes": 16 * MI
        })
    );
    // A pod with no container started yet: an empty list, no totals.
    let pending = &json["pods"][1];
    assert_eq!(keys(pending), ["containers", "podRef", "startTime"]);
    assert_eq!(pending["containers"], json!([]));

    // And it reads back into the same types.
    let back: Summary = serde_json::from_value(json).unwrap();
    assert_eq!(back, summary);
}

#[test]
fn only_cpu_and_memory_leaves_out_filesystems() {
    let fake = Fake::standard();
    {
        let mut node = fake.node.lock().unwrap();
        node.image_fs = node.fs;
    }
    let stats = Stats::new(config());
    let full = serde_json::to_value(stats.summary(&fake, false)).unwrap();
    assert_eq!(keys(&full["node"]["runtime"]), ["imageFs"]);
    let json = serde_json::to_value(stats.summary(&fake, true)).unwrap();
    assert_eq!(keys(&json["node"]), ["cpu", "memory", "nodeName", "startTime", "systemContainers"]);
    assert_eq!(keys(&json["pods"][0]), ["containers", "cpu", "memory", "podRef", "startTime"]);
    assert_eq!(keys(&json["pods"][0]["containers"][0]), ["cpu", "memory", "name", "startTime"]);
}

#[test]
fn usage_nano_cores_is_the_rate_between_scrapes() {
    let fake = Fake::standard();
    let stats = Stats::new(config());
    let rate = |summary: &Summary| {
        (
            summary.node.cpu.as_ref().unwrap().usage_nano_cores,
            summary.pods[0].cpu.as_ref().unwrap().usage_nano_cores,
            summary.pods[0].containers[0].cpu.as_ref().unwrap().usage_nano_cores,
        )
    };
    assert_eq!(rate(&stats.summary(&fake, false)), (None, None, None));
    // 5 s later, each counter 2.5 s further: half a core each, one core for
    // the pod's two containers.
    fake.advance(5.0, 2_500_000_000);
    assert_eq!(rate(&stats.summary(&fake, true)), (Some(500_000_000), Some(1_000_000_000), Some(500_000_000)));
    // 15 s after the first (a metrics-server interval): still half a core;
    // the rates' base moves here.
    fake.advance(10.0, 5_000_000_000);
    assert_eq!(rate(&stats.summary(&fake, false)), (Some(500_000_000), Some(1_000_000_000), Some(500_000_000)));
    // 10 ms later, with a burst: the last rate again, not 100 cores.
    fake.advance(0.01, 1_000_000_000);
    assert_eq!(rate(&stats.summary(&fake, false)), (Some(500_000_000), Some(1_000_000_000), Some(500_000_000)));
    // A pod that leaves and comes back starts over.
    let pods = std::mem::take(&mut *fake.pods.lock().unwrap());
    stats.summary(&fake, false);
    *fake.pods.lock().unwrap() = pods;
    fake.advance(5.0, 0);
    assert_eq!(rate(&stats.summary(&fake, false)).1, None);
}
