//! Restarts that drop nothing: `echo_server --graceful` restarted three
//! times by SIGHUP while 20 clients keep connecting and sending
//! sequence-numbered lines; not one connection may be refused, and every
//! echo must come back whole and exact. Each old process must then finish
//! its connections and exit 0 on its own. The same for `http_hello`, one
//! request per connection, every answer exact. A `READY=1` forged by
//! another process (this test) is ignored: only the new process is heard.
//!
//! The processes form a chain (each generation starts the next and exits),
//! so this test makes itself their subreaper: orphaned generations become
//! its children, which it reaps, and kills on the way out whatever happens.

#[path = "common/programs.rs"]
mod programs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use programs::example;

/// Clients connecting at once.
const CLIENTS: usize = 20;
/// Restarts under that load.
const RESTARTS: usize = 3;
/// Lines each connection sends, one echo awaited after each.
const LINES_PER_CONNECTION: usize = 3;
/// Most connections one client makes, and the longest the load runs: the
/// bounds of the loop, well past what the test needs.
const MAX_CONNECTIONS: usize = 20_000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(120);
/// How long one step (a restart, some progress, an exit) may take; long,
/// for a loaded machine.
const STEP: Duration = Duration::from_secs(30);

/// Every process of the chain: killed (SIGKILL) and reaped on drop, so no
/// generation outlives the test, even when it fails.
struct Generations {
    pids: Mutex<Vec<i32>>,
}

impl Generations {
    /// Makes this process the subreaper of its descendants (orphaned ones
    /// become its children, so it can reap and kill them) and starts an
    /// empty list.
    fn reaping() -> Generations {
        // SAFETY: prctl with integer arguments.
        let made = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(made, 0, "cannot become a subreaper");
        Generations {
            pids: Mutex::new(Vec::new()),
        }
    }

    fn add(&self, pid: i32) {
        self.pids.lock().unwrap().push(pid);
    }
}

impl Drop for Generations {
    fn drop(&mut self) {
        for &pid in self.pids.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            // SAFETY: kill and waitpid take plain integers; a pid already
            // reaped gives ESRCH or ECHILD, which is fine.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// An empty directory of this test process's own, named after `what`.
fn scratch_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Lines from a pipe, on a thread.
fn lines(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (at most [`STEP`]) for a line of `rx` for which `find` gives a
/// value; `log` keeps every line seen, for failure messages.
fn wait_for<T>(
    rx: &Receiver<String>,
    log: &mut Vec<String>,
    what: &str,
    find: impl Fn(&str) -> Option<T>,
) -> T {
    let deadline = Instant::now() + STEP;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        log.push(line.clone());
        if let Some(found) = find(&line) {
            return found;
        }
    }
    panic!("no line with {what}; seen:\n{}", log.join("\n"));
}

/// The number after `prefix` in `line`.
fn pid_after(line: &str, prefix: &str) -> Option<i32> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Waits until process `pid` (a child of this one, or an orphan it
/// adopted as subreaper) has exited; its exit status.
fn reap(pid: i32) -> i32 {
    let deadline = Instant::now() + STEP;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into our integer.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            return status;
        }
        // Not exited, or not adopted yet (its parent is still draining).
        assert!(Instant::now() < deadline, "pid {pid} did not exit");
        thread::sleep(Duration::from_millis(5));
    }
}

/// What the servers under test speak, and so what their clients send.
#[derive(Clone, Copy)]
enum Kind {
    /// `echo_server --graceful`: numbered lines, echoed.
    Echo,
    /// `http_hello`: one `GET /` per connection, `Connection: close`.
    Http,
}

/// The arguments that start a server of `kind` on a free port.
fn server_args(kind: Kind) -> &'static [&'static str] {
    match kind {
        // Generous: a client starved of CPU on a busy machine must not be
        // taken for a quiet one and closed while it still sends.
        Kind::Echo => &[
            "--graceful",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--quiet",
            "5",
            "--grace",
            "30",
        ],
        Kind::Http => &["--listen", "tcp:0:interface=127.0.0.1"],
    }
}

/// A server of `kind` (from `program`) on a free port, its stdout and
/// stderr piped.
fn start_server(program: &std::path::Path, kind: Kind) -> std::process::Child {
    Command::new(program)
        .args(server_args(kind))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo_server")
}

/// Starts `count` clients of `addr`; they run until `stop` is set.
fn start_clients(
    kind: Kind,
    count: usize,
    addr: SocketAddr,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Tally>,
) -> Vec<thread::JoinHandle<()>> {
    (0..count)
        .map(|id| {
            let (stop, tally) = (Arc::clone(stop), Arc::clone(tally));
            thread::spawn(move || client(kind, id, addr, stop, tally))
        })
        .collect()
}

