//! Timers: a binary heap of deadlines over a slab of pending entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use slab::Slab;

/// Names a scheduled timer, for [`Reactor::cancel`](crate::Reactor::cancel),
/// [`Reactor::reset_timer`](crate::Reactor::reset_timer),
/// [`Reactor::delay_timer`](crate::Reactor::delay_timer) and
/// [`Reactor::is_timer_active`](crate::Reactor::is_timer_active) (Twisted's
/// `IDelayedCall`), or the [`Transport`](crate::Transport) methods of the
/// same names for a protocol's timers.
///
/// The sequence number makes ids unique for the reactor's lifetime, so an id
/// kept after its timer fired cancels, resets and delays nothing. A reset or
/// delayed timer keeps its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: u32,
    seq: u64,
}

struct Entry<A> {
    /// The id's sequence number: fixed for the timer's life.
    seq: u64,
    /// The sequence number of the heap record that stands for this timer:
    /// the id's at first, a fresh one at each reschedule (older records are
    /// then dead and skipped, as cancelled ones are).
    order: u64,
    deadline: Instant,
    action: A,
}

/// Pending timers: `slab` holds the live ones, `heap` orders them by
/// `(deadline, order)` so equal deadlines fire in scheduling order (a
/// rescheduled timer counts as scheduled when it was rescheduled).
///
/// Cancelling removes the slab entry at once and leaves its heap record to
/// be skipped when popped; rescheduling pushes a new record and leaves the
/// old one dead the same way. The heap is rebuilt when dead records
/// outnumber the live ones (Twisted purges its heap the same way), so every
/// operation stays O(log n) amortized and allocates nothing once the heap
/// and slab have grown to their working size.
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

    fn take_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    pub(crate) fn insert(&mut self, deadline: Instant, action: A) -> TimerId {
        let seq = self.take_seq();
        let key = self.entries.insert(Entry {
            seq,
            order: seq,
            deadline,
            action,
        }) as u32;
        self.heap.push(Reverse((deadline, seq, key)));
        TimerId { key, seq }
    }

    fn live(&self, id: TimerId) -> Option<&Entry<A>> {
        self.entries
            .get(id.key as usize)
            .filter(|e| e.seq == id.seq)
    }

    /// Whether the heap record `(order, key)` stands for a pending timer.
    fn record_live(&self, order: u64, key: u32) -> bool {
        self.entries
            .get(key as usize)
            .is_some_and(|e| e.order == order)
    }

    /// Whether `id` is still pending (not fired, not cancelled).
    pub(crate) fn is_active(&self, id: TimerId) -> bool {
        self.live(id).is_some()
    }

    /// When `id` comes due, if it is still pending.
    pub(crate) fn deadline(&self, id: TimerId) -> Option<Instant> {
        self.live(id).map(|e| e.deadline)
    }

    /// Moves pending timer `id` to `deadline`, keeping its id; false if it
    /// is not pending. Among equal deadlines it now ranks as if scheduled
    /// now, and a pass of [`pop_due`](Self::pop_due) under way does not
    /// fire it.
    pub(crate) fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        if !self.is_active(id) {
            return false;
        }
        let order = self.take_seq();
        let entry = &mut self.entries[id.key as usize];
        entry.order = order;
        entry.deadline = deadline;
        self.heap.push(Reverse((deadline, order, id.key)));
        self.compact_if_mostly_dead();
        true
    }

    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<A> {
        if !self.is_active(id) {
            return None;
        }
        let entry = self.entries.remove(id.key as usize);
        self.compact_if_mostly_dead();
        Some(entry.action)
    }

    /// Drops the dead heap records once they outnumber the live ones.
    fn compact_if_mostly_dead(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 2 * self.entries.len() {
            let entries = &self.entries;
            self.heap.retain(|Reverse((_, order, key))| {
                entries
                    .get(*key as usize)
                    .is_some_and(|e| e.order == *order)
            });
        }
    }

    /// The sequence number the next timer will get: timers scheduled from now
    /// on have a number at least this large.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Removes and returns the earliest live timer that is due at `now` and
    /// was (re)scheduled before sequence number `before`.
    pub(crate) fn pop_due(&mut self, now: Instant, before: u64) -> Option<(TimerId, A)> {
        while let Some(&Reverse((deadline, order, key))) = self.heap.peek() {
            if !self.record_live(order, key) {
                self.heap.pop();
                continue;
            }
            if deadline > now || order >= before {
                return None;
            }
            self.heap.pop();
            let entry = self.entries.remove(key as usize);
            let id = TimerId {
                key,
                seq: entry.seq,
            };
            return Some((id, entry.action));
        }
        None
    }

    /// The earliest live deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&Reverse((deadline, order, key))) = self.heap.peek() {
            if self.record_live(order, key) {
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
    fn a_rescheduled_timer_keeps_its_id_and_fires_once_at_its_new_deadline() {
        let mut t = TimerHeap::new();
        let now = Instant::now();
        let later = now + Duration::from_millis(5);
        let a = t.insert(now, "a");
        let b = t.insert(now, "b");
        assert!(t.reschedule(a, later));
        assert_eq!(t.deadline(a), Some(later));
        assert!(t.is_active(a));
        let before = t.next_seq();
        let due: Vec<_> = std::iter::from_fn(|| t.pop_due(now, before)).collect();
        assert_eq!(due, vec![(b, "b")], "a's old record is dead");
        assert!(!t.is_active(b) && t.deadline(b).is_none());
        assert!(!t.reschedule(b, later), "a fired timer cannot be reset");
        assert_eq!(t.next_deadline(), Some(later));
        // Rescheduled during a pass (after `before` was taken): waits for
        // the next pass, as a timer scheduled then would.
        let before = t.next_seq();
        assert!(t.reschedule(a, now));
        assert_eq!(t.pop_due(later, before), None);
        let before = t.next_seq();
        assert_eq!(t.pop_due(later, before), Some((a, "a")));
        assert_eq!((t.len(), t.next_deadline()), (0, None));
    }

    #[test]
    fn a_timer_rescheduled_earlier_fires_earlier_and_equal_deadlines_rank_by_reset() {
        let mut t = TimerHeap::new();
        let now = Instant::now();
        let a = t.insert(now + Duration::from_secs(3600), "a");
        let b = t.insert(now, "b");
        assert!(t.reschedule(a, now));
        let before = t.next_seq();
        let due: Vec<_> = std::iter::from_fn(|| t.pop_due(now, before)).collect();
        assert_eq!(due, vec![(b, "b"), (a, "a")]);
    }

    #[test]
    fn many_resets_keep_the_heap_small() {
        let mut t = TimerHeap::new();
        let now = Instant::now();
        let id = t.insert(now, 0);
        for i in 0..10_000u64 {
            assert!(t.reschedule(id, now + Duration::from_millis(i)));
        }
        assert!(
            t.heap.len() <= 130,
            "heap kept {} dead records",
            t.heap.len()
        );
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(9_999)));
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
