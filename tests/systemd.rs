//! Socket activation as systemd does it: a socket the test bound is passed
//! to a program as descriptor 3 with `LISTEN_FDS=1` and `LISTEN_PID` its
//! own pid (`sh -c 'LISTEN_PID=$$ ... exec PROGRAM'`: the shell's pid is
//! the program's), and the program listens on it with `systemd:0`.

#[path = "common/programs.rs"]
mod programs;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use programs::{example, run_to_end, Running, WAIT};

/// `program ARGS` under `sh`, with `fds` at descriptors 3, 4, … and
/// `LISTEN_FDS` their count; `LISTEN_PID` is the program's own pid, or
/// `listen_pid` when given.
fn activated(program: &Path, args: &[&str], fds: &[RawFd], listen_pid: Option<&str>) -> Command {
    let pid = listen_pid.unwrap_or("$$");
    let script = format!(
        "LISTEN_PID={pid} LISTEN_FDS={} exec \"$0\" \"$@\"",
        fds.len()
    );
    let mut command = Command::new("sh");
    command.arg("-c").arg(script).arg(program).args(args);
    let mut fds = fds.to_vec();
    let first_free = 3 + fds.len() as RawFd;
    // SAFETY: between fork and exec only fcntl and dup2, async-signal-safe,
    // on descriptors this process holds.
    unsafe {
        command.pre_exec(move || {
            // Above every target first, so no move closes another source.
            for fd in fds.iter_mut() {
                let copy = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free);
                if copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                *fd = copy;
            }
            for (i, fd) in fds.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    command
}

#[test]
fn an_example_serves_on_the_socket_it_was_passed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = activated(
        &example("echo_server"),
        &["--listen", "systemd:0"],
        &[listener.as_raw_fd()],
        None,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn sh");
    // From now on the only copy is the child's.
    drop(listener);
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = programs::read_in_background(child.stderr.take().unwrap());
    let child = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let Ok(first) = rx.recv_timeout(WAIT) else {
        drop(child);
        let err = stderr.recv_timeout(WAIT).unwrap_or_default();
        panic!(
            "no line on stdout; stderr: {}",
            String::from_utf8_lossy(&err)
        )
    };
    assert_eq!(first, format!("listening on {addr}"));
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"activated").unwrap();
    let mut answer = [0; 9];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"activated");
    drop(child);
}

