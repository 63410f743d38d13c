//! UNIX sockets on the reactor: serving and connecting, the socket file
//! (its mode, a stale one replaced, a live one refused, a non-socket left
//! alone, removal on stop), abstract names, the peer's credentials, limits
//! per peer, a framing receiver; and the threaded model over UNIX sockets.

mod common;
#[path = "unix_support/mod.rs"]
mod unix_support;

use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use common::{assert_quiet, next, Recorder, WAIT};
use reactor::framing::{LineHandler, LineReceiver, Lines};
use reactor::{client_factory, Address, ListenOptions, Protocol, Reason, Transport, UnixAddress};
use unix_support::{
    abstract_name, mode_of, own_credentials, read_exactly, read_to_end, unix_client, unix_reactor,
    TempDir,
};

/// Reports what its transport says about the peer and itself, then echoes.
struct Describe(Sender<String>);

impl Protocol for Describe {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        let local = t.local_addr().map(|a| a.to_string());
        let _ = self.0.send(format!(
            "made peer={} local={} cred={:?}",
            t.peer_addr(),
            local.unwrap_or_else(|e| e.to_string()),
            t.peer_credentials()
        ));
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
    }
}

/// A reactor serving echoing [`Recorder`]s on `path` with `options`.
fn recording_unix_server(
    path: PathBuf,
    options: ListenOptions,
) -> (common::ReactorThread, std::sync::mpsc::Receiver<String>) {
    let (tx, rx) = channel();
    let server = unix_reactor(move |r| {
        let factory = move || Recorder {
            tx: tx.clone(),
            echo: true,
        };
        r.listen_unix_with(&path, factory, options).map(drop)
    });
    (server, rx)
}

// ------------------------------------------------------------- serving

#[test]
fn echo_over_a_socket_file_with_exact_bytes_and_callback_order() {
    let dir = TempDir::new("echo");
    let path = dir.join("echo.sock");
    let (server, rx) = recording_unix_server(path.clone(), ListenOptions::default());
    let mut c = unix_client(&path);
    assert_eq!(next(&rx), "made");
    let message: Vec<u8> = (b'a'..=b'z').cycle().take(100_000).collect();
    c.write_all(&message).unwrap();
    assert_eq!(read_exactly(&mut c, message.len()), message);
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), (Vec::new(), Ok(())));
    // Every byte reached data_received once, in order, between `made` and
    // one `connection_lost`.
    let mut seen = Vec::new();
    loop {
        let event = next(&rx);
        match event.strip_prefix("data:") {
            Some(data) => seen.extend_from_slice(data.as_bytes()),
            None => {
                assert_eq!(event, "lost:PeerClosed");
                break;
            }
        }
    }
    assert_eq!(seen, message);
    assert_quiet(&rx);
    server.stop();
}

#[test]
fn transports_report_unix_addresses_and_the_peers_credentials() {
    let dir = TempDir::new("addrs");
    let path = dir.join("a.sock");
    let (tx, rx) = channel();
    let server_path = path.clone();
    let server = unix_reactor(move |r| {
        let listener = r.listen_unix(&server_path, move || Describe(tx.clone()))?;
        let bound = r.listener_address(&listener).unwrap();
        assert_eq!(bound, Address::Unix(UnixAddress::Path(server_path)));
        assert_eq!(listener.local_addr().to_string(), "0.0.0.0:0");
        Ok(())
    });
    let _c = unix_client(&path);
    assert_eq!(
        next(&rx),
        format!(
            "made peer=unix:(unnamed) local=unix:{} cred={:?}",
            path.display(),
            Some(own_credentials())
        )
    );
    server.stop();
}

#[test]
fn an_abstract_name_serves_without_a_file() {
    let name = abstract_name("abstract");
    let (tx, rx) = channel();
    let server_name = name.clone();
    let server = unix_reactor(move |r| {
        let listener = r.listen_unix(&server_name, move || Describe(tx.clone()))?;
        let bound = r.listener_address(&listener).unwrap();
        assert_eq!(bound.to_string(), format!("unix:{server_name}"));
        Ok(())
    });
    // No file by that name (relative to here, or anywhere it could be).
    assert!(!PathBuf::from(&name).exists());
    let mut c = unix_client(&name);
    assert_eq!(
        next(&rx),
        format!(
            "made peer=unix:(unnamed) local=unix:{name} cred={:?}",
            Some(own_credentials())
        )
    );
    c.write_all(b"ping").unwrap();
    assert_eq!(read_exactly(&mut c, 4), b"ping");
    server.stop();
    // Gone with the listener: the name is free again.
    assert_eq!(
        unix_support::connect(&name).map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused)
    );
}

