use std::collections::HashSet;
use std::io::Write;
use std::time::SystemTime;

use super::*;
use crate::wasm::tests::{MODULE, component};

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

/// Stores `bytes` as the wasm of `reference`, the way a pull commits.
fn put(store: &Store, reference: &Reference, bytes: &[u8]) -> Image {
    let mut file = store.inner.temp_file().unwrap();
    file.write_all(bytes).unwrap();
    let inspected = Inspected::file(file.path()).unwrap();
    let image = Image {
        reference: reference.whole(),
        manifest_digest: Digest::of(reference.whole().as_bytes()),
        wasm_digest: inspected.digest,
        size: inspected.size,
        kind: inspected.kind.unwrap(),
    };
    store.inner.commit(Some(file), &image).unwrap();
    image
}

fn tmp_files(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("tmp")).unwrap().count()
}

#[tokio::test]
async fn stores_looks_up_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("oci")).unwrap();
    let r = reference("127.0.0.1:5000/hello:v1");
    assert_eq!(store.lookup(&r).unwrap(), None);

    let image = put(&store, &r, MODULE);
    assert_eq!(image.kind, WasmKind::Module);
    assert_eq!(image.size, MODULE.len() as u64);
    assert_eq!(store.lookup(&r).unwrap(), Some(image.clone()));
    assert_eq!(store.read(&image.wasm_digest).await.unwrap(), MODULE);
    let path = store.blob_path(&image.wasm_digest);
    assert!(path.ends_with(format!("blobs/sha256/{}", image.wasm_digest.hex())));
    assert_eq!(tmp_files(&store), 0, "temp files are renamed away");

    // Normalization: the short form names the same entry.
    let hub = put(&store, &reference("docker.io/library/app:latest"), MODULE);
    assert_eq!(store.lookup(&reference("app")).unwrap(), Some(hub));
    // Reopening sees the same content.
    let again = Store::open(store.root()).unwrap();
    assert_eq!(again.images().unwrap().len(), 2);
}

#[tokio::test]
async fn corrupted_blob_is_detected_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = reference("registry.example/app:1");
    let image = put(&store, &r, &component());
    let path = store.blob_path(&image.wasm_digest);
    std::fs::write(&path, b"\0asm\x0d\0\x01\0 tampered").unwrap();

    let err = store.read(&image.wasm_digest).await.unwrap_err();
    let Error::CorruptBlob { digest, actual } = &err else {
        panic!("expected CorruptBlob, got {err:?}");
    };
    assert_eq!(digest, &image.wasm_digest);
    assert_eq!(actual, &Digest::of(b"\0asm\x0d\0\x01\0 tampered"));
    assert!(err.to_string().contains(image.wasm_digest.as_str()));
    assert!(!path.exists(), "corrupted blob removed");
    assert_eq!(store.lookup(&r).unwrap(), None, "lookup needs the blob");
    let err = store.read(&image.wasm_digest).await.unwrap_err();
    assert!(matches!(err, Error::BlobNotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn gc_keeps_only_the_given_digests() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let keep_ref = reference("r.example/keep:1");
    let alias = reference("r.example/keep-alias:1");
    let drop_ref = reference("r.example/drop:1");
    let kept = put(&store, &keep_ref, MODULE);
    put(&store, &alias, MODULE);
    let dropped = put(&store, &drop_ref, &component());
    // A malformed entry and an orphan blob.
    std::fs::write(store.root().join("refs/garbage.json"), b"{").unwrap();
    let orphan = Digest::of(b"orphan");
    std::fs::write(store.blob_path(&orphan), b"orphan").unwrap();
    // A stale and a fresh temp file.
    let stale = store.inner.temp_file().unwrap().keep().unwrap().1;
    let old = SystemTime::now() - TMP_MAX_AGE * 2;
    std::fs::File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
    let _fresh = store.inner.temp_file().unwrap();

    let keep = HashSet::from([kept.wasm_digest.clone()]);
    let report = store.gc(&keep).await.unwrap();
    let mut removed = report.removed_blobs.clone();
    removed.sort();
    let mut expected = vec![dropped.wasm_digest.clone(), orphan];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(report.freed_bytes, dropped.size + 6);
    assert_eq!(report.removed_refs.len(), 2, "{:?}", report.removed_refs);
    assert!(report.removed_refs.contains(&drop_ref.whole()));

    assert_eq!(store.lookup(&keep_ref).unwrap(), Some(kept.clone()));
    assert!(store.lookup(&alias).unwrap().is_some());
    assert_eq!(store.lookup(&drop_ref).unwrap(), None);
    assert!(!stale.exists());
    assert_eq!(tmp_files(&store), 1, "fresh temp file kept");

    let report = store.gc(&HashSet::new()).await.unwrap();
    assert_eq!(report.removed_blobs, vec![kept.wasm_digest]);
    assert_eq!(report.removed_refs.len(), 2);
    assert!(store.images().unwrap().is_empty());
}

#[tokio::test]
async fn concurrent_commits_of_the_same_content_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = reference("r.example/app:1");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, r) = (store.clone(), r.clone());
            tokio::task::spawn_blocking(move || put(&store, &r, MODULE))
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.images().unwrap().len(), 1);
    assert_eq!(store.read(&Digest::of(MODULE)).await.unwrap(), MODULE);
    assert_eq!(tmp_files(&store), 0);
}

#[test]
fn lookup_ignores_malformed_entries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = reference("r.example/app:1");
    let image = put(&store, &r, MODULE);
    let entry = std::fs::read_dir(store.root().join("refs")).unwrap().next().unwrap().unwrap();
    std::fs::write(entry.path(), b"not json").unwrap();
    assert_eq!(store.lookup(&r).unwrap(), None);
    assert!(store.blob_path(&image.wasm_digest).exists());
}

#[test]
fn open_fails_with_a_path_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = Store::open(&file).unwrap_err();
    assert!(err.to_string().contains("file"), "{err}");
}

#[tokio::test]
async fn check_finds_corrupt_blobs_and_odd_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("oci")).unwrap();
    let good = put(&store, &reference("127.0.0.1:5000/good:v1"), MODULE);
    let bad = put(&store, &reference("127.0.0.1:5000/bad:v1"), &component());
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.good.len(), 2);

    // Same length, one byte flipped.
    let path = store.blob_path(&bad.wasm_digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::write(store.root().join("blobs/sha256/not-a-digest"), b"x").unwrap();
    std::fs::write(store.root().join("refs/broken.json"), b"{").unwrap();
    let report = store.check().await.unwrap();
    assert!(!report.is_clean());
    assert_eq!(report.good, std::slice::from_ref(&good.wasm_digest));
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].digest, bad.wasm_digest);
    assert_eq!(report.corrupt[0].actual, Digest::of(&bytes));
    assert_eq!(report.unnamed.len(), 1);
    assert_eq!(report.malformed_refs.len(), 1);
    let text = report.to_string();
    assert!(text.contains(&format!("corrupt blob {}", bad.wasm_digest)), "{text}");
    // The check only reports: the blob is still there.
    assert!(path.is_file());

    // A blob gone behind the index's back is a dangling reference, not corruption.
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(store.root().join("blobs/sha256/not-a-digest")).unwrap();
    std::fs::remove_file(store.root().join("refs/broken.json")).unwrap();
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.dangling_refs, ["127.0.0.1:5000/bad:v1"]);
}
