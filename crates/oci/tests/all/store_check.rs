//! The `wasmlet-store-check` binary on a store with a good and a corrupt blob.

use std::process::Command;

use wasmlet_oci::{Digest, NODE_STORE_DIR};

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmlet-store-check")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

#[test]
fn reports_corrupt_blobs_with_exit_code_1() {
    let root = tempfile::tempdir().unwrap();
    let blobs = root.path().join(NODE_STORE_DIR).join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let good = b"\0asm\x01\0\0\0";
    std::fs::write(blobs.join(Digest::of(good).hex()), good).unwrap();
    let root_arg = root.path().display().to_string();

    let (code, text) = run(&["--root-dir", &root_arg]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("1 blobs good, 0 corrupt"), "{text}");

    let claimed = Digest::of(b"something else");
    std::fs::write(blobs.join(claimed.hex()), good).unwrap();
    let (code, text) = run(&["--root-dir", &root_arg]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("corrupt blob {claimed} (8 bytes): content hashes to {}", Digest::of(good))),
        "{text}"
    );

    let (code, text) = run(&["--store", "/nonexistent/wasmlet-store"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("is not an image store"), "{text}");
}
