//! The `http_hello` example (seed 000, section 四) as `curl` and a raw
//! socket see it: exact bytes, keep-alive, pipelining, closes and refusals.
//!
//! Build the examples first (`cargo build --examples`): a target filter does
//! not. The `curl` tests need `/usr/bin/curl` (or `curl` on `PATH`).

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::thread;

#[path = "common/http_answers.rs"]
mod answers;
#[path = "common/programs.rs"]
mod programs;

use answers::*;
use programs::*;

/// The example's limit on a request head, line endings included.
const MAX_HEAD: usize = 8 * 1024;

/// Runs `curl ARGS`; fails with a clear message where curl is missing.
fn curl(args: &[&str]) -> Output {
    let program = if std::path::Path::new("/usr/bin/curl").exists() {
        "/usr/bin/curl"
    } else {
        "curl"
    };
    if let Err(e) = Command::new(program).arg("--version").output() {
        panic!(
            "cannot run curl ({e}): these tests need it; install it with `apt-get install curl`"
        );
    }
    run_to_end(Command::new(program).args(args), b"")
}

/// Sends `request`, expects exactly `response`, and checks the connection
/// is then closed.
fn expect_answer_then_close(addr: SocketAddr, request: &[u8], response: &[u8]) {
    let mut conn = connect(addr);
    conn.write_all(request).unwrap();
    expect(&mut conn, response);
    expect_eof(&mut conn);
}

/// Checks that `conn` is still served: one more request, its answer.
fn expect_still_open(conn: &mut TcpStream) {
    conn.write_all(GET).unwrap();
    expect(conn, OK);
}

#[test]
fn curl_gets_hello_world_twice_over_one_connection() {
    let server = Server::start("http_hello");
    let url = format!("http://{}/", server.addr);
    let out = curl(&["-sv", &url, &url]);
    out.assert_success();
    assert_eq!(out.stdout, "hello world\nhello world\n");
    assert!(
        out.stderr.contains("Re-using existing connection"),
        "curl did not reuse the connection:\n{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("Connected to").count(),
        1,
        "curl connected more than once:\n{}",
        out.stderr
    );
    for header in [
        "< HTTP/1.1 200 OK",
        "< Content-Type: text/html",
        "< Content-Length: 12",
    ] {
        assert_eq!(
            out.stderr.matches(header).count(),
            2,
            "{header:?} not in both answers:\n{}",
            out.stderr
        );
    }
    assert_eq!(
        server.stop(),
        Vec::<String>::new(),
        "more than one stdout line"
    );
}

#[test]
fn curl_sees_404_head_405_and_http_1_0() {
    let server = Server::start("http_hello");
    let url = format!("http://{}/", server.addr);
    let status = |args: &[&str]| {
        let mut all = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        let out = curl(&all);
        out.assert_success();
        out.stdout
    };
    assert_eq!(status(&[&format!("{url}missing")]), "404");
    assert_eq!(status(&["-X", "POST", "-d", "x=1", &url]), "405");
    assert_eq!(status(&["-I", &url]), "200");

    let out = curl(&["-s", "-i", "--http1.0", &url]);
    out.assert_success();
    assert_eq!(out.stdout.as_bytes(), OK_CLOSE);

    let out = curl(&["-s", "-I", &url]);
    out.assert_success();
    assert_eq!(out.stdout.as_bytes(), OK_HEAD);
}

#[test]
fn pipelined_requests_in_one_write_are_answered_in_order() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    let mut requests = Vec::new();
    requests.extend_from_slice(GET);
    requests.extend_from_slice(b"GET /other HTTP/1.1\r\nHost: test\r\n\r\n");
    requests.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    requests.extend_from_slice(b"DELETE / HTTP/1.1\r\nHost: test\r\n\r\n");
    requests.extend_from_slice(GET);
    conn.write_all(&requests).unwrap();
    expect(
        &mut conn,
        &[OK, NOT_FOUND, OK_HEAD, NOT_ALLOWED, OK].concat(),
    );
    expect_still_open(&mut conn);
    // The client's FIN ends it cleanly.
    conn.shutdown(Shutdown::Write).unwrap();
    expect_eof(&mut conn);
}

#[test]
fn connection_close_gets_its_answer_then_eof_and_nothing_after_it_is_served() {
    let server = Server::start("http_hello");
    expect_answer_then_close(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: test\r\n\r\n",
        OK_CLOSE,
    );
    // Connection options are a case-insensitive list.
    expect_answer_then_close(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: test\r\nconnection: Upgrade, CLOSE\r\n\r\n",
        OK_CLOSE,
    );
}

