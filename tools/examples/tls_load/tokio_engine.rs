//! The tokio engine: tokio's current-thread runtime with tokio-rustls
//! clients, one task per connection on a `LocalSet` (so the counters are
//! plain `Rc<RefCell<..>>`). It drives the handshakes and idle modes, where
//! the cost is the handshake's cryptography rather than the engine's, and
//! the ping-pong when io_uring is not asked for.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::{spawn_local, LocalSet};
use tokio::time::{sleep, sleep_until, timeout, timeout_at};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::HandshakeKind;
use tokio_rustls::TlsConnector;

use crate::common::load::{until_unix_time, Histogram};
use crate::{first_message, stamp, Failures, Report, Settings};

type Tls = TlsStream<TcpStream>;

/// How to open one connection: what every task shares.
struct Dial {
    addr: std::net::SocketAddr,
    connector: TlsConnector,
    name: ServerName<'static>,
    timeout: Duration,
    /// `--message-after-handshake` (see `exchange`).
    message_after_handshake: bool,
}

impl Dial {
    fn new(s: &Settings) -> Rc<Dial> {
        Rc::new(Dial {
            addr: s.addr,
            connector: TlsConnector::from(Arc::clone(&s.config)),
            name: s.server_name.clone(),
            timeout: s.connect_timeout,
            message_after_handshake: s.message_after_handshake,
        })
    }

    /// Connects and completes the handshake, within the connect timeout.
    /// As much of `early` as rustls will buffer goes out with the client's
    /// Finished, in the same write; returns how much that was.
    async fn connect(&self, early: &[u8]) -> Result<(Tls, usize), String> {
        let buffered = Cell::new(0);
        let attempt = async {
            let tcp = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            tcp.set_nodelay(true)
                .map_err(|e| format!("TCP_NODELAY: {e}"))?;
            self.connector
                .connect_with(self.name.clone(), tcp, |conn| {
                    if !early.is_empty() {
                        buffered.set(conn.writer().write(early).unwrap_or(0));
                    }
                })
                .await
                .map_err(|e| format!("handshake: {e}"))
        };
        let tls = timeout(self.timeout, attempt)
            .await
            .map_err(|_| format!("no handshake within {:?}", self.timeout))??;
        Ok((tls, buffered.get()))
    }
}

/// Runs `f` on a fresh current-thread runtime, inside a `LocalSet`.
fn block_on<F: Future>(f: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    Ok(LocalSet::new().block_on(&runtime, f))
}

