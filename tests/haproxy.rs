//! Behind a real load balancer: HAProxy (Debian's `haproxy`, which
//! `.ci/run` installs) with deploy/haproxy/haproxy.cfg, in TCP mode with
//! `send-proxy-v2` and HTTP health checks, in front of two
//! `http_hello --proxy-protocol` backends on 127.0.0.1. Twenty clients
//! send requests through it, each on a new connection from 127.0.0.2,
//! while backend `a` is restarted on the same port; every request must get
//! the exact answer, and the backends together must log every client's
//! real address and port, each once. The clients connect from 127.0.0.2
//! while HAProxy's own connections come from 127.0.0.1, so a backend can
//! only log a client's address by reading the header.
//!
//! Skips, saying so, only where `haproxy` is not installed.

#[path = "common/programs.rs"]
mod programs;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

/// Clients sending at once.
const CLIENTS: usize = 20;
/// The most requests one client sends (it stops earlier when told).
const MAX_REQUESTS: usize = 2_000;
/// The most the whole run may take before it fails.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// How long one step (a backend starting, HAProxy seeing it UP) may take.
const WAIT: Duration = Duration::from_secs(15);

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n\
Connection: close\r\n\r\nhello world\n";

/// Where clients connect from: not HAProxy's address.
const CLIENT_IP: &str = "127.0.0.2";

/// Every child process of the test, killed and reaped when the guard is
/// dropped, however the test ends (a panic included).
#[derive(Default)]
struct Children(Vec<(String, Child)>);

impl Children {
    /// Starts `command` as `name`; its stderr lines are collected in the
    /// returned log, and its stdout's first line is sent on the returned
    /// channel.
    fn start(&mut self, name: &str, command: &mut Command) -> (Log, Receiver<Option<String>>) {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Log::default();
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.0.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        self.0.push((name.to_string(), child));
        let (tx, rx) = channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        (log, rx)
    }

    /// Sends SIGTERM to `name` and waits for it to exit.
    fn terminate(&mut self, name: &str) {
        let at = self.0.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut child) = self.0.remove(at);
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {name}");
        wait_until(&format!("{name} exits on SIGTERM"), || {
            child.try_wait().unwrap().is_some()
        });
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process's stderr, line by line, as far as it has come.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The client ports of the `...connected from: IP:PORT` lines for `ip`.
    fn connected_from(&self, ip: &str) -> Vec<u16> {
        let prefix = format!("...connected from: {ip}:");
        self.lines()
            .iter()
            .filter_map(|line| line.split_once(&prefix))
            .map(|(_, port)| port.trim().parse().expect("a port"))
            .collect()
    }
}

/// `haproxy`, where Debian puts it, or on the PATH.
fn haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("haproxy"))
        .find(|exe| exe.is_file())
}

/// Starts `http_hello --proxy-protocol` as `name` on `port` (0: any).
fn backend(children: &mut Children, name: &str, port: u16) -> (SocketAddr, Log) {
    let (log, first) = children.start(
        name,
        Command::new(programs::example("http_hello"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--proxy-protocol")
            .env("RUST_LOG", "info"),
    );
    let first = first
        .recv_timeout(WAIT)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{name} did not start: {:?}", log.lines()));
    let addr = first
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name} said {first:?}"));
    (addr, log)
}

/// A free loopback port for HAProxy's frontend.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `command` to HAProxy's runtime API and returns its answer.
fn admin(socket: &Path, command: &str) -> String {
    let mut api = UnixStream::connect(socket).expect("HAProxy's admin socket");
    api.set_read_timeout(Some(WAIT)).unwrap();
    api.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    api.read_to_string(&mut answer).unwrap();
    answer
}

/// `show stat`'s row for `server` of backend `hello` (`BACKEND` for the
/// backend's own), by column name.
fn stat(socket: &Path, server: &str) -> HashMap<String, String> {
    let csv = admin(socket, "show stat");
    let mut lines = csv.lines();
    let names: Vec<String> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .expect("show stat's header")
        .split(',')
        .map(str::to_string)
        .collect();
    let row = lines
        .find(|l| l.starts_with(&format!("hello,{server},")))
        .unwrap_or_else(|| panic!("no row for {server} in {csv}"));
    names
        .into_iter()
        .zip(row.split(',').map(str::to_string))
        .collect()
}

/// Waits until `condition` holds, asking every 20 ms (HAProxy's state can
/// only be polled through its runtime API); fails the test after [`WAIT`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// One request on a new connection from [`CLIENT_IP`]: the client's port,
/// and the answer or what went wrong.
fn request(frontend: SocketAddr) -> (u16, Result<(), String>) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{CLIENT_IP}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    let port = socket.local_addr().unwrap().as_socket().unwrap().port();
    let result = (|| {
        socket
            .connect_timeout(&frontend.into(), WAIT)
            .map_err(|e| format!("connect: {e}"))?;
        let mut stream = TcpStream::from(socket);
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream
            .write_all(REQUEST)
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .map_err(|e| format!("read: {e}"))?;
        if answer == ANSWER {
            Ok(())
        } else {
            Err(format!("answer {:?}", String::from_utf8_lossy(&answer)))
        }
    })();
    (port, result)
}

