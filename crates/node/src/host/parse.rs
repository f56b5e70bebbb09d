//! Pure parsers for the host files [`super`] reads, so they can be tested with
//! sample contents.

/// What `/proc/meminfo` says, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meminfo {
    pub(crate) total: u64,
    /// `MemAvailable` (kernels since 3.14); `None` on older kernels.
    pub(crate) available: Option<u64>,
}

/// Parses `/proc/meminfo` (`MemTotal:  24684096 kB`).
pub(crate) fn meminfo(content: &str) -> Option<Meminfo> {
    let mut total = None;
    let mut available = None;
    for line in content.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            _ => continue,
        };
        let mut words = rest.split_whitespace();
        let value: u64 = words.next()?.parse().ok()?;
        let scale = match words.next() {
            Some("kB") => 1024,
            None => 1,
            Some(_) => return None,
        };
        *slot = Some(value.checked_mul(scale)?);
    }
    Some(Meminfo { total: total?, available })
}

/// The memory cgroup path of this process from `/proc/self/cgroup`: the cgroup
/// v2 entry (`0::/path`) when `v2`, else the v1 `memory` controller's.
pub(crate) fn cgroup_path(content: &str, v2: bool) -> Option<&str> {
    content.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches =
            if v2 { id == "0" && controllers.is_empty() } else { controllers.split(',').any(|c| c == "memory") };
        matches.then_some(path)
    })
}

/// A cgroup memory limit (`memory.max` / `memory.limit_in_bytes`): `None` for
/// `max` or anything unparsable.
pub(crate) fn limit(content: &str) -> Option<u64> {
    let s = content.trim();
    if s == "max" {
        return None;
    }
    s.parse().ok()
}

/// The cgroup directories from `path` up to the root, deepest first
/// (`/a/b` → `["a/b", "a", ""]`), relative to the hierarchy's mount point.
pub(crate) fn cgroup_ancestry(path: &str) -> Vec<String> {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut out = Vec::with_capacity(parts.len() + 1);
    loop {
        out.push(parts.join("/"));
        if parts.pop().is_none() {
            break;
        }
    }
    out
}

/// `PRETTY_NAME` from an os-release file, unquoted.
pub(crate) fn os_release_pretty_name(content: &str) -> Option<String> {
    content.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let unquoted = match value.chars().next() {
            Some(q @ ('"' | '\'')) => value.strip_prefix(q)?.strip_suffix(q)?,
            _ => value,
        };
        let mut out = String::with_capacity(unquoted.len());
        let mut chars = unquoted.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                c => out.push(c),
            }
        }
        Some(out)
    })
}

/// The content of a one-line identifier file (machine-id, boot_id), trimmed;
/// `None` when empty.
pub(crate) fn id(content: &str) -> Option<String> {
    let s = content.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684096 kB\n\
                           MemFree:        17995516 kB\n\
                           MemAvailable:   23047000 kB\n\
                           Buffers:          123456 kB\n\
                           HugePages_Total:       0\n";

    #[test]
    fn meminfo_in_bytes() {
        assert_eq!(meminfo(MEMINFO), Some(Meminfo { total: 24_684_096 * 1024, available: Some(23_047_000 * 1024) }));
        assert_eq!(meminfo("MemTotal: 1024 kB\n"), Some(Meminfo { total: 1024 * 1024, available: None }));
        assert_eq!(meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(meminfo("MemTotal: lots kB\n"), None);
    }

    #[test]
    fn cgroup_paths_v1_and_v2() {
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/497bf\n3:cpuset:/\n0::/\n";
        assert_eq!(cgroup_path(hybrid, true), Some("/"));
        assert_eq!(cgroup_path(hybrid, false), Some("/process_api/497bf"));
        let v2 = "0::/system.slice/wasmlet.service\n";
        assert_eq!(cgroup_path(v2, true), Some("/system.slice/wasmlet.service"));
        assert_eq!(cgroup_path(v2, false), None);
        assert_eq!(cgroup_path("5:cpu,memory:/x\n", false), Some("/x"));
    }

    #[test]
    fn cgroup_limits() {
        assert_eq!(limit("max\n"), None);
        assert_eq!(limit("1073741824\n"), Some(1 << 30));
        assert_eq!(limit("9223372036854771712\n"), Some(9_223_372_036_854_771_712));
        assert_eq!(limit(""), None);
    }

    #[test]
    fn ancestry_deepest_first() {
        assert_eq!(cgroup_ancestry("/a/b"), ["a/b", "a", ""]);
        assert_eq!(cgroup_ancestry("/"), [""]);
    }

    #[test]
    fn pretty_name() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n";
        assert_eq!(os_release_pretty_name(debian).as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
        assert_eq!(os_release_pretty_name("PRETTY_NAME='Alpine \\\"edge\\\"'\n").as_deref(), Some("Alpine \"edge\""));
        assert_eq!(os_release_pretty_name("PRETTY_NAME=Plain\n").as_deref(), Some("Plain"));
        assert_eq!(os_release_pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn ids_are_trimmed() {
        assert_eq!(id("3d1219c7c4c5404aaa1f6d2a48adfda4\n").as_deref(), Some("3d1219c7c4c5404aaa1f6d2a48adfda4"));
        assert_eq!(id("\n"), None);
    }
}
