//! The file server: stores the files clients upload under one directory and
//! sends them back on request, several operations per connection.
//!
//! The upload/download server of seed `003_53eaec948bc5f072.txt` (the
//! "sticky packet" section: a `struct`-packed header length, a JSON header,
//! then the file's bytes), done right on
//! [`reactor::framing::LengthPrefixedReceiver`] and its raw mode. Talk to it
//! with the `file_client` example.
//!
//! ```text
//! cargo run --release --example file_server -- --dir /tmp/files
//! cargo run --release --example file_client -- upload notes.txt
//! cargo run --release --example file_client -- download notes.txt --out copy.txt
//! ```
//!
//! # Wire format
//!
//! Every request and every answer starts with a header frame: a 4-byte
//! big-endian length (the seed's `struct.pack`, in network byte order
//! rather than the machine's), then that many bytes of JSON, at most 64 KiB.
//!
//! - `{"op": "upload", "name": NAME, "size": N}`, followed by exactly `N`
//!   raw bytes, answered by `{"ok": true, "size": N}` once they are stored.
//! - `{"op": "download", "name": NAME}`, answered by `{"ok": true, "size": N}`
//!   followed by exactly `N` raw bytes.
//! - A refusal is `{"ok": false, "error": "why"}`, and carries no bytes.
//!
//! Requests may follow each other without waiting for the answers, even in
//! one write; they are answered in order. While a download's bytes are
//! being sent the server reads no further request (it waits in the
//! kernel), so a pipelining client costs no memory either.
//!
//! # Rules
//!
//! - A name is a plain file name: not empty, no `/` or `\`, no control
//!   character (NUL included), at most 200 bytes, and no leading `.`, which
//!   also refuses `.`, `..` and the hidden files uploads are received into.
//! - An upload over `--max-size` is refused as soon as its header is read,
//!   before any of its body. A refused upload's body (bad name, too large,
//!   file not creatable, a disk error midway) is read and discarded, so
//!   the connection stays usable. Closing instead would leave the body to
//!   the reactor's lingering close, which gives up after 16 MiB or 2 s, and
//!   the reset that follows can destroy the refusal before the client reads
//!   it. A client that sees the refusal early (as `file_client` does) stops
//!   sending and hangs up.
//! - An upload is written, as its bytes arrive, to `.NAME.partial-PID-CONN`
//!   in the same directory and renamed to `NAME` once all `N` bytes are in
//!   (replacing an older `NAME`). A connection lost midway deletes that
//!   file: nothing ever appears under `NAME` half written.
//! - A download is read from disk 64 KiB at a time, only while the
//!   connection's write buffer is under its high watermark, and resumed
//!   when it drains; no file is ever held in memory whole.
//! - A header that is not valid JSON or not a known request gets a refusal
//!   and the connection is closed: where its body would end is unknown.
//!
//! # Seed 003's own format
//!
//! `--format seed003` speaks exactly the seed's format instead, so its
//! Python client works unchanged: a little-endian header length (the
//! seed's `struct.pack('i')` on x86), `{"size": N, "name": NAME}` with no
//! `"op"`, the two bytes `ok` after each upload; with `--serve-file NAME`,
//! the file sent to each client as soon as it connects (see the `seed003`
//! module). In the default format, a header length that only makes sense
//! read in the other byte order (a seed client talking to the default
//! format) is refused with an error that says so.
//!
//! ```text
//! cargo run --release --example file_server -- --format seed003 --dir /tmp/files
//! cargo run --release --example file_server -- --format seed003 --dir /tmp/files --serve-file notes.txt
//! ```
//!
//! Disk reads and writes happen inside the reactor's callbacks: local file
//! I/O blocks the loop for as long as the disk takes, a trade-off this
//! single-threaded server accepts (Twisted's file transfers do the same).
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

#[path = "../common/mod.rs"]
mod common;
mod seed003;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use log::{info, warn};
use reactor::framing::{FrameHandler, Frames, LengthPrefixedReceiver};
use reactor::producer::{Progress, StreamSender};
use reactor::{ConnectionId, Reason};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(
    version,
    after_help = common::logs::LOG_HELP,
    about = "File server: stores uploaded files in --dir and sends them back by name"
)]
struct Args {
    /// Host name or IP address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one); 8080 is the seed's.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    listen: common::endpoint::ListenArgs,
    /// Directory the files are stored in and served from; created if missing.
    #[arg(long, value_name = "DIR", default_value = "files")]
    dir: PathBuf,
    /// Largest upload accepted, in bytes (default 1 GiB); a larger one is
    /// refused before any of its body is read.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    max_size: u64,
    /// Wire format: `default` (this server's, for `file_client`), or
    /// `seed003`, seed 003's own (`struct.pack('i')` header length, no
    /// "op", `ok` after an upload), for the seed's Python programs: an
    /// upload server, or with --serve-file the seed's download server.
    #[arg(long, value_enum, default_value_t = Format::Default)]
    format: Format,
    /// With --format seed003: send file NAME (under --dir) to each client
    /// as soon as it connects, again and again while it reads, as seed
    /// 003's download server does, instead of receiving uploads.
    #[arg(long, value_name = "NAME")]
    serve_file: Option<String>,
}

