//! Flow control through the TLS layer: a peer that never reads cannot grow
//! the server, pause and resume reach the protocol inside, and nothing is
//! lost (issue 12's 256 MiB test, over TLS).

mod common;
#[path = "common/tls.rs"]
mod tls_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::time::Duration;

use reactor::{Protocol, Reactor, Transport, DEFAULT_HIGH_WATERMARK};

use common::{localhost, next, pattern, ReactorThread};
use tls_common::Certs;

/// Echoes, recording the most it ever had buffered and saying when it is
/// paused.
struct MeasuredEcho {
    largest: Arc<AtomicUsize>,
    tx: Sender<String>,
}

impl Protocol for MeasuredEcho {
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        t.write(data);
        self.largest.fetch_max(t.buffered(), Ordering::Relaxed);
    }
    fn pause_producing(&mut self, t: &mut dyn Transport) {
        let _ = self.tx.send("server paused".into());
        t.pause_reading();
    }
    fn resume_producing(&mut self, _t: &mut dyn Transport) {
        let _ = self.tx.send("server resumed".into());
    }
}

/// Writes `data` as fast as its own buffer allows, reading nothing until
/// the test resumes its reading; then checks every echoed byte.
struct Flooder {
    data: Arc<Vec<u8>>,
    sent: usize,
    echoed: usize,
    tx: Sender<String>,
}

impl Flooder {
    fn produce(&mut self, t: &mut dyn Transport) {
        while !t.is_write_buffer_full() && self.sent < self.data.len() {
            let end = (self.sent + 65536).min(self.data.len());
            t.write(&self.data[self.sent..end]);
            self.sent = end;
        }
    }
}

impl Protocol for Flooder {
    fn connection_made(&mut self, t: &mut dyn Transport) {
        t.pause_reading();
        self.produce(t);
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let expected = &self.data[self.echoed..self.echoed + data.len()];
        if data != expected {
            let _ = self.tx.send(format!("corrupt at {}", self.echoed));
            t.abort_connection();
            return;
        }
        self.echoed += data.len();
        if self.echoed == self.data.len() {
            let _ = self.tx.send(format!("echoed {}", self.echoed));
            t.lose_connection();
        }
    }
    fn pause_producing(&mut self, _t: &mut dyn Transport) {
        // Writes stop while the buffer is full; reading stays as the test set it.
    }
    fn resume_producing(&mut self, t: &mut dyn Transport) {
        self.produce(t);
    }
}

#[test]
fn an_echo_over_tls_to_a_peer_that_does_not_read_stays_bounded_and_loses_nothing() {
    let _serial = common::serial();
    let certs = Certs::new("flow");
    let largest = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = channel();
    let config = certs.server_config();
    let server = {
        let (largest, tx) = (largest.clone(), tx.clone());
        ReactorThread::start(move |r| {
            let factory = move || MeasuredEcho {
                largest: largest.clone(),
                tx: tx.clone(),
            };
            Ok(r.listen_tls(localhost(), config, factory)?.local_addr())
        })
    };
    const TOTAL: usize = 256 << 20;
    let data = Arc::new(pattern(TOTAL, 7));
    let client = ReactorThread::start(|_| Ok(localhost()));
    let (addr, client_config) = (server.addr, certs.client_config());
    let id = client.call(move |r: &mut Reactor| {
        let mut flooder = Some(Flooder {
            data,
            sent: 0,
            echoed: 0,
            tx,
        });
        r.connect_tls(
            addr,
            "localhost",
            client_config,
            move || flooder.take().unwrap(),
            Duration::from_secs(10),
        )
    });
    // The client reads nothing: the server's buffer fills and it pauses.
    assert_eq!(next(&rx), "server paused");
    client.call(move |r| r.resume_reading(id));
    let mut events = Vec::new();
    loop {
        let event = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the echo stalled");
        let done = event.starts_with("echoed") || event.starts_with("corrupt");
        events.push(event);
        if done {
            break;
        }
    }
    assert_eq!(events.last().unwrap(), &format!("echoed {TOTAL}"));
    assert!(events.contains(&"server resumed".to_string()), "{events:?}");
    let largest = largest.load(Ordering::Relaxed);
    // The high watermark, plus what one 64 KiB read decrypts to, written
    // back in the same callback.
    assert!(
        largest < DEFAULT_HIGH_WATERMARK + 64 * 1024 + 16 * 1024,
        "the server buffered {largest} bytes"
    );
    eprintln!("largest buffered: {largest}");
}
