//! Graceful stop: what was written before `stop()` reaches the peer, then a
//! clean close; a peer that does not read is given up after the grace.

mod common;

use std::io::Read;
use std::sync::mpsc::{channel, Sender};
use std::time::{Duration, Instant};

use common::{client, localhost, next, pattern, read_n, ReactorThread, WAIT};
use reactor::{Protocol, Reason, Transport};

const TOTAL: usize = 64 << 20;

/// Writes 64 MiB at once on connecting; reports how it ended.
struct BigWriter(Sender<String>);

impl Protocol for BigWriter {
    fn connection_made(&mut self, transport: &mut dyn Transport) {
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
    let server = ReactorThread::start(move |r| {
        let factory = move || BigWriter(tx.clone());
        Ok(r.listen_tcp(localhost(), factory)?.local_addr())
    });
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
fn a_peer_that_never_reads_is_given_up_after_the_grace_period() {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        r.set_shutdown_grace(Duration::from_millis(300));
        let factory = move || BigWriter(tx.clone());
        Ok(r.listen_tcp(localhost(), factory)?.local_addr())
    });
    let _s = client(server.addr);
    assert_eq!(next(&rx), "written");
    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    assert_eq!(next(&rx), "lost:ReactorStopped");
    assert!(
        took >= Duration::from_millis(250) && took < WAIT,
        "stopped after {took:?}"
    );
}
