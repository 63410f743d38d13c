//! What a reactor in memory records: each memory connection's bytes and
//! end, the listens and connects asked of it, and a stop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::MemoryReactor;
use crate::reactor::Reactor;
use crate::reason::Reason;
use crate::tcp::{ListenOptions, ListenerHandle};
use crate::transport::ConnectionId;

/// A listen a [`MemoryReactor`] recorded instead of binding a socket
/// (Twisted's `MemoryReactor.tcpServers`). Its listener is real, without a
/// socket: [`MemoryReactor::accept`] makes connections on it, under its
/// limits, and it stops as any other.
///
/// ```
/// use std::net::SocketAddr;
/// use reactor::protocols::Echo;
/// use reactor::testing::MemoryReactor;
///
/// let mut memory = MemoryReactor::new()?;
/// let addr: SocketAddr = "127.0.0.1:8000".parse().unwrap();
/// memory.listen_tcp(addr, || Echo)?;
/// let listened = memory.listens()[0];
/// assert_eq!((listened.addr, listened.tls), (addr, false));
/// assert_eq!(listened.handle.local_addr(), addr);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ListenRequest {
    /// The address asked for (port 0 stays 0: nothing is bound).
    pub addr: SocketAddr,
    /// The options it was asked with.
    pub options: ListenOptions,
    /// It was `listen_tls`: the connections it makes carry plaintext all
    /// the same (TLS is not simulated).
    pub tls: bool,
    /// The handle `listen_tcp` returned, for [`MemoryReactor::accept`].
    pub handle: ListenerHandle,
}

/// A connect a [`MemoryReactor`] recorded instead of opening a socket
/// (Twisted's `MemoryReactor.tcpClients`): its connection waits, connecting,
/// until the test completes it ([`MemoryReactor::complete_connect`]), fails
/// it ([`MemoryReactor::fail_connect`]), or its timeout passes on the
/// manual clock.
///
/// ```
/// use std::time::Duration;
/// use reactor::protocols::Echo;
/// use reactor::testing::MemoryReactor;
///
/// let mut memory = MemoryReactor::new()?;
/// let addr = "127.0.0.1:7".parse().unwrap();
/// let id = memory.connect_tcp(addr, || Echo, Duration::from_secs(5));
/// let asked = memory.connects()[0];
/// assert_eq!((asked.addr, asked.timeout, asked.id), (addr, Duration::from_secs(5), id));
/// assert!(!memory.is_connected(id), "still connecting");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConnectRequest {
    /// Where it was asked to connect.
    pub addr: SocketAddr,
    /// The connect timeout it was given.
    pub timeout: Duration,
    /// It was `connect_tls` (the connection carries plaintext all the same).
    pub tls: bool,
    /// The id `connect_tcp` returned: the connection's once made.
    pub id: ConnectionId,
}

/// What a reactor in memory keeps besides its slots.
#[derive(Default)]
pub(crate) struct Memory {
    /// Every memory connection made, open or closed: what its peer got.
    pub(crate) records: HashMap<ConnectionId, Record>,
    pub(crate) listens: Vec<ListenRequest>,
    pub(crate) connects: Vec<ConnectRequest>,
    pub(crate) stop_requested: bool,
    /// Connections whose reading resumed while input or the peer's close
    /// waited for them: served after the current callback, as the real
    /// reactor's leftover queue does.
    pub(crate) ready: Vec<ConnectionId>,
    /// The next local port a client connection gets.
    pub(super) next_port: u16,
}

/// What the test sees of one memory connection, kept after it closes.
#[derive(Default)]
pub(crate) struct Record {
    /// Everything its peer read, in order.
    pub(crate) received: Vec<u8>,
    /// Our FIN reached the peer (`lose_write_connection`, flushed).
    pub(crate) write_shut: bool,
    /// Why it closed, once `connection_lost` ran.
    pub(crate) closed: Option<Reason>,
}

impl Reactor {
    pub(crate) fn memory_mut(&mut self) -> &mut Memory {
        self.memory.get_or_insert_with(Box::default)
    }

    pub(super) fn record_mut(&mut self, id: ConnectionId) -> &mut Record {
        self.memory_mut().records.entry(id).or_default()
    }

