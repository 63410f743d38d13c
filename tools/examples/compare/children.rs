//! Child processes that cannot outlive this program.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Every child not yet killed, by pid: the children of the [`Guard`]s,
/// and what the signal thread kills.
static LIVE: Mutex<BTreeMap<u32, Child>> = Mutex::new(BTreeMap::new());

/// The registry, also after a panic elsewhere (nothing panics while
/// holding it).
fn live() -> MutexGuard<'static, BTreeMap<u32, Child>> {
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills every child and exits when SIGINT, SIGTERM or SIGHUP arrives,
/// with 128 + the signal's number, as a shell reports a process killed
/// by it. The signals are handled on a thread of their own (signal-hook's
/// handler only wakes it through a pipe), which kills and reaps every
/// registered child while holding the registry, so that no child starts
/// after the sweep (spawning holds the registry too), then exits
/// without releasing it. Call before starting any child.
pub fn kill_all_on_signals() -> Result<(), String> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| format!("cannot handle SIGINT, SIGTERM and SIGHUP: {e}"))?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Some(signal) = signals.forever().next() else {
                return;
            };
            let mut live = live();
            for child in live.values_mut() {
                let _ = child.kill();
            }
            for child in live.values_mut() {
                let _ = child.wait();
            }
            eprintln!(
                "\ncompare: stopped by signal {signal}; {} child process(es) killed",
                live.len()
            );
            std::process::exit(128 + signal);
        })
        .map(drop)
        .map_err(|e| format!("cannot start the signal thread: {e}"))
}

/// A child process killed and reaped when dropped, on every path out
/// (an error, a panic): no server or load outlives a measurement. The
/// child itself lives in the registry, where a signal finds it too.
pub struct Guard {
    pid: u32,
    pub stdout: Option<JoinHandle<Vec<u8>>>,
    pub stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Guard {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the child has exited.
    pub fn exited(&mut self) -> bool {
        live()
            .get_mut(&self.pid)
            .map_or(true, |child| matches!(child.try_wait(), Ok(Some(_))))
    }

    /// Kills and reaps the child (if it still runs) and forgets it.
    /// Under the registry's lock, so that a signal thread that finds it
    /// gone from the registry knows it killed already.
    pub fn kill(&mut self) {
        let mut live = live();
        if let Some(mut child) = live.remove(&self.pid) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the child wrote on stderr, once it has exited.
    pub fn stderr_text(&mut self) -> String {
        text(self.stderr.take())
    }

    /// What the child wrote on stdout, once it has exited.
    pub fn stdout_text(&mut self) -> String {
        text(self.stdout.take())
    }
}

/// Starts `cmd` (stdin from /dev/null, stdout and stderr piped) and
/// registers it, holding the registry throughout: a signal thread
/// either sees it registered or has already ended the program. Returns
/// its pid and its stdout and stderr.
fn start(cmd: &mut Command) -> Result<(u32, ChildStdout, ChildStderr), String> {
    let mut live = live();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let pid = child.id();
    live.insert(pid, child);
    Ok((
        pid,
        stdout.expect("stdout is piped"),
        stderr.expect("stderr is piped"),
    ))
}

fn text(reader: Option<JoinHandle<Vec<u8>>>) -> String {
    reader
        .and_then(|r| r.join().ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Reads `from` to its end on a thread of its own.
fn drain(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut all = Vec::new();
        let _ = from.read_to_end(&mut all);
        all
    })
}

/// Starts `cmd` with stdout and stderr collected in the background.
pub fn spawn(cmd: &mut Command) -> Result<Guard, String> {
    let (pid, stdout, stderr) = start(cmd)?;
    Ok(Guard {
        pid,
        stdout: Some(drain(stdout)),
        stderr: Some(drain(stderr)),
    })
}

/// Starts a server and waits (at most 10 s) for its `listening on ADDR`.
pub fn start_server(cmd: &mut Command) -> Result<(Guard, SocketAddr), String> {
    let (pid, stdout, stderr) = start(cmd)?;
    let (tx, rx) = channel();
    let stdout = thread::spawn(move || {
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        let _ = tx.send(first);
        let mut rest = Vec::new();
        let _ = lines.read_to_end(&mut rest);
        rest
    });
    let mut guard = Guard {
        pid,
        stdout: Some(stdout),
        stderr: Some(drain(stderr)),
    };
    let first = first_line(&rx);
    let addr = first
        .as_deref()
        .and_then(|line| line.trim_end().strip_prefix("listening on "))
        .and_then(|addr| addr.parse().ok());
    match addr {
        Some(addr) => Ok((guard, addr)),
        None => {
            guard.kill();
            Err(format!(
                "{:?} did not say where it listens (first line {first:?}): {}",
                cmd.get_program(),
                guard.stderr_text().trim()
            ))
        }
    }
}

fn first_line(rx: &Receiver<String>) -> Option<String> {
    rx.recv_timeout(Duration::from_secs(10))
        .ok()
        .filter(|l| !l.is_empty())
}