/// What `--format` chooses.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// Big-endian header lengths, `"op"` requests, JSON answers.
    Default,
    /// Seed 003's format; see the `seed003` module.
    Seed003,
}

/// Longest request header accepted, in bytes of JSON.
const MAX_HEADER: usize = 64 * 1024;
/// Longest file name accepted, in bytes: the temporary name adds about 40
/// and must stay under the usual 255.
const MAX_NAME: usize = 200;

/// A request header.
#[derive(Deserialize, Debug)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Upload { name: String, size: u64 },
    Download { name: String },
}

/// An answer header.
#[derive(Serialize, Debug)]
struct Status<'a> {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// What every connection shares.
struct Store {
    dir: PathBuf,
    max_size: u64,
}

/// Checks that `name` is a plain file name (see the module's rules).
fn check_name(name: &str) -> Result<(), String> {
    let why = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME {
        return Err(format!(
            "invalid name of {} bytes: a name may have at most {MAX_NAME}",
            name.len()
        ));
    } else if name.contains(['/', '\\']) {
        "it contains a path separator"
    } else if name.chars().any(char::is_control) {
        "it contains a control character"
    } else if name.starts_with('.') {
        "it starts with '.'"
    } else {
        return Ok(());
    };
    Err(format!(
        "invalid name {name:?}: {why}; a name must be a plain file name"
    ))
}

/// An upload under way: its body goes to `temp`, renamed to `dest` when
/// complete. Dropped unfinished, it deletes `temp`.
struct Upload {
    name: String,
    file: File,
    temp: PathBuf,
    dest: PathBuf,
    size: u64,
    remaining: u64,
    done: bool,
}

impl Upload {
    /// Checks an upload's name and size and creates the file its body is
    /// written to; the error says why it is refused.
    fn start(store: &Store, name: String, size: u64, conn: ConnectionId) -> Result<Upload, String> {
        check_name(&name)?;
        if size > store.max_size {
            return Err(format!(
                "{name:?} is {size} bytes, over the server's limit of {} bytes",
                store.max_size
            ));
        }
        // Hidden (a download cannot name it) and unique to this connection.
        let conn = conn.to_string();
        let temp = store.dir.join(format!(
            ".{name}.partial-{}-{}",
            std::process::id(),
            conn.trim_start_matches('#')
        ));
        let file = match OpenOptions::new().write(true).create_new(true).open(&temp) {
            Ok(file) => file,
            Err(e) => {
                warn!("cannot create {}: {e}", temp.display());
                return Err(format!("cannot store {name:?}: {e}"));
            }
        };
        let dest = store.dir.join(&name);
        Ok(Upload {
            name,
            file,
            temp,
            dest,
            size,
            remaining: size,
            done: false,
        })
    }

    /// Writes the next bytes of the body, at most what remains; returns how
    /// many of `data` were taken. The error says why the upload failed.
    fn write(&mut self, data: &[u8]) -> Result<usize, String> {
        let take = self.remaining.min(data.len() as u64) as usize;
        if let Err(e) = self.file.write_all(&data[..take]) {
            warn!("cannot write {}: {e}", self.temp.display());
            return Err(format!("cannot store {:?}: {e}", self.name));
        }
        self.remaining -= take as u64;
        Ok(take)
    }

    /// All of the body is in: renames it into place; returns its size.
    fn finish(mut self, peer: reactor::Address) -> Result<u64, String> {
        match fs::rename(&self.temp, &self.dest) {
            Ok(()) => {
                self.done = true;
                info!("{peer}: stored {:?} ({} bytes)", self.name, self.size);
                Ok(self.size)
            }
            Err(e) => {
                warn!("cannot rename {}: {e}", self.temp.display());
                Err(format!("cannot store {:?}: {e}", self.name))
            }
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            if let Err(e) = fs::remove_file(&self.temp) {
                warn!("cannot remove {}: {e}", self.temp.display());
            }
        }
    }
}

/// A download under way.
struct Download {
    name: String,
    sender: StreamSender<File>,
    size: u64,
    /// Bytes that arrived meanwhile: the start of the next request.
    early: Vec<u8>,
}

enum State {
    /// Waiting for a request header (frame mode).
    Idle,
    /// Receiving an upload's body (raw mode).
    Upload(Upload),
    /// Discarding this many more bytes of a refused upload's body (raw mode).
    Skip(u64),
    /// Sending a download's body (raw mode, keeping what arrives).
    Download(Download),
}

