//! [`SlowFs`]: a slow disk for tests — a FUSE filesystem, served by this
//! process, that passes every operation through to a backing directory
//! after a fixed delay.
//!
//! Mounted over a node's `<root>/pods`, it makes every file operation the
//! agent does for its pods (checkpoints, logs, emptyDir walks, volume set
//! up and removal) take at least the delay, like a disk that answers
//! slowly. Attributes and directory entries are not cached by the kernel
//! (time-to-live 0), so every `stat` and lookup comes here. Requests are
//! served by [`THREADS`] threads, so independent operations overlap (a
//! slow disk with queue depth, not a serial one).
//!
//! Needs root and `/dev/fuse` (as the test bed's machines have); the mount
//! is removed when the value is dropped.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Threads serving requests.
pub const THREADS: usize = 16;
/// Nothing is cached by the kernel.
const TTL: Duration = Duration::ZERO;

/// A mounted slow filesystem; unmounted on drop.
pub struct SlowFs {
    session: Option<fuser::BackgroundSession>,
    ops: Arc<Ops>,
}

/// Operations served, by name.
#[derive(Default)]
struct Ops {
    total: AtomicU64,
    by_name: Mutex<HashMap<&'static str, u64>>,
}

impl SlowFs {
    /// Mounts at `mountpoint` (an existing empty directory) a view of
    /// `backing` where every operation first waits `delay`.
    pub fn mount(backing: &Path, mountpoint: &Path, delay: Duration) -> std::io::Result<SlowFs> {
        let ops = Arc::new(Ops::default());
        let fs = Passthrough {
            delay,
            ops: ops.clone(),
            paths: Mutex::new(HashMap::from([(INodeNo::ROOT.0, backing.to_owned())])),
            root_ino: fs::metadata(backing)?.ino(),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
        };
        let mut config = fuser::Config::default();
        config.n_threads = Some(THREADS);
        config.mount_options = vec![fuser::MountOption::FSName("wasmlet-slowfs".into())];
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(SlowFs { session: Some(session), ops })
    }

    /// Operations served so far.
    pub fn ops(&self) -> u64 {
        self.ops.total.load(Ordering::SeqCst)
    }

    /// Operations named `name` (`lookup`, `getattr`, `readdir`, `write`,
    /// `fsync`, `rename`, …) served so far.
    pub fn ops_named(&self, name: &str) -> u64 {
        self.ops.by_name.lock().unwrap_or_else(|p| p.into_inner()).get(name).copied().unwrap_or(0)
    }
}

impl Drop for SlowFs {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}

struct Passthrough {
    delay: Duration,
    ops: Arc<Ops>,
    /// Inode → backing path (the root is inode 1; others keep their
    /// backing inode number).
    paths: Mutex<HashMap<u64, PathBuf>>,
    root_ino: u64,
    files: Mutex<HashMap<u64, File>>,
    next_fh: AtomicU64,
}

fn errno(e: std::io::Error) -> Errno {
    Errno::from(e)
}

impl Passthrough {
    /// Waits the delay and counts the operation.
    fn op(&self, name: &'static str) {
        std::thread::sleep(self.delay);
        self.ops.total.fetch_add(1, Ordering::SeqCst);
        *self.ops.by_name.lock().unwrap_or_else(|p| p.into_inner()).entry(name).or_default() += 1;
    }

    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.lock().unwrap_or_else(|p| p.into_inner()).get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        Ok(self.path(parent)?.join(name))
    }

    /// The attributes of `path`, remembering its inode.
    fn attr(&self, path: &Path) -> Result<FileAttr, Errno> {
        let meta = fs::symlink_metadata(path).map_err(errno)?;
        let ino = if meta.ino() == self.root_ino { INodeNo::ROOT.0 } else { meta.ino() };
        self.paths.lock().unwrap_or_else(|p| p.into_inner()).insert(ino, path.to_owned());
        let time = |secs: i64, nsecs: i64| {
            UNIX_EPOCH + Duration::new(u64::try_from(secs).unwrap_or(0), u32::try_from(nsecs).unwrap_or(0))
        };
        let kind = match meta.mode() & 0o170000 {
            0o040000 => FileType::Directory,
            0o120000 => FileType::Symlink,
            0o010000 => FileType::NamedPipe,
            0o140000 => FileType::Socket,
            0o020000 => FileType::CharDevice,
            0o060000 => FileType::BlockDevice,
            _ => FileType::RegularFile,
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: meta.size(),
            blocks: meta.blocks(),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: time(meta.ctime(), meta.ctime_nsec()),
            kind,
            perm: (meta.mode() & 0o7777) as u16,
            nlink: u32::try_from(meta.nlink()).unwrap_or(u32::MAX),
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: u32::try_from(meta.rdev()).unwrap_or(0),
            blksize: u32::try_from(meta.blksize()).unwrap_or(4096),
            flags: 0,
        })
    }

    fn entry(&self, path: &Path, reply: ReplyEntry) {
        match self.attr(path) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn keep(&self, file: File) -> FileHandle {
        let fh = self.next_fh.fetch_add(1, Ordering::SeqCst);
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(fh, file);
        FileHandle(fh)
    }

    fn with_file<T>(&self, fh: FileHandle, f: impl FnOnce(&File) -> std::io::Result<T>) -> Result<T, Errno> {
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let file = files.get(&fh.0).ok_or(Errno::EBADF)?;
        f(file).map_err(errno)
    }

    fn options(flags: i32) -> OpenOptions {
        let mut options = OpenOptions::new();
        match flags & 0o3 {
            0 => options.read(true),
            1 => options.write(true),
            _ => options.read(true).write(true),
        };
        options.append(flags & 0o2000 != 0).truncate(flags & 0o1000 != 0);
        options
    }
}

