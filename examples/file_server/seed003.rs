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

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, warn};
use reactor::framing::{FrameHandler, Frames, LengthPrefix, LengthPrefixedReceiver};
use reactor::producer::{Progress, StreamSender};
use reactor::{Protocol, Reason, Transport};
use serde::{Deserialize, Serialize};

use crate::{check_name, Store, Upload, MAX_HEADER};

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

/// An upload connection.
pub struct SeedUploads {
    store: Rc<Store>,
    upload: Option<Upload>,
}

/// The protocol of one upload connection.
pub fn uploads(store: Rc<Store>) -> LengthPrefixedReceiver<SeedUploads> {
    LengthPrefixedReceiver::with_prefix(
        PREFIX,
        SeedUploads {
            store,
            upload: None,
        },
    )
    .with_max_length(MAX_HEADER)
}

impl SeedUploads {
    /// The body is in: stores it and answers `ok`, or hangs up.
    fn finish(&mut self, frames: &mut Frames<'_>, upload: Upload, rest: &[u8]) {
        let peer = frames.transport().peer_addr();
        match upload.finish(peer) {
            Ok(_) => {
                frames.transport().write(OK);
                frames.set_frame_mode_with(rest);
            }
            Err(why) => frames.close_because(why),
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
        let conn = frames.transport().id();
        match Upload::start(&self.store, header.name, header.size, conn) {
            Ok(upload) if header.size == 0 => self.finish(frames, upload, &[]),
            Ok(upload) => {
                self.upload = Some(upload);
                frames.set_raw_mode();
            }
            Err(why) => frames.close_because(format!("upload refused: {why}")),
        }
    }

    fn raw_data_received(&mut self, frames: &mut Frames<'_>, data: &[u8]) {
        let Some(upload) = &mut self.upload else {
            return frames.set_frame_mode_with(data);
        };
        match upload.write(data) {
            Ok(take) if upload.remaining == 0 => {
                let upload = self.upload.take().expect("an upload under way");
                self.finish(frames, upload, &data[take..]);
            }
            Ok(_) => {}
            // Dropping the upload deletes its file.
            Err(why) => frames.close_because(why),
        }
    }

    fn length_limit_exceeded(&mut self, frames: &mut Frames<'_>, declared: u64) {
        frames.close_because(format!(
            "a header of {declared} bytes is over the {MAX_HEADER} byte limit"
        ));
    }

    fn connection_lost(&mut self, frames: &mut Frames<'_>, reason: &Reason, _unfinished: &[u8]) {
        let peer = frames.transport().peer_addr();
        match self.upload.take() {
            Some(upload) => warn!(
                "{peer}: upload of {:?} broken off after {} of {} bytes ({reason}); discarded",
                upload.name,
                upload.size - upload.remaining,
                upload.size
            ),
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
    /// A copy's bytes are under way.
    Copy(StreamSender<File>),
}

/// The timer tag that starts the next copy.
const NEXT_COPY: u64 = 1;

/// A download connection: the served file, over and over.
pub struct SeedDownloads {
    served: Rc<Served>,
    sending: Sending,
    copies: u64,
}

impl SeedDownloads {
    /// The protocol of one download connection.
    pub fn new(served: Rc<Served>) -> Self {
        SeedDownloads {
            served,
            sending: Sending::Between,
            copies: 0,
        }
    }

    /// Opens the file and sends its header; the file is read again for each
    /// copy, so a file replaced meanwhile is sent as it now is.
    fn start_copy(&mut self, transport: &mut dyn Transport) -> io::Result<StreamSender<File>> {
        let file = File::open(&self.served.path)?;
        let size = file.metadata()?.len();
        let header = serde_json::to_vec(&Header {
            size,
            name: self.served.name.clone(),
        })
        .expect("a header serializes");
        let len = u32::try_from(header.len()).expect("a file name is short");
        transport.write_vectored(&[&len.to_le_bytes(), &header]);
        Ok(StreamSender::with_length(file, size))
    }

    /// Sends until the write buffer is full (`resume_producing` goes on) or
    /// a copy is done (a timer starts the next).
    fn produce(&mut self, transport: &mut dyn Transport) {
        if let Sending::Between = self.sending {
            match self.start_copy(transport) {
                Ok(sender) => self.sending = Sending::Copy(sender),
                Err(e) => {
                    warn!("cannot read {}: {e}", self.served.path.display());
                    return transport.lose_connection();
                }
            }
        }
        let Sending::Copy(sender) = &mut self.sending else {
            return;
        };
        match sender.produce(transport) {
            Ok(Progress::Paused) => {}
            Ok(Progress::Done) => {
                self.copies += 1;
                debug!("{}: sent copy {}", transport.peer_addr(), self.copies);
                self.sending = Sending::Between;
                transport.call_later(Duration::ZERO, NEXT_COPY);
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
            Err(e) => {
                // The header promised the size: a short copy must not pass.
                warn!("cannot send {}: {e}; aborting", self.served.path.display());
                transport.abort_connection();
            }
        }
    }
}

impl Protocol for SeedDownloads {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        crate::common::logs::connected(transport.peer_addr());
        self.produce(transport);
    }

    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        debug!("{}: discarded {} bytes", transport.peer_addr(), data.len());
    }

    fn resume_producing(&mut self, transport: &mut dyn Transport) {
        if let Sending::Copy(_) = self.sending {
            self.produce(transport);
        }
    }

    fn timer_fired(&mut self, transport: &mut dyn Transport, tag: u64) {
        if tag == NEXT_COPY && !transport.is_closing() {
            self.produce(transport);
        }
    }

    fn connection_lost(&mut self, transport: &mut dyn Transport, reason: &Reason) {
        crate::common::logs::closed(
            transport.peer_addr(),
            format_args!(
                "{reason}; sent {} whole copies of {:?}",
                self.copies, self.served.name
            ),
        );
    }
}
