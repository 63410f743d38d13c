//! [`Siblings`]: a reactor's place in its pool, and the way code on one
//! reactor reaches the others.

use std::fmt;
use std::sync::Arc;

use crate::ReactorHandle;

/// A reactor's place in a [`ReactorPool`](crate::ReactorPool): its index,
/// and a [`ReactorHandle`] on every reactor of the pool (its own included),
/// so code on one reactor can reach the others.
///
/// The pool gives it to every builder it calls (one call per reactor, on
/// that reactor's thread); a factory that keeps a clone can hand it to the
/// protocols it builds. It is `Send + Sync` and cheap to clone (one `Arc`).
/// A handle only queues a closure for the other reactor's next turn
/// ([`ReactorHandle::call_from_thread`]): nothing of one reactor is ever
/// touched from another's thread, so protocols need not be `Send`, and
/// what a closure sends along must be.
///
/// ```
/// use std::sync::mpsc::channel;
/// use reactor::ReactorPool;
///
/// let pool = ReactorPool::new(2)?;
/// let (tx, rx) = channel();
/// // Reactor 0 asks reactor 1 which one it is; the answer comes back by channel.
/// pool.call_on(0, move |_reactor, siblings| {
///     let tx = tx.clone();
///     let mine = siblings.index();
///     siblings.handle(1).unwrap().call_from_thread(move |_| {
///         let there = std::thread::current().name().map(String::from);
///         tx.send((mine, there)).unwrap();
///     });
/// })?;
/// let (from, there) = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
/// assert_eq!((from, there.as_deref()), (0, Some("reactor-1")));
/// pool.stop();
/// pool.wait()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Siblings {
    index: usize,
    handles: Arc<[ReactorHandle]>,
}

impl Siblings {
    pub(crate) fn new(index: usize, handles: Arc<[ReactorHandle]>) -> Siblings {
        Siblings { index, handles }
    }

    /// This reactor's index in the pool, from 0 to [`count`](Self::count)` - 1`
    /// (its thread is named `reactor-INDEX`).
    ///
    /// ```
    /// # let pool = reactor::ReactorPool::new(3)?;
    /// let index = pool.call_on(2, |_, siblings| siblings.index())?;
    /// assert_eq!(index, 2);
    /// # pool.stop();
    /// # pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many reactors the pool runs.
    ///
    /// ```
    /// # let pool = reactor::ReactorPool::new(3)?;
    /// assert_eq!(pool.call_on(0, |_, siblings| siblings.count())?, 3);
    /// # pool.stop();
    /// # pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// The handle on reactor `index`, if there is one.
    ///
    /// ```
    /// # let pool = reactor::ReactorPool::new(3)?;
    /// let found = pool.call_on(0, |_, siblings| {
    ///     (siblings.handle(2).is_some(), siblings.handle(3).is_some())
    /// })?;
    /// assert_eq!(found, (true, false));
    /// # pool.stop();
    /// # pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handle(&self, index: usize) -> Option<&ReactorHandle> {
        self.handles.get(index)
    }

    /// The handle on this reactor itself (a closure sent through it runs at
    /// this reactor's next turn).
    ///
    /// ```
    /// use std::sync::mpsc::channel;
    /// use std::time::Duration;
    /// # let pool = reactor::ReactorPool::new(3)?;
    /// let (tx, rx) = channel();
    /// pool.call_on(1, move |_, siblings| {
    ///     siblings.own().call_from_thread(move |_| {
    ///         tx.send(std::thread::current().name().map(String::from)).unwrap();
    ///     });
    /// })?;
    /// let ran_on = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    /// assert_eq!(ran_on.as_deref(), Some("reactor-1"));
    /// # pool.stop();
    /// # pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn own(&self) -> &ReactorHandle {
        &self.handles[self.index]
    }

    /// Every reactor's handle, in index order, this one's included.
    ///
    /// ```
    /// # let pool = reactor::ReactorPool::new(3)?;
    /// assert_eq!(pool.call_on(1, |_, siblings| siblings.handles().len())?, 3);
    /// # pool.stop();
    /// # pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn handles(&self) -> &[ReactorHandle] {
        &self.handles
    }

    /// The other reactors' handles, with their indexes.
    ///
    /// ```
    /// # let pool = reactor::ReactorPool::new(3)?;
    /// let others: Vec<usize> = pool.call_on(1, |_, siblings| {
    ///     siblings.others().map(|(index, _)| index).collect()
    /// })?;
    /// assert_eq!(others, [0, 2]);
    /// # pool.stop();
    /// # pool.wait()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn others(&self) -> impl Iterator<Item = (usize, &ReactorHandle)> {
        let own = self.index;
        self.handles
            .iter()
            .enumerate()
            .filter(move |(index, _)| *index != own)
    }
}

impl fmt::Debug for Siblings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Siblings")
            .field("index", &self.index)
            .field("count", &self.handles.len())
            .finish()
    }
}
