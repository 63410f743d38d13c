//! The file server's disk work runs off the loop: a download whose open
//! blocks (a FIFO in the store, opened only once the test writes to it)
//! holds up nobody else, and, traced with strace, the server's main thread
//! never touches a file in the store while it serves.
//!
//! Build the examples first (`cargo build --examples`) when running this
//! file alone.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;

use serde_json::{json, Value};

#[path = "common/programs.rs"]
mod programs;
#[path = "common/wait.rs"]
mod wait;

use programs::{connect, example, expect, Running, WAIT};
use wait::wait_until;

/// A fresh directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "reactor-file-server-disk-{}-{test}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // strace prints the paths the kernel resolved.
        Scratch(fs::canonicalize(&dir).unwrap())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A request header: 4-byte big-endian length, JSON.
fn header(value: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(value).unwrap();
    let mut frame = (json.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&json);
    frame
}

fn read_answer(stream: &mut TcpStream) -> Value {
    let mut len = [0; 4];
    stream.read_exact(&mut len).expect("an answer's length");
    let mut json = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut json).expect("an answer");
    serde_json::from_slice(&json).unwrap()
}

/// Lines a child printed, as they come.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    rx
}

/// The address in the `listening on ADDR` line.
fn listening(stdout: &Receiver<String>) -> SocketAddr {
    let line = stdout.recv_timeout(WAIT).expect("the server did not start");
    line.strip_prefix("listening on ")
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("first line: {line:?}"))
}

/// Starts `command` (a file server, maybe under strace) with piped output.
fn spawn(command: &mut Command) -> (Running, Receiver<String>, Receiver<String>) {
    let mut child: Child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the server");
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    (Running(child), stdout, stderr)
}

fn server_args(store: &Path) -> Vec<String> {
    ["--host", "127.0.0.1", "--port", "0", "--dir"]
        .iter()
        .map(|a| a.to_string())
        .chain([store.to_str().unwrap().to_owned()])
        .collect()
}

#[test]
fn a_download_whose_open_blocks_holds_up_no_other_client() {
    let scratch = Scratch::new("fifo");
    let store = scratch.0.join("store");
    fs::create_dir_all(&store).unwrap();
    fs::write(store.join("small"), b"tiny").unwrap();
    // Opening a FIFO for reading blocks until someone opens it to write.
    let fifo = store.join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let (_server, stdout, stderr) = spawn(
        Command::new(example("file_server"))
            .args(server_args(&store))
            .env("RUST_LOG", "file_server=debug"),
    );
    let addr = listening(&stdout);

    let mut blocked = connect(addr);
    blocked
        .write_all(&header(&json!({"op": "download", "name": "pipe"})))
        .unwrap();
    // The server is about to open the FIFO (or is in it).
    loop {
        let line = stderr.recv_timeout(WAIT).expect("no log of the open");
        if line.contains("opening \"pipe\"") {
            break;
        }
    }
    let mut other = connect(addr);
    other
        .write_all(&header(&json!({"op": "download", "name": "small"})))
        .unwrap();
    assert_eq!(read_answer(&mut other), json!({"ok": true, "size": 4}));
    expect(&mut other, b"tiny");

    // Both ends open at once: the server's open returns; a FIFO is no file.
    let _writer = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    assert_eq!(
        read_answer(&mut blocked),
        json!({"ok": false, "error": "no such file: \"pipe\""})
    );
}

/// The lines of an `strace -f` log that thread (or process) `tid` made.
fn made_by(log: &str, tid: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.split_whitespace().next() == Some(tid))
        .map(str::to_owned)
        .collect()
}

