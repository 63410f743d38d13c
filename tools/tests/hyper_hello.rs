//! The `hyper_hello` example, bench/http.sh's baseline, answers what the
//! reactor's `http_hello` answers, byte for byte (the answers are in
//! tests/common/http_answers.rs, shared with tests/http_hello.rs).
//!
//! `cargo test` builds the examples first; with a target filter
//! (`cargo test --test hyper_hello`) build them with
//! `cargo build --workspace --examples`.

use std::io::Write;

#[path = "../../tests/common/http_answers.rs"]
mod answers;
#[path = "../../tests/common/programs.rs"]
mod programs;

use answers::*;
use programs::*;

#[test]
fn hyper_hello_answers_get_with_the_same_bytes() {
    let server = Server::start("hyper_hello");
    let mut conn = connect(server.addr);
    conn.write_all(
        &[
            GET,
            b"GET /x HTTP/1.1\r\nHost: test\r\n\r\n",
            b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n",
        ]
        .concat(),
    )
    .unwrap();
    expect(&mut conn, &[OK, NOT_FOUND, OK_HEAD].concat());
    conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    expect(&mut conn, OK_CLOSE);
    expect_eof(&mut conn);
    assert_eq!(server.stop(), Vec::<String>::new());
}