#[test]
fn a_unix_socket_passed_is_served_and_announced_by_its_path() {
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = std::env::temp_dir().join(format!("reactor-systemd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("activated.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let mut child = activated(
        &example("echo_server"),
        &["--listen", "systemd:0"],
        &[listener.as_raw_fd()],
        None,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn sh");
    drop(listener);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let child = Running(child);
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, format!("listening on unix:{}\n", path.display()));
    let mut stream = UnixStream::connect(&path).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(b"unix, activated").unwrap();
    let mut answer = [0; 15];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"unix, activated");
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sockets_meant_for_another_process_are_not_taken() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let out = run_to_end(
        activated(
            &example("ack_server"),
            &["--listen", "systemd:0"],
            &[listener.as_raw_fd()],
            Some("1"),
        )
        .stdin(Stdio::null()),
        b"",
    );
    assert!(!out.status.success(), "stdout: {}", out.stdout);
    assert_eq!(out.stdout, "", "nothing listens, so nothing is announced");
    assert!(
        out.stderr
            .contains("were meant for process 1 (LISTEN_PID), not this one"),
        "stderr: {}",
        out.stderr
    );
    // Without the variables at all, the error says how to start it.
    let out = run_to_end(
        Command::new(example("ack_server"))
            .args(["--listen", "systemd:0"])
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS"),
        b"",
    );
    assert!(
        out.stderr.contains("no socket was passed to this process"),
        "{}",
        out.stderr
    );
}

/// A `LISTEN_FDS` far past any real count is refused at once, naming the
/// bound, instead of the start looking at two billion descriptors.
#[test]
fn an_absurd_socket_count_is_refused_not_walked() {
    let out = run_to_end(
        Command::new("sh")
            .arg("-c")
            .arg("LISTEN_PID=$$ LISTEN_FDS=2000000000 exec \"$0\" --listen systemd:0")
            .arg(example("ack_server"))
            .stdin(Stdio::null()),
        b"",
    );
    assert!(!out.status.success(), "stdout: {}", out.stdout);
    assert!(
        out.stderr
            .contains("LISTEN_FDS=2000000000 is more sockets than the 1024 this process takes"),
        "stderr: {}",
        out.stderr
    );
}

/// The checks [`inherited_sockets_are_taken_once`] runs in a child: this
/// test binary, started again with a TCP listener at descriptor 3 and a
/// UDP socket at 4. Ignored when run by hand: it needs those descriptors.
#[test]
#[ignore = "run by inherited_sockets_are_taken_once, with sockets at 3 and 4"]
fn child_takes_inherited_sockets() {
    use reactor::endpoint::ServerEndpoint;
    use reactor::{Protocol, Reactor, Transport};
    struct Quiet;
    impl Protocol for Quiet {
        fn data_received(&mut self, _: &mut dyn Transport, _: &[u8]) {}
    }
    let expected = std::env::var("EXPECTED_ADDR").expect("run by the parent test");
    let mut reactor = Reactor::new().unwrap();
    let endpoint = |s: &str| s.parse::<ServerEndpoint>().unwrap();
    let listening = reactor.listen_on(&endpoint("systemd:0"), || Quiet).unwrap();
    assert_eq!(listening.local_addr().to_string(), expected);
    // Taken as sd_listen_fds(0) takes them: the variables stay (never
    // written while other threads may read the environment; LISTEN_PID
    // names this process, so a child ignores them), and the socket will
    // not leak into programs this one starts.
    assert_eq!(
        std::env::var("LISTEN_PID").unwrap(),
        std::process::id().to_string()
    );
    // SAFETY: fcntl F_GETFD only reads descriptor flags.
    let flags = unsafe { libc::fcntl(3, libc::F_GETFD) };
    assert!(
        flags >= 0 && flags & libc::FD_CLOEXEC != 0,
        "descriptor 3: {flags}"
    );
    let mut error = |s: &str| reactor_error(&mut reactor, &endpoint(s));
    for (again, why) in [
        ("systemd:0", "claimed already"),
        ("systemd:1", "(descriptor 4): not a stream socket"),
        ("systemd:2", "only 2 sockets were passed (LISTEN_FDS=2"),
    ] {
        let text = error(again);
        assert!(text.contains(why), "{again}: {text}");
    }
    // What is not a usable socket is left open for its owner.
    // SAFETY: as above.
    assert!(
        unsafe { libc::fcntl(4, libc::F_GETFD) } >= 0,
        "descriptor 4 was closed"
    );
    println!("child checks passed");
}

fn reactor_error(
    reactor: &mut reactor::Reactor,
    endpoint: &reactor::endpoint::ServerEndpoint,
) -> String {
    struct Quiet;
    impl reactor::Protocol for Quiet {
        fn data_received(&mut self, _: &mut dyn reactor::Transport, _: &[u8]) {}
    }
    match reactor.listen_on(endpoint, || Quiet) {
        Ok(l) => panic!("{endpoint} listened on {}", l.local_addr()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn inherited_sockets_are_taken_once() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let datagrams = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = std::env::current_exe().unwrap();
    let out = run_to_end(
        activated(
            &me,
            &[
                "--exact",
                "child_takes_inherited_sockets",
                "--ignored",
                "--nocapture",
            ],
            &[listener.as_raw_fd(), datagrams.as_raw_fd()],
            None,
        )
        .env("EXPECTED_ADDR", listener.local_addr().unwrap().to_string()),
        b"",
    );
    assert!(
        out.status.success() && out.stdout.contains("child checks passed"),
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        out.stdout,
        out.stderr
    );
}
