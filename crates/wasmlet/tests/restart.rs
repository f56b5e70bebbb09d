//! After `kill -9` (and after a clean SIGTERM) and a restart: finished pods are
//! not run again, running pods run again, and every status is right.

use k8s_openapi::api::core::v1::Pod;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase, terminated};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

#[tokio::test]
async fn restarts_resume_running_pods_and_never_rerun_finished_ones() {
    let mut node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "restart").await;
    let ns = Namespace::create(&admin_client().await, "restart").await;
    let api = ns.api::<Pod>();

    pods::create(&ns, pods::bare("done", &node.name, &fixture_image("exit-code").await, &["0"], "Never")).await;
    pods::create(&ns, pods::bare("failed", &node.name, &fixture_image("exit-code").await, &["3"], "Never")).await;
    pods::create(&ns, pods::bare("runner", &node.name, &fixture_image("forever").await, &[], "Always")).await;
    let done = pods::wait_for(&api, "done", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    pods::wait_for(&api, "failed", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Failed").await;
    pods::wait_for(&api, "runner", POD_TIMEOUT, || node.log_tail(60), |p| pods::running(p, "main")).await;
    let done_started = terminated(&done, "main").unwrap().started_at.clone();

    // kill -9: guests die with the agent.
    node.kill();
    node.restart().await;
    let runner = pods::wait_for(
        &api,
        "runner",
        POD_TIMEOUT,
        || node.log_tail(60),
        |p| pods::running(p, "main") && pods::container(p, "main").is_some_and(|c| c.restart_count == 1),
    )
    .await;
    assert_eq!(phase(&runner), "Running");
    let last = pods::container(&runner, "main").unwrap().last_state.clone().unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (255, Some("Unknown")));

    // Finished pods were not run again: same phase, same run, no restart.
    let done = api.get("done").await.unwrap();
    assert_eq!(phase(&done), "Succeeded");
    assert_eq!(terminated(&done, "main").unwrap().started_at, done_started);
    assert_eq!(pods::container(&done, "main").unwrap().restart_count, 0);
    let failed = api.get("failed").await.unwrap();
    assert_eq!(phase(&failed), "Failed");
    assert_eq!(terminated(&failed, "main").unwrap().exit_code, 3);
    let logs = api.logs("done", &Default::default()).await.unwrap();
    assert_eq!(logs.matches("exiting with 0").count(), 1, "ran once: {logs}");

    // A clean stop (SIGTERM) and start: the runner is stopped (143) and resumes.
    let exit = node.stop();
    assert!(exit.success(), "{exit}\n{}", node.log_tail(40));
    node.restart().await;
    let runner = pods::wait_for(
        &api,
        "runner",
        POD_TIMEOUT,
        || node.log_tail(60),
        |p| pods::running(p, "main") && pods::container(p, "main").is_some_and(|c| c.restart_count == 2),
    )
    .await;
    let last = pods::container(&runner, "main").unwrap().last_state.clone().unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 143);
    assert_eq!(phase(&api.get("done").await.unwrap()), "Succeeded");
}
