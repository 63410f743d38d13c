//! `--format seed003`: seed 003's own wire format, so its client programs
//! work unchanged.
//!
//! - Every header is a 4-byte length in the machine's byte order (the
//!   seed's `struct.pack('i')`: little-endian on x86 and ARM; this server
//!   reads little-endian), then that many bytes of JSON, at most 64 KiB:
//!   `{"size": N, "name": NAME}`, with no `"op"`.
//! - Without `--serve-file`, the server is the seed's `upload_interface`:
//!   each header is followed by exactly `N` bytes, stored as `NAME` under
//!   `--dir` (by the same rules as the default format's uploads) and
//!   answered by the two bytes `ok`; any number of uploads per connection.
//!   The format has no refusal: a refused upload (bad name, too large, a
//!   disk error) closes the connection, and the server's log says why.
//! - With `--serve-file NAME`, the server is the seed's
//!   `download_interface`: as soon as a client connects it is sent the
//!   header of `NAME` (a file under `--dir`) and its bytes, and then, as the
//!   seed's loop does, the same again and again, each copy after the last
//!   as fast as the client reads, until it hangs up (the seed's client reads
//!   one copy per key press). What the client sends is discarded.
//!
//! Disk work runs on the reactor's pool, as in the default format
//! (`disk.rs`, `upload.rs`, `download.rs`).

use std::fs;
use std::mem;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, warn};
use reactor::framing::{FrameHandler, Frames, LengthPrefix, LengthPrefixedReceiver};
use reactor::{Protocol, Reason, Transport};
use serde::{Deserialize, Serialize};

use crate::disk::{self, Disk, Output, DISK_DONE};
use crate::download::{Download, Progress};
use crate::upload::{Step, Upload};
use crate::{check_name, Store, MAX_HEADER};

/// The seed's header, both ways.
#[derive(Serialize, Deserialize, Debug)]
struct Header {
    size: u64,
    name: String,
}

/// The seed's answer to a stored upload.
const OK: &[u8] = b"ok";

/// The seed's `struct.pack('i')`, as x86 and ARM lay it out.
pub const PREFIX: LengthPrefix = LengthPrefix::U32.little_endian();

/// An upload connection: one upload at a time, its disk work on the pool
/// (`upload.rs`), reading paused while that is behind.
pub struct SeedUploads {
    store: Rc<Store>,
    upload: Option<Upload>,
    disk: Disk,
    /// What came after the current upload's body: the next header.
    held: Vec<u8>,
    /// Reading is paused by this handler (not by flow control).
    paused: bool,
}

/// The protocol of one upload connection.
pub fn uploads(store: Rc<Store>) -> LengthPrefixedReceiver<SeedUploads> {
    LengthPrefixedReceiver::with_prefix(
        PREFIX,
        SeedUploads {
            store,
            upload: None,
            disk: Disk::default(),
            held: Vec::new(),
            paused: false,
        },
    )
    .with_max_length(MAX_HEADER)
}

impl SeedUploads {
    /// Pauses reading while the upload's disk work is behind, resumes it
    /// when it caught up.
    fn sync_reading(&mut self, frames: &mut Frames<'_>) {
        let pause = self.upload.as_ref().is_some_and(Upload::wants_pause);
        if pause != self.paused {
            self.paused = pause;
            if pause {
                frames.transport().pause_reading();
            } else {
                frames.transport().resume_reading();
            }
        }
    }
}

impl FrameHandler for SeedUploads {
    fn connection_made(&mut self, frames: &mut Frames<'_>) {
        crate::common::logs::connected(frames.transport().peer_addr());
    }

    fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
        let header: Header = match serde_json::from_slice(frame) {
            Ok(header) => header,
            Err(e) => return frames.close_because(format!("bad seed 003 header: {e}")),
        };
        let started = Upload::start(
            &self.store,
            header.name,
            header.size,
            &self.disk,
            frames.transport(),
        );
        match started {
            Ok(upload) => {
                self.upload = Some(upload);
                frames.set_raw_mode();
            }
            Err(why) => frames.close_because(format!("upload refused: {why}")),
        }
        self.sync_reading(frames);
    }

    fn raw_data_received(&mut self, frames: &mut Frames<'_>, data: &[u8]) {
        let Some(upload) = &mut self.upload else {
            return frames.set_frame_mode_with(data);
        };
        let take = upload.take(data);
        self.held.extend_from_slice(&data[take..]);
        upload.pump(&self.disk, frames.transport());
        self.sync_reading(frames);
    }

    fn timer_fired(&mut self, frames: &mut Frames<'_>, tag: u64) {
        if tag != DISK_DONE {
            return;
        }
        let Some(outcome) = self.disk.take() else {
            return;
        };
        let Some(mut upload) = self.upload.take() else {
            if let Ok(output) = outcome {
                disk::dispose(frames.transport(), output);
            }
            return;
        };
        match upload.disk_done(outcome, &self.disk, frames.transport()) {
            Step::Busy => self.upload = Some(upload),
            Step::Stored(_) => {
                frames.transport().write(OK);
                let held = mem::take(&mut self.held);
                frames.set_frame_mode_with(&held);
            }
            // The format has no refusal: the connection closes.
            Step::Failed(why) => {
                upload.abandon(frames.transport());
                frames.close_because(why);
            }
        }
        self.sync_reading(frames);
    }

    fn length_limit_exceeded(&mut self, frames: &mut Frames<'_>, declared: u64) {
        frames.close_because(format!(
            "a header of {declared} bytes is over the {MAX_HEADER} byte limit"
        ));
    }

    fn connection_lost(&mut self, frames: &mut Frames<'_>, reason: &Reason, _unfinished: &[u8]) {
        let peer = frames.transport().peer_addr();
        self.disk.discard(frames.transport());
        match self.upload.take() {
            Some(upload) => {
                upload.log_broken_off(&peer, reason);
                upload.abandon(frames.transport());
            }
            None => crate::common::logs::closed(peer, reason),
        }
    }
}

