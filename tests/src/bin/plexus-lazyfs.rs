//! `plexus-lazyfs`: a FUSE pass-through file system that forgets everything not fsynced when it
//! dies, for power-cut tests (the technique of LazyFS, which Jepsen uses).
//!
//! Usage: `plexus-lazyfs BACKING_DIR MOUNTPOINT` (as root, with `/dev/fuse`).
//!
//! Every file under MOUNTPOINT is BACKING_DIR's file of the same name, but data written to it
//! stays in this process's memory (its "page cache") until the file is fsynced: reads through
//! the mount see the new data, the backing file does not. `fsync` and `fdatasync` write the
//! file's unsynced pages and size to the backing file and fsync it there. Killing this process
//! with SIGKILL is therefore a power cut: what was fsynced is on the backing disk, everything
//! else is gone, as when a machine loses the page cache. Unmount the dead mount
//! (`umount -l MOUNTPOINT`) and start a new `plexus-lazyfs` on the same directories to "power on".
//!
//! Unsynced data belongs to the file, not to a name: it is kept by the backing file's inode, so
//! every hard link of a file reads it, an fsync through any name makes it durable, and a power
//! cut loses it through every name.
//!
//! Limits, as in LazyFS: names (create, mkdir, link, rename, unlink, rmdir) and permissions go
//! to the backing directory at once, so a missing directory fsync is not caught (a hard link
//! made and not followed by a directory fsync survives the power cut); a truncation is volatile
//! like data. Files are kept in whole pages of [`PAGE`] bytes; memory grows with the unsynced
//! data, which the programs under test bound by fsyncing.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuse_mt::{
    CallbackResult, CreatedEntry, DirectoryEntry, FileAttr, FileType, FilesystemMT, FuseMT,
    RequestInfo, ResultCreate, ResultEmpty, ResultEntry, ResultOpen, ResultReaddir, ResultSlice,
    ResultStatfs, ResultWrite, Statfs,
};

/// Size of the pages unsynced data is kept in.
const PAGE: u64 = 4096;

/// Attributes are never cached by the kernel: sizes change with unsynced writes only here.
const NO_CACHE: Duration = Duration::ZERO;

/// Threads serving reads, writes and fsyncs.
const THREADS: usize = 4;

/// A file's writes since its last fsync.
#[derive(Debug, Default)]
struct Unsynced {
    /// Whole pages as the file now reads, by page number.
    pages: BTreeMap<u64, Vec<u8>>,
    /// The file's size as it now reads.
    size: u64,
}

/// A backing file's identity (device, inode number): the key of its unsynced data, shared by
/// all of the file's hard links.
type Inode = (u64, u64);

/// The file system: the backing directory and the volatile layer over it.
#[derive(Debug)]
struct LazyFs {
    backing: PathBuf,
    unsynced: Mutex<HashMap<Inode, Unsynced>>,
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(backing), Some(mountpoint), None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: plexus-lazyfs BACKING_DIR MOUNTPOINT");
        std::process::exit(2);
    };
    let backing = fs::canonicalize(&backing)?;
    let filesystem = LazyFs {
        backing,
        unsynced: Mutex::new(HashMap::new()),
    };
    let options: Vec<&OsStr> = vec![OsStr::new("-o"), OsStr::new("fsname=plexus-lazyfs")];
    // Returns when the file system is unmounted; a SIGKILL ends it without flushing anything.
    fuse_mt::mount(FuseMT::new(filesystem, THREADS), &mountpoint, &options)
}

