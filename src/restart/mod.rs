//! Restarts that drop nothing: a server hands its listening sockets to a
//! new copy of itself (a new binary, a new configuration), waits until the
//! copy is ready, then stops accepting and finishes the connections it has
//! while the copy takes every new one.
//!
//! Linux only: the readiness socket is an abstract UNIX name, and who may
//! say `READY=1` is told by `SO_PASSCRED`; elsewhere [`Reactor::hand_over`]
//! fails at once with `Unsupported`.
//!
//! | module | job |
//! |---|---|
//! | here | [`Reactor::hand_over`], [`Restart`], [`Reactor::restart_on_sighup`] |
//! | `spawn` | starting the new process with the sockets at descriptors 3.. and `LISTEN_PID` its own pid |
//! | `notify` | readiness: `NOTIFY_SOCKET` and `READY=1`, [`notify_ready`] |
//!
//! # The sequence
//!
//! 1. The old process starts the new one with its listening sockets as
//!    systemd's socket activation passes them: descriptors 3, 4, …,
//!    `LISTEN_FDS` their count, `LISTEN_PID` the new process's pid
//!    ([`crate::endpoint`] takes them), and `NOTIFY_SOCKET` naming a
//!    datagram socket of the old process, as systemd's `Type=notify` does.
//!    From then on both processes hold the same sockets: one accept queue
//!    per socket, which either may accept from.
//! 2. The new process listens on its endpoints: each takes the inherited
//!    socket bound to its address (so its command line is the old one's)
//!    or, for `systemd:N`, socket `N`. It then sends `READY=1`
//!    ([`notify_ready`]).
//! 3. On `READY=1` from the new process itself (its pid, as the kernel
//!    tells it: see below) the old process closes its copies of the
//!    sockets (they stay open in the new one: nothing that waits in their
//!    queues is lost, and no connection is ever refused) and the application
//!    finishes: [`Reactor::restart_on_sighup`] stops the reactor, whose
//!    graceful stop lets every open connection finish within the grace.
//! 4. If the new process exits, or is not ready within its timeout
//!    ([`DEFAULT_READY_TIMEOUT`]), it is killed and the old process goes
//!    on serving as before, its sockets untouched.
//!
//! # What a server does
//!
//! Listen through [endpoints](crate::endpoint), hand the listeners to
//! [`Reactor::restart_on_sighup`], and tell readiness once listening; then
//! `kill -HUP PID` (or a deploy script) restarts it, a new binary at the
//! same path included:
//!
//! ```no_run
//! use reactor::protocols::Echo;
//! use reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! // The same command line in every generation: the endpoint takes the
//! // socket the previous one handed over, or binds it the first time.
//! let endpoint = "tcp:7000:interface=127.0.0.1".parse().unwrap();
//! let listening = reactor.listen_on(&endpoint, || Echo)?;
//! reactor.restart_on_sighup(vec![listening.clone()])?;
//! println!("listening on {}", listening.local_addr());
//! reactor::restart::notify_ready()?; // the previous generation may go now
//! reactor.run()?; // returns once a successor took over and the drain is done
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Protocols whose connections must finish a request before closing say so
//! in [`Protocol::stopping`](crate::Protocol::stopping) (the examples'
//! `echo_server --graceful` and `http_hello` do).
//!
//! Why inheritance rather than passing the sockets over a UNIX socket with
//! `SCM_RIGHTS`: the new process is started by the old one anyway, so the
//! descriptors can simply be inherited, with no socket path to agree on
//! and protect; and the protocol is systemd's, so the new process takes
//! them exactly as it takes sockets from systemd (`systemd:` endpoints and
//! restarts share one path), and any program that supports socket
//! activation can be the new process. `SCM_RIGHTS` is the tool when the
//! new process is not the old one's child (started by a supervisor, say),
//! which this does not try to do.
//!
//! Readiness could also be a line on the shared standard output, but that
//! belongs to the user; or a pipe, which is what `NOTIFY_SOCKET` is with a
//! standard name. Any local process may find the abstract name (they are
//! listed in `/proc/net/unix`) and send to it, so `READY=1` counts only
//! from the new process itself: the socket asks the kernel for each
//! sender's credentials (SO_PASSCRED), and a datagram whose sender's pid
//! is not the new process's is ignored with a warning, as systemd's
//! `NotifyAccess=main` does (a process the new one starts is not heard
//! either: a wrapper script must `exec` the server). A forged `READY=1`
//! would otherwise make the old process stop accepting before the new one
//! does. Only a process with CAP_SYS_ADMIN can claim another's pid; and
//! the new process is this one's child, not reaped while the wait lasts,
//! so its pid cannot pass to another process meanwhile.