    /// Records a listen made on a reactor in memory.
    pub(crate) fn record_listen(
        &mut self,
        handle: ListenerHandle,
        options: ListenOptions,
        tls: bool,
    ) {
        self.memory_mut().listens.push(ListenRequest {
            addr: handle.local_addr(),
            options,
            tls,
            handle,
        });
    }
}

impl MemoryReactor {
    /// Everything the peer of connection `id` has read so far, in order:
    /// what its protocol wrote and what other connections wrote to it
    /// (`write_to`); kept after it closes. Empty for an id that names no
    /// memory connection.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.write_to(id, b"from elsewhere, ");
    /// memory.receive(id, b"echoed");
    /// assert_eq!(memory.written(id), b"from elsewhere, echoed");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn written(&mut self, id: ConnectionId) -> &[u8] {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get(&id)
            .map_or(&[], |r| &r.received)
    }

    /// [`written`](MemoryReactor::written), emptied: what the peer read
    /// since the last `take_written`.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.receive(id, b"one");
    /// assert_eq!(memory.take_written(id), b"one");
    /// memory.receive(id, b"two");
    /// assert_eq!(memory.take_written(id), b"two");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn take_written(&mut self, id: ConnectionId) -> Vec<u8> {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get_mut(&id)
            .map_or_else(Vec::new, |r| std::mem::take(&mut r.received))
    }

    /// Whether connection `id` has closed (its `connection_lost` ran).
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.lose_connection(id);
    /// assert!(memory.is_closed(id));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_closed(&mut self, id: ConnectionId) -> bool {
        self.close_reason(id).is_some()
    }

    /// Why connection `id` closed, as its `connection_lost` was told;
    /// `None` while it is open (or for an id that names no memory
    /// connection).
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::Reason;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// assert_eq!(memory.close_reason(id), None);
    /// memory.abort_connection(id);
    /// assert_eq!(memory.close_reason(id), Some(&Reason::Aborted));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn close_reason(&mut self, id: ConnectionId) -> Option<&Reason> {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get(&id)
            .and_then(|r| r.closed.as_ref())
    }

    /// Whether our side of connection `id` was shut and the peer got its
    /// FIN (`lose_write_connection`, once what was buffered was read).
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect(Echo, "127.0.0.1:40000".parse().unwrap());
    /// memory.lose_write_connection(id);
    /// assert!(memory.is_write_shut(id));
    /// assert!(!memory.is_closed(id), "it still reads");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_write_shut(&mut self, id: ConnectionId) -> bool {
        self.settle();
        self.reactor
            .memory_mut()
            .records
            .get(&id)
            .is_some_and(|r| r.write_shut)
    }

    /// The listens asked for, in order, stopped ones included.
    ///
    /// ```
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// assert!(memory.listens().is_empty());
    /// let handle = memory.listen_tcp("127.0.0.1:7".parse().unwrap(), || Echo)?;
    /// assert_eq!(memory.listens().len(), 1);
    /// assert!(handle.stop(&mut memory));
    /// assert_eq!(memory.listens().len(), 1, "still recorded");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn listens(&self) -> &[ListenRequest] {
        self.reactor
            .memory
            .as_ref()
            .map_or(&[], |m| m.listens.as_slice())
    }

    /// The connects asked for, in order, whatever became of them.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reactor::protocols::Echo;
    /// use reactor::testing::MemoryReactor;
    /// use reactor::Reason;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// let id = memory.connect_tcp("127.0.0.1:7", || Echo, Duration::from_secs(3));
    /// assert_eq!(memory.connects()[0].id, id);
    /// memory.advance(Duration::from_secs(3));
    /// assert_eq!(memory.close_reason(id), Some(&Reason::TimedOut));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connects(&self) -> &[ConnectRequest] {
        self.reactor
            .memory
            .as_ref()
            .map_or(&[], |m| m.connects.as_slice())
    }

    /// Whether [`Reactor::stop`] was called (from a callback, or by the
    /// test). The stop is only recorded: connections stay open and timers
    /// keep running.
    ///
    /// ```
    /// use reactor::testing::MemoryReactor;
    ///
    /// let mut memory = MemoryReactor::new()?;
    /// memory.call_later(std::time::Duration::ZERO, |r| r.stop());
    /// assert!(!memory.stop_requested());
    /// memory.advance(std::time::Duration::ZERO);
    /// assert!(memory.stop_requested());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop_requested(&self) -> bool {
        self.reactor
            .memory
            .as_ref()
            .is_some_and(|m| m.stop_requested)
    }
}
