//! Standard input and output as a connection (Twisted's `StandardIO`).
//!
//! | module | job |
//! |---|---|
//! | here | `Reactor::open_stdio`: the connection, made in the first turn |
//! | `pipes` | fd 0 and 1: duplicated, non-blocking, registered (or served as always ready), closed |
//!
//! The connection is an ordinary [`Conn`] whose stream is the two pipes,
//! so writes, buffering, watermarks, the write cap, read pauses, producers,
//! half-close, timers and stopping are the TCP connection's own code.

mod pipes;

use std::io;
use std::time::Duration;

use crate::protocol::Protocol;
use crate::reactor::{key_u32, Reactor, Readiness, Slot, SlotId, Source};
use crate::tcp::{Conn, ConnState, Origin, Peer, Stream};
use crate::transport::ConnectionId;

pub(crate) use self::pipes::Pipes;

impl Reactor {
    /// Runs `protocol` over the process's standard input and output, as one
    /// connection (Twisted's `StandardIO`): what arrives on stdin reaches
    /// [`data_received`](Protocol::data_received), what it writes goes to
    /// stdout. Returns the connection's id; `connection_made` runs in the
    /// reactor's first turn, never before this returns.
    ///
    /// Everything a TCP connection does, it does, by the same code: writes
    /// are coalesced and buffered, the watermarks pause and resume the
    /// protocol (by default, reading stdin pauses while stdout is full), the
    /// write cap aborts it, `pause_reading`, timers, idle timeouts,
    /// [`Reactor::write_to`] and [`Reactor::register_producer`] from other
    /// connections, and a graceful stop flushes it and closes it.
    ///
    /// - **End of stdin** is the peer's FIN: the connection ends with
    ///   [`Reason::PeerClosed`](crate::Reason::PeerClosed) once what is
    ///   buffered for stdout is written, or, if the protocol
    ///   [allows half-close](Protocol::allows_half_close), it hears
    ///   [`read_connection_lost`](Protocol::read_connection_lost) and goes on
    ///   writing.
    /// - **`lose_write_connection`** closes stdout once flushed (fd 1 becomes
    ///   `/dev/null`, so the reader sees end-of-file) and goes on reading.
    /// - **Closing** (any reason) puts both descriptors' flags back and
    ///   points fd 0 and 1 at `/dev/null`, so the writer to our stdin gets
    ///   `EPIPE` and the reader of our stdout end-of-file, as after a closed
    ///   socket. Stderr is left alone.
    /// - **Non-blocking**: fd 0 and 1 are made non-blocking while the
    ///   connection lives, and their flags are put back when it closes, or
    ///   when the reactor is dropped, so a shell sharing the terminal is
    ///   not left with a non-blocking stdin. A process killed by a signal
    ///   cannot do that: use [`Reactor::stop_on_signals`] so Ctrl-C stops
    ///   gracefully. The flag belongs to the open file description, which
    ///   other descriptors may share (stderr on a terminal, or after
    ///   `2>&1`): a terminal or pipe that stops taking output can then make
    ///   `eprintln!` fail.
    /// - **Files**: where stdin or stdout is something epoll cannot watch (a
    ///   regular file, `< file`, `> file`, or `/dev/null`), it is used in
    ///   place without the poll: such a file is always ready, so it is read
    ///   from the leftover queue, at most 4 slices of 16 KiB per turn while
    ///   the protocol reads (other sources are served in between), and a
    ///   write it only partly took is retried there. A read from a slow
    ///   disk blocks the loop for that read, as in Twisted.
    ///
    /// Write to stdout only through the connection while it is open (a
    /// `println!` could meet a full pipe and fail), and do not read stdin
    /// through `std::io::stdin()` (its buffer would keep what it read).
    /// Anything `std::io::stdout()` held is flushed first. The transport's
    /// `peer_addr` and `local_addr` are [`Address::Pipe`](crate::Address::Pipe)
    /// (Twisted's `PipeAddress`).
    ///
    /// Errors: a second standard I/O connection while one is open
    /// (`AlreadyExists`), the reactor is stopping, stdin or stdout is closed
    /// (`EBADF`), or the poll refused them for another reason than `EPERM`.
    ///
    /// ```no_run
    /// use reactor::{Protocol, Reactor, Reason, Transport};
    ///
    /// /// `cat`, upper-cased: every chunk of stdin goes to stdout.
    /// struct Upper;
    /// impl Protocol for Upper {
    ///     fn data_received(&mut self, transport: &mut dyn Transport, data: &[u8]) {
    ///         transport.write(&data.to_ascii_uppercase());
    ///     }
    ///     fn connection_lost(&mut self, transport: &mut dyn Transport, _: &Reason) {
    ///         transport.reactor().unwrap().stop(); // end of stdin: done
    ///     }
    /// }
    ///
    /// let mut reactor = Reactor::new()?;
    /// reactor.open_stdio(Upper)?;
    /// reactor.stop_on_signals()?; // Ctrl-C puts the terminal's flags back
    /// reactor.run()
    /// # ; Ok::<(), std::io::Error>(())
    /// ```
    pub fn open_stdio(&mut self, protocol: impl Protocol) -> io::Result<ConnectionId> {
        self.refuse_while_stopping()?;
        let open = self.slots.iter().any(|(_, slot)| {
            matches!(&slot.source, Source::Conn(c) if matches!(c.stream, Stream::Stdio(_)))
        });
        if open {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "standard input and output are already a connection",
            ));
        }
        let generation = self.next_generation();
        let id = ConnectionId {
            key: key_u32(self.slots.vacant_key())?,
            generation,
        };
        let pipes = Pipes::open(self.poll.registry(), SlotId::from(id).token())?;
        let stream = Stream::Stdio(Box::new(pipes));
        let conn = Conn::new(
            stream,
            Peer::Pipe,
            None,
            ConnState::Connecting,
            Origin::Stdio,
        );
        let key = self.slots.insert(Slot {
            generation,
            queued: false,
            source: Source::Conn(conn),
        });
        debug_assert_eq!(key, id.key as usize, "vacant_key names the next insert");
        let protocol: Box<dyn Protocol> = Box::new(protocol);
        self.call_later(Duration::ZERO, move |r| r.stdio_made(id, protocol));
        Ok(id)
    }

    /// The standard I/O connection is made: its protocol is installed and
    /// told, what was written before is flushed, and stdin is read (from
    /// the leftover queue: its readiness may have come before, or, for a
    /// file, never).
    fn stdio_made(&mut self, id: ConnectionId, protocol: Box<dyn Protocol>) {
        let Some(conn) = self
            .conn_mut(id)
            .filter(|c| c.state == ConnState::Connecting)
        else {
            // Closed before it was made (a stop, `lose_connection`): no
            // `connection_lost` is owed.
            crate::panic::drop_caught(protocol, "a protocol");
            return;
        };
        conn.protocol = Some(protocol);
        conn.state = ConnState::OPEN;
        self.flush(id);
        self.with_protocol(id, |p, t| p.connection_made(t));
        self.after_callback();
        // A buffer already over its watermark is told now that there is a
        // protocol to tell.
        self.flow_changed.push(id);
        self.defer(id.into(), Readiness::LEFTOVER);
    }
}