// --------------------------------------------------------- socket files

#[test]
fn the_socket_files_mode_is_the_one_asked_for() {
    let dir = TempDir::new("mode");
    for mode in [0o600, 0o660, 0o666] {
        let path = dir.join(&format!("{mode:o}.sock"));
        let options = ListenOptions {
            file_mode: Some(mode),
            ..ListenOptions::default()
        };
        let (server, rx) = recording_unix_server(path.clone(), options);
        assert_eq!(mode_of(&path), mode, "mode of {}", path.display());
        // And it serves.
        let _c = unix_client(&path);
        assert_eq!(next(&rx), "made");
        server.stop();
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.join("stale.sock");
    // A listener that "died": std leaves its file behind when dropped.
    drop(StdUnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert_eq!(
        unix_support::connect(&path).map_err(|e| e.kind()).err(),
        Some(ErrorKind::ConnectionRefused)
    );
    let (server, rx) = recording_unix_server(path.clone(), ListenOptions::default());
    let mut c = unix_client(&path);
    assert_eq!(next(&rx), "made");
    c.write_all(b"fresh").unwrap();
    assert_eq!(read_exactly(&mut c, 5), b"fresh");
    server.stop();
}

#[test]
fn a_live_socket_is_refused_and_left_serving() {
    let dir = TempDir::new("live");
    let path = dir.join("live.sock");
    let other = StdUnixListener::bind(&path).unwrap();
    let mut reactor = reactor::Reactor::new().unwrap();
    let err = reactor
        .listen_unix(&path, || common::Echo)
        .expect_err("a live socket must not be taken over");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert_eq!(
        err.to_string(),
        format!("another process is listening on {}", path.display())
    );
    // The other listener still has its file, and its clients: the probe's
    // connect is the first in its backlog, then ours.
    let _probe = other.accept().unwrap();
    let _client = unix_client(&path);
    other.accept().unwrap();
}

#[test]
fn a_file_that_is_not_a_socket_is_never_removed() {
    let dir = TempDir::new("regular");
    let path = dir.join("data.sock");
    std::fs::write(&path, b"precious").unwrap();
    let mut reactor = reactor::Reactor::new().unwrap();
    let err = reactor
        .listen_unix(&path, || common::Echo)
        .expect_err("a regular file is in the way");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    assert!(err.to_string().contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn the_socket_file_is_removed_when_the_listener_or_the_reactor_stops() {
    let dir = TempDir::new("removed");
    let by_listener = dir.join("listener.sock");
    let by_reactor = dir.join("reactor.sock");
    let (path1, path2) = (by_listener.clone(), by_reactor.clone());
    let (tx, rx) = channel();
    let server = unix_reactor(move |r| {
        let first = r.listen_unix(&path1, || common::Echo)?;
        r.listen_unix(&path2, || common::Echo)?;
        tx.send(first).unwrap();
        Ok(())
    });
    let first = rx.recv_timeout(WAIT).unwrap();
    assert!(by_listener.exists() && by_reactor.exists());
    assert!(server.call(move |r| r.stop_listening(&first)));
    assert!(!by_listener.exists());
    assert!(by_reactor.exists());
    server.stop();
    assert!(!by_reactor.exists());
}

#[test]
fn a_socket_file_someone_else_replaced_is_left_to_them() {
    let dir = TempDir::new("replaced");
    let path = dir.join("shared.sock");
    let server_path = path.clone();
    let server = unix_reactor(move |r| r.listen_unix(&server_path, || common::Echo).map(drop));
    // Another server removes ours and binds the same path.
    std::fs::remove_file(&path).unwrap();
    let theirs = StdUnixListener::bind(&path).unwrap();
    server.stop();
    assert!(path.exists(), "the other server's socket file was removed");
    let _c = unix_client(&path);
    theirs.accept().unwrap();
}

// ------------------------------------------------------------ connecting

/// Connects to `path` from a reactor and reports what the client's
/// transport says, what it reads, and how it ends or fails.
fn connect_and_describe(path: String) -> Vec<String> {
    struct Client(Sender<String>);
    impl Protocol for Client {
        fn connection_made(&mut self, t: &mut dyn Transport) {
            let _ = self.0.send(format!(
                "made peer={} cred={:?}",
                t.peer_addr(),
                t.peer_credentials()
            ));
            t.write(b"hello");
        }
        fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
            let _ = self
                .0
                .send(format!("data:{}", String::from_utf8_lossy(data)));
            t.lose_connection();
        }
        fn connection_lost(&mut self, t: &mut dyn Transport, reason: &Reason) {
            let _ = self.0.send(format!("lost:{reason:?}"));
            if let Some(r) = t.reactor() {
                r.stop();
            }
        }
    }
    let (tx, rx) = channel();
    let mut reactor = reactor::Reactor::new().unwrap();
    let failed = tx.clone();
    let factory = client_factory(
        move || Client(tx.clone()),
        move |r, reason| {
            let _ = failed.send(format!("failed:{:?}", reason.error_kind()));
            r.stop();
        },
    );
    reactor.connect_unix(&path, factory, WAIT);
    // Bounds a broken test; a working one stops long before.
    reactor.call_later(6 * WAIT, |r| r.stop());
    let started = Instant::now();
    reactor.run().unwrap();
    // A connect that failed at once is reported at the next turn, not
    // when some timer happens to wake the loop.
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
    rx.try_iter().collect()
}

#[test]
fn connect_unix_reaches_a_unix_server_and_reports_its_failures() {
    let dir = TempDir::new("connect");
    let path = dir.join("server.sock");
    let (server, rx) = recording_unix_server(path.clone(), ListenOptions::default());
    let text = path.to_str().unwrap().to_owned();
    assert_eq!(
        connect_and_describe(text.clone()),
        [
            format!("made peer=unix:{text} cred={:?}", Some(own_credentials())),
            "data:hello".to_owned(),
            "lost:LocalClosed".to_owned(),
        ]
    );
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "data:hello");
    assert_eq!(next(&rx), "lost:PeerClosed");
    server.stop();

    // Nothing at the path, then a socket nobody listens on.
    assert_eq!(
        connect_and_describe(text.clone()),
        ["failed:Some(NotFound)"]
    );
    drop(StdUnixListener::bind(&path).unwrap());
    assert_eq!(
        connect_and_describe(text),
        ["failed:Some(ConnectionRefused)"]
    );
}

#[test]
fn connect_unix_reaches_an_abstract_name() {
    let name = abstract_name("connect");
    let server_name = name.clone();
    let server = unix_reactor(move |r| r.listen_unix(&server_name, || common::Echo).map(drop));
    assert_eq!(
        connect_and_describe(name.clone()),
        [
            format!("made peer=unix:{name} cred={:?}", Some(own_credentials())),
            "data:hello".to_owned(),
            "lost:LocalClosed".to_owned(),
        ]
    );
    server.stop();
}

// ------------------------------------------------------ limits, framing

#[test]
fn a_per_peer_limit_counts_unix_clients_by_user() {
    let dir = TempDir::new("perpeer");
    let path = dir.join("limited.sock");
    let options = ListenOptions {
        max_connections_per_peer: Some(2),
        ..ListenOptions::default()
    };
    let (server, rx) = recording_unix_server(path.clone(), options);
    // Two from this user are served; a third, from the same user (another
    // socket, no name: nothing but the uid says it is the same peer), is
    // closed at once.
    let mut first = unix_client(&path);
    let mut second = unix_client(&path);
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "made");
    let mut third = unix_client(&path);
    assert_eq!(read_to_end(&mut third), (Vec::new(), Ok(())));
    assert_quiet(&rx);
    for c in [&mut first, &mut second] {
        c.write_all(b"x").unwrap();
        assert_eq!(read_exactly(c, 1), b"x");
    }
    // One leaves: one more is admitted.
    drop(first);
    let _ = next(&rx); // data:x
    let _ = next(&rx); // data:x
    assert_eq!(next(&rx), "lost:PeerClosed");
    let mut fourth = unix_client(&path);
    assert_eq!(next(&rx), "made");
    fourth.write_all(b"y").unwrap();
    assert_eq!(read_exactly(&mut fourth, 1), b"y");
    server.stop();
}

/// Answers each line upper-cased, and reports it.
struct UpperLines(Sender<String>);

impl LineHandler for UpperLines {
    fn line_received(&mut self, lines: &mut Lines<'_>, line: &[u8]) {
        let _ = self
            .0
            .send(format!("line:{}", String::from_utf8_lossy(line)));
        lines.send_line(&line.to_ascii_uppercase());
    }
    fn connection_lost(&mut self, _lines: &mut Lines<'_>, reason: &Reason, unfinished: &[u8]) {
        let _ = self.0.send(format!(
            "lost:{reason:?}:{}",
            String::from_utf8_lossy(unfinished)
        ));
    }
}

#[test]
fn a_line_receiver_splits_lines_however_the_stream_cuts_them() {
    let dir = TempDir::new("lines");
    let path = dir.join("lines.sock");
    let (tx, rx) = channel();
    let server_path = path.clone();
    let server = unix_reactor(move |r| {
        r.listen_unix(&server_path, move || {
            LineReceiver::new(UpperLines(tx.clone())).with_delimiter(b"\n")
        })
        .map(drop)
    });
    let mut c = unix_client(&path);
    for piece in [&b"hel"[..], b"lo\nwor", b"ld\n\nrest"] {
        c.write_all(piece).unwrap();
    }
    assert_eq!(read_exactly(&mut c, 13), b"HELLO\nWORLD\n\n");
    for expected in ["line:hello", "line:world", "line:"] {
        assert_eq!(next(&rx), expected);
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), (Vec::new(), Ok(())));
    assert_eq!(next(&rx), "lost:PeerClosed:rest");
    assert_quiet(&rx);
    server.stop();
}

