//! TLS bootstrapping and rotation end to end (issue 6), on a second test
//! bed of its own whose controller manager signs 90 s certificates
//! (`--cluster-signing-duration`; the signer also backdates `notBefore` by
//! 5 min, so rotation at 70–90 % of the lifetime falls between 27 s before
//! and 51 s after issuance).
//!
//! A node holding only a bootstrap token joins: its client certificate is
//! approved automatically, the test approves its serving CSRs as an admin
//! would, it serves `kubectl logs`, and it renews both certificates —
//! `kubectl logs` (the API server verifies the kubelet's certificate
//! against the cluster CA) and its Lease keep working after the first
//! certificates have expired, a `kubectl logs -f` opened before stays open
//! through the serving rotations, and pods created after the rotations run.
//! Its log, at trace level, holds neither the
//! bootstrap token nor any private key it made.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use wasmlet_certs::Certificate;
use wasmlet_testbed::{Config, Testbed};
use wasmlet_testkit::agent::{Agent, assert_no_secrets};
use wasmlet_testkit::node::node_ready;
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, fixture_image, testbed, wait};

/// Lifetime of the certificates the second test bed signs.
const SIGNING: Duration = Duration::from_secs(90);
/// Its ports start this far above the main test bed's.
const PORT_OFFSET: u16 = 30;

/// Stops the second test bed, whatever happens to the test.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = Testbed::down(&self.0) {
            eprintln!("stopping the rotation test bed: {e}");
        }
    }
}

fn kubectl(tb: &Testbed, args: &[&str]) -> std::process::Output {
    Command::new(tb.bin_dir().join("kubectl"))
        .arg(format!("--kubeconfig={}", tb.admin_kubeconfig().display()))
        .args(args)
        .output()
        .expect("running kubectl")
}

/// Approves every pending serving CSR of `node`, as an admin would; how many.
async fn approve_serving(tb: &Testbed, client: &kube::Client, node: &str) -> usize {
    let csrs: Api<CertificateSigningRequest> = Api::all(client.clone());
    let Ok(list) = csrs.list(&Default::default()).await else { return 0 };
    let user = format!("system:node:{node}");
    let mut approved = 0;
    for csr in list.items {
        let decided = csr.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| !c.is_empty());
        if decided
            || csr.spec.signer_name != "kubernetes.io/kubelet-serving"
            || csr.spec.username.as_deref() != Some(&user)
        {
            continue;
        }
        let name = csr.metadata.name.unwrap_or_default();
        if kubectl(tb, &["certificate", "approve", &name]).status.success() {
            approved += 1;
        }
    }
    approved
}

