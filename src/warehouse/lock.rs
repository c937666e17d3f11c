//! The writer lock: one writer per warehouse at a time.
//!
//! An OS file lock (`flock`) on `<warehouse>/_ecrm/lock`, so a writer killed with SIGKILL
//! releases it with its process; no stale lock files to clean by hand. The file holds who took
//! it (pid, operation, time), which the refused writer quotes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Held while a writer runs; released on drop or process exit.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of the warehouse at `root` for `operation`, creating the warehouse
    /// folder when needed. Fails at once, naming the holder, when another writer has it.
    pub fn acquire(root: &Path, operation: &str) -> Result<Self> {
        let meta = root.join(super::catalog::META_DIR);
        std::fs::create_dir_all(&meta).map_err(|e| Error::io(&meta, e))?;
        let path = meta.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Warehouse {
                    dir: root.to_path_buf(),
                    message: format!(
                        "locked by another writer ({}); wait for it to finish",
                        holder.trim()
                    ),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let holder = format!(
            "pid {}, {}, since {}",
            std::process::id(),
            operation,
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        file.rewind().map_err(|e| Error::io(&path, e))?;
        file.write_all(holder.as_bytes())
            .map_err(|e| Error::io(&path, e))?;
        Ok(WriterLock { _file: file })
    }
}
