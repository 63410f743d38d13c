//! Graceful stop: what was written before `stop()` reaches the peer, then a
//! clean close; a peer that does not read is given up after the grace.

mod common;
#[path = "common/programs.rs"]
mod programs;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::process::Command;
use std::sync::mpsc::{channel, Sender};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    client, listening, localhost, next, pattern, read_n, wait_until, ReactorThread, WAIT,
};
use reactor::{Protocol, Reason, Transport};

const TOTAL: usize = 64 << 20;

/// Writes 64 MiB at once on connecting (over the default cap on buffered
/// output, so it raises its own); reports how it ended.
struct BigWriter(Sender<String>);

impl Protocol for BigWriter {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.set_write_buffer_limit(TOTAL);
        transport.write(&pattern(TOTAL, 3));
        let _ = self.0.send("written".into());
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn stop_during_a_64_mib_transfer_delivers_every_written_byte_then_a_clean_close() {
    let (tx, rx) = channel();
    let server = listening(move || BigWriter(tx.clone()));
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "written");
    let mut got = read_n(&mut s, 1 << 20);
    // Most of it is still in the server's buffer when the stop comes.
    server.handle.stop();
    s.read_to_end(&mut got).expect("a clean close, not a reset");
    assert_eq!(got.len(), TOTAL);
    assert!(got == pattern(TOTAL, 3), "the bytes differ");
    assert_eq!(next(&rx), "lost:ReactorStopped");
    // The server lingers for our FIN (so its close cannot reset us).
    drop(s);
    server.stop();
}

#[test]
fn a_peer_that_never_reads_is_reset_after_the_grace_period_so_the_truncation_shows() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        r.set_shutdown_grace(Duration::from_millis(300));
        let factory = move || BigWriter(tx.clone());
        Ok(r.listen_tcp(localhost(), factory)?.local_addr())
    });
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "written");
    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    let lost = next(&rx);
    assert!(
        lost.starts_with("lost:Discarded { unsent: ")
            && lost.ends_with(", unread: 0, cause: ReactorStopped }"),
        "{lost}"
    );
    assert!(
        took >= Duration::from_millis(250) && took < WAIT,
        "stopped after {took:?}"
    );
    // What the kernel holds may still arrive, but never a clean end of
    // stream: the peer can tell its 64 MiB reply was cut short.
    let mut got = Vec::new();
    let end = s.read_to_end(&mut got);
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionReset),
        "after {} of {TOTAL} bytes",
        got.len()
    );
    assert!(got.len() < TOTAL);
}

#[test]
fn sigterm_to_a_graceful_echo_server_mid_transfer_echoes_every_byte_then_closes() {
    let server = programs::Server::start_with("echo_server", &["--graceful"]);
    let s = client(server.addr);
    // Send without reading until every buffer on the way is full: the
    // server's echo pauses reading at its high watermark.
    let mut writer = s.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let data = pattern(64 << 20, 5);
    let sent = thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut at = 0;
                while at < data.len() {
                    match writer.write(&data[at..(at + 65536).min(data.len())]) {
                        Ok(n) => at += n,
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                        {
                            break
                        }
                        Err(e) => panic!("write failed: {e}"),
                    }
                }
                at
            })
            .join()
            .unwrap()
    });
    assert!(sent < data.len(), "nothing pushed back");
    // Nothing more from us: the server, stopping, goes on echoing until it
    // reads our FIN behind the rest.
    s.shutdown(Shutdown::Write).unwrap();
    let pid = server.process.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let mut echoed = Vec::new();
    let mut reader = s;
    reader
        .read_to_end(&mut echoed)
        .expect("a clean close after the echo, not a reset");
    assert_eq!(echoed.len(), sent, "every byte sent comes back");
    assert!(
        echoed == data[..sent],
        "the echo differs from what was sent"
    );
    let (status, rest) = server.wait_for_exit();
    assert!(status.success(), "{status}");
    assert!(rest.is_empty(), "more on stdout: {rest:?}");
}

#[test]
fn a_second_sigterm_exits_at_once_even_while_the_first_is_still_flushing() {
    let server = programs::Server::start_with("echo_server", &["--graceful", "--grace", "60"]);
    let s = client(server.addr);
    // A peer that sends but never reads: the stop cannot finish flushing.
    let mut writer = s.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let chunk = pattern(65536, 9);
    while writer.write(&chunk).is_ok() {}
    let pid = server.process.0.id().to_string();
    let term = || {
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
    };
    term();
    // The first signal has been handled once the listener is gone.
    wait_until("the first SIGTERM has closed the listener", || {
        std::net::TcpStream::connect(server.addr).is_err()
    });
    term();
    let started = Instant::now();
    let (status, rest) = server.wait_for_exit();
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(started.elapsed() < WAIT);
    assert!(rest.is_empty(), "more on stdout: {rest:?}");
    drop(s);
}

/// Stops reading, then writes 1 MiB, which the kernel takes at once;
/// reports how it ended.
struct WritesWithoutReading(Sender<String>);

impl Protocol for WritesWithoutReading {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
        transport.pause_reading();
        transport.write(&pattern(1 << 20, 4));
        let _ = self.0.send("written".to_string());
    }
    fn data_received(&mut self, _t: &mut dyn Transport, _data: &[u8]) {}
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.0.send(format!("lost:{reason:?}"));
    }
}

#[test]
fn stop_with_unread_input_resets_the_connection_so_the_loss_shows() {
    let (tx, rx) = channel();
    let server = listening(move || WritesWithoutReading(tx.clone()));
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "written");
    // Input the server will never read, in its socket when it stops: the
    // kernel acknowledged it to us, so it must not vanish behind a clean end.
    // (On loopback a finished send is already in the receiver's queue.)
    s.write_all(&[b'q'; 1000]).unwrap();
    server.handle.stop();
    assert_eq!(
        next(&rx),
        "lost:Discarded { unsent: 0, unread: 1000, cause: ReactorStopped }"
    );
    let mut got = Vec::new();
    let end = s.read_to_end(&mut got);
    assert_eq!(end.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    drop(s);
    server.stop();
}

#[test]
fn stop_with_nothing_unread_closes_cleanly_after_the_last_byte() {
    let (tx, rx) = channel();
    let server = listening(move || WritesWithoutReading(tx.clone()));
    let mut s = client(server.addr);
    assert_eq!(next(&rx), "written");
    let mut got = read_n(&mut s, 1 << 20);
    server.handle.stop();
    assert_eq!(next(&rx), "lost:ReactorStopped");
    s.read_to_end(&mut got).expect("a clean close");
    assert!(got == pattern(1 << 20, 4));
    drop(s);
    server.stop();
}
