//! A download under way, in either format: the file is read on the pool
//! (`disk.rs`) a chunk at a time, one chunk ahead of the socket: the next
//! is read while the last one drains, and written only while the
//! connection's buffer is under its high watermark (`resume_producing`
//! goes on). No file is ever held in memory whole, and no read blocks the
//! loop.

use std::fs;
use std::io;
use std::mem;

use reactor::Transport;

use crate::disk::{self, Disk, Outcome, Output};

/// Bytes read from the file at a time: the reactor's read size, so one
/// chunk about fills a connection's buffer to its high watermark.
pub const READ_CHUNK: usize = 64 * 1024;

/// Where the file stands; the pool has it while a read is in flight.
enum File {
    /// Nothing read ahead (the last chunk was written, or none yet).
    Idle(fs::File),
    /// A read is in flight.
    Reading,
    /// A chunk read, waiting for room in the connection's buffer.
    Ready(fs::File, Vec<u8>),
    /// Every byte read and written, or failed.
    Done,
}

/// What a download came to, for now.
pub enum Progress {
    /// More to send: a read is in flight, or the buffer is full.
    Busy,
    /// Every byte is written to the connection.
    Done,
}

/// A download under way.
pub struct Download {
    pub name: String,
    pub size: u64,
    /// Bytes written to the connection.
    pub sent: u64,
    /// Bytes read from the file.
    read: u64,
    /// The last chunk's buffer, for the next read.
    spare: Vec<u8>,
    file: File,
}

impl Download {
    /// A download of `size` bytes of `file` (opened by [`disk::open`]).
    pub fn new(name: String, file: fs::File, size: u64) -> Download {
        Download {
            name,
            size,
            sent: 0,
            read: 0,
            spare: Vec::new(),
            file: File::Idle(file),
        }
    }

    /// Writes the chunk read while the buffer has room, and starts reading
    /// the next.
    pub fn pump(&mut self, disk: &Disk, transport: &mut dyn Transport) -> Progress {
        loop {
            match mem::replace(&mut self.file, File::Done) {
                File::Ready(file, chunk) if !transport.is_write_buffer_full() => {
                    transport.write(&chunk);
                    self.sent += chunk.len() as u64;
                    self.spare = chunk;
                    self.file = File::Idle(file);
                }
                File::Idle(file) if self.read < self.size => {
                    let len = (self.size - self.read).min(READ_CHUNK as u64) as usize;
                    let buf = mem::take(&mut self.spare);
                    self.file = File::Reading;
                    disk.start(transport, move || disk::read(file, buf, len));
                    return Progress::Busy;
                }
                File::Idle(file) => {
                    // Closed on the pool.
                    disk::dispose(transport, file);
                    return Progress::Done;
                }
                File::Done => return Progress::Done,
                waiting => {
                    self.file = waiting;
                    return Progress::Busy;
                }
            }
        }
    }

    /// The read in flight finished with `outcome`; the error says why the
    /// download cannot go on.
    pub fn disk_done(
        &mut self,
        outcome: Outcome,
        disk: &Disk,
        transport: &mut dyn Transport,
    ) -> io::Result<Progress> {
        match outcome? {
            Output::Read(file, chunk) => {
                let asked = (self.size - self.read).min(READ_CHUNK as u64);
                if (chunk.len() as u64) < asked {
                    disk::dispose(transport, file);
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file is shorter than when it was opened",
                    ));
                }
                self.read += chunk.len() as u64;
                self.file = File::Ready(file, chunk);
                Ok(self.pump(disk, transport))
            }
            other => {
                disk::dispose(transport, other);
                Err(io::Error::other("a disk operation that is not a read"))
            }
        }
    }

    /// The connection ended: the file, if this side holds it, is closed on
    /// the pool.
    pub fn abandon(self, transport: &mut dyn Transport) {
        if let File::Idle(file) | File::Ready(file, _) = self.file {
            disk::dispose(transport, file);
        }
    }
}
