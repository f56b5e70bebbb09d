//! WASI preview 1 modules: arguments, environment, exit codes, traps, link
//! errors, memory limits.

use wasmlet_runtime::{Config, ExitReason, Limits, Runtime, StartError};

use crate::{compile, run, run_fixture, runtime, spec};

#[tokio::test]
async fn args_and_env_reach_the_guest() {
    let (exit, stdout, _) =
        run_fixture("args-env.wasm", &["args-env", "one", "two words"], &[("GREETING", "hello"), ("EMPTY", "")]).await;
    assert_eq!((exit.code, exit.reason), (0, ExitReason::Exited), "{exit:?}");
    let out = stdout.text();
    let expected = "argv[0]=args-env\nargv[1]=one\nargv[2]=two words\n\
                    env GREETING=hello\nenv EMPTY=\ndone\n";
    assert_eq!(out, expected);
}

#[tokio::test]
async fn exit_codes_are_reported() {
    for (argv, code) in [(&["exit-code"][..], 3), (&["exit-code", "7"][..], 7), (&["exit-code", "0"][..], 0)] {
        let (exit, stdout, stderr) = run_fixture("exit-code.wasm", argv, &[]).await;
        assert_eq!((exit.code, exit.reason), (code, ExitReason::Exited), "{exit:?}");
        assert_eq!(stdout.text(), format!("exiting with {code}\n"));
        assert!(stderr.text().contains("this line goes to stderr"), "{}", stderr.text());
        assert!(exit.wall >= exit.cpu, "{exit:?}");
    }
}

#[tokio::test]
async fn trap_is_134_with_the_trap_text() {
    let (exit, stdout, stderr) = run_fixture("trap.wasm", &["trap"], &[]).await;
    assert_eq!((exit.code, exit.reason), (134, ExitReason::Trapped), "{exit:?}");
    // The trap first, then where it happened.
    let trap = "wasm trap: wasm `unreachable` instruction executed\n";
    assert!(exit.message.starts_with(trap), "{}", exit.message);
    assert!(exit.message.contains("wasm backtrace"), "{}", exit.message);
    assert!(exit.message.contains("_start"), "{}", exit.message);
    assert_eq!(stdout.text(), "about to trap\n");
    assert!(stderr.text().contains("executing unreachable"), "{}", stderr.text());
}

#[tokio::test]
async fn missing_import_is_a_start_error_naming_it() {
    let runtime = runtime();
    let compiled = compile(&runtime, "missing-import.wasm").await;
    let (spec, _, _) = spec(&["missing-import"], &[]);
    let err = run(&runtime, &compiled, spec).await.unwrap_err();
    assert!(matches!(err, StartError::Link { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("env::does_not_exist"), "{text}");
    assert_eq!(err.metric_label(), "link");
}

/// A guest that keeps allocating is OOM-killed at its limit (137), instead
/// of seeing `malloc` fail.
#[tokio::test]
async fn memory_limit_kills_with_137() {
    let runtime = runtime();
    let compiled = compile(&runtime, "memhog.wasm").await;
    let (mut spec, stdout, _) = spec(&["memhog"], &[]);
    spec.limits = Limits { memory_bytes: Some(16 << 20), ..Limits::default() };
    let exit = run(&runtime, &compiled, spec).await.unwrap();
    assert_eq!((exit.code, exit.reason), (137, ExitReason::OutOfMemory), "{exit:?}");
    assert_eq!(exit.message, "memory limit of 16777216 bytes exceeded");
    let out = stdout.text();
    assert!(out.contains("allocated 1 MiB"), "{out}");
    assert!(!out.contains("allocated 16 MiB"), "{out}");
    assert!(!out.contains("malloc failed"), "{out}");
}

/// Without a limit in the spec, the runtime's `max_memory_bytes` applies.
#[tokio::test]
async fn runtime_memory_cap_applies_without_a_limit() {
    let runtime = Runtime::new(Config { max_memory_bytes: 8 << 20, ..Config::default() }).unwrap();
    let compiled = compile(&runtime, "memhog.wasm").await;
    let (spec, stdout, _) = spec(&["memhog"], &[]);
    let exit = run(&runtime, &compiled, spec).await.unwrap();
    assert_eq!((exit.code, exit.reason), (137, ExitReason::OutOfMemory), "{exit:?}");
    assert_eq!(exit.message, "memory limit of 8388608 bytes exceeded");
    assert!(stdout.text().contains("allocated 1 MiB"), "{}", stdout.text());
}

/// Under its limit, memhog holds what it asked for and keeps running.
#[tokio::test]
async fn guest_under_its_limit_is_not_killed() {
    let runtime = runtime();
    let compiled = compile(&runtime, "memhog.wasm").await;
    let (mut spec, stdout, _) = spec(&["memhog"], &[("LIMIT_MB", "4")]);
    spec.limits.memory_bytes = Some(16 << 20);
    let stop = tokio_util::sync::CancellationToken::new();
    let guest = runtime.run(&compiled, spec, stop.clone());
    let watch = async {
        stdout.wait_for("holding 4 MiB").await;
        stop.cancel();
    };
    let (exit, ()) = tokio::join!(guest, watch);
    let exit = exit.unwrap();
    assert_eq!((exit.code, exit.reason), (143, ExitReason::Stopped), "{exit:?}");
}

/// Compiled code is linked once and can run many times.
#[tokio::test]
async fn compiled_code_runs_repeatedly() {
    let runtime = runtime();
    let compiled = compile(&runtime, "exit-code.wasm").await;
    for code in ["1", "2"] {
        let (spec, stdout, _) = spec(&["exit-code", code], &[]);
        let exit = run(&runtime, &compiled, spec).await.unwrap();
        assert_eq!(exit.code.to_string(), code);
        assert_eq!(stdout.text(), format!("exiting with {code}\n"));
    }
}
