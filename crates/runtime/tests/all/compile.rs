//! The compile cache: errors, single flight, retain, the on-disk cache.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use wasmlet_oci::Digest;
use wasmlet_runtime::{CompileError, Config, Kind, LoadError, Runtime};

use crate::{fixture, runtime};

#[tokio::test]
async fn invalid_module_is_a_clear_compile_error() {
    let runtime = runtime();
    let bytes = fixture("invalid.wasm");
    let err = runtime.compile(&Digest::of(&bytes), bytes).await.unwrap_err();
    assert!(matches!(err, CompileError::Invalid { kind: Kind::Module, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.starts_with("invalid WebAssembly module sha256:"), "{text}");
    // wasmtime's reason is in the message, not only in the source chain.
    assert!(text.len() > "invalid WebAssembly module sha256:".len() + 64 + 4, "{text}");
    assert_eq!(runtime.compile_stats().failures, 1);
}

#[tokio::test]
async fn wat_text_is_not_accepted() {
    let runtime = runtime();
    let wat = br#"(module (func (export "_start")))"#.to_vec();
    let err = runtime.compile(&Digest::of(&wat), wat).await.unwrap_err();
    assert!(matches!(err, CompileError::NotWasm { .. }), "{err:?}");
    assert!(err.to_string().contains("not a WebAssembly binary"), "{err}");
}

#[tokio::test]
async fn too_large_is_refused_before_compiling() {
    let runtime = Runtime::new(Config { max_module_bytes: 1024, ..Config::default() }).unwrap();
    let bytes = fixture("args-env.wasm");
    let err = runtime.compile(&Digest::of(&bytes), bytes).await.unwrap_err();
    assert!(matches!(err, CompileError::TooLarge { max: 1024, .. }), "{err:?}");
    assert_eq!(runtime.compile_stats().compiles, 0);
}

#[tokio::test]
async fn detects_module_and_component() {
    let runtime = runtime();
    assert_eq!(crate::compile(&runtime, "args-env.wasm").await.kind(), Kind::Module);
    let component = crate::compile(&runtime, "hello-p2.wasm").await;
    assert_eq!(component.kind(), Kind::Component);
    assert!(component.component().is_some() && component.module().is_none());
}

/// 20 concurrent calls for one digest: one load, one compilation, and none
/// of them was served from an already-filled cache (they all waited on the
/// single flight).
#[tokio::test]
async fn concurrent_calls_compile_once() {
    const CALLS: usize = 20;
    let runtime = runtime();
    let bytes = fixture("exit-code.wasm");
    let digest = Digest::of(&bytes);
    let loads = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..CALLS {
        let (runtime, digest, bytes) = (runtime.clone(), digest.clone(), bytes.clone());
        let (loads, started, gate) = (loads.clone(), started.clone(), gate.clone());
        calls.spawn(async move {
            started.fetch_add(1, Ordering::SeqCst);
            let load = || async move {
                loads.fetch_add(1, Ordering::SeqCst);
                gate.notified().await;
                Ok::<_, LoadError>(bytes)
            };
            runtime.compile_with(&digest, load).await
        });
    }
    // On this current-thread runtime each task runs until it waits in
    // `compile_with`; yield until all of them got there.
    for _ in 0..1000 {
        if started.load(Ordering::SeqCst) == CALLS {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(started.load(Ordering::SeqCst), CALLS);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "only the first call loads");
    gate.notify_one();
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.unwrap().unwrap().digest(), &digest);
    }
    let stats = runtime.compile_stats();
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!((stats.compiles, stats.hits, stats.cached), (1, 0, 1), "{stats:?}");
    // A later call is a cache hit and does not load.
    let later =
        runtime.compile_with(&digest, || async { Err::<Vec<u8>, LoadError>("must not load".into()) }).await.unwrap();
    assert_eq!(later.digest(), &digest);
    assert_eq!(runtime.compile_stats().hits, 1);
}

#[tokio::test]
async fn failures_are_not_cached() {
    let runtime = runtime();
    let bytes = fixture("exit-code.wasm");
    let digest = Digest::of(&bytes);
    let err =
        runtime.compile_with(&digest, || async { Err::<Vec<u8>, LoadError>("disk on fire".into()) }).await.unwrap_err();
    assert!(matches!(err, CompileError::Load { .. }), "{err:?}");
    runtime.compile(&digest, bytes).await.unwrap();
    let stats = runtime.compile_stats();
    assert_eq!((stats.failures, stats.compiles, stats.cached), (1, 1, 1), "{stats:?}");
}

#[tokio::test]
async fn retain_drops_other_digests() {
    let runtime = runtime();
    let a = crate::compile(&runtime, "exit-code.wasm").await;
    let b = crate::compile(&runtime, "args-env.wasm").await;
    runtime.retain(&HashSet::from([a.digest().clone()]));
    assert_eq!(runtime.compile_stats().cached, 1);
    crate::compile(&runtime, "exit-code.wasm").await;
    assert_eq!(runtime.compile_stats().compiles, 2, "kept digest is not recompiled");
    crate::compile(&runtime, "args-env.wasm").await;
    assert_eq!(runtime.compile_stats().compiles, 3, "dropped digest is compiled again");
    drop(b);
}

/// A second runtime (a restarted node) with the same cache directory gets the
/// code from wasmtime's disk cache.
#[tokio::test]
async fn disk_cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { cache_dir: Some(dir.path().join("wasm-cache")), ..Config::default() };
    let first = Runtime::new(config.clone()).unwrap();
    crate::compile(&first, "exit-code.wasm").await;
    assert_eq!(first.compile_stats().disk_hits, 0);
    drop(first);
    let second = Runtime::new(config).unwrap();
    let compiled = crate::compile(&second, "exit-code.wasm").await;
    assert_eq!(second.compile_stats().disk_hits, 1);
    let (spec, stdout, _) = crate::spec(&["exit-code", "5"], &[]);
    let exit = crate::run(&second, &compiled, spec).await.unwrap();
    assert_eq!(exit.code, 5);
    assert!(stdout.text().contains("exiting with 5"));
}
