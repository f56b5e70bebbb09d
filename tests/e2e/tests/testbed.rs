//! The test bed is real: a scheduler that leaves unschedulable pods Pending, a
//! registry that returns what was pushed, fixtures that run under wasmtime, a
//! private registry that wants credentials, and a clean `down`.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use sha2::{Digest as _, Sha256};
use wasmlet_oci::{RegistryAuth, Store};
use wasmlet_testbed::{COMPONENTS, Config, Testbed, fixtures, process};
use wasmlet_testkit::{Namespace, admin_client, fixture, fixture_image, fixtures_dir, testbed, wait};
use wasmtime::{Engine, Linker, Module};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

fn sha256_of(name: &str) -> String {
    let bytes = std::fs::read(fixtures_dir().join(&fixture(name).file)).expect("fixture built");
    format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
}

#[tokio::test]
async fn pod_bound_to_a_missing_node_stays_pending() {
    let client = admin_client().await;
    let ns = Namespace::create(&client, "pending").await;
    let pods = ns.api::<Pod>();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "orphan" },
        "spec": {
            "nodeName": "no-such-node",
            "containers": [{ "name": "main", "image": fixture_image("args-env").await }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // Nothing runs pods for that node: the phase must not leave Pending.
    let seen = wait::try_for_object(&pods, "orphan", Duration::from_secs(15), |p| {
        p.and_then(|p| p.status.as_ref()?.phase.as_deref()).is_some_and(|phase| phase != "Pending")
    })
    .await;
    let last = seen.expect_err("a pod bound to a missing node left Pending").expect("pod exists");
    let status = last.status.unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(status.container_statuses.is_none(), "no kubelet reported containers: {status:?}");
}

#[tokio::test]
async fn fixture_pulled_back_matches_its_digest() {
    let tb = testbed().await;
    let client = fixtures::oci_clients(tb).unwrap().get(&RegistryAuth::Anonymous).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let expected = sha256_of("args-env");
    // The same wasm in all three layouts resolves to the same bytes.
    for tag in ["v1", "wasm-to-oci", "image"] {
        let reference = format!("{}/fixtures/args-env:{tag}", tb.registry()).parse().unwrap();
        let image = store.pull(&client, &reference, &RegistryAuth::Anonymous).await.unwrap();
        assert_eq!(image.wasm_digest.to_string(), expected, "layout {tag}");
        let bytes = store.read(&image.wasm_digest).await.unwrap();
        assert_eq!(format!("sha256:{}", hex::encode(Sha256::digest(&bytes))), expected);
    }
    // And the registry serves the manifest the test bed recorded at push time.
    let recorded = fixtures::recorded(tb).unwrap();
    let listed = fixtures::list(tb).await.unwrap();
    assert_eq!(recorded, listed);
    assert!(listed.iter().any(|p| p.fixture == "http-hello"), "{listed:?}");
}

#[tokio::test]
async fn private_registry_wants_credentials() {
    let tb = testbed().await;
    let clients = fixtures::oci_clients(tb).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let reference = fixtures::private_reference(tb).parse().unwrap();

    let anonymous = RegistryAuth::Anonymous;
    let denied = store.pull(&clients.get(&anonymous).unwrap(), &reference, &anonymous).await;
    let err = denied.expect_err("anonymous pull from the private registry succeeded");
    assert!(matches!(err, wasmlet_oci::pull::Error::Unauthorized { .. }), "unexpected error: {err:?}");
    let wrong = RegistryAuth::Basic("wasmlet".into(), "wrong-password".into());
    let err = store.pull(&clients.get(&wrong).unwrap(), &reference, &wrong).await.expect_err("wrong password accepted");
    assert!(matches!(err, wasmlet_oci::pull::Error::Unauthorized { .. }), "unexpected error: {err:?}");

    // The same pool, asked with the right credentials, gets through.
    let right = fixtures::private_auth(tb);
    let image = store.pull(&clients.get(&right).unwrap(), &reference, &right).await.unwrap();
    assert_eq!(image.wasm_digest.to_string(), sha256_of("args-env"));
}

/// Runs a preview-1 fixture with the wasmtime crate; returns (exit code, stdout).
async fn run_p1(name: &str, args: &[&str]) -> (i32, String) {
    let bytes = std::fs::read(fixtures_dir().join(&fixture(name).file)).unwrap();
    let config = wasmtime::Config::new();
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, &bytes).unwrap();
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    p1::add_to_linker_async(&mut linker, |cx| cx).unwrap();
    let stdout = MemoryOutputPipe::new(1 << 20);
    let mut argv = vec![name];
    argv.extend_from_slice(args);
    let wasi = WasiCtxBuilder::new().args(&argv).env("GREETING", "hi").stdout(stdout.clone()).build_p1();
    let mut store = wasmtime::Store::new(&engine, wasi);
    let instance = linker.instantiate_async(&mut store, &module).await.unwrap();
    let start = instance.get_typed_func::<(), ()>(&mut store, "_start").unwrap();
    let code = match start.call_async(&mut store, ()).await {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => panic!("{name} trapped: {e:?}"),
        },
    };
    (code, String::from_utf8_lossy(&stdout.contents()).into_owned())
}

#[tokio::test]
async fn p1_fixtures_run_under_wasmtime() {
    let (code, out) = run_p1("args-env", &["one", "two words"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("argv[0]=args-env"), "{out}");
    assert!(out.contains("argv[2]=two words"), "{out}");
    assert!(out.contains("env GREETING=hi"), "{out}");
    assert!(out.contains("done"), "{out}");

    let (code, out) = run_p1("exit-code", &["7"]).await;
    assert_eq!(code, 7);
    assert!(out.contains("exiting with 7"), "{out}");
    let (code, _) = run_p1("exit-code", &[]).await;
    assert_eq!(Some(code), fixture("exit-code").expect_exit);
}

#[tokio::test]
async fn down_leaves_no_process_and_no_listening_port() {
    let tb = testbed().await;
    let parent = tempfile::tempdir().unwrap();
    let mut config = Config::new(parent.path().join("second"), tb.bin_dir().to_owned());
    config.port_base = tb.config().port_base + 100;
    let second = Testbed::up(config).await.unwrap_or_else(|e| panic!("second test bed: {e}"));
    let pids: Vec<u32> =
        COMPONENTS.iter().map(|c| process::recorded_pid(second.dir(), c).expect("pid recorded")).collect();
    assert!(pids.iter().all(|p| process::is_alive(*p)));
    let listening = process::listening_ports();
    for port in [second.ports().apiserver, second.ports().etcd_client, second.ports().registry] {
        assert!(listening.contains(&port), "port {port} not listening");
    }

    Testbed::down(second.dir()).unwrap();
    for (pid, component) in pids.iter().zip(COMPONENTS) {
        assert!(!process::is_alive(*pid), "{component} (pid {pid}) still alive");
    }
    let listening = process::listening_ports();
    for port in second.ports().all() {
        assert!(!listening.contains(&port), "port {port} still listening");
    }
    assert!(!second.dir().exists());
    // The first test bed was not disturbed.
    assert!(tb.healthy().await);
}
