//! Runs the line-based example servers (`line_timestamp_server`,
//! `upper_server`) as a user would and talks to them over loopback.
//!
//! `cargo test` builds the examples first; with a target filter
//! (`cargo test --test line_examples`) it does not, so build them first with
//! `cargo build --examples`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

#[path = "common/programs.rs"]
mod programs;

use programs::*;

/// What a stamp looks like: `d` is any ASCII digit.
const SHAPE: &[u8] = b"[dddd-dd-dd dd:dd:dd] ";

/// Whether `reply` is exactly `[YYYY-MM-DD HH:MM:SS] ` followed by `message`.
fn is_stamped(reply: &[u8], message: &[u8]) -> bool {
    reply.len() == SHAPE.len() + message.len()
        && reply.iter().zip(SHAPE).all(|(&c, &want)| match want {
            b'd' => c.is_ascii_digit(),
            _ => c == want,
        })
        && reply.ends_with(message)
}

/// Reads one stamped reply to `line` (its line ending included) and checks it.
fn expect_stamped(stream: &mut TcpStream, line: &[u8]) {
    let mut reply = vec![0; SHAPE.len() + line.len()];
    if let Err(e) = stream.read_exact(&mut reply) {
        panic!("waiting for the reply to \"{}\": {e}", line.escape_ascii());
    }
    assert!(
        is_stamped(&reply, line),
        "reply to \"{}\": \"{}\"",
        line.escape_ascii(),
        reply.escape_ascii()
    );
}

#[test]
fn the_stamp_checker_rejects_near_misses() {
    assert!(is_stamped(b"[2024-02-29 23:59:01] hello\n", b"hello\n"));
    assert!(!is_stamped(b"[2024-02-29 23:59:01]hello\n", b"hello\n"));
    assert!(!is_stamped(b"[2024-02-29 23:59:1] hello\n", b"hello\n"));
    assert!(!is_stamped(b"[2024-02-29T23:59:01] hello\n", b"hello\n"));
    assert!(!is_stamped(b"[2024-02-29 23:59:01] hello\r\n", b"hello\n"));
    assert!(!is_stamped(b"[2024-02-29 23:59:01] jello\n", b"hello\n"));
}

#[test]
fn line_timestamp_server_stamps_each_line_of_one_write_keeping_its_ending() {
    let server = Server::start("line_timestamp_server");
    let mut conn = connect(server.addr);
    conn.write_all(b"one\ntwo\r\n\nthree four\n").unwrap();
    for line in [&b"one\n"[..], b"two\r\n", b"\n", b"three four\n"] {
        expect_stamped(&mut conn, line);
    }
    // A last line with no line ending gets no reply.
    conn.write_all(b"unfinished").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    expect_eof(&mut conn);
    assert_eq!(server.stop(), Vec::<String>::new(), "more stdout lines");
}

#[test]
fn line_timestamp_server_joins_lines_split_across_writes() {
    let server = Server::start("line_timestamp_server");
    let mut conn = connect(server.addr);
    // Each reply proves the server has read the write before it, so the
    // next write reaches it apart: a word split, then a `\r\n` split.
    conn.write_all(b"one\nt").unwrap();
    expect_stamped(&mut conn, b"one\n");
    conn.write_all(b"wo\nthree\r").unwrap();
    expect_stamped(&mut conn, b"two\n");
    conn.write_all(b"\n").unwrap();
    expect_stamped(&mut conn, b"three\r\n");
    conn.shutdown(Shutdown::Write).unwrap();
    expect_eof(&mut conn);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn upper_server_upper_cases_ascii_letters_of_each_line_only() {
    let server = Server::start("upper_server");
    let mut conn = connect(server.addr);
    conn.write_all(b"Hello, World 123 \xc3\xbc!\nok\r\n\n\xff\xfe caf\xe9\n")
        .unwrap();
    expect(
        &mut conn,
        b"HELLO, WORLD 123 \xc3\xbc!\nOK\r\n\n\xff\xfe CAF\xe9\n",
    );
    // Only the exact line `end` hangs up.
    conn.write_all(b"End\nend it\n end\n").unwrap();
    expect(&mut conn, b"END\nEND IT\n END\n");
    // Split across writes (the reply proves the first part was read alone).
    conn.write_all(b"a\nsp").unwrap();
    expect(&mut conn, b"A\n");
    conn.write_all(b"lit\n").unwrap();
    expect(&mut conn, b"SPLIT\n");
    assert_eq!(server.stop(), Vec::<String>::new(), "more stdout lines");
}

#[test]
fn upper_server_closes_the_connection_on_end() {
    let server = Server::start("upper_server");
    for end in [&b"end\n"[..], b"end\r\n"] {
        let mut conn = connect(server.addr);
        conn.write_all(b"first\n").unwrap();
        expect(&mut conn, b"FIRST\n");
        // Lines after `end`, even in the same write, get no reply.
        let mut data = b"last\n".to_vec();
        data.extend_from_slice(end);
        data.extend_from_slice(b"ignored\n");
        conn.write_all(&data).unwrap();
        expect(&mut conn, b"LAST\n");
        expect_eof(&mut conn);
    }
    // The server goes on serving others.
    let mut conn = connect(server.addr);
    conn.write_all(b"still here\n").unwrap();
    expect(&mut conn, b"STILL HERE\n");
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn upper_server_takes_a_64_kib_line_and_hangs_up_on_a_longer_one() {
    let server = Server::start("upper_server");
    let mut conn = connect(server.addr);
    let longest = vec![b'x'; 64 * 1024];
    // Written from another thread: the reply may come back while we send.
    let writer = {
        let mut conn = conn.try_clone().unwrap();
        let mut line = longest.clone();
        line.push(b'\n');
        thread::spawn(move || conn.write_all(&line))
    };
    let mut reply = vec![b'X'; 64 * 1024];
    reply.push(b'\n');
    expect(&mut conn, &reply);
    writer.join().unwrap().unwrap();

    // One byte more, with no line ending yet, is refused. Exactly that much
    // is sent, so the server has read all of it when it closes, and closes
    // with a FIN, not a reset.
    conn.write_all(&longest).unwrap();
    conn.write_all(b"x").unwrap();
    expect_eof(&mut conn);
    assert_eq!(server.stop(), Vec::<String>::new());
}
