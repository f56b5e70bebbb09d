use std::io::Write;

use clap::Parser;

use super::*;

pub(super) fn kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n\
         users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    path
}

fn args(dir: &Path, extra: &[&str]) -> Args {
    let kc = kubeconfig(dir);
    let root = dir.join("root");
    let mut argv =
        vec!["wasmlet".to_owned(), format!("--kubeconfig={}", kc.display()), format!("--root-dir={}", root.display())];
    if !extra.iter().any(|a| a.starts_with("--node-ip")) {
        argv.push("--node-ip=127.0.0.1".to_owned());
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    Args::try_parse_from(argv).unwrap()
}

fn settings(dir: &Path, extra: &[&str]) -> Result<Settings, Invalid> {
    args(dir, extra).merge_file()?.settings()
}

#[test]
fn defaults() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), &["--node-name=n1"]).unwrap();
    assert_eq!(s.port, 10250);
    assert_eq!(s.max_pods, 110);
    assert_eq!(s.node_name, "n1");
    assert_eq!(s.taints, wasmlet_node::default_taints());
    assert!(s.tls.is_none());
}

#[test]
fn flags_win_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wasmlet.yaml");
    let mut f = std::fs::File::create(&file).unwrap();
    writeln!(f, "nodeName: from-file\nport: 11000\nmaxPods: 7\nnodeLabels:\n  node.kubernetes.io/pool: a\nregisterWithTaints: [\"x=y:NoSchedule\"]").unwrap();
    let config = format!("--config={}", file.display());
    let s = settings(dir.path(), &[&config, "--port=12000"]).unwrap();
    assert_eq!(s.node_name, "from-file");
    assert_eq!(s.port, 12000, "the flag wins");
    assert_eq!(s.max_pods, 7, "the file fills the rest");
    assert_eq!(s.node_labels.get("node.kubernetes.io/pool").map(String::as_str), Some("a"));
    assert_eq!(s.taints.len(), 1);
    assert_eq!(s.taints[0].key, "x");
}

#[test]
fn unknown_file_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wasmlet.yaml");
    std::fs::write(&file, "nodeNmae: typo\n").unwrap();
    let config = format!("--config={}", file.display());
    let err = settings(dir.path(), &[&config]).unwrap_err().to_string();
    assert!(err.contains("nodeNmae"), "{err}");
}

#[test]
fn bad_values_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["--node-name=Bad_Name"], "--node-name"),
        (&["--node-name=n", "--node-ip=not-an-ip"], "--node-ip"),
        (&["--node-name=n", "--port=0"], "--port"),
        (&["--node-name=n", "--max-pods=0"], "--max-pods"),
        (&["--node-name=n", "--node-labels=novalue"], "key=value"),
        (&["--node-name=n", "--node-labels=kubernetes.io/role=x"], "may not set"),
        (&["--node-name=n", "--register-with-taints=a=b:Sometimes"], "unknown effect"),
        (&["--node-name=n", "--tls-cert-file=/nonexistent"], "go together"),
        (&["--node-name=n", "--eviction-hard=memory.available=1Gi"], "--eviction-hard: malformed pair"),
        (&["--node-name=n", "--eviction-soft=memory.available<1Gi"], "grace period must be specified"),
        (&["--node-name=n", "--eviction-pressure-transition-period=5"], "--eviction-pressure-transition-period"),
        (&["--node-name=n", "--eviction-monitoring-period=0s"], "--eviction-monitoring-period"),
        (&["--node-name=n", "--eviction-max-pod-grace-period=-1"], "--eviction-max-pod-grace-period"),
        (&["--node-name=n", "--system-reserved=memory=lots"], "--system-reserved"),
    ];
    for (extra, want) in cases {
        let err = match settings(dir.path(), extra) {
            Ok(_) => panic!("{extra:?} was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    let err = Args::try_parse_from(["wasmlet", "--kubeconfig=/nonexistent/kc", "--node-name=n", "--node-ip=127.0.0.1"])
        .unwrap()
        .settings()
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/kc"), "{err}");
}

#[test]
fn labels_and_taints_parse() {
    let labels = parse_labels("node.kubernetes.io/pool=a, example.com/team=x,kubernetes.io/hostname=h").unwrap();
    assert_eq!(labels.len(), 3);
    let taints = parse_taints("a=b:NoSchedule,c:NoExecute").unwrap();
    assert_eq!(taints[1].key, "c");
    assert_eq!(taints[1].value, None);
    assert_eq!(taints[1].effect, "NoExecute");
}

#[test]
fn security_defaults_are_locked_down() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), &["--node-name=n1"]).unwrap().security;
    assert!(!s.anonymous_auth, "anonymous requests get 401 by default");
    assert!(s.token_webhook);
    assert_eq!(s.authorization, AuthorizationMode::Webhook);
    assert_eq!(s.client_ca, None, "the cluster CA of the kubeconfig");
    assert!(!s.rotate_certificates && !s.rotate_server_certificates);
    assert_eq!(s.cert_dir, dir.path().join("root").join("pki"));
    assert!(!s.manages_client_certificate());
}

