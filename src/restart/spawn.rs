//! Starting a program with listening sockets passed the way socket
//! activation passes them: at descriptors 3, 4, …, with `LISTEN_FDS` their
//! count and `LISTEN_PID` the new process's own pid.
//!
//! The pid is only known once the process exists, between `fork` and
//! `exec`, where only async-signal-safe calls are allowed (another thread
//! may have held the allocator's lock at the fork). So everything is built
//! before: the program's path, its arguments, and its whole environment,
//! with a `LISTEN_PID=` entry whose digits are left blank; in the child,
//! `pre_exec` moves the descriptors into place, writes the pid's digits
//! into that entry, and calls `execve` itself with that environment
//! (std's own exec would use the environment it built, which cannot hold
//! the pid).

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command};

use crate::endpoint::systemd::{LISTEN_FDNAMES, LISTEN_FDS, LISTEN_FDS_START, LISTEN_PID};

/// Room for the pid's digits: a pid is at most 2^22 on Linux, and 20
/// digits hold any `u64`.
const PID_DIGITS: usize = 20;

/// What the child's `pre_exec` needs, built before the fork: C strings and
/// the pointer arrays `execve` takes, which point into them.
struct Exec {
    program: CString,
    _args: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    _env: Vec<CString>,
    /// `LISTEN_PID=` followed by room for the digits and a NUL.
    pid_entry: Vec<u8>,
    envp: Vec<*const libc::c_char>,
    /// The sockets to pass, in order: they become 3, 4, …
    fds: Vec<RawFd>,
}

// SAFETY: the raw pointers point into the strings `Exec` owns (heap
// buffers that do not move when `Exec` does), and are only read, by the
// child, after the fork: no other thread ever touches them.
unsafe impl Send for Exec {}
unsafe impl Sync for Exec {}

fn c_string(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{s:?} holds a NUL byte"),
        )
    })
}

impl Exec {
    fn new(
        program: &Path,
        args: &[OsString],
        env: Vec<(OsString, OsString)>,
        fds: &[RawFd],
    ) -> io::Result<Exec> {
        let program = c_string(program.as_os_str())?;
        let args = args
            .iter()
            .map(|a| c_string(a))
            .collect::<io::Result<Vec<_>>>()?;
        let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let env = env
            .into_iter()
            .map(|(k, v)| {
                let mut entry = k;
                entry.push("=");
                entry.push(v);
                c_string(&entry)
            })
            .collect::<io::Result<Vec<_>>>()?;
        let mut pid_entry = format!("{LISTEN_PID}=").into_bytes();
        pid_entry.resize(pid_entry.len() + PID_DIGITS + 1, 0);
        let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        envp.push(pid_entry.as_ptr().cast());
        envp.push(std::ptr::null());
        Ok(Exec {
            program,
            _args: args,
            argv,
            _env: env,
            pid_entry,
            envp,
            fds: fds.to_vec(),
        })
    }

    /// In the child, after the fork: only async-signal-safe calls.
    fn exec(&mut self) -> io::Result<()> {
        let count = self.fds.len() as RawFd;
        let first_free = LISTEN_FDS_START + count;
        // Copies above every target first, so that moving one socket into
        // place cannot close another that sits where it goes. The copies
        // are close-on-exec; the targets, made by dup2, are not.
        for fd in self.fds.iter_mut() {
            // SAFETY: fcntl on a descriptor this process holds.
            let copy = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free) };
            if copy < 0 {
                return Err(io::Error::last_os_error());
            }
            *fd = copy;
        }
        for (i, fd) in self.fds.iter().enumerate() {
            // SAFETY: dup2 between descriptors; the target is replaced.
            if unsafe { libc::dup2(*fd, LISTEN_FDS_START + i as RawFd) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() } as u64;
        write_digits(&mut self.pid_entry[LISTEN_PID.len() + 1..], pid);
        // SAFETY: resetting the signal mask and SIGPIPE's disposition (Rust
        // programs ignore it) as std's own exec does, so the program starts
        // as any other would; both calls are async-signal-safe.
        unsafe {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
        // SAFETY: every pointer names a NUL-terminated string `self` owns,
        // and both arrays end with a null pointer. execve returns only on
        // failure.
        unsafe {
            libc::execve(
                self.program.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
            )
        };
        Err(io::Error::last_os_error())
    }
}

/// Writes `n`'s decimal digits at the start of `buf`, then a NUL (the rest
/// of `buf` is NUL already). No allocation: it runs after a fork.
fn write_digits(buf: &mut [u8], mut n: u64) {
    let mut digits = [0u8; PID_DIGITS];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[i] = digits[len - 1 - i];
    }
    buf[len] = 0;
}

/// Starts `program` with arguments `args` (the first is its name, `argv[0]`)
/// and this process's environment with `extra` added, passing `fds` as
/// socket activation does. Standard input, output and error are this
/// process's. The variables of a previous activation (`LISTEN_*`) and any
/// named in `extra` are replaced.
pub(crate) fn spawn(
    program: &Path,
    args: &[OsString],
    extra: &[(OsString, OsString)],
    fds: &[RawFd],
) -> io::Result<Child> {
    let replaced = |k: &OsStr| {
        k == LISTEN_PID
            || k == LISTEN_FDS
            || k == LISTEN_FDNAMES
            || extra.iter().any(|(e, _)| e == k)
    };
    let mut env: Vec<(OsString, OsString)> =
        std::env::vars_os().filter(|(k, _)| !replaced(k)).collect();
    env.extend(extra.iter().cloned());
    env.push((LISTEN_FDS.into(), fds.len().to_string().into()));
    let mut exec = Exec::new(program, args, env, fds)?;
    let mut command = Command::new(program);
    // SAFETY: `exec` runs in the child between fork and exec and makes only
    // async-signal-safe calls (fcntl, dup2, getpid, sigprocmask, signal,
    // execve) on memory built before the fork.
    unsafe {
        command.pre_exec(move || exec.exec());
    }
    command.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_written_with_a_nul_after_them() {
        for (n, text) in [
            (0u64, "0"),
            (7, "7"),
            (4194304, "4194304"),
            (u64::MAX, "18446744073709551615"),
        ] {
            let mut buf = [0xffu8; PID_DIGITS + 1];
            write_digits(&mut buf, n);
            let end = buf.iter().position(|b| *b == 0).unwrap();
            assert_eq!(&buf[..end], text.as_bytes());
        }
    }
}
