//! Upstream's KubeletConfiguration and flags.

use clap::Parser;

use super::*;

/// The KubeletConfiguration kubeadm writes (tests/data), filled in.
fn kubeadm_config(dir: &Path, healthz_port: u16) -> PathBuf {
    let template = include_str!("../../tests/data/kubeadm-kubelet-config.yaml");
    let ca = dir.join("ca.crt");
    std::fs::write(&ca, CA).unwrap();
    let text =
        template.replace("@CLIENT_CA@", &ca.display().to_string()).replace("@HEALTHZ_PORT@", &healthz_port.to_string());
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A CA certificate: only its PEM shape is checked here.
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIUQk\n-----END CERTIFICATE-----\n";

fn parse(dir: &Path, extra: &[&str]) -> Result<Settings, Invalid> {
    let kc = super::tests::kubeconfig(dir);
    let mut argv = vec![
        "wasmlet".to_owned(),
        format!("--kubeconfig={}", kc.display()),
        format!("--root-dir={}", dir.join("root").display()),
        "--node-ip=127.0.0.1".to_owned(),
        "--node-name=n1".to_owned(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Args::try_parse_from(argv).map_err(|e| invalid(e.to_string()))?.merge_file()?.settings()
}

#[test]
fn a_kubeadm_kubelet_configuration_is_read_with_upstream_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeadm_config(dir.path(), 10248);
    let s = parse(dir.path(), &[&format!("--config={}", config.display())]).unwrap();
    // Implemented fields, with upstream's meaning.
    assert_eq!(s.security.client_ca.as_deref(), Some(dir.path().join("ca.crt").as_path()));
    assert!(!s.security.anonymous_auth);
    assert!(s.security.token_webhook);
    assert_eq!(s.security.authorization, AuthorizationMode::Webhook);
    assert!(s.security.rotate_certificates);
    assert_eq!(s.upstream.healthz, Some("127.0.0.1:10248".parse().unwrap()));
    // `0s` means "the default", as upstream's defaulting has it.
    assert_eq!(s.upstream.node_status_update_frequency, std::time::Duration::from_secs(10));
    assert_eq!(s.volume_stats_period, wasmlet_csi::DEFAULT_STATS_PERIOD);
    assert_eq!(s.port, 10250);
    assert_eq!(s.max_pods, 110);
    // Fields wasmlet does not implement are reported, not fatal.
    for field in
        ["cgroupDriver", "containerRuntimeEndpoint", "logging", "syncFrequency", "authentication.webhook.cacheTTL"]
    {
        assert!(
            s.notices.iter().any(|n| n.contains(&format!("field {field} is not implemented"))),
            "{field} not reported: {:#?}",
            s.notices
        );
    }
    assert_eq!(s.upstream.static_pods.as_deref(), Some(Path::new("/etc/kubernetes/manifests")));
    assert!(s.notices.iter().any(|n| n.contains("cluster DNS")), "{:#?}", s.notices);
    for implemented in ["field port", "field healthzPort", "shutdownGracePeriod", "imageMinimumGCAge", "staticPodPath"]
    {
        assert!(!s.notices.iter().any(|n| n.contains(implemented)), "{implemented}: {:#?}", s.notices);
    }
}

#[test]
fn upstream_flags_beat_the_kubelet_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeadm_config(dir.path(), 10248);
    let s = parse(
        dir.path(),
        &[
            &format!("--config={}", config.display()),
            "--healthz-port=0",
            "--hostname-override=n2",
            "--address=127.0.0.1",
            "--node-status-update-frequency=4s",
            "--tls-min-version=VersionTLS13",
            "--kube-reserved=cpu=100m,memory=100Mi",
            "--eviction-soft=memory.available<300Mi",
            "--eviction-soft-grace-period=memory.available=1m",
            "--feature-gates=SomeGate=true",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10",
        ],
    )
    .unwrap();
    assert_eq!(s.upstream.healthz, None, "--healthz-port=0 turns it off");
    assert_eq!(s.node_name, "n2", "--hostname-override is --node-name (the later flag wins)");
    assert_eq!(s.upstream.address, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(s.upstream.node_status_update_frequency, std::time::Duration::from_secs(4));
    let soft: Vec<_> = s.eviction.thresholds.iter().filter(|t| !t.grace_period.is_zero()).collect();
    assert_eq!(soft.len(), 1, "{:?}", s.eviction.thresholds);
    assert_eq!(soft[0].grace_period, std::time::Duration::from_secs(60));
    for flag in ["--container-runtime-endpoint", "--pod-infra-container-image"] {
        assert!(s.notices.iter().any(|n| n.starts_with(&format!("ignored flag {flag}="))), "{flag}: {:#?}", s.notices);
    }
    assert!(s.notices.iter().any(|n| n.contains("feature gate SomeGate=true")), "{:#?}", s.notices);
}

#[test]
fn wasmlet_settings_file_beats_the_kubelet_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = kubeadm_config(dir.path(), 10248);
    let own = dir.path().join("wasmlet.yaml");
    std::fs::write(&own, "healthzPort: 10999\npodNetwork: host\n").unwrap();
    let s =
        parse(dir.path(), &[&format!("--config={}", config.display()), &format!("--wasmlet-config={}", own.display())])
            .unwrap();
    assert_eq!(s.upstream.healthz, Some("127.0.0.1:10999".parse().unwrap()));
    assert_eq!(s.pod_network, wasmlet_network::Mode::Host);
    // A KubeletConfiguration is refused where wasmlet's own file goes.
    let err = parse(dir.path(), &[&format!("--wasmlet-config={}", config.display())]).unwrap_err();
    assert!(err.to_string().contains("a KubeletConfiguration goes to --config"), "{err}");
}

#[test]
fn bad_upstream_values_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["--tls-min-version=TLS1.2"], "is not one of VersionTLS10"),
        (&["--tls-cipher-suites=TLS_NOPE"], "\"TLS_NOPE\" is not supported"),
        (&["--feature-gates=Gate"], "expected Name=true or Name=false"),
        (&["--image-gc-high-threshold=70", "--image-gc-low-threshold=80"], "must be less than"),
        (&["--node-status-update-frequency=0s"], "positive Go duration"),
        (&["--address=localhost"], "--address \"localhost\" is not an IP address"),
        (&["--cluster-dns=dns.local"], "--cluster-dns \"dns.local\" is not an IP address"),
    ];
    for (flags, want) in cases {
        let err = parse(dir.path(), flags).unwrap_err().to_string();
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    // A flag upstream does not know either is refused by the parser.
    let err = parse(dir.path(), &["--no-such-upstream-flag=1"]).unwrap_err().to_string();
    assert!(err.contains("--no-such-upstream-flag"), "{err}");
}

#[test]
fn a_kubelet_configuration_of_another_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "apiVersion: kubelet.config.k8s.io/v1alpha9\nkind: KubeletConfiguration\n").unwrap();
    let err = parse(dir.path(), &[&format!("--config={}", path.display())]).unwrap_err().to_string();
    assert!(err.contains("expected kubelet.config.k8s.io/v1beta1"), "{err}");
}

#[test]
fn registered_taints_come_from_taint_objects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nregisterWithTaints:\n\
         - {key: kubernetes.io/arch, value: wasm32, effect: NoSchedule}\n- {key: dedicated, effect: NoExecute}\n",
    )
    .unwrap();
    let s = parse(dir.path(), &[&format!("--config={}", path.display())]).unwrap();
    let taints: Vec<_> = s.taints.iter().map(|t| (t.key.as_str(), t.value.as_deref(), t.effect.as_str())).collect();
    assert_eq!(taints, [("kubernetes.io/arch", Some("wasm32"), "NoSchedule"), ("dedicated", None, "NoExecute")]);
}