/// One connection.
struct FileSession {
    store: Rc<Store>,
    state: State,
}

/// Sends an answer header.
fn send_status(frames: &mut Frames<'_>, status: &Status<'_>) {
    let json = serde_json::to_vec(status).expect("a status serializes");
    frames
        .send_frame(&json)
        .expect("a status header fits a 4-byte length");
}

fn send_ok(frames: &mut Frames<'_>, size: u64) {
    send_status(
        frames,
        &Status {
            ok: true,
            size: Some(size),
            error: None,
        },
    );
}

fn send_error(frames: &mut Frames<'_>, why: &str) {
    info!("{}: refused: {why}", frames.transport().peer_addr());
    send_status(
        frames,
        &Status {
            ok: false,
            size: None,
            error: Some(why),
        },
    );
}

impl FileSession {
    fn start_upload(&mut self, frames: &mut Frames<'_>, name: String, size: u64) {
        let conn = frames.transport().id();
        let upload = match Upload::start(&self.store, name, size, conn) {
            Ok(upload) => upload,
            Err(why) => return self.refuse_upload(frames, &why, size),
        };
        self.state = State::Upload(upload);
        if size == 0 {
            self.finish_upload(frames);
        } else {
            frames.set_raw_mode();
        }
    }

    /// Refuses an upload whose header was read, and discards its body.
    fn refuse_upload(&mut self, frames: &mut Frames<'_>, why: &str, size: u64) {
        send_error(frames, why);
        if size > 0 {
            self.state = State::Skip(size);
            frames.set_raw_mode();
        }
    }

    /// All of the upload's bytes are in: renames it into place and answers.
    fn finish_upload(&mut self, frames: &mut Frames<'_>) {
        let State::Upload(upload) = std::mem::replace(&mut self.state, State::Idle) else {
            unreachable!("finish_upload without an upload");
        };
        let peer = frames.transport().peer_addr();
        match upload.finish(peer) {
            Ok(size) => send_ok(frames, size),
            Err(why) => send_error(frames, &why),
        }
    }

    fn start_download(&mut self, frames: &mut Frames<'_>, name: String) {
        if let Err(why) = check_name(&name) {
            return send_error(frames, &why);
        }
        let opened =
            File::open(self.store.dir.join(&name)).and_then(|file| Ok((file.metadata()?, file)));
        let (file, size) = match opened {
            Ok((meta, file)) if meta.is_file() => (file, meta.len()),
            Ok(_) => return send_error(frames, &format!("no such file: {name:?}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return send_error(frames, &format!("no such file: {name:?}"))
            }
            Err(e) => return send_error(frames, &format!("cannot read {name:?}: {e}")),
        };
        send_ok(frames, size);
        self.state = State::Download(Download {
            name,
            sender: StreamSender::with_length(file, size),
            size,
            early: Vec::new(),
        });
        // What is left of the current read is kept for later.
        frames.set_raw_mode();
        self.produce(frames);
        if let State::Download(_) = self.state {
            // Until the last byte is out, a request sent meanwhile waits in
            // the kernel.
            frames.transport().pause_reading();
        }
    }

    /// Sends the download's next chunks until the write buffer is full or
    /// the file is sent; `resume_producing` calls it again.
    fn produce(&mut self, frames: &mut Frames<'_>) {
        let State::Download(download) = &mut self.state else {
            return;
        };
        match download.sender.produce(frames.transport()) {
            Ok(Progress::Paused) => return,
            Ok(Progress::Done) => {}
            // The connection closed under us: `connection_lost` reports it.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
            Err(e) => {
                // The answer promised `size` bytes: a short or failed body
                // must not look complete, so the client gets a reset.
                warn!(
                    "cannot send {:?} ({e}) after {} of {} bytes; aborting the connection",
                    download.name,
                    download.sender.sent(),
                    download.size
                );
                frames.transport().abort_connection();
                return;
            }
        }
        info!(
            "{}: sent {:?} ({} bytes)",
            frames.transport().peer_addr(),
            download.name,
            download.size
        );
        let early = std::mem::take(&mut download.early);
        self.state = State::Idle;
        if early.is_empty() {
            frames.set_frame_mode();
        } else {
            // A request that came in the same read as the download's.
            frames.set_frame_mode_with(&early);
        }
        // `start_download` paused reading if it got this far.
        frames.transport().resume_reading();
    }

    /// The body of an upload (or a skipped one) is complete; `rest` is what
    /// followed it.
    fn body_done(&mut self, frames: &mut Frames<'_>, rest: &[u8]) {
        if let State::Upload(_) = self.state {
            self.finish_upload(frames);
        } else {
            self.state = State::Idle;
        }
        frames.set_frame_mode_with(rest);
    }
}

impl FrameHandler for FileSession {
    fn connection_made(&mut self, frames: &mut Frames<'_>) {
        common::logs::connected(frames.transport().peer_addr());
    }

