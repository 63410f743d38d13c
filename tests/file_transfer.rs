//! Runs the `file_server` and `file_client` examples as a user would, and
//! talks to the server with raw loopback clients that do what `file_client`
//! never does (hang up midway, send several requests in one write).
//!
//! `cargo test` builds the examples first; with a target filter
//! (`cargo test --test file_transfer`) it does not, so build them first with
//! `cargo build --examples`.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Instant;

use serde_json::{json, Value};

#[path = "common/programs.rs"]
mod programs;
#[path = "common/wait.rs"]
mod wait;

use programs::*;
use wait::wait_until;

/// A fresh directory under the system's temporary directory, removed when
/// dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "reactor-file-transfer-{}-{test}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }

    fn join(&self, path: &str) -> PathBuf {
        self.0.join(path)
    }

    /// A subdirectory, created.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.join(name);
        fs::create_dir_all(&dir).expect("create a subdirectory");
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The names in `dir`, hidden ones included, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list the directory")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn start_server(store: &Path, more: &[&str]) -> Server {
    let mut args = vec!["--dir", store.to_str().expect("a UTF-8 path")];
    args.extend_from_slice(more);
    Server::start_with("file_server", &args)
}

/// Runs `file_client --port PORT ARGS…` to the end.
fn client<S: AsRef<OsStr>>(addr: SocketAddr, args: &[S]) -> Output {
    run_to_end(
        Command::new(example("file_client"))
            .args(["--host", "127.0.0.1", "--port"])
            .arg(addr.port().to_string())
            .args(args),
        b"",
    )
}

/// Checks that the client failed with one line on stderr that contains
/// `message`, and printed nothing on stdout.
fn assert_refused(out: &Output, message: &str) {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains(message),
        "stderr does not contain {message:?}: {}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The size and FNV-1a hash of the file at `path`.
fn fingerprint(path: &Path) -> (u64, u64) {
    let mut file = File::open(path).expect("open the file");
    let mut hash = Fnv::new();
    let mut size = 0;
    let mut chunk = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut chunk).expect("read the file");
        if n == 0 {
            return (size, hash.0);
        }
        hash.update(&chunk[..n]);
        size += n as u64;
    }
}

/// Writes `size` pseudo-random bytes (xorshift64*) to `path`; returns the
/// file's fingerprint.
fn random_file(path: &Path, size: usize, seed: u64) -> (u64, u64) {
    let mut out = BufWriter::new(File::create(path).expect("create the file"));
    let mut hash = Fnv::new();
    let mut state = seed | 1;
    let mut chunk = Vec::with_capacity(1 << 16);
    let mut left = size;
    while left > 0 {
        chunk.clear();
        while chunk.len() < (1 << 16).min(left) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        chunk.truncate((1 << 16).min(left));
        hash.update(&chunk);
        out.write_all(&chunk).expect("write the file");
        left -= chunk.len();
    }
    out.flush().expect("flush the file");
    (size as u64, hash.0)
}

/// A request or answer header on the wire: 4-byte big-endian length, JSON.
fn header(value: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap();
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&json);
    frame
}

/// Reads one answer header.
fn read_answer(stream: &mut TcpStream) -> Value {
    let mut len = [0; 4];
    stream
        .read_exact(&mut len)
        .expect("read an answer's length");
    let mut json = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut json).expect("read an answer");
    serde_json::from_slice(&json).expect("an answer is JSON")
}

/// Reads one answer and checks it is a refusal whose message contains `message`.
fn expect_refusal(stream: &mut TcpStream, message: &str) {
    let answer = read_answer(stream);
    assert_eq!(answer["ok"], json!(false), "{answer}");
    let error = answer["error"].as_str().expect("a refusal says why");
    assert!(error.contains(message), "{error:?} lacks {message:?}");
}

/// Reads one answer and checks it accepts `size` bytes.
fn expect_ok(stream: &mut TcpStream, size: u64) {
    let answer = read_answer(stream);
    assert_eq!(answer, json!({"ok": true, "size": size}));
}

fn upload_request(name: &str, size: u64) -> Vec<u8> {
    header(&json!({"op": "upload", "name": name, "size": size}))
}

fn download_request(name: &str) -> Vec<u8> {
    header(&json!({"op": "download", "name": name}))
}

/// The server's peak resident memory (VmHWM), in bytes.
#[cfg(target_os = "linux")]
fn peak_memory(server: &Server) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", server.process.0.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