#[test]
fn every_request_through_haproxy_succeeds_while_a_backend_restarts() {
    let Some(haproxy) = haproxy() else {
        eprintln!("skipping: haproxy not installed (apt-get install haproxy; .ci/run does)");
        return;
    };
    let mut children = Children::default();
    let (a, a_log) = backend(&mut children, "a", 0);
    let (b, b_log) = backend(&mut children, "b", 0);
    let dir = std::env::temp_dir().join(format!("reactor-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("admin.sock");
    let frontend: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg");
    let (haproxy_log, _) = children.start(
        "haproxy",
        Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("FRONTEND", frontend.to_string())
            .env("BACKEND_A", a.to_string())
            .env("BACKEND_B", b.to_string())
            .env("ADMIN_SOCKET", &socket),
    );
    wait_until("HAProxy's admin socket is there", || socket.exists());
    let up = |server: &str| stat(&socket, server)["status"] == "UP";
    wait_until("both backends are UP", || up("a") && up("b"));

    // The clients: new connections until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            thread::spawn(move || {
                let mut results = Vec::new();
                while !stop.load(Ordering::Relaxed)
                    && results.len() < MAX_REQUESTS
                    && started.elapsed() < RUN_LIMIT
                {
                    results.push(request(frontend));
                    done.fetch_add(1, Ordering::Relaxed);
                }
                results
            })
        })
        .collect();
    wait_until("a hundred requests are done", || {
        done.load(Ordering::Relaxed) >= 100
    });

    // Restart `a`. http_hello exits at once on SIGTERM, so it is drained
    // first: HAProxy sends it nothing new, and it is stopped once its last
    // relayed connection is done. Then HAProxy is told it is ready while it
    // is down, as after a crash: new connections to it are refused until
    // the health checks notice, and HAProxy retries them on `b`.
    admin(&socket, "set server hello/a state drain");
    wait_until("`a` has no connection left", || {
        stat(&socket, "a")["scur"] == "0"
    });
    children.terminate("a");
    admin(&socket, "set server hello/a state ready");
    wait_until("HAProxy sees `a` DOWN", || {
        stat(&socket, "a")["status"].starts_with("DOWN")
    });
    let (again, a2_log) = backend(&mut children, "a", a.port());
    assert_eq!(again, a);
    wait_until("`a` is UP again", || up("a"));
    wait_until("`a` logs clients (127.0.0.2) again", || {
        a2_log.connected_from(CLIENT_IP).len() >= CLIENTS
    });
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u16, Result<(), String>)> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client panicked"))
        .collect();
    assert!(started.elapsed() < RUN_LIMIT, "the run took too long");

    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first {:?}; HAProxy said {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)],
        haproxy_log.lines()
    );
    // Every client's port, as the backends logged it: each once, and no
    // other (HAProxy's own connections come from 127.0.0.1).
    let sorted = |mut ports: Vec<u16>| {
        ports.sort_unstable();
        ports
    };
    let logged = [&a_log, &a2_log, &b_log]
        .iter()
        .flat_map(|log| log.connected_from(CLIENT_IP))
        .collect();
    let sent = results.iter().map(|(port, _)| *port).collect();
    assert_eq!(
        sorted(logged),
        sorted(sent),
        "client ports the backends logged"
    );
    for (name, log) in [("a", &a_log), ("a again", &a2_log), ("b", &b_log)] {
        assert!(
            !log.connected_from(CLIENT_IP).is_empty(),
            "{name} served no client"
        );
        // The health checks' LOCAL headers: the connection's own address.
        assert!(
            !log.connected_from("127.0.0.1").is_empty(),
            "{name} saw no health check"
        );
        assert!(
            !log.lines().iter().any(|l| l.contains("PROXY")),
            "{name} refused a header: {:?}",
            log.lines()
        );
    }
    // The refused connects to the stopped `a` were retried on `b`.
    let backend = stat(&socket, "BACKEND");
    eprintln!(
        "{} requests, {} retried, {} redispatched",
        results.len(),
        backend["wretr"],
        backend["wredis"]
    );
    assert_ne!(backend["wredis"], "0", "no connection was redispatched");
    drop(children);
    let _ = std::fs::remove_dir_all(&dir);
}
