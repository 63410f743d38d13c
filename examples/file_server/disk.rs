//! Disk work off the loop. Every file operation a connection needs
//! (creating an upload's temporary file, writing it, renaming it into
//! place or removing it, opening a download and reading it) runs on the
//! reactor's thread pool ([`Reactor::run_in_thread`]); its outcome comes
//! back to the connection's protocol as `timer_fired(DISK_DONE)`, through
//! [`Reactor::call_protocol`], and [`Disk::take`] hands it over. A
//! connection has at most one operation in flight, so one slot holds its
//! outcome.
//!
//! A file is dropped on the pool too ([`dispose`]): closing it, and for an
//! unfinished upload's [`Temp`] removing it, is disk work as well.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use log::warn;
use reactor::{Reactor, Transport};

/// The timer tag a finished disk operation wakes its protocol with.
pub const DISK_DONE: u64 = 0xd15c;

/// What a disk operation produced.
pub enum Output {
    /// An upload's temporary file, created.
    Created(Temp),
    /// A chunk written: the file, and the buffer back (emptied) for reuse.
    Wrote(Temp, Vec<u8>),
    /// The temporary file renamed into place.
    Stored,
    /// A file opened for a download, and its length.
    Opened(File, u64),
    /// The next bytes of a download (fewer than asked only if the file
    /// ended first), and the file back.
    Read(File, Vec<u8>),
}

/// A disk operation's outcome.
pub type Outcome = io::Result<Output>;

/// A connection's disk operations: where the outcome of the one in flight
/// waits for its protocol.
#[derive(Default)]
pub struct Disk {
    done: Rc<RefCell<Option<Outcome>>>,
}

impl Disk {
    /// Runs `op` on the pool; `timer_fired(DISK_DONE)` follows, after which
    /// [`take`](Disk::take) has its outcome. A pool that refuses the job
    /// (it is full) makes the outcome an error. Without a reactor (a
    /// transport for tests) `op` runs here.
    pub fn start(
        &self,
        transport: &mut dyn Transport,
        op: impl FnOnce() -> Outcome + Send + 'static,
    ) {
        let conn = transport.id();
        let Some(reactor) = transport.reactor() else {
            *self.done.borrow_mut() = Some(op());
            transport.call_later(Duration::ZERO, DISK_DONE);
            return;
        };
        let done = Rc::clone(&self.done);
        let submitted = reactor.run_in_thread(op, move |reactor, outcome| {
            let outcome = outcome.unwrap_or_else(|panicked| Err(io::Error::other(panicked)));
            if reactor.peer_addr(conn).is_none() {
                // The connection is gone: nobody will take it.
                return dispose_with(reactor, outcome);
            }
            *done.borrow_mut() = Some(outcome);
            reactor.call_protocol(conn, DISK_DONE);
        });
        if let Err(e) = submitted {
            *self.done.borrow_mut() = Some(Err(io::Error::other(e)));
            transport.call_later(Duration::ZERO, DISK_DONE);
        }
    }

    /// The outcome of the operation that finished, once.
    pub fn take(&self) -> Option<Outcome> {
        self.done.borrow_mut().take()
    }

    /// An outcome nobody will take (the connection is ending) is dropped on
    /// the pool.
    pub fn discard(&self, transport: &mut dyn Transport) {
        if let Some(outcome) = self.take() {
            dispose(transport, outcome);
        }
    }
}

/// Drops `value` (a file to close, a [`Temp`] to remove) on the pool
/// rather than on the loop; here if the pool refuses it.
pub fn dispose<T: Send + 'static>(transport: &mut dyn Transport, value: T) {
    match transport.reactor() {
        Some(reactor) => dispose_with(reactor, value),
        None => drop(value),
    }
}

fn dispose_with<T: Send + 'static>(reactor: &mut Reactor, value: T) {
    if let Err(e) = reactor.run_in_thread(move || drop(value), |_, _| {}) {
        // The pool dropped it, here, on refusing it.
        warn!("closed a file on the loop: {e}");
    }
}

/// An upload's temporary file: removed when dropped, unless it was
/// renamed into place. Dropped on the pool ([`dispose`], or inside the
/// operation that failed), so removing it never blocks the loop.
pub struct Temp {
    file: File,
    path: PathBuf,
    kept: bool,
}

impl Temp {
    /// Creates `path`, which must not exist.
    pub fn create(path: PathBuf) -> io::Result<Temp> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Temp {
            file,
            path,
            kept: false,
        })
    }

    /// Appends `data`, then hands the file and the emptied buffer back.
    pub fn write(mut self, mut data: Vec<u8>) -> Outcome {
        self.file.write_all(&data)?;
        data.clear();
        Ok(Output::Wrote(self, data))
    }

    /// Renames the file to `dest`, replacing what was there.
    pub fn store(mut self, dest: &Path) -> Outcome {
        fs::rename(&self.path, dest)?;
        self.kept = true;
        Ok(Output::Stored)
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.kept {
            if let Err(e) = fs::remove_file(&self.path) {
                warn!("cannot remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Opens `path` for a download: a regular file, or `NotFound`.
pub fn open(path: PathBuf) -> Outcome {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    Ok(Output::Opened(file, meta.len()))
}

/// Reads up to `len` bytes of `file` into `buf` (emptied first), stopping
/// early only at the end of the file.
pub fn read(mut file: File, mut buf: Vec<u8>, len: usize) -> Outcome {
    buf.clear();
    (&mut file).take(len as u64).read_to_end(&mut buf)?;
    Ok(Output::Read(file, buf))
}