fn current(path: &Path) -> Option<Certificate> {
    let pem = std::fs::read_to_string(path).ok()?;
    Certificate::from_combined_pem(&pem, &path.display().to_string()).ok()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn bootstrap_token_node_joins_serves_logs_and_rotates_both_certificates() {
    let main = testbed().await;
    let dir = std::env::temp_dir().join(format!("wasmlet-testbed-rotation-{}", main.config().port_base + PORT_OFFSET));
    Testbed::down(&dir).unwrap();
    let _down = Down(dir.clone());
    let mut config = Config::new(dir.clone(), main.bin_dir().to_owned());
    config.port_base = main.config().port_base + PORT_OFFSET;
    config.cluster_signing_duration = SIGNING;
    let started = std::time::Instant::now();
    let tb = Testbed::up(config).await.unwrap_or_else(|e| panic!("second test bed: {e}"));
    eprintln!("second test bed up in {:.1}s", started.elapsed().as_secs_f64());
    let admin = tb.admin_client().await.unwrap();

    let work = tempfile::tempdir().unwrap();
    let token = tb.create_bootstrap_token(Duration::from_secs(3600)).await.unwrap();
    let bootstrap = work.path().join("bootstrap.kubeconfig");
    tb.write_bootstrap_kubeconfig(&bootstrap, &token).unwrap();
    let root = work.path().join("root");
    let name = format!("boot-{}", std::process::id());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let args = vec![
        format!("--bootstrap-kubeconfig={}", bootstrap.display()),
        format!("--node-name={name}"),
        format!("--node-ip={}", wasmlet_testbed::host_ip()),
        format!("--root-dir={}", root.display()),
        format!("--port={port}"),
        "--rotate-certificates".to_owned(),
        "--rotate-server-certificates".to_owned(),
        format!("--insecure-registries={}", main.registry()),
    ];
    let env = [("WASMLET_LOG", "trace")];
    let mut agent = Agent::spawn(
        Path::new(env!("CARGO_BIN_EXE_wasmlet")),
        &args,
        &env,
        work.path().join("wasmlet.log"),
        tb.dir(),
        &format!("wasmlet-{name}"),
    )
    .unwrap();

    // The client certificate is auto-approved; the serving CSRs wait for us.
    let approver = {
        let (tb, admin, name) = (tb.clone(), admin.clone(), name.clone());
        tokio::spawn(async move {
            let mut total = 0;
            loop {
                total += approve_serving(&tb, &admin, &name).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                if total > 1000 {
                    return;
                }
            }
        })
    };
    let nodes: Api<Node> = Api::all(admin.clone());
    let ready = wait::try_for_object(&nodes, &name, Duration::from_secs(120), |n| node_ready(n) == Some("True")).await;
    assert!(ready.is_ok(), "the bootstrapped node never got Ready:\n{}", agent.log_tail(80));

    let pki = root.join("pki");
    let (client_pem, serving_pem) = (pki.join("kubelet-client-current.pem"), pki.join("kubelet-server-current.pem"));
    let kubeconfig = root.join("kubelet.kubeconfig");
    assert_eq!(mode(&kubeconfig), 0o600, "the node kubeconfig is private");
    assert_eq!(mode(&client_pem), 0o600, "the client key is private");
    let first_client = current(&client_pem).expect("a client certificate");
    assert_eq!(first_client.common_name(), Some(format!("system:node:{name}").as_str()));
    assert_eq!(first_client.organizations(), ["system:nodes"]);
    let not_after = |c: &Certificate| c.not_after().duration_since(c.not_before()).unwrap();
    assert!(not_after(&first_client) <= SIGNING + Duration::from_secs(301), "short-lived: {first_client:?}");

    // It serves `kubectl logs` once its serving certificate is approved.
    let ns = Namespace::create(&admin, "boot").await;
    let pod = pods::bare("talker", &name, &fixture_image("args-env").await, &["rotated"], "Never");
    pods::create(&ns, pod).await;
    let api: Api<Pod> = ns.api();
    pods::wait_for(&api, "talker", POD_TIMEOUT, || agent.log_tail(40), |p| pods::terminated(p, "main").is_some()).await;
    let logs = |tb: &Testbed| kubectl(tb, &["logs", "-n", ns.name(), "talker"]);
    let out = logs(&tb);
    assert!(out.status.success(), "kubectl logs: {}\n{}", String::from_utf8_lossy(&out.stderr), agent.log_tail(40));
    assert!(String::from_utf8_lossy(&out.stdout).contains("argv[1]=rotated"));
    let first_serving = current(&serving_pem).expect("a serving certificate");
    assert_eq!(first_serving.common_name(), Some(format!("system:node:{name}").as_str()));

    // A log follow opened now stays open through every serving rotation
    // (a TLS reload keeps open connections).
    let ticker = pods::bare("ticker", &name, &fixture_image("forever").await, &[], "Always");
    pods::create(&ns, ticker).await;
    pods::wait_for(&api, "ticker", POD_TIMEOUT, || agent.log_tail(40), |p| pods::running(p, "main")).await;
    let follow_out = work.path().join("follow.log");
    let mut follow = Command::new(tb.bin_dir().join("kubectl"))
        .arg(format!("--kubeconfig={}", tb.admin_kubeconfig().display()))
        .args(["logs", "-f", "-n", ns.name(), "ticker"])
        .stdout(std::fs::File::create(&follow_out).unwrap())
        .stderr(std::fs::File::create(work.path().join("follow.err")).unwrap())
        .spawn()
        .unwrap();
    let follow_started = std::time::Instant::now();

    // Both are renewed before they expire; after the first ones have
    // expired the node still heartbeats and serves logs.
    let expiry = first_client.not_after().max(first_serving.not_after()) + Duration::from_secs(5);
    while SystemTime::now() < expiry {
        assert!(agent.running(), "wasmlet exited:\n{}", agent.log_tail(80));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let followed = follow_started.elapsed();
    assert!(follow.try_wait().unwrap().is_none(), "kubectl logs -f ended during rotations");
    let _ = follow.kill();
    let _ = follow.wait();
    let ticks = std::fs::read_to_string(&follow_out).unwrap().lines().filter(|l| l.starts_with("tick ")).count();
    let expected = usize::try_from(followed.as_secs()).unwrap_or(0).saturating_sub(5);
    assert!(ticks >= expected, "the follow saw {ticks} ticks in {followed:?}");
    eprintln!("one log follow stayed open for {followed:?} ({ticks} ticks) across the serving rotations");
    let client_now = current(&client_pem).expect("a client certificate");
    let serving_now = current(&serving_pem).expect("a serving certificate");
    assert_ne!(client_now.serial(), first_client.serial(), "the client certificate was renewed");
    assert_ne!(serving_now.serial(), first_serving.serial(), "the serving certificate was renewed");
    for c in [&client_now, &serving_now] {
        assert!(c.is_valid_at(SystemTime::now()), "{c:?}");
    }
    let out = logs(&tb);
    assert!(
        out.status.success(),
        "kubectl logs after rotation: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log_tail(60)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("argv[1]=rotated"));
    // Pod sync goes on with the rotated client identity.
    let after = pods::bare("after", &name, &fixture_image("args-env").await, &["after-rotation"], "Never");
    pods::create(&ns, after).await;
    pods::wait_for(&api, "after", POD_TIMEOUT, || agent.log_tail(40), |p| pods::terminated(p, "main").is_some()).await;
    let out = kubectl(&tb, &["logs", "-n", ns.name(), "after"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("argv[1]=after-rotation"), "{out:?}");
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-node-lease");
    let renewed = wait::for_object(&leases, &name, Duration::from_secs(30), |l| {
        let renew = l.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
        renew.is_some_and(|t| SystemTime::from(t) > first_client.not_after())
    })
    .await;
    assert!(renewed.is_some(), "the Lease was not renewed with the new client certificate:\n{}", agent.log_tail(60));
    let rotations = agent.log().matches("certificate rotated").count();
    eprintln!("rotations logged: {rotations}; test took {:.1}s", started.elapsed().as_secs_f64());
    approver.abort();

    // No bootstrap token, no private key in the trace-level log.
    agent.stop();
    let log = agent.log();
    let mut secrets = vec![("the bootstrap token secret", token.secret.clone())];
    for entry in std::fs::read_dir(&pki).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(start) = text.find("-----BEGIN PRIVATE KEY-----") {
            secrets.push(("a private key", text[start..].to_owned()));
        }
    }
    assert!(secrets.len() >= 3, "keys found: {}", secrets.len());
    let scanned = assert_no_secrets(&log, &secrets);
    eprintln!("scanned {scanned} bytes of trace log for {} secrets", secrets.len());
}