/// Sets its flag when dropped: the clients stop however the test ends.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Stops the clients, waits for them, and fails the test if any failed.
fn finish_clients(stop: &AtomicBool, clients: Vec<thread::JoinHandle<()>>, tally: &Tally) {
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("a client panicked");
    }
    let failures = tally.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
}

/// What the clients found.
#[derive(Default)]
struct Tally {
    connections: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

/// One client: connection after connection, each checked by
/// [`exchange_lines`] or [`exchange_request`].
fn client(kind: Kind, id: usize, addr: SocketAddr, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let started = Instant::now();
    let fail = |why: String| tally.failures.lock().unwrap().push(why);
    for conn in 0..MAX_CONNECTIONS {
        if stop.load(Ordering::Relaxed) || started.elapsed() > MAX_LOAD_TIME {
            return;
        }
        let stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => return fail(format!("client {id} connection {conn}: connect: {e}")),
        };
        let exchanged = match kind {
            Kind::Echo => exchange_lines(stream, id, conn),
            Kind::Http => exchange_request(stream),
        };
        if let Err(why) = exchanged {
            return fail(format!("client {id} connection {conn}: {why}"));
        }
        tally.connections.fetch_add(1, Ordering::Relaxed);
    }
}

/// [`LINES_PER_CONNECTION`] numbered lines, each echo checked byte for
/// byte before the next is sent, then a half-close and the end of the
/// stream.
fn exchange_lines(mut stream: TcpStream, id: usize, conn: usize) -> Result<(), String> {
    stream
        .set_read_timeout(Some(STEP))
        .map_err(|e| e.to_string())?;
    for line in 0..LINES_PER_CONNECTION {
        // Lengths vary, so a short or merged echo cannot pass.
        let pad = "x".repeat((conn * 7 + line * 13 + id) % 300);
        let sent = format!("client {id:02} connection {conn:05} line {line} {pad}\n");
        let mut echo = vec![0; sent.len()];
        stream
            .write_all(sent.as_bytes())
            .and_then(|()| stream.read_exact(&mut echo))
            .map_err(|e| format!("line {line}: {e}"))?;
        if echo != sent.as_bytes() {
            return Err(format!(
                "line {line}: sent {sent:?}, got {:?}",
                String::from_utf8_lossy(&echo)
            ));
        }
    }
    let mut rest = Vec::new();
    stream
        .shutdown(Shutdown::Write)
        .and_then(|()| stream.read_to_end(&mut rest))
        .map_err(|e| format!("at the end: {e}"))?;
    match rest.is_empty() {
        true => Ok(()),
        false => Err(format!("extra bytes {rest:?}")),
    }
}

/// One request per connection.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: restart.test\r\nConnection: close\r\n\r\n";

/// http_hello's whole answer to [`REQUEST`].
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\
Connection: close\r\n\r\nhello world\n";

/// [`REQUEST`], then [`ANSWER`] exactly, to the end of the stream.
fn exchange_request(mut stream: TcpStream) -> Result<(), String> {
    stream
        .set_read_timeout(Some(STEP))
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream
        .write_all(REQUEST)
        .and_then(|()| stream.read_to_end(&mut answer))
        .map_err(|e| format!("{e}, after {:?}", String::from_utf8_lossy(&answer)))?;
    if answer != ANSWER {
        return Err(format!("answered {:?}", String::from_utf8_lossy(&answer)));
    }
    Ok(())
}

