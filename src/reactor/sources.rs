//! Any mio source on the loop: [`Reactor::add_source`] (Twisted's
//! `IReactorFDSet`), for what the crate has no transport for (a pipe, an
//! inotify descriptor, a UNIX socket, a device).

use std::fmt;
use std::io;

use log::{error, warn};
use mio::{Interest, Registry};

use super::{key_u32, Reactor, Readiness, Slot, SlotId, Source};

/// Names a source added with [`Reactor::add_source`]; pass it to
/// [`remove_source`](Reactor::remove_source). Never names another source,
/// even after this one is removed and its slot reused.
///
/// ```
/// let mut reactor = reactor::Reactor::new()?;
/// let (ours, _theirs) = mio::net::UnixStream::pair()?;
/// let id = reactor.add_source(ours, mio::Interest::READABLE, |_, _, _| {})?;
/// assert!(reactor.remove_source(id));
/// assert!(!reactor.remove_source(id)); // gone already
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId {
    key: u32,
    generation: u32,
}

impl SourceId {
    fn of(id: SlotId) -> SourceId {
        SourceId {
            key: id.key,
            generation: id.generation,
        }
    }

    fn slot(self) -> SlotId {
        SlotId {
            key: self.key,
            generation: self.generation,
        }
    }
}

impl fmt::Debug for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceId({}.{})", self.key, self.generation)
    }
}

/// What woke a source up, given to its callback.
///
/// ```
/// use std::io::Write;
/// use mio::Interest;
///
/// let mut reactor = reactor::Reactor::new()?;
/// let (ours, mut theirs) = std::os::unix::net::UnixStream::pair()?;
/// ours.set_nonblocking(true)?;
/// theirs.write_all(b"x")?;
/// reactor.add_source(
///     mio::net::UnixStream::from_std(ours),
///     Interest::READABLE,
///     |reactor, _stream, event| {
///         assert!(event.is_readable());
///         assert!(!event.is_writable()); // not asked for
///         reactor.remove_source(event.id());
///         reactor.stop();
///     },
/// )?;
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceEvent {
    id: SourceId,
    readable: bool,
    writable: bool,
    read_closed: bool,
    error: bool,
}

impl SourceEvent {
    /// The source this event is for (so a callback can remove its own).
    ///
    /// ```
    /// # let mut reactor = reactor::Reactor::new()?;
    /// # let (ours, _theirs) = mio::net::UnixStream::pair()?;
    /// reactor.add_source(ours, mio::Interest::READABLE, |reactor, _, event| {
    ///     reactor.remove_source(event.id()); // one call only
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id(&self) -> SourceId {
        self.id
    }

    /// The source may be read from (registered `READABLE`).
    ///
    /// ```
    /// # let mut reactor = reactor::Reactor::new()?;
    /// # let (ours, _theirs) = mio::net::UnixStream::pair()?;
    /// reactor.add_source(ours, mio::Interest::READABLE, |_, _, event| {
    ///     if event.is_readable() { /* read until WouldBlock */ }
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_readable(&self) -> bool {
        self.readable
    }

    /// The source may be written to (registered `WRITABLE`).
    ///
    /// ```
    /// # let mut reactor = reactor::Reactor::new()?;
    /// # let (ours, _theirs) = mio::net::UnixStream::pair()?;
    /// reactor.add_source(ours, mio::Interest::WRITABLE, |_, _, event| {
    ///     if event.is_writable() { /* write until WouldBlock */ }
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The other end hung up (reading on reaches end-of-file once the
    /// buffered bytes are read).
    ///
    /// ```
    /// # let mut reactor = reactor::Reactor::new()?;
    /// # let (ours, _theirs) = mio::net::UnixStream::pair()?;
    /// reactor.add_source(ours, mio::Interest::READABLE, |reactor, _, event| {
    ///     if event.is_read_closed() {
    ///         reactor.remove_source(event.id());
    ///     }
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_read_closed(&self) -> bool {
        self.read_closed
    }

    /// The source reported an error (a read or `take_error` tells which).
    ///
    /// ```
    /// # let mut reactor = reactor::Reactor::new()?;
    /// # let (ours, _theirs) = mio::net::UnixStream::pair()?;
    /// reactor.add_source(ours, mio::Interest::READABLE, |_, stream, event| {
    ///     if event.is_error() {
    ///         log::warn!("{:?}", stream.take_error());
    ///     }
    /// })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_error(&self) -> bool {
        self.error
    }
}

/// A source and its callback, behind one object so the slab holds any type.
trait Entry {
    fn ready(&mut self, reactor: &mut Reactor, event: SourceEvent);
    fn deregister(&mut self, registry: &Registry) -> io::Result<()>;
}

struct Typed<S, F> {
    source: S,
    callback: F,
}

impl<S, F> Entry for Typed<S, F>
where
    S: mio::event::Source,
    F: FnMut(&mut Reactor, &mut S, SourceEvent),
{
    fn ready(&mut self, reactor: &mut Reactor, event: SourceEvent) {
        (self.callback)(reactor, &mut self.source, event)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.source)
    }
}

/// A slot's user source ([`Source::Custom`]).
pub(crate) struct Watched {
    interest: Interest,
    /// `None` while lent to its own callback.
    entry: Option<Box<dyn Entry>>,
}

