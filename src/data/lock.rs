//! One writer per workspace: `<workspace>/.seedforge.lock`.
//!
//! The file holds the holder's pid, host and start time, so a refusal can name who holds it. The
//! lock itself is the OS's exclusive file lock on that file, through std's portable
//! [`File::try_lock`] (`flock` on Unix, `LockFileEx` on Windows): the OS drops it when the holder
//! dies, however it dies, so a lock file left by a killed process is stale by construction and
//! is simply taken over (and reported). On file systems without file locks the pid decides
//! instead: a lock file naming a pid on this host that no longer exists is stale.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".seedforge.lock";

/// Who holds (or held) a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// UTC time the holder took the lock.
    pub since: String,
}

impl LockHolder {
    fn me() -> LockHolder {
        LockHolder {
            pid: std::process::id(),
            host: hostname(),
            since: super::time::now_rfc3339(),
        }
    }

    fn to_text(&self) -> String {
        format!(
            "pid={}\nhost={}\nsince={}\n",
            self.pid, self.host, self.since
        )
    }

    fn parse(text: &str) -> Option<LockHolder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::trim)
        };
        Some(LockHolder {
            pid: field("pid")?.parse().ok()?,
            host: field("host").unwrap_or("").to_string(),
            since: field("since").unwrap_or("an unknown time").to_string(),
        })
    }

    /// Whether the holder's process still exists (only meaningful on this host).
    pub fn is_alive(&self) -> bool {
        pid_alive(self.pid)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", in_use_message(.dir, .holder))]
    InUse { dir: PathBuf, holder: LockHolder },
    #[error("cannot lock workspace {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn in_use_message(dir: &Path, holder: &LockHolder) -> String {
    let host = if holder.host.is_empty() {
        String::new()
    } else {
        format!(" on {}", holder.host)
    };
    format!(
        "workspace {} is in use by seedforge (pid {}{host}) since {}; close it or, if that \
         process is gone, delete {}",
        dir.display(),
        holder.pid,
        holder.since,
        dir.join(LOCK_FILE).display()
    )
}

/// Held while a [`crate::data::Workspace`] is open; released (and the file removed) on drop.
#[derive(Debug)]
pub struct WorkspaceLock {
    path: PathBuf,
    file: File,
}

/// A taken lock, and the stale holder it replaced if there was one.
#[derive(Debug)]
pub struct Acquired {
    pub lock: WorkspaceLock,
    pub stale: Option<LockHolder>,
}

impl WorkspaceLock {
    pub fn acquire(dir: &Path) -> Result<Acquired, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // A few rounds: another process may unlink the file between our open and our flock.
        for _ in 0..20 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_err)?;
            match file.try_lock() {
                Ok(()) => {
                    if !same_file(&file, &path) {
                        continue;
                    }
                    let previous = read_holder(&mut file).map_err(io_err)?;
                    write_holder(&mut file).map_err(io_err)?;
                    return Ok(Acquired {
                        lock: WorkspaceLock { path, file },
                        stale: previous,
                    });
                }
                Err(TryLockError::WouldBlock) => {
                    // The holder writes its pid just after locking; give it a moment. Where the
                    // lock also bars reading (Windows), the holder stays unnamed.
                    for _ in 0..50 {
                        if let Ok(Some(holder)) = read_holder(&mut file) {
                            return Err(LockError::InUse {
                                dir: dir.to_path_buf(),
                                holder,
                            });
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    return Err(LockError::InUse {
                        dir: dir.to_path_buf(),
                        holder: LockHolder {
                            pid: 0,
                            host: String::new(),
                            since: "an unknown time (the lock file names no pid)".into(),
                        },
                    });
                }
                Err(TryLockError::Error(e)) if no_lock_support(&e) => {
                    return Self::acquire_by_pid(dir, path, file);
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
        }
        Err(io_err(io::Error::other(
            "the lock file kept changing under us",
        )))
    }

    /// Fallback where the file system has no file locks: the pid in the file decides.
    fn acquire_by_pid(dir: &Path, path: PathBuf, mut file: File) -> Result<Acquired, LockError> {
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let previous = read_holder(&mut file).map_err(io_err)?;
        if let Some(h) = &previous
            && h.pid != std::process::id()
            && (h.host != hostname() || h.is_alive())
        {
            return Err(LockError::InUse {
                dir: dir.to_path_buf(),
                holder: h.clone(),
            });
        }
        write_holder(&mut file).map_err(io_err)?;
        Ok(Acquired {
            lock: WorkspaceLock { path, file },
            stale: previous,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkspaceLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, and only our own file; closing releases it.
        if same_file(&self.file, &self.path) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A file system that cannot lock (some network mounts): std reports `Unsupported`, or the
/// OS's own code passes through.
fn no_lock_support(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::Unsupported {
        return true;
    }
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::ENOLCK) | Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
        )
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Whether `file` is still the file at `path`: another process may have unlinked the lock file
/// (dropping its lock) and made a new one between our open and our lock.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Elsewhere std has no stable file identity; a file that is open cannot be replaced by a new
/// one of the same name on Windows while we hold it, so only its existence is checked.
#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.is_file()
}

fn read_holder(file: &mut File) -> io::Result<Option<LockHolder>> {
    file.rewind()?;
    let mut bytes = Vec::new();
    file.take(4096).read_to_end(&mut bytes)?;
    Ok(LockHolder::parse(&String::from_utf8_lossy(&bytes)))
}

fn write_holder(file: &mut File) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(LockHolder::me().to_text().as_bytes())?;
    file.sync_data()
}

/// `kill(pid, 0)`: the process exists unless the kernel says `ESRCH` (`EPERM` means it exists
/// but belongs to someone else).
#[cfg(unix)]
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; nothing is delivered.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Without a portable way to ask, a pid is taken to be alive: the pid fallback then refuses
/// rather than take over a lock that may still be held.
#[cfg(not(unix))]
pub fn pid_alive(pid: u32) -> bool {
    pid != 0
}

#[cfg(not(unix))]
fn hostname() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

#[cfg(unix)]
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder_pid_and_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let first = WorkspaceLock::acquire(dir.path()).unwrap();
        assert!(first.stale.is_none());
        let err = WorkspaceLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("in use by seedforge (pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains(".seedforge.lock"), "{msg}");
        drop(first);
        assert!(!dir.path().join(LOCK_FILE).exists());
        let again = WorkspaceLock::acquire(dir.path()).unwrap();
        assert!(again.stale.is_none());
    }

    #[test]
    #[cfg(unix)]
    fn lock_file_of_a_dead_process_is_taken_over_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        // A pid that certainly is dead: a child we started and reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        assert!(!pid_alive(dead));
        fs::write(
            dir.path().join(LOCK_FILE),
            format!(
                "pid={dead}\nhost={}\nsince=2026-01-01T00:00:00.000Z\n",
                hostname()
            ),
        )
        .unwrap();
        let got = WorkspaceLock::acquire(dir.path()).unwrap();
        let stale = got.stale.unwrap();
        assert_eq!(stale.pid, dead);
        assert_eq!(stale.since, "2026-01-01T00:00:00.000Z");
        let now = fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(
            now.starts_with(&format!("pid={}\n", std::process::id())),
            "{now}"
        );
    }

    #[test]
    #[cfg(unix)]
    fn pid_liveness() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        assert!(!pid_alive(u32::MAX));
    }
}