#[test]
fn other_paths_get_404_and_the_connection_stays_open() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    for target in ["/index.html", "//", "/%2F", "/a/", "http://test/x"] {
        conn.write_all(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .unwrap();
        expect(&mut conn, NOT_FOUND);
    }
    // A query does not change the path; an absolute-form target names it too.
    for target in ["/?q=1", "http://test/", "HTTP://test", "http://test?x"] {
        conn.write_all(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
            .unwrap();
        expect(&mut conn, OK);
    }
}

#[test]
fn head_gets_the_headers_only() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    conn.write_all(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    expect(&mut conn, OK_HEAD);
    // Were a body sent, it would come before this answer.
    expect_still_open(&mut conn);
    conn.write_all(b"HEAD /nope HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    expect(
        &mut conn,
        &NOT_FOUND[..NOT_FOUND.len() - "not found\n".len()],
    );
    expect_still_open(&mut conn);
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = Server::start("http_hello");
    expect_answer_then_close(server.addr, b"GET / HTTP/1.0\r\n\r\n", OK_CLOSE);
    // Host is optional in HTTP/1.0.
    expect_answer_then_close(
        server.addr,
        b"GET / HTTP/1.0\r\nHost: test\r\nConnection: close\r\n\r\n",
        OK_CLOSE,
    );
    let mut conn = connect(server.addr);
    conn.write_all(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
        .unwrap();
    expect(&mut conn, OK_KEEP_ALIVE);
    conn.write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    expect(&mut conn, OK_KEEP_ALIVE);
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    expect(&mut conn, OK_CLOSE);
    expect_eof(&mut conn);
}

#[test]
fn malformed_requests_get_400_then_eof() {
    let server = Server::start("http_hello");
    for request in [
        &b"BAD\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: test\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: test\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: test\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET / http/1.1\r\nHost: test\r\n\r\n",
        b"GET / HTTP/1\r\nHost: test\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nHost: test\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: test\r\n\r\n",
        // Headers: no colon, space before the colon, folding, controls.
        b"GET / HTTP/1.1\r\nHost: test\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : test\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\n: empty name\r\n\r\n",
        // Host missing in HTTP/1.1, or given twice.
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        // Content-Length not a number, or two that disagree.
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 1, 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ] {
        expect_answer_then_close(server.addr, request, BAD_REQUEST);
    }
    // After good requests on the same connection, too.
    let mut conn = connect(server.addr);
    conn.write_all(GET).unwrap();
    conn.write_all(b"GET / HTTP/1.1 nonsense\r\n\r\n").unwrap();
    expect(&mut conn, &[OK, BAD_REQUEST].concat());
    expect_eof(&mut conn);
}

#[test]
fn other_http_versions_get_505_then_eof() {
    let server = Server::start("http_hello");
    for request in [
        &b"GET / HTTP/2.0\r\nHost: test\r\n\r\n"[..],
        b"GET / HTTP/1.2\r\nHost: test\r\n\r\n",
        b"GET / HTTP/0.9\r\n\r\n",
    ] {
        expect_answer_then_close(server.addr, request, VERSION_NOT_SUPPORTED);
    }
}

/// A request head of exactly `size` bytes (CRLF line endings), padded by
/// headers of at most 100 bytes, or by one header line if `one_line`.
fn head_of(size: usize, one_line: bool) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: test\r\n".to_vec();
    // Room left for padding lines before the final CRLF.
    let mut room = size - head.len() - 2;
    let mut i = 0;
    while room > 0 {
        // "X-Pad-NNNN: " + value + CRLF
        let line_len = if one_line { room } else { room.min(100) };
        // Do not leave a remainder too short for a line of its own.
        let line_len = if room - line_len > 0 && room - line_len < 20 {
            line_len - 20
        } else {
            line_len
        };
        let name = format!("X-Pad-{i:04}: ");
        let value = "v".repeat(line_len - name.len() - 2);
        head.extend_from_slice(format!("{name}{value}\r\n").as_bytes());
        room -= line_len;
        i += 1;
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(head.len(), size);
    head
}

#[test]
fn a_head_of_8_kib_is_served_and_one_byte_more_gets_400_then_eof() {
    let server = Server::start("http_hello");
    for one_line in [false, true] {
        let mut conn = connect(server.addr);
        conn.write_all(&head_of(MAX_HEAD, one_line)).unwrap();
        expect(&mut conn, OK);
        expect_still_open(&mut conn);

        expect_answer_then_close(server.addr, &head_of(MAX_HEAD + 1, one_line), BAD_REQUEST);
    }
    // A line over the limit is refused before its end arrives: 9 KiB of one
    // header, no line ending, and the connection held open by the client.
    let mut conn = connect(server.addr);
    let mut request = b"GET / HTTP/1.1\r\nHost: test\r\nX-Long: ".to_vec();
    request.resize(request.len() + 9 * 1024, b'a');
    conn.write_all(&request).unwrap();
    expect(&mut conn, BAD_REQUEST);
    expect_eof(&mut conn);
}

/// Writes `data` from another thread (errors ignored: the server may close
/// while we send) and returns the reading end.
fn send_in_background(conn: &TcpStream, data: Vec<u8>) -> thread::JoinHandle<()> {
    let mut writer = conn.try_clone().unwrap();
    thread::spawn(move || {
        let _ = writer.write_all(&data);
    })
}

#[test]
fn a_100_kib_header_gets_400_then_eof_while_the_client_is_still_sending() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    let mut request = b"GET / HTTP/1.1\r\nHost: test\r\nX-Huge: ".to_vec();
    request.resize(request.len() + 100 * 1024, b'a');
    let sender = send_in_background(&conn, request);
    expect(&mut conn, BAD_REQUEST);
    expect_eof(&mut conn);
    sender.join().unwrap();
}

#[test]
fn many_small_headers_over_8_kib_in_total_get_400_then_eof() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    let mut request = b"GET / HTTP/1.1\r\nHost: test\r\n".to_vec();
    for i in 0..2000 {
        request.extend_from_slice(format!("X-Header-{i}: some value\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    assert!(request.len() > 40 * 1024);
    let sender = send_in_background(&conn, request);
    expect(&mut conn, BAD_REQUEST);
    expect_eof(&mut conn);
    sender.join().unwrap();
}

#[test]
fn a_request_split_byte_by_byte_still_works() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    conn.set_nodelay(true).unwrap();
    let requests = b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhelloGET /x HTTP/1.1\r\nHost: test\r\n\r\n";
    for byte in requests {
        conn.write_all(std::slice::from_ref(byte)).unwrap();
    }
    expect(&mut conn, &[OK, NOT_FOUND].concat());
    expect_still_open(&mut conn);
}

#[test]
fn bare_newlines_and_empty_lines_before_a_request_are_accepted() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    conn.write_all(b"GET / HTTP/1.1\nHost: test\n\n\r\n\nGET /x HTTP/1.1\r\nHost: test\n\r\n")
        .unwrap();
    expect(&mut conn, &[OK, NOT_FOUND].concat());
    expect_still_open(&mut conn);
}

#[test]
fn a_body_is_skipped_and_the_next_request_is_served() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    // A body that looks like a request must not be taken for one.
    let body = "GET /x HTTP/1.1\r\nHost: test\r\n\r\n";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).unwrap();
    conn.write_all(GET).unwrap();
    expect(&mut conn, &[NOT_ALLOWED, OK].concat());

    // The largest body allowed, with Expect: 100-continue answered first.
    conn.write_all(
        b"PUT / HTTP/1.1\r\nHost: test\r\nContent-Length: 65536\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    expect(&mut conn, b"HTTP/1.1 100 Continue\r\n\r\n");
    let sender = send_in_background(&conn, vec![b'\n'; 64 * 1024]);
    expect(&mut conn, NOT_ALLOWED);
    sender.join().unwrap();
    expect_still_open(&mut conn);
}

#[test]
fn a_body_over_64_kib_gets_413_then_eof() {
    let server = Server::start("http_hello");
    // The client does not wait: the body is on its way when the server closes.
    let mut conn = connect(server.addr);
    let mut request = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 200000\r\n\r\n".to_vec();
    request.resize(request.len() + 200_000, b'x');
    let sender = send_in_background(&conn, request);
    expect(&mut conn, TOO_LARGE);
    expect_eof(&mut conn);
    sender.join().unwrap();
}

#[test]
fn transfer_encoding_gets_501_then_eof() {
    let server = Server::start("http_hello");
    expect_answer_then_close(
        server.addr,
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        NOT_IMPLEMENTED,
    );
}

#[test]
fn a_client_that_hangs_up_mid_request_is_dropped_quietly() {
    let server = Server::start("http_hello");
    let mut conn = connect(server.addr);
    conn.write_all(b"GET / HTTP/1.1\r\nHost: te").unwrap();
    conn.shutdown(Shutdown::Write).unwrap();
    expect_eof(&mut conn);
    // The server goes on serving others.
    let mut other = connect(server.addr);
    expect_still_open(&mut other);
    assert_eq!(server.stop(), Vec::<String>::new());
}