fn reply_empty(reply: ReplyEmpty, result: std::io::Result<()>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

fn to_time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

impl Filesystem for Passthrough {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.op("lookup");
        match self.child(parent, name) {
            Ok(path) => self.entry(&path, reply),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.op("getattr");
        match self.path(ino).and_then(|p| self.attr(&p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.op("setattr");
        let result = (|| -> Result<FileAttr, Errno> {
            let path = self.path(ino)?;
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(errno)?;
            }
            if let Some(size) = size {
                OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(size)).map_err(errno)?;
            }
            if atime.is_some() || mtime.is_some() {
                let mut times = fs::FileTimes::new();
                if let Some(t) = atime {
                    times = times.set_accessed(to_time(t));
                }
                if let Some(t) = mtime {
                    times = times.set_modified(to_time(t));
                }
                File::options().write(true).open(&path).and_then(|f| f.set_times(times)).map_err(errno)?;
            }
            self.attr(&path)
        })();
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.op("readlink");
        match self.path(ino).and_then(|p| fs::read_link(p).map_err(errno)) {
            Ok(target) => reply.data(target.as_os_str().as_encoded_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.op("mkdir");
        let made = self.child(parent, name).and_then(|path| {
            fs::create_dir(&path).map_err(errno)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & !umask & 0o7777)).map_err(errno)?;
            Ok(path)
        });
        match made {
            Ok(path) => self.entry(&path, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.op("unlink");
        match self.child(parent, name) {
            Ok(path) => reply_empty(reply, fs::remove_file(path)),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.op("rmdir");
        match self.child(parent, name) {
            Ok(path) => reply_empty(reply, fs::remove_dir(path)),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(&self, _req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.op("symlink");
        let made = self.child(parent, link_name).and_then(|path| {
            std::os::unix::fs::symlink(target, &path).map_err(errno)?;
            Ok(path)
        });
        match made {
            Ok(path) => self.entry(&path, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        self.op("rename");
        let (from, to) = match (self.child(parent, name), self.child(newparent, newname)) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        if let Err(e) = fs::rename(&from, &to) {
            return reply.error(errno(e));
        }
        // Everything known under the old name now lives under the new one.
        let mut paths = self.paths.lock().unwrap_or_else(|p| p.into_inner());
        for path in paths.values_mut() {
            if let Ok(rest) = path.strip_prefix(&from) {
                *path = if rest.as_os_str().is_empty() { to.clone() } else { to.join(rest) };
            }
        }
        reply.ok();
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        self.op("link");
        let made = self.path(ino).and_then(|from| {
            let to = self.child(newparent, newname)?;
            fs::hard_link(&from, &to).map_err(errno)?;
            Ok(to)
        });
        match made {
            Ok(path) => self.entry(&path, reply),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.op("open");
        match self.path(ino).and_then(|p| Self::options(flags.0).open(p).map_err(errno)) {
            Ok(file) => reply.opened(self.keep(file), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.op("read");
        let mut buf = vec![0; size as usize];
        match self.with_file(fh, |f| f.read_at(&mut buf, offset)) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.op("write");
        match self.with_file(fh, |f| f.write_all_at(data, offset)) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).remove(&fh.0);
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        self.op("fsync");
        match self.with_file(fh, |f| if datasync { f.sync_data() } else { f.sync_all() }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        self.op("readdir");
        let path = match self.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(e)),
        };
        let mut all = vec![(ino.0, FileType::Directory, ".".into()), (ino.0, FileType::Directory, "..".into())];
        for entry in entries.flatten() {
            let kind = match entry.file_type() {
                Ok(t) if t.is_dir() => FileType::Directory,
                Ok(t) if t.is_symlink() => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            let ino = entry.metadata().map(|m| m.ino()).unwrap_or(u64::MAX);
            all.push((ino, kind, entry.file_name()));
        }
        for (i, (ino, kind, name)) in all.into_iter().enumerate().skip(usize::try_from(offset).unwrap_or(0)) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.op("fsyncdir");
        match self.path(ino) {
            Ok(path) => reply_empty(reply, File::open(path).and_then(|d| d.sync_all())),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        self.op("statfs");
        let stat = self.path(ino).and_then(|p| nix::sys::statvfs::statvfs(&p).map_err(|e| Errno::from_i32(e as i32)));
        match stat {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                u32::try_from(s.block_size()).unwrap_or(4096),
                u32::try_from(s.name_max()).unwrap_or(255),
                u32::try_from(s.fragment_size()).unwrap_or(4096),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.op("access");
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        self.op("create");
        let made = self.child(parent, name).and_then(|path| {
            let mut options = Self::options(flags);
            if flags & 0o3 == 0 {
                options.write(true);
            }
            options.mode(mode & !umask & 0o7777);
            if flags & 0o200 != 0 {
                options.create_new(true);
            } else {
                options.create(true);
            }
            let file = options.open(&path).map_err(errno)?;
            Ok((path, file))
        });
        match made.and_then(|(path, file)| Ok((self.attr(&path)?, file))) {
            Ok((attr, file)) => reply.created(&TTL, &attr, Generation(0), self.keep(file), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }
}
