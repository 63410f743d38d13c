//! Helpers shared by the integration tests: a reactor on its own thread,
//! recording protocols, and blocking loopback clients.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use reactor::{Protocol, Reactor, ReactorHandle, Reason, Transport};

mod wait;
mod warnings;
#[allow(unused_imports)]
pub use warnings::{capture_warnings, warnings};
// Not every test file waits on a condition.
#[allow(unused_imports)]
pub use wait::wait_until;

/// How long a test waits for any one expected event before failing.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A reactor running on a thread of its own; stopped and joined on drop.
pub struct ReactorThread {
    pub addr: SocketAddr,
    pub handle: ReactorHandle,
    thread: Option<JoinHandle<()>>,
}

impl ReactorThread {
    /// Builds the reactor on the new thread and lets `setup` register what it
    /// needs; `setup` returns the address the test should talk to.
    pub fn start(
        setup: impl FnOnce(&mut Reactor) -> io::Result<SocketAddr> + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let thread = std::thread::spawn(move || {
            let mut reactor = Reactor::new().unwrap();
            let handle = reactor.handle().unwrap();
            let addr = setup(&mut reactor).unwrap();
            tx.send((addr, handle)).unwrap();
            reactor.run().unwrap();
        });
        let (addr, handle) = rx.recv_timeout(WAIT).expect("reactor thread did not start");
        ReactorThread {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Runs `f` on the reactor thread and returns its result.
    pub fn call<R: Send + 'static>(&self, f: impl FnOnce(&mut Reactor) -> R + Send + 'static) -> R {
        let (tx, rx) = channel();
        self.handle.call_from_thread(move |r| {
            let _ = tx.send(f(r));
        });
        rx.recv_timeout(WAIT).expect("reactor did not answer")
    }

    /// Stops the reactor and waits for `run` to return.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.stop();
            thread.join().expect("reactor thread panicked");
        }
    }
}

impl Drop for ReactorThread {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop_and_join();
        } else {
            self.handle.stop();
        }
    }
}

/// A reactor thread listening on a loopback port, building each
/// connection's protocol with `factory`.
pub fn listening<P: Protocol>(factory: impl FnMut() -> P + Send + 'static) -> ReactorThread {
    ReactorThread::start(move |r| Ok(r.listen_tcp(localhost(), factory)?.local_addr()))
}

/// Echoes, but panics on `boom`; reports how it ended (`lost:REASON`)
/// unless the peer closed or the reactor stopped.
pub struct Fragile(pub Sender<String>);

impl Protocol for Fragile {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        if data == b"boom" {
            panic!("asked to explode");
        }
        transport.write(data);
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        if !matches!(reason, Reason::PeerClosed | Reason::ReactorStopped) {
            let _ = self.0.send(format!("lost:{reason}"));
        }
    }
}

/// Sends back whatever arrives.
pub struct Echo;

impl Protocol for Echo {
    fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
        transport.write(data);
    }
}

/// Reports each callback as a line on a channel: `made`, `data:<bytes>`,
/// `lost:<reason>`; optionally echoes.
pub struct Recorder {
    pub tx: Sender<String>,
    pub echo: bool,
}

impl Protocol for Recorder {
    fn connection_made(&mut self, _t: &mut dyn Transport) {
        let _ = self.tx.send("made".into());
    }
    fn data_received(&mut self, t: &mut dyn Transport, data: &[u8]) {
        let _ = self
            .tx
            .send(format!("data:{}", String::from_utf8_lossy(data)));
        if self.echo {
            t.write(data);
        }
    }
    fn connection_lost(&mut self, _t: &mut dyn Transport, reason: &Reason) {
        let _ = self.tx.send(format!("lost:{reason:?}"));
    }
}

/// A reactor thread serving `Recorder`s on a loopback port, and the
/// channel their callbacks report on.
pub fn recording_server(echo: bool) -> (ReactorThread, Receiver<String>) {
    let (tx, rx) = channel();
    let server = ReactorThread::start(move |r| {
        let factory = move || Recorder {
            tx: tx.clone(),
            echo,
        };
        Ok(r.listen_tcp(localhost(), factory)?.local_addr())
    });
    (server, rx)
}

/// Next line from `rx`, or a test failure after [`WAIT`].
pub fn next(rx: &Receiver<String>) -> String {
    rx.recv_timeout(WAIT)
        .expect("expected event did not arrive")
}

/// Asserts nothing more arrives within a short grace period.
pub fn assert_quiet(rx: &Receiver<String>) {
    if let Ok(extra) = rx.recv_timeout(Duration::from_millis(200)) {
        panic!("unexpected extra event: {extra}");
    }
}

/// A blocking loopback client with read and write timeouts.
pub fn client(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Reads exactly `n` bytes.
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Writes `msg` and reads the same number of bytes back.
pub fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    read_n(s, msg.len())
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Closes `s` with a reset instead of a FIN.
pub fn reset(s: TcpStream) {
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(s);
}

/// Serializes the tests of one test binary that each load the machine (a
/// flood, hundreds of connections) or count one server's work: hold the
/// guard for the whole test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