#[test]
fn tcp_connections_have_no_peer_credentials() {
    let (tx, rx) = channel();
    let server = common::ReactorThread::start(move |r| {
        Ok(
            r.listen_tcp(common::localhost(), move || Describe(tx.clone()))?
                .local_addr(),
        )
    });
    let _c = common::client(server.addr);
    assert!(next(&rx).ends_with("cred=None"));
    server.stop();
}

// --------------------------------------------------------- threaded model

#[test]
fn the_threaded_model_serves_a_unix_socket() {
    let dir = TempDir::new("threaded");
    let path = dir.join("threads.sock");
    let (tx, rx) = channel();
    let options = reactor::threaded::ThreadedOptions {
        file_mode: Some(0o600),
        ..Default::default()
    };
    let factory = move || Recorder {
        tx: tx.clone(),
        echo: true,
    };
    let server =
        reactor::threaded::ThreadedServer::listen_unix_with(&path, factory, options).unwrap();
    assert_eq!(
        server.address(),
        &Address::Unix(UnixAddress::Path(path.clone()))
    );
    assert_eq!(mode_of(&path), 0o600);
    let mut c = unix_client(&path);
    assert_eq!(next(&rx), "made");
    c.write_all(b"threads").unwrap();
    assert_eq!(read_exactly(&mut c, 7), b"threads");
    assert_eq!(next(&rx), "data:threads");
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_end(&mut c), (Vec::new(), Ok(())));
    assert_eq!(next(&rx), "lost:PeerClosed");
    // A second server on the same live path is refused.
    let err = reactor::threaded::listen_unix(&path, || common::Echo)
        .err()
        .expect("a live socket must not be taken over");
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    // Its probe was a connection the live server served, and saw end.
    assert_eq!(next(&rx), "made");
    assert_eq!(next(&rx), "lost:PeerClosed");
    server.shutdown();
    assert!(!path.exists(), "the socket file outlived the server");
    assert_quiet(&rx);
}

