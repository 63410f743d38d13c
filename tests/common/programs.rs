//! Running the example binaries from integration tests: finding the built
//! binary (refusing a stale one), starting a server and reading its
//! `listening on` line, running a client to completion, and blocking
//! loopback reads with a timeout.
//!
//! Included with `#[path = "common/programs.rs"] mod programs;` by the test
//! files that run examples. `cargo test` builds the examples first; a target
//! filter (`cargo test --test examples`) does not, so build them with
//! `cargo build --workspace --examples` then.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, SystemTime};

/// How long any one expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// target/<profile>/examples, next to this test binary's target/<profile>/deps.
fn example_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps")
        .join("examples")
}

/// The built example `name`, next to this test binary (target/<profile>/deps).
pub fn example(name: &str) -> PathBuf {
    let path = example_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: run `cargo build --workspace --examples` first",
                path.display()
            )
        });
    // A stale binary would test old code and pass or fail for the wrong reason.
    let edited = newest_source(name);
    assert!(
        built >= edited,
        "{} is older than its sources: run `cargo build --workspace --examples` first",
        path.display()
    );
    path
}

/// When a source the example `name` was built from last changed: the files
/// cargo's dep-info lists for it, or else everything under src/, the shared
/// examples/common/, and the example's own files in either package (the
/// root's examples/ or the tools member's tools/examples/).
fn newest_source(name: &str) -> SystemTime {
    let exe = example_dir().join(name);
    let dep_info = std::fs::read_to_string(exe.with_extension("d")).unwrap_or_default();
    let mut files: Vec<PathBuf> = dep_info
        .lines()
        .next()
        .and_then(|line| line.split_once(": "))
        .map(|(_, deps)| deps.split(' ').map(PathBuf::from).collect())
        .unwrap_or_default();
    if files.is_empty() {
        let root = workspace_root();
        let mut dirs = vec![root.join("src"), root.join("examples").join("common")];
        for examples in [root.join("examples"), root.join("tools").join("examples")] {
            files.push(examples.join(format!("{name}.rs")));
            dirs.push(examples.join(name));
        }
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path);
                }
            }
        }
    }
    files
        .iter()
        .filter_map(|file| std::fs::metadata(file).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The workspace's root directory: this file is in its tests/common/, and is
/// included both by the root package's tests and by tools/tests/.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.file_name() {
        Some(dir) if dir == "tools" => manifest.parent().unwrap_or(manifest).to_path_buf(),
        _ => manifest.to_path_buf(),
    }
}

/// A child process, killed and reaped when dropped so no test leaks one.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `from` to the end on a thread; the receiver gets the bytes.
pub fn read_in_background(mut from: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    rx
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Fails the test, showing stderr, unless the program exited 0.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "{}; stderr: {}",
            self.status,
            self.stderr
        );
    }
}

/// Runs `cmd` to completion with `input` on its stdin.
pub fn run_to_end(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the example");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = read_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_in_background(child.stderr.take().expect("piped stderr"));
    let mut child = Running(child);
    // A child that exits before reading (a refused connection) breaks the pipe.
    let _ = stdin.write_all(input);
    drop(stdin);
    let text = |rx: Receiver<Vec<u8>>| {
        let bytes = rx
            .recv_timeout(WAIT)
            .expect("the example did not exit in time");
        String::from_utf8(bytes).expect("output is UTF-8")
    };
    let stdout = text(stdout);
    let stderr = text(stderr);
    let status = child.0.wait().expect("wait for the example");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// A server example started with `--port 0`, killed when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub lines: Receiver<String>,
    pub process: Running,
}

impl Server {
    pub fn start(name: &str) -> Server {
        Server::start_with(name, &[])
    }

    /// Like [`Server::start`], with more command-line arguments.
    pub fn start_with(name: &str, args: &[&str]) -> Server {
        let mut child = Command::new(example(name))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the server");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let process = Running(child);
        let (tx, lines) = channel();
        thread::spawn(move || {
            for line in stdout.lines() {
                if tx.send(line.expect("stdout is UTF-8")).is_err() {
                    return;
                }
            }
        });
        let first = lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("{name} did not say where it listens: {e}"));
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{name}'s first line is {first:?}"));
        Server {
            addr,
            lines,
            process,
        }
    }

    /// Waits for the server to exit by itself; returns its status and what
    /// it printed after the first line.
    pub fn wait_for_exit(mut self) -> (ExitStatus, Vec<String>) {
        let mut rest = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => rest.push(line),
                // Its stdout closed: it has exited, or is about to.
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the server did not exit; printed {rest:?}")
                }
            }
        }
        let status = self.process.0.wait().expect("wait for the server");
        (status, rest)
    }

    /// Kills the server and returns what it printed after the first line.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.process.0.kill();
        let _ = self.process.0.wait();
        let mut rest = Vec::new();
        loop {
            match self.lines.recv_timeout(WAIT) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => return rest,
                Err(RecvTimeoutError::Timeout) => panic!("server stdout did not close"),
            }
        }
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the server");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads exactly `expected.len()` bytes and checks they are `expected`.
pub fn expect(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    if let Err(e) = stream.read_exact(&mut got) {
        panic!(
            "waiting for {:?}: {e}",
            String::from_utf8_lossy(expected)
                .chars()
                .take(80)
                .collect::<String>()
        );
    }
    assert!(
        got == expected,
        "expected {:?}, got {:?}",
        String::from_utf8_lossy(expected)
            .chars()
            .take(80)
            .collect::<String>(),
        String::from_utf8_lossy(&got)
            .chars()
            .take(80)
            .collect::<String>()
    );
}

/// Checks that the server closes the connection with nothing more to say.
pub fn expect_eof(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("read to end of stream");
    assert_eq!(String::from_utf8_lossy(&rest), "", "bytes before the close");
}
