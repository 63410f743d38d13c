//! One connection in the default format: requests one at a time, each
//! answered before the next is read. While a request's disk work is in
//! flight the session reads nothing more than what already arrived (that
//! is kept for later), so pipelined requests cost no memory and are
//! answered in order.

use std::io;
use std::mem;
use std::rc::Rc;

use log::{debug, info, warn};
use reactor::framing::{FrameHandler, Frames};
use reactor::Reason;
use serde::{Deserialize, Serialize};

use crate::disk::{self, Disk, Output, DISK_DONE};
use crate::download::{Download, Progress};
use crate::upload::{Step, Upload};
use crate::{check_name, Store, MAX_HEADER};

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

enum State {
    /// Waiting for a request header (frame mode).
    Idle,
    /// Receiving an upload's body and storing it (raw mode).
    Upload(Upload),
    /// Discarding this many more bytes of a refused upload's body (raw mode).
    Skip(u64),
    /// Opening a download's file (raw mode, keeping what arrives).
    Opening(String),
    /// Sending a download's body (raw mode, keeping what arrives).
    Download(Download),
}

/// One connection.
pub struct FileSession {
    store: Rc<Store>,
    state: State,
    disk: Disk,
    /// Bytes that came after the request being answered: the start of the
    /// next one, delivered once this one is done.
    held: Vec<u8>,
    /// Reading is paused by this session (not by flow control).
    paused: bool,
}

impl FileSession {
    pub fn new(store: Rc<Store>) -> FileSession {
        FileSession {
            store,
            state: State::Idle,
            disk: Disk::default(),
            held: Vec::new(),
            paused: false,
        }
    }

    /// Pauses or resumes reading as the state asks: paused while a
    /// download is opened or sent, and while an upload's disk work is
    /// behind (see [`Upload::wants_pause`]).
    fn sync_reading(&mut self, frames: &mut Frames<'_>) {
        let pause = match &self.state {
            State::Idle | State::Skip(_) => false,
            State::Opening(_) | State::Download(_) => true,
            State::Upload(upload) => upload.wants_pause(),
        };
        if pause != self.paused {
            self.paused = pause;
            if pause {
                frames.transport().pause_reading();
            } else {
                frames.transport().resume_reading();
            }
        }
    }

    /// The current request is answered: back to frames, starting with
    /// what arrived meanwhile.
    fn next_request(&mut self, frames: &mut Frames<'_>) {
        self.state = State::Idle;
        let held = mem::take(&mut self.held);
        frames.set_frame_mode_with(&held);
    }

    fn start_upload(&mut self, frames: &mut Frames<'_>, name: String, size: u64) {
        match Upload::start(&self.store, name, size, &self.disk, frames.transport()) {
            Ok(upload) => self.state = State::Upload(upload),
            Err(why) => {
                send_error(frames, &why);
                self.state = State::Skip(size);
            }
        }
        if let State::Skip(0) = self.state {
            self.state = State::Idle;
        } else {
            frames.set_raw_mode();
        }
    }

    /// An upload failed: refuses it, and discards the rest of its body.
    fn upload_failed(&mut self, frames: &mut Frames<'_>, upload: Upload, why: &str) {
        let left = upload.remaining();
        upload.abandon(frames.transport());
        send_error(frames, why);
        if left == 0 {
            self.next_request(frames);
        } else {
            self.state = State::Skip(left);
        }
    }

    fn start_download(&mut self, frames: &mut Frames<'_>, name: String) {
        if let Err(why) = check_name(&name) {
            return send_error(frames, &why);
        }
        debug!("{}: opening {name:?}", frames.transport().peer_addr());
        let path = self.store.dir.join(&name);
        self.disk
            .start(frames.transport(), move || disk::open(path));
        self.state = State::Opening(name);
        // What is left of the current read is kept for later.
        frames.set_raw_mode();
    }

    /// Sends the download's next chunks; once all are out, the next request.
    fn produce(&mut self, frames: &mut Frames<'_>) {
        let State::Download(download) = &mut self.state else {
            return;
        };
        if let Progress::Done = download.pump(&self.disk, frames.transport()) {
            self.download_done(frames);
        }
    }

