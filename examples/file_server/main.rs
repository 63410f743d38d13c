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
//! - A download is read from disk 64 KiB at a time, one chunk ahead of
//!   the connection, and sent only while the connection's write buffer is
//!   under its high watermark, resumed when it drains; no file is ever
//!   held in memory whole.
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
//! # Disk work off the loop
//!
//! No disk operation runs on the reactor's thread while it serves: creating
//! an upload's temporary file, writing its body, renaming it into place or
//! removing it, opening a download, reading it, and closing files all run
//! on the reactor's thread pool (`Reactor::run_in_thread`, Twisted's
//! `deferToThread`), and come back to the connection's protocol through
//! `Reactor::call_protocol` (`disk.rs`). Each connection has at most one
//! such operation in flight and reads no further than what it can hold
//! meanwhile (a download reads nothing more; an upload at most
//! `WRITE_BATCH` bytes ahead of the disk), so a slow disk slows its
//! clients down instead of the loop or the server's memory. What still
//! touches the disk on the loop's thread happens before it serves:
//! creating `--dir` and checking `--serve-file`. A pool that is full (over
//! a thousand operations waiting) fails the operation that found it so,
//! as a disk error would.
//!
//! Prints `listening on ADDR` on stdout once bound; logs go to stderr.

#[path = "../common/mod.rs"]
mod common;
mod disk;
mod download;
mod seed003;
mod session;
mod upload;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;

use clap::Parser;
use log::info;
use reactor::framing::LengthPrefixedReceiver;

use crate::session::FileSession;

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
                LengthPrefixedReceiver::new(FileSession::new(Rc::clone(&store)))
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
