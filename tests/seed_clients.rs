//! The seeds' own client programs, changed only in host and port (see the
//! comment at the top of each file in `tests/seeds/`), run with python3
//! against the examples that port their servers: each gets exactly what
//! its seed promises. Skipped, with a printed reason, where python3 is
//! missing.
//!
//! `cargo test` builds the examples first; with a target filter
//! (`cargo test --test seed_clients`) it does not, so build them first
//! with `cargo build --examples`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "common/programs.rs"]
mod programs;

use programs::*;

/// Whether python3 runs here; says why a test is skipped when it does not.
fn have_python3(test: &str) -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !ok {
        println!("skipped {test}: python3 is missing");
    }
    ok
}

/// A directory of its own for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("seed_clients-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Copies `tests/seeds/FILE` into `dir` with its one port `from` (written
/// as `port_text`, the seed's spelling with the port in it) replaced by
/// `port`, and runs it there with python3, `input` on its stdin.
fn run_seed(dir: &Path, file: &str, port_text: &str, from: u16, port: u16, input: &str) -> Output {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/seeds")
        .join(file);
    let text = fs::read_to_string(&source).unwrap();
    assert_eq!(
        text.matches(port_text).count(),
        1,
        "{file} should hold {port_text:?} exactly once"
    );
    assert!(port_text.contains(&from.to_string()));
    let changed = text.replace(
        port_text,
        &port_text.replace(&from.to_string(), &port.to_string()),
    );
    let script = dir.join(file);
    fs::write(&script, changed).unwrap();
    run_to_end(
        Command::new("python3")
            .arg(&script)
            .current_dir(dir)
            .env("PYTHONIOENCODING", "utf-8"),
        input.as_bytes(),
    )
}

