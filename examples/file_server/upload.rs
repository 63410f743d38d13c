//! An upload under way, in either format: its body is written, as it
//! arrives, to a temporary file in the store, renamed to its name once all
//! of it is in. Every file operation runs on the pool (`disk.rs`): one at a
//! time per upload, with at most [`WRITE_BATCH`] bytes waiting meanwhile
//! (the session pauses reading beyond that: flow control, so a client
//! faster than the disk costs bounded memory).

use std::mem;
use std::path::PathBuf;

use log::{info, warn};
use reactor::{Address, ConnectionId, Transport};

use crate::disk::{self, Disk, Outcome, Output, Temp};
use crate::{check_name, Store};

/// Most body bytes one write takes, and how many may wait while a write is
/// in flight before reading pauses.
pub const WRITE_BATCH: usize = 256 * 1024;

/// Where the upload's file stands; the pool has it while an operation is
/// in flight.
enum File {
    /// The temporary file is being created.
    Creating,
    /// Nothing in flight.
    Idle(Temp),
    /// A write is in flight.
    Writing,
    /// Every byte is written; the rename into place is in flight.
    Storing,
    /// Failed or given up: nothing more is done.
    Gone,
}

/// What a finished disk operation came to.
pub enum Step {
    /// More to do; the next operation, if any, has started.
    Busy,
    /// Stored under its name, this many bytes.
    Stored(u64),
    /// Failed; the text says why, for the client. The temporary file is
    /// removed (on the pool).
    Failed(String),
}

/// An upload under way.
pub struct Upload {
    pub name: String,
    pub size: u64,
    /// Body bytes taken from the connection.
    pub received: u64,
    /// Taken, not yet handed to a write.
    pending: Vec<u8>,
    /// The last write's buffer, emptied, for the next.
    spare: Vec<u8>,
    temp: PathBuf,
    dest: PathBuf,
    file: File,
}

impl Upload {
    /// Checks an upload's name and size and starts creating the file its
    /// body is written to (`timer_fired(DISK_DONE)` follows); the error
    /// says why it is refused.
    pub fn start(
        store: &Store,
        name: String,
        size: u64,
        disk: &Disk,
        transport: &mut dyn Transport,
    ) -> Result<Upload, String> {
        check_name(&name)?;
        if size > store.max_size {
            return Err(format!(
                "{name:?} is {size} bytes, over the server's limit of {} bytes",
                store.max_size
            ));
        }
        // Hidden (a download cannot name it) and unique to this connection.
        let temp = store.dir.join(format!(
            ".{name}.partial-{}-{}",
            std::process::id(),
            id(transport.id())
        ));
        let path = temp.clone();
        disk.start(transport, move || Temp::create(path).map(Output::Created));
        Ok(Upload {
            dest: store.dir.join(&name),
            name,
            size,
            received: 0,
            pending: Vec::new(),
            spare: Vec::new(),
            temp,
            file: File::Creating,
        })
    }

    /// Body bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.size - self.received
    }

    /// Takes the body bytes at the start of `data` (at most what remains);
    /// returns how many. They are written by [`pump`](Upload::pump).
    pub fn take(&mut self, data: &[u8]) -> usize {
        let take = self.remaining().min(data.len() as u64) as usize;
        self.pending.extend_from_slice(&data[..take]);
        self.received += take as u64;
        take
    }

    /// Whether reading should pause: the whole body is in (what follows is
    /// the next request, answered after this one), or a full batch waits
    /// for the write in flight.
    pub fn wants_pause(&self) -> bool {
        self.remaining() == 0 || self.pending.len() >= WRITE_BATCH
    }

    /// Starts the next operation unless one is in flight: a write of what
    /// is pending, or the rename once every byte is written.
    pub fn pump(&mut self, disk: &Disk, transport: &mut dyn Transport) {
        match mem::replace(&mut self.file, File::Gone) {
            File::Idle(temp) if !self.pending.is_empty() => {
                let data = mem::replace(&mut self.pending, mem::take(&mut self.spare));
                self.file = File::Writing;
                disk.start(transport, move || temp.write(data));
            }
            File::Idle(temp) if self.remaining() == 0 => {
                let dest = self.dest.clone();
                self.file = File::Storing;
                disk.start(transport, move || temp.store(&dest));
            }
            other => self.file = other,
        }
    }

    /// The operation in flight finished with `outcome`.
    pub fn disk_done(
        &mut self,
        outcome: Outcome,
        disk: &Disk,
        transport: &mut dyn Transport,
    ) -> Step {
        let doing = mem::replace(&mut self.file, File::Gone);
        match (doing, outcome) {
            (File::Creating, Ok(Output::Created(temp))) => self.file = File::Idle(temp),
            (File::Writing, Ok(Output::Wrote(temp, buf))) => {
                self.spare = buf;
                self.file = File::Idle(temp);
            }
            (File::Storing, Ok(Output::Stored)) => {
                info!(
                    "{}: stored {:?} ({} bytes)",
                    transport.peer_addr(),
                    self.name,
                    self.size
                );
                return Step::Stored(self.size);
            }
            (doing, Err(e)) => {
                let what = match doing {
                    File::Creating => "create",
                    File::Storing => "rename",
                    _ => "write",
                };
                warn!("cannot {what} {}: {e}", self.temp.display());
                return Step::Failed(format!("cannot store {:?}: {e}", self.name));
            }
            (doing, Ok(other)) => {
                // Not this upload's: dropped where it costs the loop nothing.
                if let File::Idle(temp) = doing {
                    disk::dispose(transport, temp);
                }
                disk::dispose(transport, other);
                return Step::Failed(format!("cannot store {:?}: internal error", self.name));
            }
        }
        self.pump(disk, transport);
        Step::Busy
    }

    /// Gives up: the temporary file is removed on the pool (now, or, if an
    /// operation has it, when that finishes: see [`Disk::start`]).
    pub fn abandon(self, transport: &mut dyn Transport) {
        if let File::Idle(temp) = self.file {
            disk::dispose(transport, temp);
        }
    }

    /// Logs that the connection was lost with the upload unfinished.
    pub fn log_broken_off(&self, peer: &Address, reason: &dyn std::fmt::Display) {
        warn!(
            "{peer}: upload of {:?} broken off after {} of {} bytes ({reason}); discarded",
            self.name, self.received, self.size
        );
    }
}

/// A connection id as a file name part: `#1.2` → `1.2`.
fn id(conn: ConnectionId) -> String {
    conn.to_string().trim_start_matches('#').to_owned()
}