impl Reactor {
    /// Watches `source` (any [`mio::event::Source`]: a pipe, a UNIX socket,
    /// an inotify or device descriptor through mio's `SourceFd`) and calls
    /// `callback` with the reactor, the source and the event whenever it
    /// becomes ready for `interest`. Returns the id to
    /// [`remove_source`](Reactor::remove_source) it with.
    ///
    /// **Edge-triggered**: the callback is called when the source *becomes*
    /// ready, not while it stays ready. It must read (or write) until the
    /// call returns [`io::ErrorKind::WouldBlock`]; what it leaves unread
    /// brings no further call until more arrives. (A level-triggered
    /// re-arm would cost a system call per event for every source; reading
    /// to `WouldBlock` is what the crate's own sockets do.)
    ///
    /// The source takes its turn with the others: its events count toward
    /// the turn's time budget, and one that does not fit waits for the next
    /// turn (it is then called with readable and writable both set, as far
    /// as `interest` allows: it must cope with a `WouldBlock` at once).
    /// The callback runs under the panic guard: if it panics, the panic is
    /// logged and the source removed (deregistered and dropped), as a
    /// connection whose protocol panics is closed. Sources are served
    /// during a graceful stop's drain (which does not wait for them) and
    /// removed when the stop ends.
    ///
    /// ```
    /// use std::io::{ErrorKind, Read, Write};
    /// use mio::Interest;
    ///
    /// let mut reactor = reactor::Reactor::new()?;
    /// let (ours, mut theirs) = mio::net::UnixStream::pair()?;
    /// let writer = std::thread::spawn(move || theirs.write_all(b"hello"));
    /// let mut got = Vec::new();
    /// reactor.add_source(ours, Interest::READABLE, move |reactor, stream, _event| {
    ///     let mut buf = [0; 4096];
    ///     loop {
    ///         match stream.read(&mut buf) {
    ///             Ok(0) => break, // the writer hung up
    ///             Ok(n) => got.extend_from_slice(&buf[..n]),
    ///             Err(e) if e.kind() == ErrorKind::WouldBlock => break,
    ///             Err(e) => panic!("{e}"),
    ///         }
    ///     }
    ///     if got == b"hello" {
    ///         reactor.stop();
    ///     }
    /// })?;
    /// reactor.run()?;
    /// writer.join().unwrap()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn add_source<S, F>(
        &mut self,
        mut source: S,
        interest: Interest,
        callback: F,
    ) -> io::Result<SourceId>
    where
        S: mio::event::Source + 'static,
        F: FnMut(&mut Reactor, &mut S, SourceEvent) + 'static,
    {
        let generation = self.next_generation();
        let entry = self.slots.vacant_entry();
        let id = SlotId {
            key: key_u32(entry.key())?,
            generation,
        };
        self.poll
            .registry()
            .register(&mut source, id.token(), interest)?;
        entry.insert(Slot {
            generation,
            queued: false,
            source: Source::Custom(Watched {
                interest,
                entry: Some(Box::new(Typed { source, callback })),
            }),
        });
        Ok(SourceId::of(id))
    }

    /// Stops watching a source added with [`add_source`](Reactor::add_source):
    /// it is deregistered and dropped (with its callback), and its callback
    /// is not called again. From inside its own callback, that happens as
    /// the callback returns. Returns whether the source was still there.
    ///
    /// ```
    /// let mut reactor = reactor::Reactor::new()?;
    /// let (ours, _theirs) = mio::net::UnixStream::pair()?;
    /// let id = reactor.add_source(ours, mio::Interest::READABLE, |_, _, _| {})?;
    /// assert!(reactor.remove_source(id));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn remove_source(&mut self, id: SourceId) -> bool {
        self.remove_custom(id.slot())
    }

    /// Removes slot `id` if it holds a user source; false otherwise.
    pub(crate) fn remove_custom(&mut self, id: SlotId) -> bool {
        if !matches!(self.slot_mut(id), Some(Source::Custom(_))) {
            return false;
        }
        let Source::Custom(watched) = self.slots.remove(id.key as usize).source else {
            return false;
        };
        // Lent to its callback (which removed it): `source_ready` finishes
        // the job when the callback returns.
        if let Some(entry) = watched.entry {
            self.forget_entry(entry);
        }
        true
    }

    /// Serves a readiness event of user source `id`.
    pub(crate) fn source_ready(&mut self, id: SlotId, readiness: Readiness) {
        let Some(Source::Custom(watched)) = self.slot_mut(id) else {
            return;
        };
        let interest = watched.interest;
        let Some(mut entry) = watched.entry.take() else {
            return;
        };
        let event = SourceEvent {
            id: SourceId::of(id),
            readable: readiness.readable && interest.is_readable(),
            writable: readiness.writable && interest.is_writable(),
            read_closed: readiness.read_closed,
            error: readiness.error,
        };
        let outcome = crate::panic::catch(|| entry.ready(self, event));
        match (self.slot_mut(id), outcome) {
            (Some(Source::Custom(watched)), Ok(())) => watched.entry = Some(entry),
            (Some(Source::Custom(_)), Err(why)) => {
                error!("a source's callback panicked: {why}; the source is removed");
                self.slots.remove(id.key as usize);
                self.forget_entry(entry);
            }
            // Removed by its own callback.
            (_, outcome) => {
                if let Err(why) = outcome {
                    error!("a source's callback panicked: {why}");
                }
                self.forget_entry(entry);
            }
        }
    }

    fn forget_entry(&mut self, mut entry: Box<dyn Entry>) {
        let registry = self.poll.registry();
        match crate::panic::catch(|| entry.deregister(registry)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!("deregistering a removed source: {e}"),
            Err(why) => error!("deregistering a removed source panicked: {why}"),
        }
        crate::panic::drop_caught(entry, "a removed source");
    }
}