#[test]
fn security_flags_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wasmlet.yaml");
    std::fs::write(&file, "anonymousAuth: true\nauthorizationMode: AlwaysAllow\nrotateCertificates: true\n").unwrap();
    let config = format!("--config={}", file.display());
    let s =
        settings(dir.path(), &[&config, "--node-name=n1", "--anonymous-auth=false", "--rotate-server-certificates"])
            .unwrap()
            .security;
    assert!(!s.anonymous_auth, "the flag wins over the file");
    assert_eq!(s.authorization, AuthorizationMode::AlwaysAllow);
    assert!(s.rotate_certificates && s.rotate_server_certificates);
    assert!(s.manages_client_certificate());
}

#[test]
fn bootstrap_kubeconfig_without_a_node_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = kubeconfig(dir.path());
    let root = dir.path().join("root");
    let s = Args::try_parse_from([
        "wasmlet".to_owned(),
        format!("--bootstrap-kubeconfig={}", bootstrap.display()),
        format!("--root-dir={}", root.display()),
        "--node-name=n1".to_owned(),
        "--node-ip=127.0.0.1".to_owned(),
    ])
    .unwrap()
    .settings()
    .unwrap();
    assert_eq!(s.kubeconfig, root.join("kubelet.kubeconfig"), "written after bootstrapping");
    assert_eq!(s.security.bootstrap_kubeconfig.as_deref(), Some(bootstrap.as_path()));

    let cases: &[(&[&str], &str)] = &[
        (&["--node-name=n", "--authorization-mode=RBAC"], "--authorization-mode"),
        (&["--node-name=n", "--client-ca-file=/nonexistent"], "--client-ca-file"),
        (&["--node-name=n", "--bootstrap-kubeconfig=/nonexistent/b"], "--bootstrap-kubeconfig"),
    ];
    for (extra, want) in cases {
        let err = settings(dir.path(), extra).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    let tls = dir.path().join("tls.pem");
    std::fs::write(&tls, "-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n").unwrap();
    let (cert, key) =
        (format!("--tls-cert-file={}", tls.display()), format!("--tls-private-key-file={}", tls.display()));
    let err = settings(dir.path(), &["--node-name=n", &cert, &key, "--rotate-server-certificates"]).unwrap_err();
    assert!(err.to_string().contains("exclude each other"), "{err}");
}

#[test]
fn eviction_and_reservations_from_flags_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), &["--node-name=n1"]).unwrap();
    assert_eq!(s.eviction, wasmlet_eviction::Config::default(), "upstream's defaults");
    assert_eq!(s.reserved, wasmlet_node::Reserved::default());

    let file = dir.path().join("wasmlet.yaml");
    std::fs::write(
        &file,
        "evictionHard:\n  memory.available: 200Mi\n  nodefs.available: 5%\n\
         evictionSoft: {memory.available: 1Gi}\nevictionSoftGracePeriod: {memory.available: 1m}\n\
         evictionMaxPodGracePeriod: 20\nevictionPressureTransitionPeriod: 30s\n\
         systemReserved: {cpu: 500m, memory: 1Gi}\nkubeReserved: {memory: 256Mi, pid: 100}\n",
    )
    .unwrap();
    let config = format!("--config={}", file.display());
    let s = settings(dir.path(), &[&config, "--node-name=n1", "--eviction-monitoring-period=2s"]).unwrap();
    let e = &s.eviction;
    let signals: Vec<_> = e.thresholds.iter().map(|t| (t.signal.as_str(), t.grace_period.as_secs())).collect();
    assert_eq!(
        signals,
        [
            ("memory.available", 0),
            ("nodefs.available", 0),
            ("memory.available", 60),
            ("allocatableMemory.available", 0)
        ]
    );
    assert_eq!(e.max_pod_grace_period, std::time::Duration::from_secs(20));
    assert_eq!(e.pressure_transition_period, std::time::Duration::from_secs(30));
    assert_eq!(e.monitoring_interval, std::time::Duration::from_secs(2), "the flag");
    assert_eq!(s.reserved.cpu_millis, 500);
    assert_eq!(s.reserved.memory_bytes, (1 << 30) + (256 << 20), "system + kube");
    assert_eq!(e.reserved_memory, s.reserved.memory_bytes);

    let s = settings(dir.path(), &[&config, "--node-name=n1", "--eviction-hard=memory.available<300Mi"]).unwrap();
    assert_eq!(s.eviction.thresholds[0].signal.as_str(), "memory.available");
    assert_eq!(s.eviction.thresholds.len(), 3, "the flag's map replaces the file's: {:?}", s.eviction.thresholds);
}

#[test]
fn image_pull_progress_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), &["--node-name=n1"]).unwrap();
    assert_eq!(s.image_pull_progress_deadline, std::time::Duration::from_secs(60));
    let s = settings(dir.path(), &["--node-name=n1", "--image-pull-progress-deadline=1m30s"]).unwrap();
    assert_eq!(s.image_pull_progress_deadline, std::time::Duration::from_secs(90));
    let s = settings(dir.path(), &["--node-name=n1", "--image-pull-progress-deadline=0"]).unwrap();
    assert!(s.image_pull_progress_deadline.is_zero());
    let e = settings(dir.path(), &["--node-name=n1", "--image-pull-progress-deadline=soon"]).unwrap_err();
    assert!(e.to_string().contains("--image-pull-progress-deadline"), "{e}");
}
