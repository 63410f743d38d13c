//! The process's stdin and stdout as a connection's descriptors: duplicated,
//! made non-blocking (their flags kept, to be put back), registered with
//! the poll where epoll can watch them, and closed for good by pointing
//! fd 0 and 1 at `/dev/null`.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use log::debug;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

use crate::tcp::WriteWatch;

/// Whether epoll tells when an end is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Not registered yet.
    Unregistered,
    /// Registered with the poll (a pipe, a terminal, a socket).
    Polled,
    /// `epoll_ctl` refused it with `EPERM`: a regular file, `/dev/null`, a
    /// directory. Such a file never blocks, so it is always ready: the
    /// reactor reads (or retries a write) from the leftover queue, in
    /// bounded slices, once per turn while there is work.
    Unpollable,
    /// Deregistered, its flags put back: the end is closing.
    Released,
}

/// One of the two ends: a duplicate of fd 0 or fd 1 (same open file
/// description, so the same flags and position), with the flags found.
struct End {
    file: File,
    /// The file status flags as found, put back when the end is released.
    found: OFlags,
    watch: Watch,
}

impl End {
    fn duplicate(fd: BorrowedFd<'_>) -> io::Result<End> {
        let file = File::from(fd.try_clone_to_owned()?);
        let found = fcntl_getfl(&file)?;
        Ok(End {
            file,
            found,
            watch: Watch::Unregistered,
        })
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        Ok(fcntl_setfl(&self.file, self.found | OFlags::NONBLOCK)?)
    }

    /// Registers the end for `interest`; a file epoll refuses (`EPERM`)
    /// is served without it.
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        let fd = self.file.as_raw_fd();
        match registry.register(&mut SourceFd(&fd), token, interest) {
            Ok(()) => {
                self.watch = Watch::Polled;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                debug!("fd {fd} cannot be polled ({e}): it is read and written as always ready");
                self.watch = Watch::Unpollable;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Deregisters the end and puts its flags back. Deregistering is
    /// needed although the duplicate is about to be closed: epoll watches
    /// the open file description, which fd 0 or 1 (or 2) may still hold.
    fn release(&mut self, registry: &Registry) {
        if self.watch == Watch::Polled {
            let fd = self.file.as_raw_fd();
            if let Err(e) = registry.deregister(&mut SourceFd(&fd)) {
                debug!("cannot deregister fd {fd}: {e}");
            }
        }
        self.watch = Watch::Released;
        self.restore();
    }

    fn restore(&self) {
        if let Err(e) = fcntl_setfl(&self.file, self.found) {
            debug!("cannot restore the flags of a standard stream: {e}");
        }
    }
}

impl Drop for End {
    /// A reactor dropped with the connection still open puts the flags back
    /// too: a shell sharing the terminal must not be left non-blocking.
    fn drop(&mut self) {
        self.restore();
    }
}

/// Standard input and output as one connection's descriptors.
pub(crate) struct Pipes {
    input: End,
    /// `None` once our writing side is closed (`lose_write_connection`).
    output: Option<End>,
}

impl Pipes {
    /// Duplicates fd 0 and 1, makes them non-blocking and registers them
    /// with `token`: stdin for reading, stdout for writing (edge-triggered,
    /// for good: an edge comes whenever a full pipe drains, and is ignored
    /// while nothing waits to be written). Anything written through
    /// `std::io::stdout()` before is flushed first, so it comes out before
    /// the connection's bytes.
    pub(crate) fn open(registry: &Registry, token: Token) -> io::Result<Pipes> {
        io::stdout().flush()?;
        let input = End::duplicate(io::stdin().as_fd())?;
        let mut output = End::duplicate(io::stdout().as_fd())?;
        // Both flags are read before either is changed: stdin and stdout
        // are often one open file description (a terminal, a socket), and
        // what is put back must be what was found.
        input.set_nonblocking()?;
        output.set_nonblocking()?;
        let mut pipes = Pipes {
            input,
            output: None,
        };
        let registered = pipes
            .input
            .register(registry, token, Interest::READABLE)
            .and_then(|()| output.register(registry, token, Interest::WRITABLE));
        pipes.output = Some(output);
        if let Err(e) = registered {
            pipes.release(registry);
            return Err(e);
        }
        Ok(pipes)
    }

    /// How the connection learns that stdout takes bytes again.
    pub(crate) fn write_watch(&self) -> WriteWatch {
        match self.output.as_ref().map(|o| o.watch) {
            Some(Watch::Unpollable) => WriteWatch::Retried,
            _ => WriteWatch::Polled,
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.input.file).read(buf)
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match &self.output {
            Some(output) => (&output.file).write(buf),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Closes our writing side: stdout's flags are put back, fd 1 becomes
    /// `/dev/null` and our duplicate is closed, so the reader sees
    /// end-of-file (unless another descriptor still holds the pipe, as a
    /// `2>&1` stderr does).
    pub(crate) fn close_output(&mut self, registry: &Registry) -> io::Result<()> {
        let Some(mut output) = self.output.take() else {
            return Ok(());
        };
        output.release(registry);
        // If stdin is the same open file description (a terminal, a
        // socket), putting stdout's flags back made it blocking too.
        self.input.set_nonblocking()?;
        let replaced = File::options()
            .read(true)
            .write(true)
            .open("/dev/null")
            .and_then(|null| Ok(rustix::stdio::dup2_stdout(&null)?));
        drop(output);
        replaced
    }

    /// Closes both ends for good: each is deregistered and its flags are
    /// put back, and fd 0 and 1 become `/dev/null`, so the writer to our
    /// stdin gets `EPIPE` and the reader of our stdout end-of-file, as
    /// after a closed socket. Writing to `std::io::stdout()` afterwards is
    /// harmless and goes nowhere.
    pub(crate) fn close(mut self, registry: &Registry) {
        if let Err(e) = self.close_output(registry) {
            debug!("cannot close stdout: {e}");
        }
        self.input.release(registry);
        let replaced =
            File::open("/dev/null").and_then(|null| Ok(rustix::stdio::dup2_stdin(&null)?));
        if let Err(e) = replaced {
            debug!("cannot close stdin: {e}");
        }
    }

    /// Deregisters both ends and puts their flags back (a failed open).
    fn release(&mut self, registry: &Registry) {
        self.input.release(registry);
        if let Some(output) = &mut self.output {
            output.release(registry);
        }
    }
}