    fn frame_received(&mut self, frames: &mut Frames<'_>, frame: &[u8]) {
        // Only ever in `Idle`: every other state reads in raw mode.
        match serde_json::from_slice::<Request>(frame) {
            Ok(Request::Upload { name, size }) => self.start_upload(frames, name, size),
            Ok(Request::Download { name }) => self.start_download(frames, name),
            Err(e) => {
                let why = format!("bad request header: {e}");
                send_error(frames, &why);
                frames.close_because(why);
            }
        }
    }

    fn raw_data_received(&mut self, frames: &mut Frames<'_>, data: &[u8]) {
        match &mut self.state {
            State::Upload(upload) => match upload.write(data) {
                Ok(take) if upload.remaining == 0 => self.body_done(frames, &data[take..]),
                Ok(_) => {}
                Err(why) => {
                    let take = upload.remaining.min(data.len() as u64) as usize;
                    let left = upload.remaining - take as u64;
                    // Dropping the upload deletes its file.
                    self.state = State::Skip(left);
                    send_error(frames, &why);
                    if left == 0 {
                        self.body_done(frames, &data[take..]);
                    }
                }
            },
            State::Skip(left) => {
                let take = (*left).min(data.len() as u64) as usize;
                *left -= take as u64;
                if *left == 0 {
                    self.body_done(frames, &data[take..]);
                }
            }
            // Reading is paused: at most the rest of one read.
            State::Download(download) => download.early.extend_from_slice(data),
            State::Idle => frames.set_frame_mode_with(data),
        }
    }

    fn resume_producing(&mut self, frames: &mut Frames<'_>) {
        match self.state {
            State::Download(_) => self.produce(frames),
            // The default `pause_producing` paused reading.
            _ => frames.transport().resume_reading(),
        }
    }

    fn length_limit_exceeded(&mut self, frames: &mut Frames<'_>, declared: u64) {
        let why = match u32::try_from(declared).map(u32::swap_bytes) {
            // Seed 003's client packs the length in its machine's order.
            Ok(swapped) if swapped as usize <= MAX_HEADER => format!(
                "a request header length of {declared} bytes read big-endian is {swapped} \
                 read little-endian: the client sent it in the other byte order, as seed \
                 003's struct.pack('i') does; this format wants network byte order \
                 (start file_server with --format seed003 for the seed's programs)"
            ),
            _ => {
                format!("a request header of {declared} bytes is over the {MAX_HEADER} byte limit")
            }
        };
        send_error(frames, &why);
        frames.close_because(why);
    }

    fn connection_lost(&mut self, frames: &mut Frames<'_>, reason: &Reason, _unfinished: &[u8]) {
        let peer = frames.transport().peer_addr();
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Upload(upload) => warn!(
                "{peer}: upload of {:?} broken off after {} of {} bytes ({reason}); discarded",
                upload.name,
                upload.size - upload.remaining,
                upload.size
            ),
            State::Download(download) => warn!(
                "{peer}: download of {:?} broken off after {} of {} bytes ({reason})",
                download.name,
                download.sender.sent(),
                download.size
            ),
            State::Idle | State::Skip(_) => common::logs::closed(peer, reason),
        }
    }
}

fn serve(args: &Args) -> Result<(), String> {
    if args.serve_file.is_some() && args.format != Format::Seed003 {
        return Err("--serve-file needs --format seed003".into());
    }
    prepare_dir(&args.dir)?;
    let store = Rc::new(Store {
        dir: args.dir.clone(),
        max_size: args.max_size,
    });
    let served = match &args.serve_file {
        Some(name) => Some(Rc::new(seed003::Served::new(&args.dir, name)?)),
        None => None,
    };
    common::serve_on(
        &args.host,
        args.port,
        &args.listen,
        |reactor, endpoint| match (args.format, served) {
            (Format::Default, _) => reactor.listen_on(endpoint, move || {
                LengthPrefixedReceiver::new(FileSession {
                    store: Rc::clone(&store),
                    state: State::Idle,
                })
                .with_max_length(MAX_HEADER)
            }),
            (Format::Seed003, None) => {
                reactor.listen_on(endpoint, move || seed003::uploads(Rc::clone(&store)))
            }
            (Format::Seed003, Some(served)) => reactor.listen_on(endpoint, move || {
                seed003::SeedDownloads::new(Rc::clone(&served))
            }),
        },
    )
}

/// Creates the directory if it is missing and checks it is one.
fn prepare_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    info!("serving files in {}", dir.display());
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("file_server", serve(&args))
}
