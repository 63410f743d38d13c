//! The standard I/O connection (`Reactor::open_stdio`), driven from outside:
//! `tests/programs/stdio_echo.rs` runs as a child with its stdin and stdout
//! piped, redirected from and to regular files, or on a socket pair, and
//! reports its callbacks on stderr.
//!
//! `cargo test` builds the program first; with a target filter (`cargo test
//! --test stdio`) run `cargo build --example stdio_echo` first.

#[path = "common/programs.rs"]
mod programs;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::thread;
use std::time::Duration;

use programs::{example, read_in_background, Running, WAIT};
use reactor::DEFAULT_HIGH_WATERMARK;
use rustix::fs::{fcntl_getfl, OFlags};

/// The most one read of the reactor adds to a buffer. A pipe takes
/// exactly 64 KiB, which is not past the high watermark, so the next read
/// can add this much before reading pauses.
const ONE_READ: usize = 64 * 1024;

/// Deterministic varied bytes (xorshift), so a misplaced chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `--produce`'s bytes.
fn generated(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// `stdio_echo ARGS` with the given stdin and stdout, stderr piped.
fn spawn(args: &[&str], stdin: impl Into<Stdio>, stdout: impl Into<Stdio>) -> Child {
    Command::new(example("stdio_echo"))
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stdio_echo")
}

/// What the child said on stderr, once it has exited (successfully).
fn report(child: &mut Running, stderr: Receiver<Vec<u8>>) -> Vec<String> {
    let text = stderr
        .recv_timeout(WAIT)
        .expect("stdio_echo did not exit in time");
    let status = child.0.wait().expect("wait for stdio_echo");
    let text = String::from_utf8(text).expect("stderr is UTF-8");
    assert!(status.success(), "{status}; stderr: {text}");
    text.lines().map(str::to_string).collect()
}

/// The report without its last line (`largest buffered N`), and N.
fn split_largest(mut lines: Vec<String>) -> (Vec<String>, usize) {
    let last = lines.pop().expect("a report");
    let largest = last
        .strip_prefix("largest buffered ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("last line: {last:?}"));
    (lines, largest)
}

/// Reads `stdout` to its end in chunks of 16 KiB, pausing 1 ms after each:
/// a reader much slower than the child can write.
fn read_slowly(mut stdout: ChildStdout) -> Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut all = Vec::new();
        let mut chunk = vec![0; 16 * 1024];
        loop {
            match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&chunk[..n]),
            }
            thread::sleep(Duration::from_millis(1));
        }
        let _ = tx.send(all);
    });
    rx
}

/// A file of its own for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!("stdio-{name}-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

#[test]
fn bytes_round_trip_exactly_and_end_of_stdin_ends_the_session() {
    let data = pattern(1 << 20);
    let mut child = spawn(&[], Stdio::piped(), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    let sent = data.clone();
    // Written from another thread: the echo comes back while we still send.
    let writer = thread::spawn(move || stdin.write_all(&sent));
    let echoed = stdout.recv_timeout(WAIT).expect("stdout did not end");
    writer.join().unwrap().expect("stdin took everything");
    let first_difference = echoed.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "the echo differs");
    assert_eq!(echoed.len(), data.len());
    let (lines, _) = split_largest(report(&mut child, stderr));
    assert_eq!(
        lines,
        ["made from stdio", "lost: PeerClosed", "received 1048576"]
    );
}