/// The file every download connection is sent.
pub struct Served {
    name: String,
    path: PathBuf,
}

impl Served {
    /// `name`, a plain file name under `dir`, checked to be a readable file.
    pub fn new(dir: &std::path::Path, name: &str) -> Result<Served, String> {
        check_name(name).map_err(|why| format!("--serve-file: {why}"))?;
        let path = dir.join(name);
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Served {
                name: name.to_owned(),
                path,
            }),
            Ok(_) => Err(format!("--serve-file: {} is not a file", path.display())),
            Err(e) => Err(format!("--serve-file: cannot read {}: {e}", path.display())),
        }
    }
}

/// Where a download connection stands.
enum Sending {
    /// Between two copies: the next starts from a zero-delay timer, so a
    /// fast reader never keeps the reactor inside one callback.
    Between,
    /// The file is being opened (on the pool), for the next copy.
    Opening,
    /// A copy's bytes are under way.
    Copy(Download),
}

/// The timer tag that starts the next copy.
const NEXT_COPY: u64 = 1;

/// A download connection: the served file, over and over.
pub struct SeedDownloads {
    served: Rc<Served>,
    sending: Sending,
    disk: Disk,
    copies: u64,
}

impl SeedDownloads {
    /// The protocol of one download connection.
    pub fn new(served: Rc<Served>) -> Self {
        SeedDownloads {
            served,
            sending: Sending::Between,
            disk: Disk::default(),
            copies: 0,
        }
    }

    /// Opens the file for the next copy; it is opened again for each, so a
    /// file replaced meanwhile is sent as it now is.
    fn start_copy(&mut self, transport: &mut dyn Transport) {
        let path = self.served.path.clone();
        self.disk.start(transport, move || disk::open(path));
        self.sending = Sending::Opening;
    }

    /// The file is open: sends its header, then its bytes.
    fn opened(&mut self, transport: &mut dyn Transport, file: fs::File, size: u64) {
        let header = serde_json::to_vec(&Header {
            size,
            name: self.served.name.clone(),
        })
        .expect("a header serializes");
        let len = u32::try_from(header.len()).expect("a file name is short");
        transport.write_vectored(&[&len.to_le_bytes(), &header]);
        self.sending = Sending::Copy(Download::new(self.served.name.clone(), file, size));
        self.produce(transport);
    }

    /// Sends until the write buffer is full (`resume_producing` goes on), a
    /// read is under way (`timer_fired` goes on), or a copy is done (a
    /// timer starts the next).
    fn produce(&mut self, transport: &mut dyn Transport) {
        let Sending::Copy(download) = &mut self.sending else {
            return;
        };
        if let Progress::Done = download.pump(&self.disk, transport) {
            self.copy_done(transport);
        }
    }

    fn copy_done(&mut self, transport: &mut dyn Transport) {
        self.copies += 1;
        debug!("{}: sent copy {}", transport.peer_addr(), self.copies);
        self.sending = Sending::Between;
        transport.call_later(Duration::ZERO, NEXT_COPY);
    }

    /// A disk operation finished: the file opened, or a chunk read.
    fn disk_done(&mut self, transport: &mut dyn Transport) {
        let Some(outcome) = self.disk.take() else {
            return;
        };
        match mem::replace(&mut self.sending, Sending::Between) {
            Sending::Opening => match outcome {
                Ok(Output::Opened(file, size)) => self.opened(transport, file, size),
                Ok(other) => {
                    disk::dispose(transport, other);
                    transport.lose_connection();
                }
                Err(e) => {
                    warn!("cannot read {}: {e}", self.served.path.display());
                    transport.lose_connection();
                }
            },
            Sending::Copy(mut download) => {
                match download.disk_done(outcome, &self.disk, transport) {
                    Ok(Progress::Busy) => self.sending = Sending::Copy(download),
                    Ok(Progress::Done) => self.copy_done(transport),
                    Err(e) => {
                        // The header promised the size: a short copy must not pass.
                        warn!("cannot send {}: {e}; aborting", self.served.path.display());
                        download.abandon(transport);
                        transport.abort_connection();
                    }
                }
            }
            Sending::Between => {
                if let Ok(output) = outcome {
                    disk::dispose(transport, output);
                }
            }
        }
    }
}

impl Protocol for SeedDownloads {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        crate::common::logs::connected(transport.peer_addr());
        self.start_copy(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        debug!("{}: discarded {} bytes", transport.peer_addr(), data.len());
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        self.produce(transport);
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        match tag {
            DISK_DONE => self.disk_done(transport),
            NEXT_COPY if !transport.is_closing() => {
                if let Sending::Between = self.sending {
                    self.start_copy(transport);
                }
            }
            _ => {}
        }
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        self.disk.discard(transport);
        if let Sending::Copy(download) = mem::replace(&mut self.sending, Sending::Between) {
            download.abandon(transport);
        }
        crate::common::logs::closed(
            transport.peer_addr(),
            format_args!(
                "{reason}; sent {} whole copies of {:?}",
                self.copies, self.served.name
            ),
        );
    }
}