#[test]
fn a_50_mib_file_round_trips_through_the_client_byte_for_byte() {
    let scratch = Scratch::new("round-trip");
    let store = scratch.dir("store");
    let out_dir = scratch.dir("out");
    let source = scratch.join("source.bin");
    let original = random_file(&source, 50 << 20, 0x5eed_0003);
    let server = start_server(&store, &[]);

    let started = Instant::now();
    let out = client(server.addr, &[OsStr::new("upload"), source.as_os_str()]);
    out.assert_success();
    let uploaded = started.elapsed();
    assert_eq!(
        out.stdout,
        format!(
            "uploaded {} as \"source.bin\" ({} bytes)\n",
            source.display(),
            50 << 20
        )
    );
    assert_eq!(listing(&store), ["source.bin"]);
    assert_eq!(fingerprint(&store.join("source.bin")), original);

    let copy = out_dir.join("copy.bin");
    let started = Instant::now();
    let out = client(
        server.addr,
        &[
            OsStr::new("download"),
            OsStr::new("source.bin"),
            OsStr::new("--out"),
            copy.as_os_str(),
        ],
    );
    out.assert_success();
    let downloaded = started.elapsed();
    assert_eq!(listing(&out_dir), ["copy.bin"]);
    assert_eq!(fingerprint(&copy), original);
    eprintln!("50 MiB: upload {uploaded:?}, download {downloaded:?}");

    // Neither direction held the file in memory.
    #[cfg(target_os = "linux")]
    {
        let peak = peak_memory(&server);
        eprintln!("server peak RSS: {} KiB", peak >> 10);
        assert!(peak < 24 << 20, "the server's peak RSS was {peak} bytes");
    }
    assert_eq!(server.stop(), Vec::<String>::new(), "more stdout lines");
}