impl LazyFs {
    /// The backing path of a path inside the mount (`/a/b` is `BACKING/a/b`).
    fn real(&self, path: &Path) -> PathBuf {
        self.backing.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Inode, Unsynced>> {
        self.unsynced.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn attr(&self, path: &Path) -> ResultEntry {
        // Locked before the stat, so a concurrent fsync cannot move the data in between.
        self.attr_locked(&self.lock(), path)
    }

    /// [`LazyFs::attr`] for a caller that holds the lock.
    fn attr_locked(&self, map: &HashMap<Inode, Unsynced>, path: &Path) -> ResultEntry {
        let metadata = fs::symlink_metadata(self.real(path)).map_err(errno)?;
        let mut attr = file_attr(&metadata);
        if let Some(unsynced) = map.get(&inode(&metadata)) {
            attr.size = unsynced.size;
            attr.blocks = unsynced.size.div_ceil(512);
        }
        Ok((NO_CACHE, attr))
    }

    /// Reads one page of the file as it now reads (unsynced data over the backing file).
    fn page(&self, path: &Path, unsynced: &Unsynced, number: u64) -> Result<Vec<u8>, i32> {
        if let Some(page) = unsynced.pages.get(&number) {
            return Ok(page.clone());
        }
        let mut page = vec![0u8; PAGE as usize];
        match File::open(self.real(path)) {
            Ok(file) => {
                let mut filled = 0usize;
                while filled < page.len() {
                    let read = file
                        .read_at(&mut page[filled..], number * PAGE + filled as u64)
                        .map_err(errno)?;
                    if read == 0 {
                        break;
                    }
                    filled += read;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(errno(error)),
        }
        // Bytes past the size as it now reads are zeros (a volatile truncation hides them).
        let page_start = number * PAGE;
        if unsynced.size < page_start + PAGE {
            let keep = unsynced.size.saturating_sub(page_start) as usize;
            page[keep..].fill(0);
        }
        Ok(page)
    }

    /// The file's unsynced state, created from the backing file's size on first use.
    fn unsynced_entry<'a>(
        &self,
        map: &'a mut HashMap<Inode, Unsynced>,
        path: &Path,
    ) -> Result<&'a mut Unsynced, i32> {
        let metadata = fs::metadata(self.real(path)).map_err(errno)?;
        Ok(map.entry(inode(&metadata)).or_insert_with(|| Unsynced {
            pages: BTreeMap::new(),
            size: metadata.len(),
        }))
    }

    /// Writes a file's unsynced pages and size to the backing file and fsyncs it there.
    fn sync_file(&self, path: &Path) -> ResultEmpty {
        let mut map = self.lock();
        let metadata = fs::metadata(self.real(path)).map_err(errno)?;
        let Some(unsynced) = map.remove(&inode(&metadata)) else {
            // Nothing unsynced: the backing file may still have data of ours in the host's
            // page cache from an earlier fsync's write, which that fsync already made durable.
            return Ok(());
        };
        let file = OpenOptions::new()
            .write(true)
            .open(self.real(path))
            .map_err(errno)?;
        for (number, page) in &unsynced.pages {
            let start = number * PAGE;
            if start >= unsynced.size {
                continue;
            }
            let len = (unsynced.size - start).min(PAGE) as usize;
            file.write_all_at(&page[..len], start).map_err(errno)?;
        }
        file.set_len(unsynced.size).map_err(errno)?;
        file.sync_all().map_err(errno)?;
        Ok(())
    }
}

impl FilesystemMT for LazyFs {
    fn getattr(&self, _req: RequestInfo, path: &Path, _fh: Option<u64>) -> ResultEntry {
        self.attr(path)
    }

    fn chmod(&self, _req: RequestInfo, path: &Path, _fh: Option<u64>, mode: u32) -> ResultEmpty {
        fs::set_permissions(self.real(path), fs::Permissions::from_mode(mode)).map_err(errno)
    }

    fn chown(
        &self,
        _req: RequestInfo,
        _path: &Path,
        _fh: Option<u64>,
        _uid: Option<u32>,
        _gid: Option<u32>,
    ) -> ResultEmpty {
        Ok(())
    }

    fn truncate(&self, _req: RequestInfo, path: &Path, _fh: Option<u64>, size: u64) -> ResultEmpty {
        let mut map = self.lock();
        let unsynced = self.unsynced_entry(&mut map, path)?;
        if size < unsynced.size {
            // Pages past the new end go; the last page keeps its head only.
            let last = size / PAGE;
            unsynced.pages.retain(|number, _| *number <= last);
            if let Some(page) = unsynced.pages.get_mut(&last) {
                page[(size % PAGE) as usize..].fill(0);
            }
        }
        unsynced.size = size;
        Ok(())
    }

    fn utimens(
        &self,
        _req: RequestInfo,
        _path: &Path,
        _fh: Option<u64>,
        _atime: Option<SystemTime>,
        _mtime: Option<SystemTime>,
    ) -> ResultEmpty {
        Ok(())
    }

    fn mkdir(&self, _req: RequestInfo, parent: &Path, name: &OsStr, mode: u32) -> ResultEntry {
        let path = parent.join(name);
        fs::DirBuilder::new()
            .mode(mode)
            .create(self.real(&path))
            .map_err(errno)?;
        self.attr(&path)
    }

    fn unlink(&self, _req: RequestInfo, parent: &Path, name: &OsStr) -> ResultEmpty {
        let real = self.real(&parent.join(name));
        let mut map = self.lock();
        let metadata = fs::symlink_metadata(&real).map_err(errno)?;
        fs::remove_file(&real).map_err(errno)?;
        // The file's data goes with its last name; other hard links keep it.
        if metadata.nlink() <= 1 {
            map.remove(&inode(&metadata));
        }
        Ok(())
    }

    fn rmdir(&self, _req: RequestInfo, parent: &Path, name: &OsStr) -> ResultEmpty {
        fs::remove_dir(self.real(&parent.join(name))).map_err(errno)
    }

    fn rename(
        &self,
        _req: RequestInfo,
        parent: &Path,
        name: &OsStr,
        new_parent: &Path,
        new_name: &OsStr,
    ) -> ResultEmpty {
        let (from, to) = (
            self.real(&parent.join(name)),
            self.real(&new_parent.join(new_name)),
        );
        let mut map = self.lock();
        let source = fs::symlink_metadata(&from).map_err(errno)?;
        let replaced = fs::symlink_metadata(&to).ok();
        fs::rename(&from, &to).map_err(errno)?;
        // Unsynced data is kept by inode, so the source's moves with it by itself. A replaced
        // file loses its data with its last name (a rename onto another link of the same file
        // changes nothing).
        if let Some(replaced) = replaced {
            if !replaced.is_dir() && replaced.nlink() <= 1 && inode(&replaced) != inode(&source) {
                map.remove(&inode(&replaced));
            }
        }
        Ok(())
    }

    fn link(
        &self,
        _req: RequestInfo,
        path: &Path,
        new_parent: &Path,
        new_name: &OsStr,
    ) -> ResultEntry {
        // A name, so it reaches the backing directory at once like create and rename; the new
        // name shares the file's unsynced data (kept by inode). Locked, because unlink and
        // rename decide by the link count whether a file's data goes with the name they remove.
        let new_path = new_parent.join(new_name);
        let map = self.lock();
        fs::hard_link(self.real(path), self.real(&new_path)).map_err(errno)?;
        self.attr_locked(&map, &new_path)
    }

    fn open(&self, _req: RequestInfo, path: &Path, _flags: u32) -> ResultOpen {
        // Files are opened per operation; the handle only has to exist.
        fs::symlink_metadata(self.real(path)).map_err(errno)?;
        Ok((0, 0))
    }

    fn read(
        &self,
        _req: RequestInfo,
        path: &Path,
        _fh: u64,
        offset: u64,
        size: u32,
        callback: impl FnOnce(ResultSlice<'_>) -> CallbackResult,
    ) -> CallbackResult {
        let result = (|| -> Result<Vec<u8>, i32> {
            let map = self.lock();
            let metadata = fs::metadata(self.real(path)).map_err(errno)?;
            let backing_only;
            let unsynced = match map.get(&inode(&metadata)) {
                Some(unsynced) => unsynced,
                None => {
                    backing_only = Unsynced {
                        pages: BTreeMap::new(),
                        size: metadata.len(),
                    };
                    &backing_only
                }
            };
            let end = (offset + u64::from(size)).min(unsynced.size);
            let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
            let mut at = offset;
            while at < end {
                let page_start = at - at % PAGE;
                let page = self.page(path, unsynced, page_start / PAGE)?;
                let to = (end - page_start).min(PAGE) as usize;
                out.extend_from_slice(&page[(at - page_start) as usize..to]);
                at = page_start + PAGE;
            }
            Ok(out)
        })();
        match result {
            Ok(data) => callback(Ok(&data)),
            Err(code) => callback(Err(code)),
        }
    }

    fn write(
        &self,
        _req: RequestInfo,
        path: &Path,
        _fh: u64,
        offset: u64,
        data: Vec<u8>,
        _flags: u32,
    ) -> ResultWrite {
        let mut map = self.lock();
        let unsynced = self.unsynced_entry(&mut map, path)?;
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let number = at / PAGE;
            let mut page = self.page(path, unsynced, number)?;
            let from = (at % PAGE) as usize;
            let take = ((end - at) as usize).min(PAGE as usize - from);
            let source = (at - offset) as usize;
            page[from..from + take].copy_from_slice(&data[source..source + take]);
            unsynced.pages.insert(number, page);
            at += take as u64;
        }
        unsynced.size = unsynced.size.max(end);
        Ok(data.len() as u32)
    }

    fn flush(&self, _req: RequestInfo, _path: &Path, _fh: u64, _lock_owner: u64) -> ResultEmpty {
        // Closing a file makes nothing durable.
        Ok(())
    }

    fn release(
        &self,
        _req: RequestInfo,
        _path: &Path,
        _fh: u64,
        _flags: u32,
        _lock_owner: u64,
        _flush: bool,
    ) -> ResultEmpty {
        Ok(())
    }

    fn fsync(&self, _req: RequestInfo, path: &Path, _fh: u64, _datasync: bool) -> ResultEmpty {
        self.sync_file(path)
    }

    fn opendir(&self, _req: RequestInfo, path: &Path, _flags: u32) -> ResultOpen {
        fs::symlink_metadata(self.real(path)).map_err(errno)?;
        Ok((0, 0))
    }

    fn readdir(&self, _req: RequestInfo, path: &Path, _fh: u64) -> ResultReaddir {
        let mut entries = vec![
            DirectoryEntry {
                name: OsString::from("."),
                kind: FileType::Directory,
            },
            DirectoryEntry {
                name: OsString::from(".."),
                kind: FileType::Directory,
            },
        ];
        for item in fs::read_dir(self.real(path)).map_err(errno)? {
            let item = item.map_err(errno)?;
            let metadata = item.metadata().map_err(errno)?;
            entries.push(DirectoryEntry {
                name: item.file_name(),
                kind: file_type(&metadata),
            });
        }
        Ok(entries)
    }

    fn releasedir(&self, _req: RequestInfo, _path: &Path, _fh: u64, _flags: u32) -> ResultEmpty {
        Ok(())
    }

    fn fsyncdir(&self, _req: RequestInfo, path: &Path, _fh: u64, _datasync: bool) -> ResultEmpty {
        File::open(self.real(path))
            .and_then(|dir| dir.sync_all())
            .map_err(errno)
    }

    fn statfs(&self, _req: RequestInfo, _path: &Path) -> ResultStatfs {
        Ok(Statfs {
            blocks: 1 << 30,
            bfree: 1 << 29,
            bavail: 1 << 29,
            files: 1 << 20,
            ffree: 1 << 19,
            bsize: PAGE as u32,
            namelen: 255,
            frsize: PAGE as u32,
        })
    }

    fn access(&self, _req: RequestInfo, path: &Path, _mask: u32) -> ResultEmpty {
        fs::symlink_metadata(self.real(path))
            .map(|_| ())
            .map_err(errno)
    }

    fn create(
        &self,
        _req: RequestInfo,
        parent: &Path,
        name: &OsStr,
        mode: u32,
        flags: u32,
    ) -> ResultCreate {
        let path = parent.join(name);
        let exclusive = flags & libc::O_EXCL as u32 != 0;
        let mut options = OpenOptions::new();
        options.write(true).mode(mode);
        if exclusive {
            options.create_new(true);
        } else {
            options.create(true);
        }
        options.open(self.real(&path)).map_err(errno)?;
        let (ttl, attr) = self.attr(&path)?;
        Ok(CreatedEntry {
            ttl,
            attr,
            fh: 0,
            flags: 0,
        })
    }
}

fn inode(metadata: &fs::Metadata) -> Inode {
    (metadata.dev(), metadata.ino())
}

fn errno(error: std::io::Error) -> i32 {
    error.raw_os_error().unwrap_or(libc::EIO)
}

fn file_type(metadata: &fs::Metadata) -> FileType {
    let kind = metadata.file_type();
    if kind.is_dir() {
        FileType::Directory
    } else if kind.is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    }
}

fn file_attr(metadata: &fs::Metadata) -> FileAttr {
    let time = |seconds: i64, nanos: i64| {
        UNIX_EPOCH + Duration::new(seconds.max(0) as u64, nanos.clamp(0, 999_999_999) as u32)
    };
    FileAttr {
        size: metadata.len(),
        blocks: metadata.blocks(),
        atime: time(metadata.atime(), metadata.atime_nsec()),
        mtime: time(metadata.mtime(), metadata.mtime_nsec()),
        ctime: time(metadata.ctime(), metadata.ctime_nsec()),
        crtime: time(metadata.ctime(), metadata.ctime_nsec()),
        kind: file_type(metadata),
        perm: (metadata.mode() & 0o7777) as u16,
        nlink: metadata.nlink() as u32,
        uid: metadata.uid(),
        gid: metadata.gid(),
        rdev: metadata.rdev() as u32,
        flags: 0,
    }
}