#[test]
fn a_half_closing_protocol_hears_the_end_of_stdin_and_may_still_write() {
    let mut child = spawn(&["--half-close"], Stdio::piped(), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    stdin.write_all(b"one\ntwo\n").unwrap();
    drop(stdin);
    let out = stdout.recv_timeout(WAIT).expect("stdout did not end");
    assert_eq!(out, b"one\ntwo\nbye\n");
    let (lines, _) = split_largest(report(&mut child, stderr));
    assert_eq!(
        lines,
        [
            "made from stdio",
            "read_connection_lost",
            "lost: LocalClosed",
            "received 8"
        ]
    );
}

#[test]
fn lose_write_connection_ends_stdout_while_stdin_is_still_read() {
    let mut child = spawn(&["--shut-first"], Stdio::piped(), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    // Our stdin is still open, so the child is still running: the end of
    // its stdout can only be the half-close.
    let out = stdout
        .recv_timeout(WAIT)
        .expect("stdout did not end while the child ran");
    assert_eq!(out, b"hello\n");
    stdin.write_all(b"more").unwrap();
    drop(stdin);
    let (lines, _) = split_largest(report(&mut child, stderr));
    assert_eq!(lines, ["made from stdio", "lost: PeerClosed", "received 4"]);
}

#[test]
fn an_echo_to_a_slow_reader_pauses_stdin_and_loses_nothing() {
    const TOTAL: usize = 8 << 20;
    let data = pattern(TOTAL);
    let mut child = spawn(&[], Stdio::piped(), Stdio::piped());
    let mut stdin = child.stdin.take().unwrap();
    let stdout = read_slowly(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    let sent = data.clone();
    let writer = thread::spawn(move || stdin.write_all(&sent));
    let echoed = stdout.recv_timeout(WAIT * 3).expect("stdout did not end");
    writer.join().unwrap().expect("stdin took everything");
    assert!(echoed == data, "the echo differs ({} bytes)", echoed.len());
    let (lines, largest) = split_largest(report(&mut child, stderr));
    assert_eq!(
        lines,
        ["made from stdio", "lost: PeerClosed", "received 8388608"]
    );
    assert!(
        largest <= DEFAULT_HIGH_WATERMARK + ONE_READ,
        "the child buffered {largest} bytes for stdout"
    );
}

#[test]
fn a_producer_to_a_slow_reader_holds_at_most_its_watermark_and_a_chunk() {
    const TOTAL: usize = 8 << 20;
    let mut child = spawn(
        &["--produce", &TOTAL.to_string()],
        Stdio::null(),
        Stdio::piped(),
    );
    let stdout = read_slowly(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    let out = stdout.recv_timeout(WAIT * 3).expect("stdout did not end");
    assert!(
        out == generated(TOTAL),
        "the output differs ({} bytes)",
        out.len()
    );
    let (lines, largest) = split_largest(report(&mut child, stderr));
    // Stdin (/dev/null) is never read: the default pause_producing pauses
    // reading whenever stdout is full, which it is from the first chunk
    // until the producer is done and closes.
    assert_eq!(
        lines,
        ["made from stdio", "lost: LocalClosed", "received 0"]
    );
    assert!(
        largest <= DEFAULT_HIGH_WATERMARK + ONE_READ,
        "the child buffered {largest} bytes for stdout"
    );
}

#[test]
fn stdin_redirected_from_a_regular_file_is_read_to_its_end() {
    let data = pattern(3 << 20);
    let file = Scratch::new("input");
    fs::write(&file.0, &data).unwrap();
    let mut child = spawn(&[], File::open(&file.0).unwrap(), Stdio::piped());
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    let out = stdout.recv_timeout(WAIT).expect("stdout did not end");
    assert!(out == data, "the echo differs ({} bytes)", out.len());
    let (lines, largest) = split_largest(report(&mut child, stderr));
    assert_eq!(
        lines,
        ["made from stdio", "lost: PeerClosed", "received 3145728"]
    );
    assert!(
        largest <= DEFAULT_HIGH_WATERMARK + ONE_READ,
        "the child buffered {largest} bytes for stdout"
    );
}

#[test]
fn stdout_redirected_to_a_regular_file_gets_everything() {
    let data = pattern(3 << 20);
    let input = Scratch::new("from");
    let output = Scratch::new("to");
    fs::write(&input.0, &data).unwrap();
    let mut child = spawn(
        &[],
        File::open(&input.0).unwrap(),
        File::create(&output.0).unwrap(),
    );
    let stderr = read_in_background(child.stderr.take().unwrap());
    let mut child = Running(child);
    let (lines, _) = split_largest(report(&mut child, stderr));
    assert_eq!(
        lines,
        ["made from stdio", "lost: PeerClosed", "received 3145728"]
    );
    assert!(fs::read(&output.0).unwrap() == data, "the file differs");
}

/// Whether `fd`'s open file description is non-blocking.
fn nonblocking(fd: &UnixStream) -> bool {
    fcntl_getfl(fd).unwrap().contains(OFlags::NONBLOCK)
}

#[test]
fn the_flags_of_stdin_and_stdout_are_put_back_when_the_session_ends() {
    // A socket pair end as the child's stdin and stdout, a duplicate of it
    // kept here: its flags are the child's, as a terminal's are a shell's.
    let (ours, theirs) = UnixStream::pair().unwrap();
    let kept = theirs.try_clone().unwrap();
    assert!(!nonblocking(&kept));
    let stdin = OwnedFd::from(theirs.try_clone().unwrap());
    let mut child = spawn(&["--half-close"], stdin, OwnedFd::from(theirs));
    let stderr = child.stderr.take().unwrap();
    let mut child = Running(child);
    let mut stderr = std::io::BufReader::new(stderr);
    let mut made = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut made).unwrap();
    assert_eq!(made, "made from stdio\n");
    // The session is under way.
    assert!(nonblocking(&kept), "the child's stdin is blocking");
    (&ours).write_all(b"ping").unwrap();
    ours.shutdown(std::net::Shutdown::Write).unwrap();
    // Exactly: the duplicate kept here holds the socket open, so no
    // end-of-file comes.
    let mut out = [0; 8];
    ours.set_read_timeout(Some(WAIT)).unwrap();
    (&ours).read_exact(&mut out).unwrap();
    assert_eq!(&out, b"pingbye\n");
    let rest = read_in_background(stderr);
    let (lines, _) = split_largest(report(&mut child, rest));
    assert_eq!(
        lines,
        ["read_connection_lost", "lost: LocalClosed", "received 4"]
    );
    assert!(!nonblocking(&kept), "the child left its stdin non-blocking");
}
