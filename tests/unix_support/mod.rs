//! What the UNIX socket tests share: a directory of the test's own for
//! socket files, blocking UNIX clients, and this process's ids.
//!
//! Included with `#[path = "unix_support/mod.rs"] mod unix_support;` next
//! to `mod common;`.
#![allow(dead_code)]

use std::io::{self, ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use reactor::{PeerCredentials, Reactor};

use crate::common::{ReactorThread, WAIT};

/// A fresh directory under the system's temporary one, removed (with the
/// socket files in it) on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "reactor-unix-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A path in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An abstract name no other test (or test run) uses, with its `@`.
pub fn abstract_name(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "@reactor-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A reactor on a thread of its own, set up by `setup` (which listens on
/// a UNIX socket); stopped and joined on drop.
pub fn unix_reactor(
    setup: impl FnOnce(&mut Reactor) -> io::Result<()> + Send + 'static,
) -> ReactorThread {
    ReactorThread::start(move |r| {
        setup(r)?;
        // ReactorThread hands back an IP address; a UNIX test knows its path.
        Ok("0.0.0.0:0".parse().unwrap())
    })
}

/// A blocking client of the socket at `path` (`@name`: an abstract
/// name), with the test timeouts.
pub fn unix_client(path: impl AsRef<Path>) -> UnixStream {
    let s = connect(path).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Connects to a path or (`@name`) an abstract name.
pub fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_ref().as_os_str().as_bytes();
    match bytes {
        [b'@', name @ ..] => {
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            UnixStream::connect_addr(&addr)
        }
        _ => UnixStream::connect(path),
    }
}

/// Reads exactly `n` bytes.
pub fn read_exactly(s: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Reads to the end: the bytes, and how the stream ended (`Ok(())` for
/// end-of-file, else the error's kind).
pub fn read_to_end(s: &mut UnixStream) -> (Vec<u8>, Result<(), ErrorKind>) {
    let mut all = Vec::new();
    let mut buf = [0; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (all, Ok(())),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (all, Err(e.kind())),
        }
    }
}

/// This process's credentials as SO_PEERCRED reports them to a peer: its
/// pid, effective uid and effective gid (from /proc, without `unsafe`).
pub fn own_credentials() -> PeerCredentials {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = |field: &str| -> u32 {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    PeerCredentials {
        pid: Some(std::process::id()),
        uid: effective("Uid:"),
        gid: effective("Gid:"),
    }
}

/// The permission bits of the file at `path`.
pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}