mod notify;
mod spawn;

use std::cell::RefCell;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Child;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info, warn};
use mio::Interest;

pub use self::notify::notify_ready;
use self::notify::Heard;
use crate::endpoint::Listening;
use crate::reactor::{Reactor, SourceId};
use crate::tcp::ListenerHandle;
use crate::timer::TimerId;

/// How long [`Reactor::hand_over`] waits for the new process to say it is
/// ready, by default ([`Restart::ready_timeout`] changes it).
///
/// ```
/// use std::time::Duration;
/// use reactor::restart::{Restart, DEFAULT_READY_TIMEOUT};
///
/// assert_eq!(DEFAULT_READY_TIMEOUT, Duration::from_secs(10));
/// // A program that loads a large cache before it listens:
/// let restart = Restart::this_program()?.ready_timeout(6 * DEFAULT_READY_TIMEOUT);
/// # let _ = restart;
/// # Ok::<(), std::io::Error>(())
/// ```
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a hand-over looks whether the new process has exited.
const EXIT_CHECK: Duration = Duration::from_millis(50);

/// The program a hand-over starts, and how long it may take to be ready.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// use reactor::protocols::Echo;
/// use reactor::restart::Restart;
/// use reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let endpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
/// let listening = reactor.listen_on(&endpoint, || Echo)?;
/// // A successor that never says it is ready: it is killed at the timeout.
/// // (The program is a path: `PATH` is not searched.)
/// let never_ready = Restart::program("/bin/sh", ["-c", "exec sleep 30"])
///     .ready_timeout(Duration::from_millis(200));
/// let outcome = Rc::new(RefCell::new(None));
/// let kept = outcome.clone();
/// reactor.hand_over(&[listening.clone()], never_ready, move |reactor, result| {
///     *kept.borrow_mut() = Some(result);
///     reactor.stop();
/// })?;
/// reactor.call_later(Duration::from_secs(10), |r| r.stop()); // in case
/// reactor.run()?;
/// let error = outcome.borrow_mut().take().expect("the hand-over ended").unwrap_err();
/// assert!(error.to_string().contains("not ready within 200ms"), "{error}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Restart {
    program: PathBuf,
    /// `argv`, its first the program's name.
    args: Vec<OsString>,
    ready_timeout: Duration,
}

impl Restart {
    /// This program again, with the arguments it was started with: the
    /// executable at the path this process was started from (so a binary
    /// replaced on disk since is the one started: an upgrade).
    ///
    /// ```
    /// let restart = reactor::restart::Restart::this_program()?;
    /// # let _ = restart;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn this_program() -> io::Result<Restart> {
        let exe = std::env::current_exe()?;
        // /proc/self/exe names a replaced binary "PATH (deleted)": the new
        // file is at PATH.
        let program = match exe.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
            Some(path) => PathBuf::from(path),
            None => exe,
        };
        Ok(Restart {
            program,
            args: std::env::args_os().collect(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
        })
    }

    /// `program`, run with `args` (not counting its own name): another
    /// program that takes its sockets by socket activation (`systemd:N`
    /// endpoints, or any `sd_listen_fds` user) and tells readiness through
    /// `NOTIFY_SOCKET`. The path is used as given, not looked up in `PATH`
    /// (the child calls `execve` itself, between fork and exec, where a
    /// lookup is not async-signal-safe): give a path, not a bare name.
    ///
    /// ```
    /// use reactor::restart::Restart;
    ///
    /// let restart = Restart::program("/usr/local/bin/server-v2", ["--listen", "systemd:0"]);
    /// # let _ = restart;
    /// ```
    pub fn program(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Restart {
        let program = program.into();
        let mut argv = vec![program.clone().into_os_string()];
        argv.extend(args.into_iter().map(Into::into));
        Restart {
            program,
            args: argv,
            ready_timeout: DEFAULT_READY_TIMEOUT,
        }
    }

    /// How long the new process has to say it is ready (default
    /// [`DEFAULT_READY_TIMEOUT`]) before it is killed.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let restart = reactor::restart::Restart::this_program()?
    ///     .ready_timeout(Duration::from_secs(60)); // a slow start
    /// # let _ = restart;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn ready_timeout(mut self, timeout: Duration) -> Restart {
        self.ready_timeout = timeout;
        self
    }
}

