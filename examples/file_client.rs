//! The file client: uploads a file to the `file_server` example, or
//! downloads one from it.
//!
//! The client half of the upload/download pair of seed
//! `003_53eaec948bc5f072.txt` (the "sticky packet" section), speaking the
//! wire format documented in `file_server`: a 4-byte big-endian length, a
//! JSON header, then the file's bytes.
//!
//! ```text
//! cargo run --release --example file_client -- upload notes.txt
//! cargo run --release --example file_client -- upload notes.txt --name n.txt
//! cargo run --release --example file_client -- download n.txt --out copy.txt
//! cargo run --release --example file_client -- --port 9000 download n.txt --out /tmp/n.txt
//! ```
//!
//! A command-line tool doing one transfer at a time, it is a plain blocking
//! `std::net` client, not a reactor one. Files are streamed 64 KiB at a
//! time, never read or held whole. Transfers of 1 MiB or more show a
//! progress bar on stderr when stderr is a terminal.
//!
//! An upload watches for an early answer between chunks, so a refusal
//! (an invalid name, a file over the server's limit) ends it at once. A
//! download is written to a hidden temporary file next to `--out` (which is
//! replaced if it exists) and renamed to `--out` only once every byte has
//! arrived: a broken download leaves nothing under `--out`.
//!
//! On success it prints one summary line on stdout. On failure (it cannot
//! connect, the server refuses, with the server's message, or the transfer
//! breaks) it prints one line on stderr and exits with status 1.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "File client: uploads a file to file_server or downloads one from it"
)]
struct Args {
    /// Host name or IP address of the file server.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: String,
    /// Port of the file server.
    #[arg(long, global = true, default_value_t = 8080)]
    port: u16,
    #[command(flatten)]
    connect: common::endpoint::ConnectArgs,
    /// Seconds to wait for the connection, and for the server on each read
    /// or write.
    #[arg(long, global = true, value_name = "SECONDS", default_value = "30", value_parser = common::parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Uploads the file PATH.
    Upload {
        /// The file to send.
        path: PathBuf,
        /// The name to store it under on the server (default: PATH's file
        /// name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Downloads the file NAME.
    Download {
        /// The name of the file on the server.
        name: String,
        /// Where to write it; replaced if it exists, untouched if the
        /// download fails.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
}

/// Longest answer header accepted.
const MAX_HEADER: usize = 64 * 1024;
/// Bytes per read and write of a file's body.
const CHUNK: usize = 64 * 1024;
/// Transfers from this size on get a progress bar.
const PROGRESS_FROM: u64 = 1 << 20;

#[derive(Serialize, Debug)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request<'a> {
    Upload { name: &'a str, size: u64 },
    Download { name: &'a str },
}

#[derive(Deserialize, Debug)]
struct Status {
    ok: bool,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

impl Status {
    /// The refusal as one line for stderr.
    fn refusal(&self) -> String {
        let why = self.error.as_deref().unwrap_or("no reason given");
        let why: String = why
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("the server refused: {why}")
    }

    /// The size an `ok` answer carries, or why there is none.
    fn accepted_size(&self) -> Result<u64, String> {
        match (self.ok, self.size) {
            (true, Some(size)) => Ok(size),
            (true, None) => Err("the server's answer has no size".into()),
            (false, _) => Err(self.refusal()),
        }
    }
}

fn send_request(stream: &mut TcpStream, request: &Request<'_>) -> Result<(), String> {
    let json = serde_json::to_vec(request).expect("a request serializes");
    let len = u32::try_from(json.len()).map_err(|_| "the request header is too long")?;
    let mut frame = len.to_be_bytes().to_vec();
    frame.extend_from_slice(&json);
    stream
        .write_all(&frame)
        .map_err(|e| format!("cannot send the request: {e}"))
}

fn read_status(stream: &mut TcpStream) -> Result<Status, String> {
    let broken = |e: io::Error| match e.kind() {
        io::ErrorKind::UnexpectedEof => "the server closed the connection without answering".into(),
        _ => format!("cannot read the server's answer: {e}"),
    };
    let mut len = [0; 4];
    stream.read_exact(&mut len).map_err(broken)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_HEADER {
        return Err(format!(
            "the server's answer header is {len} bytes, over {MAX_HEADER}"
        ));
    }
    let mut json = vec![0; len];
    stream.read_exact(&mut json).map_err(broken)?;
    serde_json::from_slice(&json).map_err(|e| format!("the server's answer is not valid: {e}"))
}

/// Whether the server has said something (or hung up) without blocking.
fn answer_waiting(stream: &TcpStream) -> bool {
    let peeked = stream
        .set_nonblocking(true)
        .and_then(|()| stream.peek(&mut [0]));
    let _ = stream.set_nonblocking(false);
    // Bytes, end of file or an error: `read_status` tells which.
    !matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn progress_bar(size: u64) -> ProgressBar {
    if size < PROGRESS_FROM {
        return ProgressBar::hidden();
    }
    // Draws nothing when stderr is not a terminal.
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{bytes:>10}/{total_bytes} [{bar:30}] {bytes_per_sec} eta {eta}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

fn upload(
    stream: &mut TcpStream,
    path: &Path,
    name: Option<&str>,
    bar: &mut ProgressBar,
) -> Result<String, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    let name = match name {
        Some(name) => name,
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{} has no UTF-8 file name: give --name", path.display()))?,
    };
    let size = meta.len();
    send_request(stream, &Request::Upload { name, size })?;
    *bar = progress_bar(size);
    let mut chunk = vec![0; CHUNK];
    let mut sent = 0;
    while sent < size {
        if answer_waiting(stream) {
            // Nothing but a refusal comes before the whole body.
            let status = read_status(stream)?;
            return Err(match status.ok {
                false => status.refusal(),
                true => "the server answered before the whole file was sent".into(),
            });
        }
        let want = (size - sent).min(CHUNK as u64) as usize;
        let n = match file.read(&mut chunk[..want]) {
            Ok(0) => {
                // Hanging up makes the server discard what it got.
                return Err(format!(
                    "{} shrank to {sent} bytes while being sent",
                    path.display()
                ));
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if let Err(e) = stream.write_all(&chunk[..n]) {
            // The server may have refused and hung up: its answer says why.
            return Err(match read_status(stream) {
                Ok(status) if !status.ok => status.refusal(),
                _ => format!("cannot send to the server: {e}"),
            });
        }
        sent += n as u64;
        bar.set_position(sent);
    }
    let stored = read_status(stream)?.accepted_size()?;
    if stored != size {
        return Err(format!(
            "the server stored {stored} bytes of the {size} sent"
        ));
    }
    Ok(format!(
        "uploaded {} as {name:?} ({size} bytes)",
        path.display()
    ))
}

/// A file being downloaded into: hidden, next to its final path, and
/// deleted when dropped unless [`Partial::keep_as`] renamed it.
struct Partial {
    path: PathBuf,
    file: File,
    kept: bool,
}

impl Partial {
    fn create(out: &Path) -> Result<Partial, String> {
        let file_name = out
            .file_name()
            .ok_or_else(|| format!("--out {} does not name a file", out.display()))?;
        let dir = match out.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".partial-{}", std::process::id()));
        let path = dir.join(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Partial {
            path,
            file,
            kept: false,
        })
    }

    fn keep_as(mut self, out: &Path) -> Result<(), String> {
        fs::rename(&self.path, out).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                self.path.display(),
                out.display()
            )
        })?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn download(
    stream: &mut TcpStream,
    name: &str,
    out: &Path,
    bar: &mut ProgressBar,
) -> Result<String, String> {
    // Before asking, so a local problem costs no transfer.
    let mut partial = Partial::create(out)?;
    send_request(stream, &Request::Download { name })?;
    let size = read_status(stream)?.accepted_size()?;
    *bar = progress_bar(size);
    let mut chunk = vec![0; CHUNK];
    let mut got = 0;
    while got < size {
        let want = (size - got).min(CHUNK as u64) as usize;
        let n = match stream.read(&mut chunk[..want]) {
            Ok(0) => return Err(format!("the connection closed after {got} of {size} bytes")),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("download broken after {got} of {size} bytes: {e}")),
        };
        partial
            .file
            .write_all(&chunk[..n])
            .map_err(|e| format!("cannot write {}: {e}", partial.path.display()))?;
        got += n as u64;
        bar.set_position(got);
    }
    partial.keep_as(out)?;
    Ok(format!(
        "downloaded {name:?} to {} ({size} bytes)",
        out.display()
    ))
}

fn run(args: &Args) -> Result<(), String> {
    let addr = match args.connect.endpoint(&args.host, args.port) {
        reactor::endpoint::ClientEndpoint::Tcp { host, port } => common::resolve(&host, port)?,
        other => return Err(format!("file_client connects over TCP only, not {other}")),
    };
    let mut stream = TcpStream::connect_timeout(&addr, args.timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let configured = stream
        .set_read_timeout(Some(args.timeout))
        .and_then(|()| stream.set_write_timeout(Some(args.timeout)))
        .and_then(|()| stream.set_nodelay(true));
    configured.map_err(|e| format!("cannot set up the connection: {e}"))?;
    let mut bar = ProgressBar::hidden();
    let done = match &args.command {
        Command::Upload { path, name } => upload(&mut stream, path, name.as_deref(), &mut bar),
        Command::Download { name, out } => download(&mut stream, name, out, &mut bar),
    };
    bar.finish_and_clear();
    println!("{}", done?);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    common::init_logging();
    common::exit_with("file_client", run(&args))
}
