//! Timers: a binary heap of deadlines over a slab of pending entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use slab::Slab;

/// Names a scheduled timer, for [`Reactor::cancel`](crate::Reactor::cancel).
///
/// The sequence number makes ids unique for the reactor's lifetime, so an id
/// kept after its timer fired cancels nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: u32,
    seq: u64,
}

struct Entry<A> {
    seq: u64,
    action: A,
}

/// Pending timers: `slab` holds the live ones, `heap` orders them by
/// `(deadline, seq)` so equal deadlines fire in scheduling order.
///
/// Cancelling removes the slab entry at once and leaves its heap entry to be
/// skipped when popped; the heap is rebuilt when such dead entries outnumber
/// the live ones (Twisted purges its heap the same way).
pub(crate) struct TimerHeap<A> {
    heap: BinaryHeap<Reverse<(Instant, u64, u32)>>,
    entries: Slab<Entry<A>>,
    next_seq: u64,
}

impl<A> TimerHeap<A> {
    pub(crate) fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            entries: Slab::new(),
            next_seq: 0,
        }
    }

    pub(crate) fn insert(&mut self, deadline: Instant, action: A) -> TimerId {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key = self.entries.insert(Entry { seq, action }) as u32;
        self.heap.push(Reverse((deadline, seq, key)));
        TimerId { key, seq }
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<A> {
        let live = self
            .entries
            .get(id.key as usize)
            .is_some_and(|e| e.seq == id.seq);
        if !live {
            return None;
        }
        let entry = self.entries.remove(id.key as usize);
        if self.heap.len() > 64 && self.heap.len() > 2 * self.entries.len() {
            let entries = &self.entries;
            self.heap.retain(|Reverse((_, seq, key))| {
                entries.get(*key as usize).is_some_and(|e| e.seq == *seq)
            });
        }
        Some(entry.action)
    }

    /// The sequence number the next timer will get: timers scheduled from now
    /// on have a number at least this large.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Removes and returns the earliest live timer that is due at `now` and
    /// was scheduled before sequence number `before`.
    pub(crate) fn pop_due(&mut self, now: Instant, before: u64) -> Option<(TimerId, A)> {
        while let Some(&Reverse((deadline, seq, key))) = self.heap.peek() {
            let live = self.entries.get(key as usize).is_some_and(|e| e.seq == seq);
            if !live {
                self.heap.pop();
                continue;
            }
            if deadline > now || seq >= before {
                return None;
            }
            self.heap.pop();
            let entry = self.entries.remove(key as usize);
            return Some((TimerId { key, seq }, entry.action));
        }
        None
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, seq, key))) = self.heap.peek() {
            if self.entries.get(key as usize).is_some_and(|e| e.seq == seq) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Removes every pending timer, handing back their actions.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = A> + '_ {
        self.heap.clear();
        self.entries.drain().map(|e| e.action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn equal_deadlines_fire_in_scheduling_order_and_cancel_skips() {
        let mut t = TimerHeap::new();
        let now = Instant::now();
        let late = t.insert(now + Duration::from_millis(5), "late");
        let a = t.insert(now, "a");
        let b = t.insert(now, "b");
        let c = t.insert(now, "c");
        assert_eq!(t.cancel(b), Some("b"));
        assert_eq!(t.cancel(b), None);
        let before = t.next_seq();
        let got: Vec<_> = std::iter::from_fn(|| t.pop_due(now, before)).collect();
        assert_eq!(got, vec![(a, "a"), (c, "c")]);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(5)));
        assert_eq!(
            t.pop_due(now + Duration::from_millis(5), before),
            Some((late, "late"))
        );
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn timers_scheduled_during_a_pass_wait_for_the_next() {
        let mut t = TimerHeap::new();
        let now = Instant::now();
        t.insert(now, 1);
        let before = t.next_seq();
        assert!(t.pop_due(now, before).is_some());
        t.insert(now, 2);
        assert_eq!(t.pop_due(now, before), None);
        assert!(t.pop_due(now, t.next_seq()).is_some());
    }

    #[test]
    fn many_cancels_keep_the_heap_small() {
        let mut t = TimerHeap::new();
        let now = Instant::now();
        for i in 0..10_000u32 {
            let id = t.insert(now + Duration::from_secs(u64::from(i)), i);
            t.cancel(id);
        }
        assert!(
            t.heap.len() <= 130,
            "heap kept {} dead entries",
            t.heap.len()
        );
    }
}
