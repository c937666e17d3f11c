//! The writer lock (one writer per warehouse at a time) and the run lock (one pipeline run at
//! a time).
//!
//! An OS file lock (`flock`) on `<warehouse>/_ecrm/lock`, so a writer killed with SIGKILL
//! releases it with its process; no stale lock files to clean by hand. The file holds who took
//! it (pid, operation, time), which the refused writer quotes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Attempts 10 ms apart before a held lock is reported (see [`WriterLock::acquire`]).
const RETRIES: u32 = 25;

/// Held while a writer runs; released on drop or process exit.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
}

impl WriterLock {
    /// Takes the lock of the warehouse at `root` for `operation`, creating the warehouse
    /// folder when needed. Fails within a quarter of a second, naming the holder, when
    /// another writer has it.
    pub fn acquire(root: &Path, operation: &str) -> Result<Self> {
        match take(root, "lock", operation)? {
            Ok(file) => Ok(WriterLock { _file: file }),
            Err(holder) => Err(Error::Warehouse {
                dir: root.to_path_buf(),
                message: format!("locked by another writer ({holder}); wait for it to finish"),
            }),
        }
    }
}

/// Held for a whole pipeline run (`_ecrm/run.lock`), beside the writer lock that each of its
/// stages takes for its commit: two runs never overlap, while a run's own stages still commit
/// one by one.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the run lock for `run` (e.g. `run 20261123T010203Z-1a2b of nightly.toml`); fails
    /// at once, naming the run that holds it, when another run has it.
    pub fn acquire(root: &Path, run: &str) -> Result<Self> {
        match take(root, "run.lock", run)? {
            Ok(file) => Ok(RunLock { _file: file }),
            Err(holder) => Err(Error::Warehouse {
                dir: root.to_path_buf(),
                message: format!("another run is in progress ({holder}); this run did not start"),
            }),
        }
    }
}

/// Locks `_ecrm/<name>` and writes `what` with our pid and the time into it; `Ok(Err(holder))`
/// when another process holds it.
fn take(root: &Path, name: &str, what: &str) -> Result<std::result::Result<File, String>> {
    let meta = root.join(super::catalog::META_DIR);
    std::fs::create_dir_all(&meta).map_err(|e| Error::io(&meta, e))?;
    let path = meta.join(name);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    // A process that forks (to run any program) while we hold the lock shares our lock
    // until its child has exec'd, so a lock just released can still look held for a few
    // milliseconds: retry briefly before calling it another writer's. Measured: the
    // in-process ingest of 305 files failed once in CI while other tests spawned processes.
    let mut attempt = 0;
    let locked = loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if attempt < RETRIES => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other,
        }
    };
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Ok(Err(holder.trim().to_string()));
        }
        Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
    }
    let holder = format!(
        "{what}, pid {}, since {}",
        std::process::id(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    file.set_len(0).map_err(|e| Error::io(&path, e))?;
    file.rewind().map_err(|e| Error::io(&path, e))?;
    file.write_all(holder.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    Ok(Ok(file))
}