/// What [`Reactor::hand_over`] calls when it is over: the new process's
/// pid, or why it failed.
type Done = Box<dyn FnOnce(&mut Reactor, io::Result<u32>)>;

/// A hand-over under way.
struct HandOver {
    child: Child,
    listeners: Vec<ListenerHandle>,
    notify: SourceId,
    timers: Vec<TimerId>,
    done: Done,
}

/// Shared by the callbacks of one hand-over; `None` once it is over.
type Shared = Rc<RefCell<Option<HandOver>>>;

impl Reactor {
    /// Hands `listeners` to a new process started as `restart` says (see
    /// the [module](crate::restart) for the sequence), then calls `done`
    /// with its pid once it is ready, after closing this process's copies
    /// of the sockets: this process accepts no more on them. A new process
    /// that exits, or is not ready within the timeout, is killed; `done`
    /// gets the error and the listeners are untouched.
    ///
    /// Errors at once if a listener has stopped or the process cannot be
    /// started. The new process inherits this one's standard input, output
    /// and error, and its environment.
    ///
    /// ```no_run
    /// use reactor::protocols::Echo;
    /// use reactor::restart::Restart;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let listening = reactor.listen_on(&"tcp:7000".parse().unwrap(), || Echo)?;
    /// // Say, on a command from an admin connection:
    /// reactor.hand_over(&[listening], Restart::this_program()?, |reactor, outcome| {
    ///     match outcome {
    ///         Ok(pid) => {
    ///             eprintln!("pid {pid} took over");
    ///             reactor.stop(); // finish what is open, then exit
    ///         }
    ///         Err(e) => eprintln!("still serving: {e}"),
    ///     }
    /// })?;
    /// reactor.run()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn hand_over(
        &mut self,
        listeners: &[Listening],
        restart: Restart,
        done: impl FnOnce(&mut Reactor, io::Result<u32>) + 'static,
    ) -> io::Result<()> {
        let mut fds = Vec::new();
        for listening in listeners {
            match self.listening_fd(listening.handle()) {
                Some(fd) => fds.push(fd),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotConnected,
                        format!("{} no longer listens", listening.local_addr()),
                    ))
                }
            }
        }
        let name = notify::fresh_name();
        let socket = notify::bind(&name)?;
        let env = [(notify::NOTIFY_SOCKET.into(), format!("@{name}").into())];
        let child = spawn::spawn(&restart.program, &restart.args, &env, &fds)?;
        let pid = child.id();
        info!(
            "started pid {pid} ({}) to take over {} listening socket(s)",
            restart.program.display(),
            fds.len()
        );
        let shared: Shared = Rc::new(RefCell::new(None));
        let on_message = Rc::clone(&shared);
        let notify = self.add_source(socket, Interest::READABLE, move |reactor, socket, _| {
            let mut buf = [0u8; 1024];
            loop {
                let heard = notify::receive(socket, &mut buf)
                    .map(|(n, sender)| notify::hear(&buf[..n], sender, pid));
                match heard {
                    Ok(Heard::Ready) => return finish(reactor, &on_message, Ok(())),
                    Ok(Heard::NotYet) => {}
                    Ok(Heard::Stranger(sender)) => warn!(
                        "ignored a notification from {}: only the new process \
                         (pid {pid}) may say it is ready",
                        match sender {
                            Some(sender) => format!("pid {sender}"),
                            None => "a process of unknown pid".to_string(),
                        }
                    ),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) => {
                        return finish(
                            reactor,
                            &on_message,
                            Err(format!("notify socket failed: {e}")),
                        )
                    }
                }
            }
        });
        let notify = match notify {
            Ok(notify) => notify,
            Err(e) => {
                stop_child(child);
                return Err(e);
            }
        };
        let timeout = restart.ready_timeout;
        let on_timeout = Rc::clone(&shared);
        let deadline = self.call_later(timeout, move |reactor| {
            let why = format!("it was not ready within {timeout:?}");
            finish(reactor, &on_timeout, Err(why));
        });
        *shared.borrow_mut() = Some(HandOver {
            child,
            listeners: listeners.iter().map(|l| *l.handle()).collect(),
            notify,
            timers: vec![deadline],
            done: Box::new(done),
        });
        watch_exit(self, shared);
        Ok(())
    }

    /// Makes SIGHUP restart this program without dropping a connection:
    /// [`hand_over`](Reactor::hand_over) of `listeners` to
    /// [`Restart::this_program`], then, once the new process is ready, a
    /// graceful [`stop`](Reactor::stop) (every open connection finishes
    /// within the [shutdown grace](Reactor::set_shutdown_grace); protocols
    /// that must finish a request first say so in
    /// [`Protocol::stopping`](crate::Protocol::stopping)). If the restart
    /// fails, this process goes on serving and logs why; a SIGHUP while one
    /// is under way is ignored. The new process must listen through
    /// [endpoints](crate::endpoint) and call [`notify_ready`].
    ///
    /// Replaces SIGHUP's default action (which ends the process) for the
    /// whole process: call it from applications, not libraries. The
    /// [module](crate::restart#what-a-server-does) shows a whole server.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::Reactor;
    ///
    /// let mut reactor = Reactor::new()?;
    /// let endpoint = "tcp:0:interface=127.0.0.1".parse().unwrap();
    /// let listening = reactor.listen_on(&endpoint, || Echo)?;
    /// reactor.restart_on_sighup(vec![listening])?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn restart_on_sighup(&mut self, listeners: Vec<Listening>) -> io::Result<SourceId> {
        let signals = signal_hook_mio::v1_0::Signals::new([signal_hook::consts::SIGHUP])?;
        let state = Rc::new(RefCell::new(Phase::Serving));
        self.add_source(signals, Interest::READABLE, move |reactor, signals, _| {
            if signals.pending().next().is_none() {
                return;
            }
            match *state.borrow() {
                Phase::Serving => {}
                Phase::HandingOver => return warn!("SIGHUP ignored: a restart is under way"),
                Phase::HandedOver => {
                    return warn!(
                        "SIGHUP ignored: the sockets were handed over; signal the new process"
                    )
                }
            }
            let restart = match Restart::this_program() {
                Ok(restart) => restart,
                Err(e) => return error!("SIGHUP: cannot restart: {e}; still serving"),
            };
            let after = Rc::clone(&state);
            let started =
                reactor.hand_over(&listeners, restart, move |reactor, outcome| match outcome {
                    Ok(pid) => {
                        *after.borrow_mut() = Phase::HandedOver;
                        info!("pid {pid} is ready: stopped accepting; finishing open connections");
                        reactor.stop();
                    }
                    Err(e) => {
                        *after.borrow_mut() = Phase::Serving;
                        error!("restart failed: {e}; still serving");
                    }
                });
            match started {
                Ok(()) => *state.borrow_mut() = Phase::HandingOver,
                Err(e) => error!("SIGHUP: cannot restart: {e}; still serving"),
            }
        })
    }
}

