//! The chat server example over loopback: the protocol a client sees, and
//! the rules that keep a member that does not read from holding memory or
//! slowing the others (see the example's doc comment).
//!
//! `cargo test` builds the examples before running this file; with a target
//! filter (`cargo test --test chat_server`) it does not, so build them first
//! with `cargo build --examples`.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[path = "common/programs.rs"]
mod programs;
#[path = "common/wait.rs"]
mod wait;

use programs::*;
use wait::wait_until;

/// Connects to the chat server and takes the name `name`.
fn join(addr: SocketAddr, name: &str) -> TcpStream {
    let mut conn = connect(addr);
    expect(&mut conn, b"What's your name?\n");
    conn.write_all(format!("{name}\n").as_bytes()).unwrap();
    expect(&mut conn, format!("Welcome, {name}!\n").as_bytes());
    conn
}

#[test]
fn chat_server_relays_lines_to_the_others_and_announces_joins_and_leaves() {
    let server = Server::start("chat_server");
    let mut alice = join(server.addr, "alice");
    let mut bob = join(server.addr, "bob");
    expect(&mut alice, b"* bob joined\n");
    let mut carol = join(server.addr, "carol");
    expect(&mut alice, b"* carol joined\n");
    expect(&mut bob, b"* carol joined\n");

    // Half a line, then a round trip through bob, then the rest: the server
    // most likely reads the halves apart and must put them back together.
    alice.write_all(b"hi ").unwrap();
    bob.write_all(b"sync\n").unwrap();
    expect(&mut alice, b"bob: sync\n");
    expect(&mut carol, b"bob: sync\n");
    alice.write_all(b"there\r\n").unwrap();
    expect(&mut bob, b"alice: hi there\n");
    expect(&mut carol, b"alice: hi there\n");

    // Were alice sent her own line, it would come before this one.
    bob.write_all(b"yo\n").unwrap();
    expect(&mut alice, b"bob: yo\n");
    expect(&mut carol, b"bob: yo\n");

    drop(carol);
    expect(&mut alice, b"* carol left\n");
    expect(&mut bob, b"* carol left\n");

    // Nothing else reached alice: the next thing she gets is this.
    bob.write_all(b"bye\n").unwrap();
    expect(&mut alice, b"bob: bye\n");
    drop(alice);
    expect(&mut bob, b"* alice left\n");
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn chat_server_refuses_bad_names_and_overlong_lines() {
    let server = Server::start("chat_server");
    let mut alice = join(server.addr, "alice");

    let mut copycat = connect(server.addr);
    expect(&mut copycat, b"What's your name?\n");
    copycat.write_all(b"alice\n").unwrap();
    expect(&mut copycat, b"The name alice is taken. Bye.\n");
    expect_eof(&mut copycat);

    let mut nameless = connect(server.addr);
    expect(&mut nameless, b"What's your name?\n");
    nameless.write_all(b"\r\n").unwrap();
    expect(&mut nameless, b"A name cannot be empty. Bye.\n");
    expect_eof(&mut nameless);

    // A line of exactly the limit still goes through.
    let mut bob = join(server.addr, "bob");
    expect(&mut alice, b"* bob joined\n");
    let longest = vec![b'x'; 64 * 1024];
    let writer = {
        let mut bob = bob.try_clone().unwrap();
        let mut line = longest.clone();
        line.push(b'\n');
        thread::spawn(move || bob.write_all(&line))
    };
    let mut relayed = b"bob: ".to_vec();
    relayed.extend_from_slice(&longest);
    relayed.push(b'\n');
    expect(&mut alice, &relayed);
    writer.join().unwrap().unwrap();

    // One byte more is refused. Exactly that much is sent, so the server has
    // read all of it when it closes, and closes with a FIN, not a reset.
    bob.write_all(&longest).unwrap();
    bob.write_all(b"x").unwrap();
    expect(
        &mut bob,
        b"Line too long (the limit is 65536 bytes). Bye.\n",
    );
    expect_eof(&mut bob);
    expect(&mut alice, b"* bob left\n");

    // Neither refused name was ever announced to alice.
    let mut carol = join(server.addr, "carol");
    expect(&mut alice, b"* carol joined\n");
    carol.write_all(b"done\n").unwrap();
    expect(&mut alice, b"carol: done\n");
    assert_eq!(server.stop(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// Members that do not read.

/// The server's memory, from /proc: `field` is `VmRSS` (now) or `VmHWM`
/// (the peak so far), in bytes.
fn memory(server: &Server, field: &str) -> usize {
    let pid = server.process.0.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: usize = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

/// How much the server's peak memory grew past `baseline`.
fn peak_growth(server: &Server, baseline: usize) -> usize {
    memory(server, "VmHWM").saturating_sub(baseline)
}

/// The most the server's peak memory may grow in these tests: the rules
/// bound every member's backlog, and one flood is paced, not buffered.
const MAX_GROWTH: usize = 8 << 20;

/// How long a line may take from one member that reads to another.
const MAX_LATENCY: Duration = Duration::from_millis(200);

/// Reads one member's lines on a thread: relayed flood lines are counted
/// (and must come in order), every other line is passed on with the moment
/// it arrived.
struct Listener {
    lines: Receiver<(String, Instant)>,
    flood_lines: Arc<AtomicUsize>,
    done: thread::JoinHandle<()>,
}

impl Listener {
    fn start(conn: &TcpStream, flooder: &str) -> Listener {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let flood_prefix = format!("{flooder}: ").into_bytes();
        let (tx, lines) = channel();
        let flood_lines = Arc::new(AtomicUsize::new(0));
        let count = flood_lines.clone();
        // As fast as it can: the flood is megabytes, and lines behind it wait.
        let done = thread::spawn(move || {
            let mut line = Vec::new();
            let mut n = 0;
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if let Some(letter) = line.strip_prefix(&flood_prefix[..]) {
                    assert_eq!(letter, flood_letter(n).as_bytes(), "flood line {n}");
                    n += 1;
                    count.store(n, Ordering::Relaxed);
                } else {
                    let line = String::from_utf8(line.clone()).expect("UTF-8");
                    if tx.send((line, Instant::now())).is_err() {
                        return;
                    }
                }
            }
        });
        Listener {
            lines,
            flood_lines,
            done,
        }
    }

    /// Waits for `wanted`; notes when `* silent left` passes by.
    fn expect(&self, wanted: &str, silent_left: &mut Option<Instant>) -> Instant {
        loop {
            let (line, at) = self
                .lines
                .recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("waiting for {wanted:?}"));
            if line == wanted {
                return at;
            }
            assert_eq!(line, "* silent left\n", "while waiting for {wanted:?}");
            silent_left.get_or_insert(at);
        }
    }
}

/// Line `n` of the flood: one letter, the letters in turn.
fn flood_letter(n: usize) -> &'static str {
    const LINES: [&str; 26] = [
        "a\n", "b\n", "c\n", "d\n", "e\n", "f\n", "g\n", "h\n", "i\n", "j\n", "k\n", "l\n", "m\n",
        "n\n", "o\n", "p\n", "q\n", "r\n", "s\n", "t\n", "u\n", "v\n", "w\n", "x\n", "y\n", "z\n",
    ];
    LINES[n % 26]
}

/// The flood's lines: 512 KiB of them, relayed as 9 MiB to each member,
/// more than the kernel takes for one that does not read (4 MiB here), so
/// its backlog reaches the server.
const FLOOD_LINES: usize = 256 * 1024;

/// The flooder's name: the longest allowed, so each relayed line is 18
/// times the bytes it came from.
const FLOODER: &str = "flooder-with-a-name-of-32-bytes!";

/// How long a member may not read before it is disconnected, in these tests.
const SLOW: Duration = Duration::from_secs(1);

#[test]
fn a_member_that_never_reads_is_disconnected_and_a_flood_slows_nobody_else() {
    let server = Server::start_with("chat_server", &["--slow-timeout", "1"]);
    let baseline = memory(&server, "VmRSS");
    let silent = join(server.addr, "silent");
    let mut n1 = join(server.addr, "n1");
    let mut n2 = join(server.addr, "n2");
    expect(&mut n1, b"* n2 joined\n");
    let mut flooder = join(server.addr, FLOODER);
    let joined = format!("* {FLOODER} joined\n");
    expect(&mut n1, joined.as_bytes());
    expect(&mut n2, joined.as_bytes());
    let l1 = Listener::start(&n1, FLOODER);
    let l2 = Listener::start(&n2, FLOODER);
    let flooder_reads = read_in_background(flooder.try_clone().unwrap());

    let flood: Vec<u8> = (0..FLOOD_LINES)
        .flat_map(|n| flood_letter(n).bytes())
        .collect();
    assert_eq!(flood.len(), 512 * 1024);
    let flood_started = Instant::now();
    let writer = thread::spawn(move || flooder.write_all(&flood).map(|()| flooder));

    // n1 and n2 trade lines until the flood reached both and the silent
    // member is gone: every line gets through within MAX_LATENCY.
    let mut silent_left = None;
    let mut worst = Duration::ZERO;
    let mut exchanges = 0;
    while l1.flood_lines.load(Ordering::Relaxed) < FLOOD_LINES
        || l2.flood_lines.load(Ordering::Relaxed) < FLOOD_LINES
        || silent_left.is_none()
    {
        assert!(
            exchanges < 20_000,
            "still going after {exchanges} exchanges: {} and {} flood lines came, \
             the silent member left at {silent_left:?}",
            l1.flood_lines.load(Ordering::Relaxed),
            l2.flood_lines.load(Ordering::Relaxed),
        );
        assert!(
            flood_started.elapsed() < 4 * SLOW + WAIT,
            "the flood never arrived"
        );
        for (from, to, listener, word) in
            [(&mut n1, "n1", &l2, "ping"), (&mut n2, "n2", &l1, "pong")]
        {
            let sent = Instant::now();
            from.write_all(format!("{word} {exchanges}\n").as_bytes())
                .unwrap();
            let got = listener.expect(&format!("{to}: {word} {exchanges}\n"), &mut silent_left);
            worst = worst.max(got - sent);
        }
        exchanges += 1;
    }
    let silent_left = silent_left.expect("checked by the loop") - flood_started;
    let growth = peak_growth(&server, baseline);
    eprintln!(
        "{exchanges} exchanges, the slowest in {worst:?}; the silent member left after \
         {silent_left:?}; peak memory grew by {} KiB",
        growth >> 10
    );
    assert!(worst < MAX_LATENCY, "a line took {worst:?}");
    assert!(
        silent_left < 2 * SLOW + Duration::from_millis(500),
        "left after {silent_left:?}"
    );
    assert!(growth < MAX_GROWTH, "peak memory grew by {growth} bytes");

    // The silent member reads at last: complete lines, the goodbye, the end.
    let mut silent = silent;
    let mut got = Vec::new();
    silent
        .read_to_end(&mut got)
        .expect("a clean end after the goodbye");
    let text = String::from_utf8(got).unwrap();
    assert!(
        text.ends_with("\n* you are disconnected: not reading\n"),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    let mut flood_seen = 0;
    for line in text.lines() {
        if let Some(letter) = line.strip_prefix(&format!("{FLOODER}: ")) {
            assert_eq!(format!("{letter}\n"), flood_letter(flood_seen));
            flood_seen += 1;
        } else {
            let known = [
                "* n1 joined",
                "* n2 joined",
                joined.trim_end(),
                "* you are disconnected: not reading",
            ];
            assert!(
                known.contains(&line)
                    || line.starts_with("n1: ping ")
                    || line.starts_with("n2: pong "),
                "the silent member got {line:?}"
            );
        }
    }

    let flooder = writer.join().unwrap().expect("the flood was sent");
    // Each has a clone reading: shut down to end those reads now.
    for conn in [&n1, &n2, &flooder] {
        conn.shutdown(std::net::Shutdown::Both).unwrap();
    }
    l1.done.join().unwrap();
    l2.done.join().unwrap();
    flooder_reads
        .recv_timeout(WAIT)
        .expect("the flooder's connection closed");
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn names_are_at_most_32_bytes_and_empty_lines_are_not_relayed() {
    let server = Server::start("chat_server");
    let baseline = memory(&server, "VmRSS");
    let mut reader = join(server.addr, "reader");
    let _silent = join(server.addr, "silent");
    expect(&mut reader, b"* silent joined\n");

    // Issue 12's name: 4,000 bytes, repeated before every line it said.
    for len in [4000, 33] {
        let mut long = connect(server.addr);
        expect(&mut long, b"What's your name?\n");
        let mut name = vec![b'x'; len];
        name.push(b'\n');
        long.write_all(&name).unwrap();
        expect(&mut long, b"A name may be at most 32 bytes. Bye.\n");
        expect_eof(&mut long);
    }
    let longest = "e".repeat(32);
    let mut talker = join(server.addr, &longest);
    expect(&mut reader, format!("* {longest} joined\n").as_bytes());

    // 64 KiB of empty lines, LF and CRLF: nothing reaches anyone.
    talker.write_all(&b"\n".repeat(32 * 1024)).unwrap();
    talker.write_all(&b"\r\n".repeat(16 * 1024)).unwrap();
    talker.write_all(b"done\n").unwrap();
    expect(&mut reader, format!("{longest}: done\n").as_bytes());
    let growth = peak_growth(&server, baseline);
    eprintln!("peak memory grew by {} KiB", growth >> 10);
    assert!(growth < MAX_GROWTH, "peak memory grew by {growth} bytes");
    assert_eq!(server.stop(), Vec::<String>::new());
}

/// The smallest `--max-backlog`: two of the longest lines.
const SMALLEST_BACKLOG: usize = 128 * 1024;

/// Sends the longest lines from `talker` until `reader` sees `silent`
/// leave; `reader` must get every line. Returns the lines sent.
fn talk_until_silent_leaves(talker: &mut TcpStream, reader: &mut TcpStream) -> usize {
    let mut line = vec![b'y'; 64 * 1024];
    line.push(b'\n');
    let mut relayed = b"talker: ".to_vec();
    relayed.extend_from_slice(&line);
    let mut replies = BufReader::new(reader.try_clone().unwrap());
    // The kernel takes about 4 MiB for a peer that does not read; far more
    // than that means nothing stopped.
    for sent in 1..=1024 {
        talker.write_all(&line).unwrap();
        let mut got = Vec::new();
        replies.read_until(b'\n', &mut got).unwrap();
        if got == b"* silent left\n" {
            got.clear();
            replies.read_until(b'\n', &mut got).unwrap();
            assert!(got == relayed, "line {sent} differs");
            return sent;
        }
        assert!(got == relayed, "line {sent} differs");
    }
    panic!("the silent member was never disconnected");
}

#[test]
fn a_member_whose_backlog_would_pass_the_cap_is_disconnected_with_a_goodbye() {
    let backlog = SMALLEST_BACKLOG.to_string();
    // A slow-timeout no test waits for: the cap alone disconnects.
    let args = ["--max-backlog", &backlog, "--slow-timeout", "3600"];
    let server = Server::start_with("chat_server", &args);
    let baseline = memory(&server, "VmRSS");
    let mut silent = join(server.addr, "silent");
    let mut reader = join(server.addr, "reader");
    let mut talker = join(server.addr, "talker");
    expect(&mut reader, b"* talker joined\n");
    let sent = talk_until_silent_leaves(&mut talker, &mut reader);
    expect(&mut talker, b"* silent left\n");
    let growth = peak_growth(&server, baseline);
    eprintln!(
        "the silent member left after {sent} lines; peak memory grew by {} KiB",
        growth >> 10
    );

    // What it was sent, every line whole, then the goodbye, then the end.
    let mut got = Vec::new();
    silent
        .read_to_end(&mut got)
        .expect("a clean end after the goodbye");
    let mut expected = b"* reader joined\n* talker joined\n".to_vec();
    let relayed = [&b"talker: "[..], &[b'y'; 64 * 1024], b"\n"].concat();
    let lines = (got.len() - expected.len()) / relayed.len();
    assert!(
        lines < sent,
        "{lines} lines reached the silent member, of {sent}"
    );
    for _ in 0..lines {
        expected.extend_from_slice(&relayed);
    }
    expected.extend_from_slice(b"* you are disconnected: not reading\n");
    assert!(
        got == expected,
        "the silent member got {} bytes, not the {} expected",
        got.len(),
        expected.len()
    );
    assert!(growth < MAX_GROWTH, "peak memory grew by {growth} bytes");
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn a_disconnected_member_that_does_not_read_its_goodbye_in_time_is_reset() {
    let backlog = SMALLEST_BACKLOG.to_string();
    let args = ["--max-backlog", &backlog, "--slow-timeout", "0.2"];
    let server = Server::start_with("chat_server", &args);
    let silent = join(server.addr, "silent");
    let mut reader = join(server.addr, "reader");
    let mut talker = join(server.addr, "talker");
    expect(&mut reader, b"* talker joined\n");
    talk_until_silent_leaves(&mut talker, &mut reader);
    // Its goodbye waits behind a backlog it does not read: after
    // --slow-timeout it is reset, and the server holds nothing for it.
    wait_until(
        "the silent member is reset",
        || matches!(silent.take_error(), Ok(Some(e)) if e.kind() == ErrorKind::ConnectionReset),
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn a_flood_is_paced_by_a_slow_reader_rather_than_passing_its_backlog() {
    let backlog = SMALLEST_BACKLOG.to_string();
    let args = ["--max-backlog", &backlog, "--slow-timeout", "3600"];
    let server = Server::start_with("chat_server", &args);
    let baseline = memory(&server, "VmRSS");
    let mut slow = join(server.addr, "slow");
    let mut fast = join(server.addr, "fast");
    let mut flooder = join(server.addr, FLOODER);
    expect(&mut slow, b"* fast joined\n");
    let joined = format!("* {FLOODER} joined\n");
    expect(&mut slow, joined.as_bytes());
    expect(&mut fast, joined.as_bytes());
    let fast_listener = Listener::start(&fast, FLOODER);
    let flooder_reads = read_in_background(flooder.try_clone().unwrap());

    // The slow member reads 8 KiB a millisecond: a few MB/s, far slower
    // than the server relays. Unpaced, its backlog would pass 128 KiB.
    let flood: Vec<u8> = (0..FLOOD_LINES)
        .flat_map(|n| flood_letter(n).bytes())
        .collect();
    let writer = thread::spawn(move || flooder.write_all(&flood).map(|()| flooder));
    let relayed = FLOOD_LINES * (FLOODER.len() + 4);
    let mut got = Vec::with_capacity(relayed);
    let mut chunk = vec![0; 8 * 1024];
    let started = Instant::now();
    while got.len() < relayed {
        assert!(
            started.elapsed() < 3 * WAIT,
            "{} of {relayed} bytes came",
            got.len()
        );
        let n = slow
            .read(&mut chunk)
            .expect("the slow member is still connected");
        assert!(
            n > 0,
            "the slow member was disconnected after {} bytes",
            got.len()
        );
        got.extend_from_slice(&chunk[..n]);
        thread::sleep(Duration::from_millis(1));
    }
    let expected: Vec<u8> = (0..FLOOD_LINES)
        .flat_map(|n| [FLOODER.as_bytes(), b": ", flood_letter(n).as_bytes()].concat())
        .collect();
    assert!(got == expected, "the slow member's flood differs");
    let growth = peak_growth(&server, baseline);
    eprintln!(
        "the slow member read the flood in {:?}; peak memory grew by {} KiB",
        started.elapsed(),
        growth >> 10
    );
    assert!(growth < MAX_GROWTH, "peak memory grew by {growth} bytes");

    let flooder = writer.join().unwrap().expect("the flood was sent");
    for conn in [&slow, &fast, &flooder] {
        conn.shutdown(std::net::Shutdown::Both).unwrap();
    }
    fast_listener.done.join().unwrap();
    assert_eq!(
        fast_listener.flood_lines.load(Ordering::Relaxed),
        FLOOD_LINES
    );
    flooder_reads
        .recv_timeout(WAIT)
        .expect("the flooder's connection closed");
    assert_eq!(server.stop(), Vec::<String>::new());
}
