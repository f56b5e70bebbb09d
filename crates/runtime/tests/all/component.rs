//! Components: `wasi:cli/command` runs, anything else is refused.

use wasmlet_runtime::{ExitReason, StartError};

use crate::{compile, run, run_fixture, runtime, spec};

#[tokio::test]
async fn p2_command_runs() {
    let (exit, stdout, _) = run_fixture("hello-p2.wasm", &["hello", "--flag"], &[("WHO", "wasmlet")]).await;
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Exited), "{exit:?}");
    let expected = "argv[0]=hello\nargv[1]=--flag\nenv WHO=wasmlet\nhello from a p2 component\n";
    assert_eq!(stdout.text(), expected);
}

#[tokio::test]
async fn http_component_is_unsupported_as_a_command() {
    let runtime = runtime();
    let compiled = compile(&runtime, "http-hello.wasm").await;
    let (spec, _, _) = spec(&["http-hello"], &[]);
    let err = run(&runtime, &compiled, spec).await.unwrap_err();
    match &err {
        StartError::UnsupportedComponent { exports } => {
            assert!(exports.iter().any(|e| e.starts_with("wasi:http/incoming-handler")), "{exports:?}");
        }
        other => panic!("expected UnsupportedComponent, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("does not export wasi:cli/run"), "{text}");
    assert!(text.contains("wasi:http/incoming-handler"), "{text}");
}
