//! Binding a listening UNIX socket: the socket file's mode, a stale file
//! replaced and a live one refused, and the file removed again when the
//! listener closes.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use log::{debug, warn};
use socket2::{Domain, Socket, Type};

use crate::address::UnixAddress;

/// A socket file this process bound, removed when dropped unless someone
/// else's socket (or file) has taken its place meanwhile: Twisted removes
/// its socket file when the port stops listening, and a file left behind
/// would make the next start probe it as stale.
#[derive(Debug)]
pub(crate) struct SocketFile {
    /// Absolute, so a later change of directory removes the right file.
    path: PathBuf,
    /// Device and inode of the file `bind` created: a file at `path` with
    /// others is not ours.
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The socket file `bind` just created at `path`.
    fn created_at(path: &Path) -> io::Result<SocketFile> {
        let path = std::path::absolute(path)?;
        let meta = fs::symlink_metadata(&path)?;
        Ok(SocketFile {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Whether the file at our path is still the one we created.
    fn is_ours(&self) -> bool {
        fs::symlink_metadata(&self.path).is_ok_and(|meta| {
            meta.file_type().is_socket() && meta.dev() == self.dev && meta.ino() == self.ino
        })
    }

    /// Sets the file's permission bits. Called between `bind` and `listen`:
    /// until `listen`, a connect is refused, so no client connects while the
    /// mode is still the one the umask gave.
    fn set_mode(&self, mode: u32) -> io::Result<()> {
        // chmod follows symbolic links: only a file that is still our socket
        // is changed. (In a directory others can write, one could swap the
        // file between this check and the chmod; put sockets in a directory
        // only their owner writes, as always.)
        if !self.is_ours() {
            return Err(io::Error::other(format!(
                "{} was replaced before its mode could be set",
                self.path.display()
            )));
        }
        fs::set_permissions(&self.path, fs::Permissions::from_mode(mode))
    }
}

impl SocketFile {
    /// Forgets the file without removing it: its socket lives on in
    /// another process, which a restart handed it to.
    pub(crate) fn keep(mut self) {
        self.path = PathBuf::new();
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return; // kept
        }
        if !self.is_ours() {
            debug!(
                "{} is no longer our socket file: left in place",
                self.path.display()
            );
            return;
        }
        if let Err(e) = fs::remove_file(&self.path) {
            warn!("cannot remove socket file {}: {e}", self.path.display());
        }
    }
}

/// Binds a stream socket to `addr`, sets its file's `mode` (if asked and
/// if it has a file), and listens with `backlog`. Non-blocking, close on
/// exec. The [`SocketFile`] (for a path) removes the file when dropped.
///
/// A path where a socket file already exists is probed with a connect: if
/// the connect is refused, the file is a stale one left by a process that
/// died, and is replaced; if it succeeds (or the listener's backlog is
/// full), another process is listening there and the bind fails with
/// `AddrInUse`. A file that is not a socket is never removed.
pub(crate) fn listen(
    addr: &UnixAddress,
    backlog: i32,
    mode: Option<u32>,
) -> io::Result<(UnixListener, Option<SocketFile>)> {
    let sockaddr = addr.to_sockaddr()?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    let file = match addr {
        UnixAddress::Path(path) => {
            if let Err(e) = socket.bind(&sockaddr) {
                if e.kind() != io::ErrorKind::AddrInUse {
                    return Err(e);
                }
                replace_stale(path)?;
                socket.bind(&sockaddr)?;
            }
            let file = SocketFile::created_at(path)?;
            if let Some(mode) = mode {
                file.set_mode(mode)?;
            }
            Some(file)
        }
        _ => {
            socket.bind(&sockaddr)?;
            None
        }
    };
    socket.listen(backlog)?;
    Ok((socket.into(), file))
}

/// Removes the socket file at `path` if nothing listens on it any more;
/// otherwise says why it stays, as an `AddrInUse` error.
fn replace_stale(path: &Path) -> io::Result<()> {
    let in_use = |why: String| io::Error::new(io::ErrorKind::AddrInUse, why);
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        // Gone already: the retried bind will tell.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(in_use(format!(
            "{} exists and is not a socket; not removed",
            path.display()
        )));
    }
    // A non-blocking connect: a UNIX connect completes at once, and a full
    // backlog answers EAGAIN rather than blocking the caller.
    match mio::net::UnixStream::connect(path) {
        Ok(_) => Err(in_use(format!(
            "another process is listening on {}",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(in_use(format!(
            "another process is listening on {} (its backlog is full)",
            path.display()
        ))),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            // Only the file that was probed: one that replaced it since
            // belongs to whoever made it.
            let now = fs::symlink_metadata(path)?;
            if now.dev() != meta.dev() || now.ino() != meta.ino() {
                return Err(in_use(format!(
                    "{} was replaced while being probed",
                    path.display()
                )));
            }
            debug!("removing stale socket file {}", path.display());
            fs::remove_file(path)
        }
        Err(e) => Err(in_use(format!(
            "{} exists and cannot be probed ({e}); not removed",
            path.display()
        ))),
    }
}
