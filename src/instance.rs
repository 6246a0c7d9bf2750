//! One jack per registry: an exclusive advisory lock on `<database>.lock`.
//!
//! The lock is an OS file lock (`flock`), so it disappears with the process
//! however the process ends: a crash or `kill -9` never leaves a lock that
//! blocks the next start. The file holds the holder's pid for the message a
//! second instance prints; it is only rewritten after the lock is taken, so
//! a refused second instance changes nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock for the registry at `db_path`, or fails with
    /// [`Error::AlreadyRunning`] naming the holder.
    pub fn acquire(db_path: &Path) -> Result<InstanceLock> {
        let mut name = db_path.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open lock file {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "pid unknown".to_string(),
                    pid => format!("pid {pid}"),
                };
                return Err(Error::AlreadyRunning {
                    db: db_path.to_path_buf(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", path.display()), e));
            }
        }
        let write_pid = |f: &mut File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.seek(SeekFrom::Start(0))?;
            writeln!(f, "{}", std::process::id())
        };
        write_pid(&mut file)
            .map_err(|e| Error::io(format!("cannot write lock file {}", path.display()), e))?;
        Ok(InstanceLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_first_is_undisturbed() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jack.db");
        let first = InstanceLock::acquire(&db).unwrap();
        let before = std::fs::read_to_string(first.path()).unwrap();
        let err = InstanceLock::acquire(&db).unwrap_err();
        assert!(matches!(err, Error::AlreadyRunning { .. }));
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(err.exit_code(), 1);
        assert_eq!(std::fs::read_to_string(first.path()).unwrap(), before);
        drop(first);
        InstanceLock::acquire(&db).expect("released on drop");
    }
}