    fn download_done(&mut self, frames: &mut Frames<'_>) {
        if let State::Download(download) = &self.state {
            info!(
                "{}: sent {:?} ({} bytes)",
                frames.transport().peer_addr(),
                download.name,
                download.size
            );
        }
        self.next_request(frames);
    }

    /// A disk operation finished: the upload, or the download, goes on.
    fn disk_done(&mut self, frames: &mut Frames<'_>) {
        let Some(outcome) = self.disk.take() else {
            return;
        };
        match mem::replace(&mut self.state, State::Idle) {
            State::Upload(mut upload) => {
                match upload.disk_done(outcome, &self.disk, frames.transport()) {
                    Step::Busy => self.state = State::Upload(upload),
                    Step::Stored(size) => {
                        send_ok(frames, size);
                        self.next_request(frames);
                    }
                    Step::Failed(why) => self.upload_failed(frames, upload, &why),
                }
            }
            State::Opening(name) => match outcome {
                Ok(Output::Opened(file, size)) => {
                    send_ok(frames, size);
                    self.state = State::Download(Download::new(name, file, size));
                    self.produce(frames);
                }
                Ok(other) => {
                    disk::dispose(frames.transport(), other);
                    send_error(frames, &format!("cannot read {name:?}: internal error"));
                    self.next_request(frames);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    send_error(frames, &format!("no such file: {name:?}"));
                    self.next_request(frames);
                }
                Err(e) => {
                    send_error(frames, &format!("cannot read {name:?}: {e}"));
                    self.next_request(frames);
                }
            },
            State::Download(mut download) => {
                match download.disk_done(outcome, &self.disk, frames.transport()) {
                    Ok(Progress::Busy) => self.state = State::Download(download),
                    Ok(Progress::Done) => {
                        self.state = State::Download(download);
                        self.download_done(frames);
                    }
                    Err(e) => {
                        // The answer promised `size` bytes: a short or
                        // failed body must not look complete, so the
                        // client gets a reset.
                        warn!(
                            "cannot send {:?} ({e}) after {} of {} bytes; aborting the connection",
                            download.name, download.sent, download.size
                        );
                        download.abandon(frames.transport());
                        frames.transport().abort_connection();
                    }
                }
            }
            state @ (State::Idle | State::Skip(_)) => {
                self.state = state;
                if let Ok(output) = outcome {
                    disk::dispose(frames.transport(), output);
                }
            }
        }
    }
}

impl FrameHandler for FileSession {
    fn connection_made(&mut self, frames: &mut Frames<'_>) {
        crate::common::logs::connected(frames.transport().peer_addr());
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
        self.sync_reading(frames);
    }

    fn raw_data_received(&mut self, frames: &mut Frames<'_>, data: &[u8]) {
        match &mut self.state {
            State::Upload(upload) => {
                let take = upload.take(data);
                self.held.extend_from_slice(&data[take..]);
                upload.pump(&self.disk, frames.transport());
            }
            State::Skip(left) => {
                let take = (*left).min(data.len() as u64) as usize;
                *left -= take as u64;
                if *left == 0 {
                    self.state = State::Idle;
                    frames.set_frame_mode_with(&data[take..]);
                }
            }
            // Reading is paused: at most the rest of one read.
            State::Opening(_) | State::Download(_) => self.held.extend_from_slice(data),
            State::Idle => frames.set_frame_mode_with(data),
        }
        self.sync_reading(frames);
    }

    fn timer_fired(&mut self, frames: &mut Frames<'_>, tag: u64) {
        if tag == DISK_DONE {
            self.disk_done(frames);
            self.sync_reading(frames);
        }
    }

    fn resume_producing(&mut self, frames: &mut Frames<'_>) {
        // Reading paused by flow control has resumed by itself.
        self.produce(frames);
        self.sync_reading(frames);
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
        self.disk.discard(frames.transport());
        match mem::replace(&mut self.state, State::Idle) {
            State::Upload(upload) => {
                upload.log_broken_off(&peer, reason);
                upload.abandon(frames.transport());
            }
            State::Download(download) => {
                warn!(
                    "{peer}: download of {:?} broken off after {} of {} bytes ({reason})",
                    download.name, download.sent, download.size
                );
                download.abandon(frames.transport());
            }
            State::Idle | State::Skip(_) | State::Opening(_) => {
                crate::common::logs::closed(peer, reason)
            }
        }
    }
}