#[test]
fn traced_the_servers_loop_never_touches_a_file_it_serves() {
    // As tests/coalescing.rs, this needs strace (.ci/run installs it).
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is not installed"
    );
    let scratch = Scratch::new("strace");
    let store = scratch.0.join("store");
    fs::create_dir_all(&store).unwrap();
    let log_path = scratch.0.join("strace.log");
    let (server, stdout, _stderr) = spawn(
        Command::new("strace")
            .args(["-f", "-qq", "-y", "-e", "trace=%file,%desc", "-o"])
            .arg(&log_path)
            .arg(example("file_server"))
            .args(server_args(&store)),
    );
    let addr = listening(&stdout);

    // An upload of a few write batches, then its download, on one connection.
    let body: Vec<u8> = (0..600 * 1024).map(|i| (i % 251) as u8).collect();
    let mut conn = connect(addr);
    let upload = json!({"op": "upload", "name": "up", "size": body.len()});
    conn.write_all(&header(&upload)).unwrap();
    conn.write_all(&body).unwrap();
    assert_eq!(
        read_answer(&mut conn),
        json!({"ok": true, "size": body.len()})
    );
    conn.write_all(&header(&json!({"op": "download", "name": "up"})))
        .unwrap();
    assert_eq!(
        read_answer(&mut conn),
        json!({"ok": true, "size": body.len()})
    );
    expect(&mut conn, &body);
    drop(conn);

    // The server, strace's child, ends; strace then does.
    let mut strace = server;
    let pid = {
        let log = fs::read_to_string(&log_path).unwrap();
        log.lines()
            .find(|l| l.contains("execve(") && l.contains("file_server"))
            .and_then(|l| l.split_whitespace().next())
            .expect("the server's execve in the log")
            .to_owned()
    };
    let killed = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(killed.success());
    strace.0.wait().unwrap();
    let log = fs::read_to_string(&log_path).unwrap();

    let inside = format!("{}/", store.display());
    let touches = |line: &String| {
        line.contains(&format!("<{inside}")) || line.contains(&format!("\"{inside}"))
    };
    let on_loop: Vec<String> = made_by(&log, &pid).into_iter().filter(touches).collect();
    assert!(
        on_loop.is_empty(),
        "the loop's thread touched the store:\n{}",
        on_loop.join("\n")
    );
    // And the pool did the work: the writes, the rename, the reads.
    let elsewhere: Vec<&str> = log
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(pid.as_str()))
        .filter(|l| touches(&l.to_string()))
        .collect();
    for (what, found) in [
        (
            "a write to the temporary file",
            elsewhere
                .iter()
                .any(|l| l.contains("write(") && l.contains(".up.partial")),
        ),
        ("the rename", elsewhere.iter().any(|l| l.contains("rename"))),
        (
            "a read of the stored file",
            elsewhere
                .iter()
                .any(|l| l.contains("read(") && l.contains(&format!("<{inside}up>"))),
        ),
    ] {
        assert!(found, "no {what} in the trace:\n{}", elsewhere.join("\n"));
    }
}

/// A connection's send and receive queues, from /proc/net/tcp: the socket
/// bound to `local` and connected to `remote` (IPv4).
fn queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, rx) = fields.get(4)?.split_once(':')?;
        Some((
            u64::from_str_radix(tx, 16).ok()?,
            u64::from_str_radix(rx, 16).ok()?,
        ))
    })
}

/// The server's resident memory now (VmRSS), in bytes.
fn resident(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[test]
fn an_upload_waiting_for_the_disk_stops_reading_instead_of_buffering() {
    let scratch = Scratch::new("flow");
    let store = scratch.0.join("store");
    fs::create_dir_all(&store).unwrap();
    let (server, stdout, stderr) = spawn(
        Command::new(example("file_server"))
            .args(server_args(&store))
            .env("RUST_LOG", "file_server=debug"),
    );
    let addr = listening(&stdout);
    // Every pool thread stuck opening a FIFO: the disk is "busy".
    let mut stuck = Vec::new();
    for i in 0..reactor::DEFAULT_POOL_THREADS {
        let name = format!("pipe{i}");
        let fifo = store.join(&name);
        assert!(Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let mut conn = connect(addr);
        conn.write_all(&header(&json!({"op": "download", "name": name})))
            .unwrap();
        loop {
            let line = stderr.recv_timeout(WAIT).expect("no log of the open");
            if line.contains(&format!("opening {name:?}")) {
                break;
            }
        }
        stuck.push((conn, fifo));
    }

    // An upload far larger than the kernel's buffers, sent from a thread.
    const SIZE: usize = 64 << 20;
    let mut conn = connect(addr);
    let local = conn.local_addr().unwrap();
    let upload = json!({"op": "upload", "name": "big", "size": SIZE});
    conn.write_all(&header(&upload)).unwrap();
    let mut writer = conn.try_clone().unwrap();
    writer.set_write_timeout(None).unwrap();
    let (done_tx, done) = channel();
    thread::spawn(move || {
        let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
        for _ in 0..SIZE >> 20 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    // Either the whole body went in (the server read it all into memory),
    // or the server stopped reading: its receive queue and our send queue
    // fill up.
    let finished = std::cell::Cell::new(false);
    wait_until("the body is in, or the server stopped reading", || {
        if done.try_recv().is_ok() {
            finished.set(true);
            return true;
        }
        let server_rx = queues(addr, local).map_or(0, |(_, rx)| rx);
        let client_tx = queues(local, addr).map_or(0, |(tx, _)| tx);
        server_rx >= 64 << 10 && client_tx >= 1 << 20
    });
    let stalled = !finished.get();
    assert!(
        stalled,
        "the server read all {SIZE} bytes with no disk to write them to"
    );
    let rss = resident(server.0.id());
    assert!(rss < 32 << 20, "the server holds {rss} bytes");

    // The disk frees up: the downloads are refused (a FIFO is no file),
    // and the upload goes through.
    for (mut conn, fifo) in stuck {
        let _writer = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .unwrap();
        let answer = read_answer(&mut conn);
        assert_eq!(answer["ok"], json!(false), "{answer}");
    }
    done.recv_timeout(WAIT).expect("the upload did not finish");
    assert_eq!(read_answer(&mut conn), json!({"ok": true, "size": SIZE}));
    let stored = fs::read(store.join("big")).unwrap();
    assert_eq!(stored.len(), SIZE);
    assert!(stored
        .chunks(1 << 20)
        .all(|c| c.iter().enumerate().all(|(i, &b)| b == (i % 253) as u8)));
}