/// Where [`Reactor::restart_on_sighup`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    HandingOver,
    HandedOver,
}

/// Looks every [`EXIT_CHECK`] whether the new process has exited.
fn watch_exit(reactor: &mut Reactor, shared: Shared) {
    let again = Rc::clone(&shared);
    let timer = reactor.call_later(EXIT_CHECK, move |reactor| {
        let exited = match again.borrow_mut().as_mut() {
            None => return,
            Some(hand_over) => hand_over.child.try_wait(),
        };
        match exited {
            Ok(None) => watch_exit(reactor, again),
            Ok(Some(status)) => finish(reactor, &again, Err(format!("it exited ({status})"))),
            Err(e) => finish(reactor, &again, Err(format!("cannot watch it: {e}"))),
        }
    });
    if let Some(hand_over) = shared.borrow_mut().as_mut() {
        hand_over.timers.push(timer);
    }
}

/// Ends the hand-over: on success closes this process's listeners; on
/// failure stops the new process; either way tells `done`.
fn finish(reactor: &mut Reactor, shared: &Shared, outcome: Result<(), String>) {
    let Some(hand_over) = shared.borrow_mut().take() else {
        return;
    };
    reactor.remove_source(hand_over.notify);
    for timer in hand_over.timers {
        reactor.cancel(timer);
    }
    let pid = hand_over.child.id();
    let result = match outcome {
        Ok(()) => {
            for listener in &hand_over.listeners {
                // A UNIX socket's file now belongs to the new process.
                reactor.keep_socket_file(listener);
                reactor.stop_listening(listener);
            }
            Ok(pid)
        }
        Err(why) => {
            stop_child(hand_over.child);
            Err(io::Error::other(format!(
                "the new process (pid {pid}): {why}"
            )))
        }
    };
    (hand_over.done)(reactor, result);
}

/// Kills a new process that will not take over, and reaps it.
fn stop_child(mut child: Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