#[test]
fn the_threaded_model_reports_unix_peers_and_credentials() {
    let name = abstract_name("threaded");
    let (tx, rx) = channel();
    let server = reactor::threaded::listen_unix(&name, move || Describe(tx.clone())).unwrap();
    let mut c = unix_client(&name);
    assert_eq!(
        next(&rx),
        format!(
            "made peer=unix:(unnamed) local=unix:{name} cred={:?}",
            Some(own_credentials())
        )
    );
    c.write_all(b"abc").unwrap();
    assert_eq!(read_exactly(&mut c, 3), b"abc");
    server.shutdown();
}

// ------------------------------------------------------- the memory reactor

/// A reactor in memory models TCP connections only: UNIX sockets are
/// refused there, plainly, rather than opened for real behind the test.
#[test]
fn a_reactor_in_memory_refuses_unix_sockets() {
    let dir = TempDir::new("memory");
    let path = dir.join("never.sock");
    let mut memory = reactor::testing::MemoryReactor::new().unwrap();
    let err = memory.listen_unix(&path, || common::Echo).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(!path.exists());
    let (tx, rx) = channel();
    let factory = client_factory(
        || common::Echo,
        move |_r, reason| {
            let _ = tx.send(reason.error_kind());
        },
    );
    memory.connect_unix(&path, factory, WAIT);
    memory.advance(Duration::ZERO);
    assert_eq!(rx.try_recv(), Ok(Some(ErrorKind::Unsupported)));
}