/// `text` with every `[YYYY-MM-DD HH:MM:SS]` stamp replaced by `[T]`.
fn unstamp(text: &str) -> String {
    const SHAPE: &[u8] = b"[dddd-dd-dd dd:dd:dd]";
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let stamp = bytes.get(at..at + SHAPE.len()).is_some_and(|c| {
            c.iter().zip(SHAPE).all(|(&b, &want)| match want {
                b'd' => b.is_ascii_digit(),
                _ => b == want,
            })
        });
        if stamp {
            out.extend_from_slice(b"[T]");
            at += SHAPE.len();
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The run ended as the seed's endless `input()` loops end at the end of
/// their input: with EOFError.
fn assert_ended_by_eof(out: &Output) {
    assert_eq!(out.status.code(), Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stderr
            .trim_end()
            .ends_with("EOFError: EOF when reading a line"),
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn seed000_tcp_client_gets_the_ack_for_each_message() {
    if !have_python3("seed000_tcp_client") {
        return;
    }
    let server = Server::start("ack_server");
    let dir = Scratch::new("seed000_tcp");
    let port = server.addr.port();
    let out = run_seed(
        &dir.0,
        "seed000_tcp_client.py",
        "8888)",
        8888,
        port,
        "hello\n你好\n\n",
    );
    out.assert_success();
    assert_eq!(
        out.stdout,
        ">>From server: Receve your message!!\n>>From server: Receve your message!!\n>>"
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed000_udp_client_gets_the_thanks_for_each_datagram() {
    if !have_python3("seed000_udp_client") {
        return;
    }
    let server = Server::start("udp_ack_server");
    let dir = Scratch::new("seed000_udp");
    let port = server.addr.port();
    let out = run_seed(
        &dir.0,
        "seed000_udp_client.py",
        "POST = 8888",
        8888,
        port,
        "hello\n你好\n\n",
    );
    out.assert_success();
    assert_eq!(
        out.stdout,
        "Msg>>Receive from server: Thank for you msg\nMsg>>Receive from server: Thank for you msg\nMsg>>"
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed001_client_gets_its_message_back_upper_cased() {
    if !have_python3("seed001_client") {
        return;
    }
    let server = Server::start("upper_server");
    let dir = Scratch::new("seed001_client");
    let out = run_seed(
        &dir.0,
        "seed001_client.py",
        "6999)",
        6999,
        server.addr.port(),
        "",
    );
    out.assert_success();
    // Python's bytes.upper() leaves the Chinese as it is, and so does the port.
    assert_eq!(out.stdout, "recv: 欢迎新同学!\n");
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed001_client1_gets_each_input_upper_cased_until_y() {
    if !have_python3("seed001_client1") {
        return;
    }
    let server = Server::start("upper_server");
    let dir = Scratch::new("seed001_client1");
    let port = server.addr.port();
    let out = run_seed(
        &dir.0,
        "seed001_client1.py",
        "9999)",
        9999,
        port,
        "hello\nabc Def\ny\n",
    );
    out.assert_success();
    assert_eq!(
        out.stdout,
        "是否退出(y/n)HELLO\n是否退出(y/n)ABC DEF\n是否退出(y/n)"
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed003_client_gets_each_input_upper_cased() {
    if !have_python3("seed003_client") {
        return;
    }
    let server = Server::start("upper_server");
    let dir = Scratch::new("seed003_client");
    let port = server.addr.port();
    let out = run_seed(
        &dir.0,
        "seed003_client.py",
        "8080)",
        8080,
        port,
        "hello\nxyz 1\n",
    );
    assert_ended_by_eof(&out);
    assert_eq!(
        out.stdout,
        "请输入你要发送的数据:b'HELLO'\n请输入你要发送的数据:b'XYZ 1'\n请输入你要发送的数据:"
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed004_tcp_client_gets_each_input_stamped_by_both_timestamp_servers() {
    if !have_python3("seed004_tcp_client") {
        return;
    }
    for example in ["timestamp_server", "line_timestamp_server"] {
        let server = Server::start(example);
        let dir = Scratch::new(&format!("seed004_tcp-{example}"));
        let port = server.addr.port();
        let text = "PORT = 21567";
        let out = run_seed(
            &dir.0,
            "seed004_tcp_client.py",
            text,
            21567,
            port,
            "hi\nthere you\n\n",
        );
        out.assert_success();
        assert_eq!(
            unstamp(&out.stdout),
            "> [T] hi\n> [T] there you\n> ",
            "from {example}: {:?}",
            out.stdout
        );
        assert_eq!(server.stop(), Vec::<String>::new());
    }
}

#[test]
fn seed004_socketserver_client_gets_its_line_stamped() {
    if !have_python3("seed004_socketserver_client") {
        return;
    }
    let server = Server::start("line_timestamp_server");
    let dir = Scratch::new("seed004_socketserver");
    let port = server.addr.port();
    let text = "PORT = 21567";
    let out = run_seed(
        &dir.0,
        "seed004_socketserver_client.py",
        text,
        21567,
        port,
        "hi\nho\n\n",
    );
    out.assert_success();
    assert_eq!(
        unstamp(&out.stdout),
        "> [T] hi\n> [T] ho\n> ",
        "{:?}",
        out.stdout
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed004_udp_client_gets_each_datagram_stamped() {
    if !have_python3("seed004_udp_client") {
        return;
    }
    let server = Server::start("timestamp_udp_server");
    let dir = Scratch::new("seed004_udp");
    let port = server.addr.port();
    let text = "PORT = 21567";
    let out = run_seed(
        &dir.0,
        "seed004_udp_client.py",
        text,
        21567,
        port,
        "hi\nthere\n\n",
    );
    out.assert_success();
    assert_eq!(
        unstamp(&out.stdout),
        "> [T] hi\n> [T] there\n> ",
        "{:?}",
        out.stdout
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

/// The menu seed 003's file client prints before each choice.
const MENU: &str = "\n        1. 注册\n        2. 登录\n        3. 下载\n        4. 上传\n        q. 退出\n        \n请选择需要的功能:";

/// What seed 003's file client uploads: `json模块.py` in its directory.
const UPLOADED: &[u8] = b"import json\nprint(json.dumps({'seed': 3}))\n";

#[test]
fn seed003_file_client_uploads_to_file_server_in_the_seed_format() {
    if !have_python3("seed003_file_upload") {
        return;
    }
    let dir = Scratch::new("seed003_upload");
    let store = dir.0.join("store");
    let client = dir.0.join("client");
    fs::create_dir_all(&client).unwrap();
    fs::write(client.join("json模块.py"), UPLOADED).unwrap();
    let store_arg = store.to_str().unwrap();
    let server = Server::start_with("file_server", &["--format", "seed003", "--dir", store_arg]);
    let port = server.addr.port();
    let text = "8080))";
    // Menu choice 4 (upload), then two key presses: two uploads.
    let out = run_seed(
        &client,
        "seed003_file_client.py",
        text,
        8080,
        port,
        "4\n\n\n",
    );
    assert_ended_by_eof(&out);
    let prompt = "输入任意键上传:";
    assert_eq!(
        out.stdout,
        format!("{MENU}{prompt}ok\n{prompt}ok\n{prompt}")
    );
    // The seed's client names the upload xxx.py.
    assert_eq!(fs::read(store.join("xxx.py")).unwrap(), UPLOADED);
    assert_eq!(
        fs::read_dir(&store).unwrap().count(),
        1,
        "only xxx.py is stored"
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed003_file_client_downloads_the_served_file_on_connect() {
    if !have_python3("seed003_file_download") {
        return;
    }
    let dir = Scratch::new("seed003_download");
    let store = dir.0.join("store");
    let client = dir.0.join("client");
    fs::create_dir_all(&store).unwrap();
    fs::create_dir_all(&client).unwrap();
    // Over 1024 bytes, so the client's chunked receiving loop is exercised.
    let served: Vec<u8> = (0..5000u32).map(|i| b'a' + (i % 26) as u8).collect();
    fs::write(store.join("notes.txt"), &served).unwrap();
    let store_arg = store.to_str().unwrap();
    let args = [
        "--format",
        "seed003",
        "--dir",
        store_arg,
        "--serve-file",
        "notes.txt",
    ];
    let server = Server::start_with("file_server", &args);
    let port = server.addr.port();
    // Menu choice 3 (download), then two key presses: two copies.
    let out = run_seed(
        &client,
        "seed003_file_client.py",
        "8080))",
        8080,
        port,
        "3\n\n\n",
    );
    assert_ended_by_eof(&out);
    // The client prints each 1024-byte chunk it receives, then 接收完成.
    assert_eq!(
        out.stdout.matches("接收完成\n").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(out.stdout.starts_with(MENU), "{}", out.stdout);
    // The client saves the file under the name the header gives.
    assert_eq!(fs::read(client.join("notes.txt")).unwrap(), served);
    assert_eq!(server.stop(), Vec::<String>::new());
}

#[test]
fn seed003_file_client_against_the_default_format_is_told_the_byte_order() {
    if !have_python3("seed003_file_default_format") {
        return;
    }
    let dir = Scratch::new("seed003_default");
    let store = dir.0.join("store");
    let client = dir.0.join("client");
    fs::create_dir_all(&client).unwrap();
    fs::write(client.join("json模块.py"), UPLOADED).unwrap();
    let server = Server::start_with("file_server", &["--dir", store.to_str().unwrap()]);
    let port = server.addr.port();
    let out = run_seed(
        &client,
        "seed003_file_client.py",
        "8080))",
        8080,
        port,
        "4\n\n",
    );
    // The client prints the refusal it gets (behind its 4-byte length).
    assert!(
        out.stdout.contains(
            "the client sent it in the other byte order, as seed 003's struct.pack('i') does"
        ) && out.stdout.contains("--format seed003"),
        "{}",
        out.stdout
    );
    assert_eq!(
        fs::read_dir(&store).unwrap().count(),
        0,
        "nothing is stored"
    );
    assert_eq!(server.stop(), Vec::<String>::new());
}
