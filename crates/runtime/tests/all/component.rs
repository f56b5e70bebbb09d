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

#[tokio::test]
async fn a_component_exporting_neither_world_is_refused() {
    // The smallest valid component: a preamble (version 0x0d, layer 1) and nothing else.
    let bytes = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    let runtime = runtime();
    let compiled = runtime.compile(&wasmlet_oci::Digest::of(&bytes), bytes).await.unwrap();
    let (command, _, _) = spec(&["empty"], &[]);
    let err = run(&runtime, &compiled, command).await.unwrap_err();
    assert!(matches!(err, StartError::UnsupportedComponent { .. }), "{err:?}");
    assert!(err.to_string().contains("does not export wasi:cli/run"), "{err}");
    let (guest, _, _) = spec(&["empty"], &[]);
    let http = wasmlet_runtime::HttpSpec::new(guest, vec!["127.0.0.1:0".parse().unwrap()]);
    let err = runtime.serve_http(&compiled, http, tokio_util::sync::CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, StartError::NotHttpProxy { .. }), "{err:?}");
}
