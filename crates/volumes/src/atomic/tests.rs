use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::*;

fn payload(files: &[(&str, &str, u32)]) -> Payload {
    files.iter().map(|(p, d, m)| ((*p).to_owned(), FileProjection { data: d.as_bytes().to_vec(), mode: *m })).collect()
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn layout_is_the_kubelets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert!(write(dir, &payload(&[("a", "1", 0o644), ("sub/b", "2", 0o400)])).unwrap());
    let data = fs::read_link(dir.join(DATA_DIR)).unwrap();
    assert!(data.to_str().unwrap().starts_with("..20"), "{data:?}");
    assert_eq!(fs::read_link(dir.join("a")).unwrap(), Path::new("..data/a"));
    assert_eq!(fs::read_link(dir.join("sub")).unwrap(), Path::new("..data/sub"));
    assert_eq!(read(dir, "a"), "1");
    assert_eq!(read(dir, "sub/b"), "2");
    assert_eq!(mode(&dir.join("a")), 0o644);
    assert_eq!(mode(&dir.join("sub/b")), 0o400);
    assert_eq!(mode(&dir.join(&data)), DIR_MODE);
    assert_eq!(mode(&dir.join(&data).join("sub")), DIR_MODE);
}

#[test]
fn updates_swap_versions_and_drop_removed_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(dir, &payload(&[("a", "1", 0o644), ("b", "1", 0o644)])).unwrap();
    let first = fs::read_link(dir.join(DATA_DIR)).unwrap();
    assert!(!write(dir, &payload(&[("a", "1", 0o644), ("b", "1", 0o644)])).unwrap(), "unchanged: no write");
    assert_eq!(fs::read_link(dir.join(DATA_DIR)).unwrap(), first);
    assert!(write(dir, &payload(&[("a", "1", 0o600), ("b", "1", 0o644)])).unwrap(), "a mode change is a change");
    assert!(write(dir, &payload(&[("a", "2", 0o644), ("c", "3", 0o644)])).unwrap());
    assert_eq!(read(dir, "a"), "2");
    assert_eq!(read(dir, "c"), "3");
    assert!(fs::symlink_metadata(dir.join("b")).is_err(), "b is gone");
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    let version = fs::read_link(dir.join(DATA_DIR)).unwrap().to_string_lossy().into_owned();
    assert_eq!(names, [version, "..data".into(), "a".into(), "c".into()], "old versions are removed");
    assert!(write(dir, &Payload::new()).unwrap());
    assert!(fs::symlink_metadata(dir.join("a")).is_err());
}

#[test]
fn payload_paths_are_validated_like_upstream() {
    assert_eq!(clean_path("a/./b//c").unwrap(), "a/b/c");
    for (bad, reason) in [
        ("", "must not be empty"),
        ("/abs", "must be relative path"),
        ("a/../b", "must not contain '..'"),
        ("..", "must not contain '..'"),
        ("..data", "must not start with '..'"),
        ("..x/y", "must not start with '..'"),
    ] {
        match clean_path(bad) {
            Err(AtomicError::InvalidPath { reason: r, .. }) => assert_eq!(r, reason, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(clean_path(&"x".repeat(256)).is_err());
    assert!(clean_path("a..b/..c").is_ok(), "only a leading '..' component is reserved");
    let tmp = tempfile::tempdir().unwrap();
    assert!(write(tmp.path(), &payload(&[("../escape", "x", 0o644)])).is_err());
    assert!(fs::read_dir(tmp.path()).unwrap().next().is_none(), "nothing written");
}

/// Readers racing a writer never see a partial file, nor two versions
/// through one resolution of `..data`.
#[test]
fn concurrent_readers_never_see_partial_sets() {
    const VERSIONS: usize = 200;
    const SIZE: usize = 64 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let dir = Arc::new(tmp.path().to_owned());
    let version_payload = |v: usize| {
        let body = format!("{v:06}").repeat(SIZE / 6);
        payload(&[("a", &body, 0o644), ("b", &body, 0o644), ("nested/c", &body, 0o644)])
    };
    write(&dir, &version_payload(0)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (dir, done, checked) = (dir.clone(), done.clone(), checked.clone());
            std::thread::spawn(move || {
                let complete =
                    |s: &str| s.len() == SIZE / 6 * 6 && s.as_bytes().chunks(6).all(|c| c == &s.as_bytes()[..6]);
                while !done.load(Ordering::Relaxed) {
                    // Through the user-visible symlinks: always a complete file.
                    for name in ["a", "b", "nested/c"] {
                        match fs::read_to_string(dir.join(name)) {
                            Ok(s) => assert!(complete(&s), "partial {name}: {} bytes", s.len()),
                            Err(e) => assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}"),
                        }
                    }
                    // Through one resolution of ..data: one version for all.
                    let Ok(version) = fs::read_link(dir.join(DATA_DIR)) else { continue };
                    let base = dir.join(version);
                    let read = ["a", "b", "nested/c"].map(|n| fs::read_to_string(base.join(n)));
                    if let [Ok(a), Ok(b), Ok(c)] = &read {
                        assert!(complete(a));
                        assert!(a == b && b == c, "mixed versions in one set");
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for v in 1..=VERSIONS {
        write(&dir, &version_payload(v)).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert!(checked.load(Ordering::Relaxed) > 0, "the readers did read");
    assert!(read(&dir, "a").starts_with(&format!("{VERSIONS:06}")));
}