/// Waits until the clients have made `more` connections past `from`.
fn progress(tally: &Tally, from: usize, more: usize) -> usize {
    let deadline = Instant::now() + STEP;
    loop {
        let now = tally.connections.load(Ordering::Relaxed);
        if now >= from + more {
            return now;
        }
        let failures = tally.failures.lock().unwrap();
        assert!(failures.is_empty(), "clients failed: {failures:#?}");
        drop(failures);
        assert!(
            Instant::now() < deadline,
            "the clients made {} connections, not {more}",
            now - from
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn three_restarts_under_load_refuse_and_lose_nothing() {
    restarts_under_load(Kind::Echo, "echo_server");
}

#[test]
fn http_hello_restarted_three_times_answers_every_request() {
    restarts_under_load(Kind::Http, "http_hello");
}

/// Restarts `name` [`RESTARTS`] times by SIGHUP while [`CLIENTS`] clients
/// of `kind` keep connecting.
fn restarts_under_load(kind: Kind, name: &str) {
    let generations = Generations::reaping();
    let mut first = start_server(&example(name), kind);
    let mut current = first.id() as i32;
    generations.add(current);
    let stdout = lines(first.stdout.take().unwrap());
    let stderr = lines(first.stderr.take().unwrap());
    let mut log = Vec::new();
    let listening = |line: &str| line.strip_prefix("listening on ").map(str::to_string);
    let addr_text = wait_for(&stdout, &mut log, "listening on", listening);
    let addr: SocketAddr = addr_text.parse().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients = start_clients(kind, CLIENTS, addr, &stop, &tally);
    let _stop_clients = StopOnDrop(Arc::clone(&stop));

    let mut done = progress(&tally, 0, 200);
    let mut old = Vec::new();
    for restart in 1..=RESTARTS {
        // SAFETY: kill takes plain integers.
        assert_eq!(unsafe { libc::kill(current, libc::SIGHUP) }, 0);
        let next = wait_for(&stderr, &mut log, "started pid", |l| {
            pid_after(l, "started pid ")
        });
        generations.add(next);
        // The new generation announces the same address: it took the
        // socket rather than binding one of its own.
        let again = wait_for(&stdout, &mut log, "listening on", listening);
        assert_eq!(again, addr_text, "restart {restart}");
        let ready = wait_for(&stderr, &mut log, "is ready", |l| {
            pid_after(l, "pid ").filter(|_| l.contains("is ready"))
        });
        assert_eq!(ready, next, "restart {restart}");
        old.push(current);
        current = next;
        // Traffic through the new generation before the next restart.
        done = progress(&tally, done, 200);
    }
    finish_clients(&stop, clients, &tally);
    // Every old generation finished its connections and exited 0.
    let status = first.wait().expect("wait for the first generation");
    assert!(status.success(), "the first generation: {status}");
    for &pid in &old[1..] {
        let status = reap(pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "generation {pid} ended with status {status:#x}"
        );
    }
    let total = tally.connections.load(Ordering::Relaxed);
    println!("{name}: {total} connections through {RESTARTS} restarts, every answer exact");
    // The last generation serves still; the guard kills it.
}

/// Replaces the file at `path` by one with `contents` (executable), the
/// way an upgrade does: written beside it, then renamed over it.
fn replace_program(path: &std::path::Path, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let staged = path.with_extension("new");
    std::fs::write(&staged, contents).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

#[test]
fn a_restart_whose_new_process_dies_keeps_serving() {
    let generations = Generations::reaping();
    // A copy of the server, so that the test can replace it as an upgrade
    // would: a restart starts whatever is at the path now.
    let dir = scratch_dir("reactor-restart");
    let program = dir.join("echo_server");
    let real = std::fs::read(example("echo_server")).unwrap();
    replace_program(&program, &real);
    let mut server = start_server(&program, Kind::Echo);
    let pid = server.id() as i32;
    generations.add(pid);
    let stdout = lines(server.stdout.take().unwrap());
    let stderr = lines(server.stderr.take().unwrap());
    let mut log = Vec::new();
    let listening = |line: &str| line.strip_prefix("listening on ").map(str::to_string);
    let addr: SocketAddr = wait_for(&stdout, &mut log, "listening on", listening)
        .parse()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients = start_clients(Kind::Echo, 5, addr, &stop, &tally);
    let _stop_clients = StopOnDrop(Arc::clone(&stop));
    let done = progress(&tally, 0, 100);

    // The "new version" dies at once: the old process must not have let go
    // of its socket, and serves on.
    replace_program(&program, b"#!/bin/sh\nexit 3\n");
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let failed = wait_for(&stderr, &mut log, "restart failed", |l| {
        l.contains("restart failed").then(|| l.to_string())
    });
    assert!(failed.contains("exited (exit status: 3)"), "{failed}");
    let done = progress(&tally, done, 100);

    // A working version is taken up by the next SIGHUP.
    replace_program(&program, &real);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let next = wait_for(&stderr, &mut log, "started pid", |l| {
        pid_after(l, "started pid ")
    });
    generations.add(next);
    let ready = wait_for(&stderr, &mut log, "is ready", |l| {
        pid_after(l, "pid ").filter(|_| l.contains("is ready"))
    });
    assert_eq!(ready, next);
    progress(&tally, done, 100);
    finish_clients(&stop, clients, &tally);
    let status = server.wait().expect("wait for the first process");
    assert!(status.success(), "the first process: {status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_unix_socket_and_its_file_survive_a_restart() {
    use std::os::unix::net::UnixStream;
    let generations = Generations::reaping();
    let dir = scratch_dir("reactor-restart-unix");
    let path = dir.join("echo.sock");
    let mut first = Command::new(example("echo_server"))
        .args(["--graceful", "--quiet", "5", "--listen"])
        .arg(format!("unix:{}", path.display()))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn echo_server");
    generations.add(first.id() as i32);
    let stdout = lines(first.stdout.take().unwrap());
    let stderr = lines(first.stderr.take().unwrap());
    let mut log = Vec::new();
    let announced = format!("listening on unix:{}", path.display());
    let is_announced = |line: &str| (line == announced).then_some(());
    wait_for(&stdout, &mut log, &announced, is_announced);
    let echo = |what: &[u8]| {
        let mut stream = UnixStream::connect(&path).expect("connect to the socket file");
        stream.set_read_timeout(Some(STEP)).unwrap();
        stream.write_all(what).unwrap();
        let mut answer = vec![0; what.len()];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(answer, what);
    };
    echo(b"before");
    // A connection open across the restart, finished by the old process.
    let mut held = UnixStream::connect(&path).unwrap();
    held.set_read_timeout(Some(STEP)).unwrap();
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(first.id() as i32, libc::SIGHUP) }, 0);
    let next = wait_for(&stderr, &mut log, "started pid", |l| {
        pid_after(l, "started pid ")
    });
    generations.add(next);
    wait_for(&stdout, &mut log, &announced, is_announced);
    wait_for(&stderr, &mut log, "is ready", |l| {
        l.contains("is ready").then_some(())
    });
    held.write_all(b"held").unwrap();
    let mut answer = [0; 4];
    held.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"held");
    held.shutdown(Shutdown::Write).unwrap();
    let status = first.wait().expect("wait for the first process");
    assert!(status.success(), "the first process: {status}");
    // The old process is gone and left the file to the new one.
    echo(b"after");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_forged_ready_from_another_process_is_ignored() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let generations = Generations::reaping();
    let dir = scratch_dir("reactor-restart-forged");
    let program = dir.join("echo_server");
    replace_program(&program, &std::fs::read(example("echo_server")).unwrap());
    let mut server = start_server(&program, Kind::Echo);
    let old = server.id() as i32;
    generations.add(old);
    let stdout = lines(server.stdout.take().unwrap());
    let stderr = lines(server.stderr.take().unwrap());
    let mut log = Vec::new();
    let listening = |line: &str| line.strip_prefix("listening on ").map(str::to_string);
    let addr: SocketAddr = wait_for(&stdout, &mut log, "listening on", listening)
        .parse()
        .unwrap();
    let echo = |what: &[u8]| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(STEP)).unwrap();
        stream.write_all(what).unwrap();
        let mut answer = vec![0; what.len()];
        stream.read_exact(&mut answer).expect("an echo");
        assert_eq!(answer, what);
    };
    echo(b"before\n");

    // The next generation is held at a gate (a FIFO it reads a line from)
    // before it becomes the server: it holds the sockets but does not
    // accept, nor say it is ready. Opened read-write here, the FIFO never
    // blocks an open, and what is written waits in it for the gate.
    let fifo = dir.join("gate");
    let c_fifo = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let mut gate = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let script = format!(
        "#!/bin/sh\necho \"gate: successor $$ waits; NOTIFY_SOCKET=$NOTIFY_SOCKET\" >&2\n\
         read go < '{}'\nexec '{}' \"$@\"\n",
        fifo.display(),
        example("echo_server").display()
    );
    replace_program(&program, script.as_bytes());
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(old, libc::SIGHUP) }, 0);
    let (next, notify_name) = wait_for(&stderr, &mut log, "gate: successor", |l| {
        let next = pid_after(l, "gate: successor ")?;
        let name = l.split("NOTIFY_SOCKET=@").nth(1)?;
        Some((next, name.to_string()))
    });
    generations.add(next);

    // This process names the successor, as notify_ready would, but the
    // kernel tells the old process who sent it.
    let me = std::process::id();
    let forged = format!("READY=1\nMAINPID={next}\n");
    let notify_socket = UnixAddr::from_abstract_name(notify_name.as_bytes()).unwrap();
    UnixDatagram::unbound()
        .unwrap()
        .send_to_addr(forged.as_bytes(), &notify_socket)
        .unwrap();
    let handed_over = "is ready: stopped accepting";
    wait_for(&stderr, &mut log, "the forgery ignored", |l| {
        assert!(!l.contains(handed_over), "a forged READY was taken: {l}");
        let ignored = format!("ignored a notification from pid {me}: only the new process");
        (l.contains(&ignored) && l.contains(&format!("(pid {next})"))).then_some(())
    });
    // Nobody else accepts yet: this echo is the old process's.
    echo(b"still serving\n");

    // Through the gate: the real server takes over.
    gate.write_all(b"go\n").unwrap();
    let ready = wait_for(&stderr, &mut log, handed_over, |l| {
        pid_after(l, "pid ").filter(|_| l.contains(handed_over))
    });
    assert_eq!(ready, next);
    let status = server.wait().expect("wait for the first process");
    assert!(status.success(), "the first process: {status}");
    echo(b"after\n");
    let _ = std::fs::remove_dir_all(&dir);
}
