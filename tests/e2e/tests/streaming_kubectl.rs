//! `kubectl port-forward` and `kubectl exec` through the real API server
//! (v1.36) to a `wasmlet_api::Server` with a fake streaming provider: the
//! API server speaks SPDY/3.1 to the node, translating kubectl's
//! WebSockets (the default) or passing its SPDY through.
//!
//! The node is a Node object made by hand (address and kubelet port
//! patched into its status), the pod is bound to it and patched to
//! Running; nothing runs it. Port-forward targets a local TCP echo
//! server; exec runs fake commands (`cat`, `args …` which exits 3).
//!
//! Run with: `eval "$(cargo xtask testbed up)"` then
//! `cargo test -p wasmlet-e2e --test streaming_kubectl`.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use wasmlet_api::{LogSource, LookupError, Provider, Server, ServerConfig};
use wasmlet_streaming::{Config, ExecOutcome, ExecRequest, StreamError, Streaming, StreamingProvider, Target};
use wasmlet_testkit::{Namespace, admin_client, testbed};

const POD: &str = "target";
const REMOTE_PORT: u16 = 8080;

/// The node's pods as the API sees them: only the streaming endpoints.
struct FakePods {
    streaming: Streaming,
}

impl Provider for FakePods {
    fn pods(&self) -> Vec<Pod> {
        Vec::new()
    }

    fn container_log(&self, _: &str, _: &str, _: &str, _: bool) -> Result<LogSource, LookupError> {
        Err(LookupError::PodNotFound)
    }

    fn streaming(&self) -> Option<Streaming> {
        Some(self.streaming.clone())
    }
}

/// One pod, `POD`, whose port 8080 is an echo server and whose commands
/// are `cat` and `args`.
struct FakeCommands {
    echo: SocketAddr,
}

impl StreamingProvider for FakeCommands {
    fn lookup(&self, target: &Target<'_>) -> Result<(), StreamError> {
        if target.pod != POD {
            return Err(StreamError::PodNotFound);
        }
        match target.container {
            None | Some("main") => Ok(()),
            Some(other) => Err(StreamError::ContainerNotFound(other.to_owned())),
        }
    }

    fn port_forward_target(&self, _: &str, _: &str, _: Option<&str>, port: u16) -> Result<SocketAddr, StreamError> {
        if port == REMOTE_PORT {
            Ok(self.echo)
        } else {
            Err(StreamError::PortUnavailable(format!("nothing listens on port {port}")))
        }
    }

    fn exec(&self, request: ExecRequest) -> Result<BoxFuture<'static, Result<ExecOutcome, StreamError>>, StreamError> {
        Ok(async move {
            let ExecRequest { command, stdin, stdout, stderr, .. } = request;
            let mut stdout = stdout.ok_or_else(|| StreamError::Failed("no stdout".into()))?;
            match command.first().map(String::as_str) {
                Some("cat") => {
                    if let Some(mut stdin) = stdin {
                        tokio::io::copy(&mut stdin, &mut stdout)
                            .await
                            .map_err(|e| StreamError::Failed(e.to_string()))?;
                    }
                    Ok(ExecOutcome { exit_code: 0 })
                }
                Some("args") => {
                    let line = format!("args: {}\n", command[1..].join(" "));
                    let _ = stdout.write_all(line.as_bytes()).await;
                    if let Some(mut stderr) = stderr {
                        let _ = stderr.write_all(b"exiting with 3\n").await;
                    }
                    Ok(ExecOutcome { exit_code: 3 })
                }
                _ => Err(StreamError::Failed(format!("no such command: {command:?}"))),
            }
        }
        .boxed())
    }
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// The hand-made node: a Node object pointing at our server.
struct FakeNode {
    name: String,
    nodes: Api<Node>,
    cancel: CancellationToken,
    server: tokio::task::JoinHandle<wasmlet_api::Result<()>>,
}

impl FakeNode {
    async fn start() -> FakeNode {
        let tb = testbed().await;
        let ip: IpAddr = wasmlet_testbed::host_ip();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let name = format!("streaming-{:x}{nanos:x}", std::process::id());
        let creds = tb.node_credentials(&name, &[ip]).unwrap();
        let commands = Arc::new(FakeCommands { echo: echo_server().await });
        let streaming = Streaming::new(commands, Config::default());
        let config = ServerConfig::new(SocketAddr::new(ip, 0), &creds.serving.cert, &creds.serving.key);
        let server = Server::bind(config, Arc::new(FakePods { streaming })).await.unwrap();
        let port = server.local_addr().port();
        let cancel = CancellationToken::new();
        let server = tokio::spawn(server.run(cancel.clone()));

        let nodes: Api<Node> = Api::all(admin_client().await);
        let node = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
        let status = json!({ "status": {
            "addresses": [{ "type": "InternalIP", "address": ip.to_string() }],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": port } },
        }});
        nodes.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
        FakeNode { name, nodes, cancel, server }
    }