#[test]
fn names_that_could_escape_or_hide_are_refused_and_leave_nothing() {
    let scratch = Scratch::new("names");
    let store = scratch.dir("store");
    let out_dir = scratch.dir("out");
    let source = scratch.join("source.txt");
    fs::write(&source, b"secret plans").unwrap();
    let server = start_server(&store, &[]);
    for name in [
        "../x",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "..",
        ".",
        ".hidden",
        "",
        "tab\there",
    ] {
        let out = client(
            server.addr,
            &[
                OsStr::new("upload"),
                source.as_os_str(),
                OsStr::new("--name"),
                OsStr::new(name),
            ],
        );
        assert_refused(&out, "the server refused: invalid name");
        let out = client(
            server.addr,
            &[
                OsStr::new("download"),
                OsStr::new(name),
                OsStr::new("--out"),
                out_dir.join("got").as_os_str(),
            ],
        );
        assert_refused(&out, "the server refused: invalid name");
    }
    assert_eq!(listing(&store), Vec::<String>::new());
    assert_eq!(listing(&out_dir), Vec::<String>::new());
    assert_eq!(listing(&scratch.0), ["out", "source.txt", "store"]);

    // NUL cannot be passed on a command line; a raw client sends it.
    let mut conn = connect(server.addr);
    conn.write_all(&upload_request("a\0b", 3)).unwrap();
    expect_refusal(&mut conn, "control character");
    conn.write_all(b"abc").unwrap();
    // The refused body was skipped: the connection is still usable.
    conn.write_all(&download_request("a\0b")).unwrap();
    expect_refusal(&mut conn, "control character");
    let long = "n".repeat(201);
    conn.write_all(&upload_request(&long, 0)).unwrap();
    expect_refusal(&mut conn, "at most 200");
    conn.write_all(&upload_request(&"n".repeat(200), 0))
        .unwrap();
    expect_ok(&mut conn, 0);
    drop(conn);
    assert_eq!(listing(&store), ["n".repeat(200)]);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn an_upload_over_the_limit_is_refused_before_its_body() {
    let scratch = Scratch::new("oversize");
    let store = scratch.dir("store");
    let server = start_server(&store, &["--max-size", "1000000"]);

    let big = scratch.join("big.bin");
    random_file(&big, 3 << 20, 7);
    let out = client(server.addr, &[OsStr::new("upload"), big.as_os_str()]);
    assert_refused(
        &out,
        "the server refused: \"big.bin\" is 3145728 bytes, over the server's limit of 1000000 bytes",
    );
    assert_eq!(listing(&store), Vec::<String>::new());

    // The refusal comes while not one byte of the body has been sent.
    let mut conn = connect(server.addr);
    conn.write_all(&upload_request("huge", 1 << 40)).unwrap();
    expect_refusal(&mut conn, "over the server's limit of 1000000 bytes");
    drop(conn);

    // The limit itself is allowed.
    let exact = scratch.join("exact.bin");
    let fingerprint_sent = random_file(&exact, 1_000_000, 8);
    let out = client(server.addr, &[OsStr::new("upload"), exact.as_os_str()]);
    out.assert_success();
    assert_eq!(listing(&store), ["exact.bin"]);
    assert_eq!(fingerprint(&store.join("exact.bin")), fingerprint_sent);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn a_client_gone_mid_upload_leaves_neither_the_file_nor_its_temporary() {
    let scratch = Scratch::new("mid-upload");
    let store = scratch.dir("store");
    let server = start_server(&store, &[]);

    let mut conn = connect(server.addr);
    conn.write_all(&upload_request("big", 1_000_000)).unwrap();
    conn.write_all(&[b'x'; 500_000]).unwrap();
    // The server has written the half it got, to a hidden file only.
    wait_until("the server has stored the first half", || {
        let names = listing(&store);
        names.len() == 1
            && names[0].starts_with(".big.partial-")
            && fs::metadata(store.join(&names[0])).is_ok_and(|m| m.len() == 500_000)
    });
    drop(conn);
    wait_until("the temporary file is deleted", || {
        listing(&store).is_empty()
    });

    // The server goes on; the same name uploads whole.
    let mut conn = connect(server.addr);
    conn.write_all(&upload_request("big", 1_000_000)).unwrap();
    conn.write_all(&[b'y'; 1_000_000]).unwrap();
    expect_ok(&mut conn, 1_000_000);
    assert_eq!(listing(&store), ["big"]);
    assert_eq!(fs::read(store.join("big")).unwrap(), vec![b'y'; 1_000_000]);
    drop(conn);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn a_missing_file_is_refused_and_nothing_is_written() {
    let scratch = Scratch::new("missing");
    let store = scratch.dir("store");
    let out_dir = scratch.dir("out");
    fs::create_dir(store.join("subdir")).unwrap();
    let server = start_server(&store, &[]);
    for name in ["missing", "subdir"] {
        let out = client(
            server.addr,
            &[
                OsStr::new("download"),
                OsStr::new(name),
                OsStr::new("--out"),
                out_dir.join("copy").as_os_str(),
            ],
        );
        assert_refused(
            &out,
            &format!("file_client: the server refused: no such file: \"{name}\""),
        );
    }
    assert_eq!(listing(&out_dir), Vec::<String>::new());
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn several_operations_share_one_connection_even_in_one_write() {
    let scratch = Scratch::new("several");
    let store = scratch.dir("store");
    let server = start_server(&store, &[]);
    let mut conn = connect(server.addr);

    // One at a time.
    conn.write_all(&upload_request("a", 10)).unwrap();
    conn.write_all(b"0123456789").unwrap();
    expect_ok(&mut conn, 10);
    conn.write_all(&download_request("a")).unwrap();
    expect_ok(&mut conn, 10);
    expect(&mut conn, b"0123456789");

    // A refused upload, its body, an empty upload, an upload and two
    // downloads in one write: the server finds every boundary.
    let mut burst = upload_request("a/b", 5);
    burst.extend_from_slice(b"12345");
    burst.extend(upload_request("empty", 0));
    burst.extend(upload_request("b", 3));
    burst.extend_from_slice(b"xyz");
    burst.extend(download_request("b"));
    burst.extend(download_request("empty"));
    conn.write_all(&burst).unwrap();
    expect_refusal(&mut conn, "path separator");
    expect_ok(&mut conn, 0);
    expect_ok(&mut conn, 3);
    expect_ok(&mut conn, 3);
    expect(&mut conn, b"xyz");
    expect_ok(&mut conn, 0);

    // A later upload replaces the file.
    conn.write_all(&upload_request("a", 2)).unwrap();
    conn.write_all(b"hi").unwrap();
    expect_ok(&mut conn, 2);
    conn.write_all(&download_request("a")).unwrap();
    expect_ok(&mut conn, 2);
    expect(&mut conn, b"hi");
    drop(conn);
    assert_eq!(listing(&store), ["a", "b", "empty"]);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn a_request_sent_behind_a_large_download_is_answered_after_it() {
    let scratch = Scratch::new("pipelined");
    let store = scratch.dir("store");
    // More than the kernel's socket buffers hold, so the server's write
    // buffer fills and the download ends in `resume_producing`.
    let big = vec![b'z'; 32 << 20];
    fs::write(store.join("big"), &big).unwrap();
    fs::write(store.join("small"), b"tiny").unwrap();
    let server = start_server(&store, &[]);
    let mut conn = connect(server.addr);
    // Both requests arrive in one read, before the server has sent the
    // first file (which is far over the write buffer's watermark).
    let mut both = download_request("big");
    both.extend(download_request("small"));
    conn.write_all(&both).unwrap();
    expect_ok(&mut conn, big.len() as u64);
    expect(&mut conn, &big);
    expect_ok(&mut conn, 4);
    expect(&mut conn, b"tiny");
    drop(conn);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn a_bad_request_header_is_refused_and_the_connection_closed() {
    let scratch = Scratch::new("bad-header");
    let store = scratch.dir("store");
    let server = start_server(&store, &[]);
    for (request, message) in [
        (
            header(&json!({"op": "delete", "name": "a"})),
            "unknown variant",
        ),
        (
            header(&json!({"op": "upload", "name": "a"})),
            "missing field `size`",
        ),
        (b"\0\0\0\x08not json".to_vec(), "bad request header"),
        (
            (64u32 * 1024 + 1).to_be_bytes().to_vec(),
            "request header of 65537 bytes is over the 65536 byte limit",
        ),
    ] {
        let mut conn = connect(server.addr);
        conn.write_all(&request).unwrap();
        expect_refusal(&mut conn, message);
        expect_eof(&mut conn);
    }
    assert_eq!(listing(&store), Vec::<String>::new());
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn a_broken_download_leaves_the_old_out_file_alone() {
    let scratch = Scratch::new("broken-download");
    let out_dir = scratch.dir("out");
    let copy = out_dir.join("copy");
    fs::write(&copy, b"old").unwrap();
    // A server that promises 1000 bytes and sends 400.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut len = [0; 4];
        conn.read_exact(&mut len).unwrap();
        let mut request = vec![0; u32::from_be_bytes(len) as usize];
        conn.read_exact(&mut request).unwrap();
        let request: Value = serde_json::from_slice(&request).unwrap();
        assert_eq!(request, json!({"op": "download", "name": "f"}));
        conn.write_all(&header(&json!({"ok": true, "size": 1000})))
            .unwrap();
        conn.write_all(&[1; 400]).unwrap();
    });
    let out = client(
        addr,
        &[
            OsStr::new("download"),
            OsStr::new("f"),
            OsStr::new("--out"),
            copy.as_os_str(),
        ],
    );
    fake.join().unwrap();
    assert_refused(&out, "the connection closed after 400 of 1000 bytes");
    assert_eq!(listing(&out_dir), ["copy"]);
    assert_eq!(fs::read(&copy).unwrap(), b"old");
}

#[test]
fn the_client_says_so_in_one_line_when_it_cannot_connect() {
    let scratch = Scratch::new("no-server");
    let source = scratch.join("f");
    fs::write(&source, b"data").unwrap();
    // A port nobody listens on: bound, then released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = client(addr, &[OsStr::new("upload"), source.as_os_str()]);
    assert_refused(&out, &format!("file_client: cannot connect to {addr}"));
}

#[test]
fn the_file_examples_explain_their_flags() {
    let help = |args: &[&str]| {
        let out = run_to_end(Command::new(example(args[0])).args(&args[1..]), b"");
        out.assert_success();
        out.stdout
    };
    let server = help(&["file_server", "--help"]);
    for flag in ["--host", "--port", "--dir", "--max-size"] {
        assert!(
            server.contains(flag),
            "file_server --help lacks {flag}:\n{server}"
        );
    }
    let client = help(&["file_client", "--help"]);
    for word in ["--host", "--port", "--timeout", "upload", "download"] {
        assert!(
            client.contains(word),
            "file_client --help lacks {word}:\n{client}"
        );
    }
    assert!(help(&["file_client", "upload", "--help"]).contains("--name"));
    assert!(help(&["file_client", "download", "--help"]).contains("--out"));
}