/// Opens `count` connections, at most `max_pending` at once. Returns them by
/// index (`None` where the attempt failed) and the failures.
async fn connect_all(
    dial: &Rc<Dial>,
    count: u32,
    max_pending: u32,
) -> (Vec<Option<Tls>>, Failures) {
    let next = Rc::new(Cell::new(0u32));
    let slots: Rc<RefCell<Vec<Option<Tls>>>> =
        Rc::new(RefCell::new((0..count).map(|_| None).collect()));
    let failures = Rc::new(RefCell::new(Failures::default()));
    let workers: Vec<_> = (0..max_pending.min(count))
        .map(|_| {
            let (dial, next, slots, failures) = (
                Rc::clone(dial),
                Rc::clone(&next),
                Rc::clone(&slots),
                Rc::clone(&failures),
            );
            spawn_local(async move {
                loop {
                    let i = next.get();
                    if i >= count {
                        return;
                    }
                    next.set(i + 1);
                    match dial.connect(&[]).await {
                        Ok((tls, _)) => slots.borrow_mut()[i as usize] = Some(tls),
                        Err(e) => failures.borrow_mut().add(e),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let slots = std::mem::take(&mut *slots.borrow_mut());
    let failures = std::mem::take(&mut *failures.borrow_mut());
    (slots, failures)
}

/// Sleeps until `--start-at`, if given; warns if it has passed.
async fn wait_for_start(start_at: Option<f64>) {
    if let Some(at) = start_at {
        match until_unix_time(at) {
            Ok(wait) => sleep(wait).await,
            Err(late) => eprintln!(
                "tls_load: connecting ended {:.0} ms after --start-at; the run starts late",
                late.as_secs_f64() * 1e3
            ),
        }
    }
}

/// The counters every task of a run adds to.
struct Tally {
    msgs: u64,
    hist: Histogram,
    failures: Failures,
    full_handshakes: u64,
}

type SharedTally = Rc<RefCell<Tally>>;

fn tally() -> SharedTally {
    Rc::new(RefCell::new(Tally {
        msgs: 0,
        hist: Histogram::new(),
        failures: Failures::default(),
        full_handshakes: 0,
    }))
}

/// Turns the finished tally into the report.
fn report(tally: SharedTally, elapsed: f64, handshakes: bool) -> Report {
    let t = std::mem::replace(
        &mut *tally.borrow_mut(),
        Tally {
            msgs: 0,
            hist: Histogram::new(),
            failures: Failures::default(),
            full_handshakes: 0,
        },
    );
    t.failures.report(if handshakes {
        "exchanges"
    } else {
        "messages or connections"
    });
    Report {
        msgs: t.msgs,
        elapsed,
        hist: t.hist,
        errors: t.failures.count,
        full_handshakes: handshakes.then_some(t.full_handshakes),
    }
}

/// Ping-pong on `--conns` long-lived connections.
pub fn ping_pong(s: &Settings) -> Result<Report, String> {
    block_on(async {
        let dial = Dial::new(s);
        let (conns, failures) = connect_all(&dial, s.conns, s.max_pending).await;
        failures.report("connections");
        if conns.iter().all(Option::is_none) {
            return Err(format!(
                "could not connect to {}: {}",
                s.addr,
                failures.first.as_deref().unwrap_or("no connection made")
            ));
        }
        wait_for_start(s.start_at).await;
        let tally = tally();
        tally.borrow_mut().failures = failures;
        let started = Instant::now();
        let end = started + Duration::from_secs_f64(s.secs);
        let tasks: Vec<_> = conns
            .into_iter()
            .enumerate()
            .filter_map(|(idx, tls)| tls.map(|tls| (idx, tls)))
            .map(|(idx, tls)| spawn_local(pinger(idx, tls, s.size, end, Rc::clone(&tally))))
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        let elapsed = (Instant::now().min(end) - started).as_secs_f64();
        Ok(report(tally, elapsed, false))
    })?
}

/// One connection's ping-pong until `end`; a message still in flight then
/// is not counted.
async fn pinger(idx: usize, mut tls: Tls, size: usize, end: Instant, tally: SharedTally) {
    let mut msg = first_message(size, idx);
    // One byte longer than a message, so that a server sending more than it
    // was sent is caught (when the surplus comes with the echo, as it does
    // from a server that writes it together; later, it spoils the next echo).
    let mut echo = vec![0u8; size + 1];
    let mut seq = 0u64;
    let end_at = tokio::time::Instant::from_std(end);
    loop {
        let sent_at = Instant::now();
        if sent_at >= end {
            return;
        }
        let round = async {
            tls.write_all(&msg).await?;
            tls.flush().await?;
            let mut got = 0;
            while got < size {
                match tls.read(&mut echo[got..]).await? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
            }
            Ok::<usize, io::Error>(got)
        };
        let why = match timeout_at(end_at, round).await {
            Err(_) => return,
            Ok(Err(e)) => format!("connection {idx} lost: {e}"),
            Ok(Ok(got)) if got > size => {
                format!("connection {idx}: the server sent more than it was sent")
            }
            Ok(Ok(_)) => String::new(),
        };
        if !why.is_empty() {
            tally.borrow_mut().failures.add(why);
            return;
        }
        let mut t = tally.borrow_mut();
        t.hist.record(sent_at.elapsed());
        t.msgs += 1;
        if echo[..size] != msg[..] {
            t.failures.add(format!(
                "connection {idx}: the echo of message {seq} differs"
            ));
        }
        seq += 1;
        stamp(&mut msg, idx, seq);
    }
}

/// `--conns` clients each making exchanges on new connections until `--secs`
/// is up.
pub fn handshakes(s: &Settings) -> Result<Report, String> {
    block_on(async {
        let dial = Dial::new(s);
        wait_for_start(s.start_at).await;
        let tally = tally();
        let started = Instant::now();
        let end = started + Duration::from_secs_f64(s.secs);
        let tasks: Vec<_> = (0..s.conns as usize)
            .map(|idx| {
                spawn_local(handshaker(
                    idx,
                    Rc::clone(&dial),
                    s.size,
                    end,
                    Rc::clone(&tally),
                ))
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        let elapsed = (Instant::now().min(end) - started).as_secs_f64();
        if tally.borrow().msgs == 0 && tally.borrow().failures.count > 0 {
            let t = tally.borrow();
            return Err(format!(
                "no exchange with {} succeeded: {}",
                s.addr,
                t.failures.first.as_deref().unwrap_or("?")
            ));
        }
        Ok(report(tally, elapsed, true))
    })?
}

/// One client's exchanges until `end`. A failed exchange ends this client
/// (it is counted, not retried), so a server that refuses everything ends
/// the run instead of spinning it.
async fn handshaker(idx: usize, dial: Rc<Dial>, size: usize, end: Instant, tally: SharedTally) {
    let mut msg = first_message(size, idx);
    let mut echo = vec![0u8; size];
    let mut seq = 0u64;
    let end_at = tokio::time::Instant::from_std(end);
    loop {
        let began = Instant::now();
        if began >= end {
            return;
        }
        let kind = match timeout_at(end_at, exchange(&dial, &msg, &mut echo)).await {
            Err(_) => return,
            Ok(Err(e)) => {
                tally
                    .borrow_mut()
                    .failures
                    .add(format!("client {idx}, exchange {seq}: {e}"));
                return;
            }
            Ok(Ok(kind)) => kind,
        };
        let mut t = tally.borrow_mut();
        t.hist.record(began.elapsed());
        t.msgs += 1;
        if kind == Some(HandshakeKind::Full) {
            t.full_handshakes += 1;
        } else {
            t.failures.add(format!(
                "client {idx}, exchange {seq}: handshake {kind:?}, not full"
            ));
        }
        seq += 1;
        stamp(&mut msg, idx, seq);
    }
}

/// One exchange on a new connection: handshake, `msg` and its echo,
/// close_notify, and the server's close. Returns the kind of handshake.
///
/// The message goes with the client's Finished, in one write, as clients
/// that care about latency send their first request; unless
/// `--message-after-handshake`, when it is written once `connect` returns,
/// in a write of its own. Then a server may read the Finished and the
/// message separately and answer them separately too: its session tickets,
/// then the echo. Without TCP_NODELAY on the server's socket, Nagle's
/// algorithm holds that echo until the client acknowledges the tickets, and
/// the client, with nothing to send, delays its acknowledgement (40 ms on
/// Linux): the run then measures that timer more than the server.
async fn exchange(
    dial: &Dial,
    msg: &[u8],
    echo: &mut [u8],
) -> Result<Option<HandshakeKind>, String> {
    let early = if dial.message_after_handshake {
        &[]
    } else {
        msg
    };
    let (mut tls, buffered) = dial.connect(early).await?;
    let kind = tls.get_ref().1.handshake_kind();
    tls.write_all(&msg[buffered..])
        .await
        .map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("write: {e}"))?;
    tls.read_exact(echo)
        .await
        .map_err(|e| format!("read the echo: {e}"))?;
    if echo != msg {
        return Err("the echo differs".into());
    }
    // close_notify and our FIN, then the server's close. A server that
    // closes without its own close_notify is accepted: the echo is whole.
    tls.shutdown().await.map_err(|e| format!("close: {e}"))?;
    let mut rest = [0u8; 64];
    match tls.read(&mut rest).await {
        Ok(0) => Ok(kind),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(kind),
        Ok(n) => Err(format!("{n} bytes after the echo")),
        Err(e) => Err(format!("waiting for the server to close: {e}")),
    }
}

/// `--idle N`: opens the connections, says how many are up, and holds them
/// until end-of-file on stdin or `--hold-secs`.
pub fn idle(s: &Settings) -> Result<(), String> {
    block_on(async {
        let dial = Dial::new(s);
        let (conns, failures) = connect_all(&dial, s.conns, s.max_pending).await;
        failures.report("connections");
        let up = conns.iter().flatten().count();
        {
            let mut out = io::stdout().lock();
            writeln!(out, "connected {up}")
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write to stdout: {e}"))?;
        }
        if up == 0 {
            return Err(format!("could not connect to {}", s.addr));
        }
        let eof = Arc::new(AtomicBool::new(false));
        {
            let eof = Arc::clone(&eof);
            std::thread::spawn(move || {
                let mut sink = [0u8; 256];
                let mut stdin = io::stdin().lock();
                while !matches!(stdin.read(&mut sink), Ok(0) | Err(_)) {}
                eof.store(true, Ordering::Relaxed);
            });
        }
        let until = tokio::time::Instant::now() + s.hold;
        while !eof.load(Ordering::Relaxed) && tokio::time::Instant::now() < until {
            sleep_until((tokio::time::Instant::now() + Duration::from_millis(100)).min(until))
                .await;
        }
        drop(conns);
        Ok(())
    })?
}