    async fn stop(self) {
        let _ = self.nodes.delete(&self.name, &DeleteParams::default()).await;
        self.cancel.cancel();
        self.server.await.unwrap().unwrap();
    }
}

/// A pod bound to `node`, reported Running.
async fn running_pod(ns: &Namespace, node: &str) -> Api<Pod> {
    let pods: Api<Pod> = ns.api();
    let pod = serde_json::from_value(json!({
        "metadata": { "name": POD },
        "spec": { "nodeName": node, "containers": [{ "name": "main", "image": "example.invalid/none:v1" }] },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({ "status": { "phase": "Running" } });
    pods.patch_status(POD, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    pods
}

async fn kubectl(ns: &Namespace) -> Command {
    let tb = testbed().await;
    let mut command = Command::new(tb.bin_dir().join("kubectl"));
    command.arg(format!("--kubeconfig={}", tb.admin_kubeconfig().display())).arg("-n").arg(ns.name());
    command.kill_on_drop(true);
    command
}

/// Starts `kubectl port-forward` and returns it with its local port.
async fn port_forward(ns: &Namespace, websockets: bool) -> (Child, u16) {
    let mut command = kubectl(ns).await;
    command
        .args(["port-forward", &format!("pod/{POD}"), &format!(":{REMOTE_PORT}")])
        .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", if websockets { "true" } else { "false" })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("kubectl port-forward is listening within 30 s")
        .unwrap()
        .unwrap_or_default();
    // "Forwarding from 127.0.0.1:43127 -> 8080"
    let port = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected kubectl output {line:?}"));
    // Keep reading: kubectl dies of SIGPIPE if its stdout closes (it
    // prints a line per connection). The task ends with kubectl.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// Sends `payload` through the forward, half-closes, reads the echo.
async fn try_round_trip(port: u16, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await?;
    let (mut read, mut write) = conn.split();
    let send = async {
        write.write_all(payload).await?;
        write.shutdown().await
    };
    let mut echoed = Vec::new();
    let receive = read.read_to_end(&mut echoed);
    let (sent, received) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(send, receive) })
        .await
        .expect("echo within 60 s");
    sent?;
    received?;
    Ok(echoed)
}

/// [`try_round_trip`], failing with kubectl's output.
async fn round_trip(child: &mut Child, port: u16, payload: &[u8]) -> Vec<u8> {
    match try_round_trip(port, payload).await {
        Ok(echoed) => echoed,
        Err(error) => {
            let _ = child.start_kill();
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            panic!("round trip through kubectl port-forward failed: {error}; kubectl said:\n{stderr}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_and_exec_reach_the_node_over_spdy() {
    let node = FakeNode::start().await;
    let ns = Namespace::create(&admin_client().await, "streaming").await;
    let pods = running_pod(&ns, &node.name).await;
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();

    // Port-forward, first over WebSockets (tunnelled SPDY), then plain SPDY.
    for websockets in [true, false] {
        let (mut child, port) = port_forward(&ns, websockets).await;
        let hello = b"hello through the apiserver\n";
        assert_eq!(round_trip(&mut child, port, hello).await, hello);
        assert!(round_trip(&mut child, port, &big).await == big, "1 MB echoed intact (websockets={websockets})");
        // Two connections at once share the session.
        let (a, b) = tokio::join!(try_round_trip(port, b"first"), try_round_trip(port, b"second"));
        assert_eq!((a.unwrap().as_slice(), b.unwrap().as_slice()), (&b"first"[..], &b"second"[..]));
        child.kill().await.unwrap();
    }

    // Exec over WebSockets (translated to SPDY v4 by the API server), and over SPDY.
    for websockets in [true, false] {
        let env = if websockets { "true" } else { "false" };
        let out = kubectl(&ns)
            .await
            .args(["exec", POD, "--", "args", "a", "b c"])
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", env)
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "args: a b c\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("exiting with 3"), "{stderr}");
        assert!(stderr.contains("command terminated with exit code 3"), "{stderr}");
        assert_eq!(out.status.code(), Some(3), "kubectl exits with the command's code ({stderr})");

        let mut child = kubectl(&ns)
            .await
            .args(["exec", "-i", POD, "--", "cat"])
            .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = big.clone();
        let feed = async move {
            stdin.write_all(&input).await.unwrap();
            drop(stdin);
        };
        let (out, ()) = tokio::join!(child.wait_with_output(), feed);
        let out = out.unwrap();
        assert!(out.status.success(), "kubectl exec -i cat: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == big, "1 MB through stdin and stdout (got {} bytes)", out.stdout.len());
    }

    // A container that does not exist: the node's 404 reaches kubectl.
    let out = kubectl(&ns).await.args(["exec", POD, "-c", "nope", "--", "cat"]).output().await.unwrap();
    assert!(!out.status.success());

    let _ = pods.delete(POD, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await;
    node.stop().await;
}
