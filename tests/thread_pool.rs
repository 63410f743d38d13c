//! `Reactor::run_in_thread`: every result comes back once, the pool's size
//! and queue bound it, a panicking job is an error and not a dead thread,
//! and a stop waits for jobs within the grace but never hangs on one.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{wait_until, WAIT};
use reactor::{JobPanicked, PoolError, Reactor};

/// Stops the reactor after [`WAIT`] if the test's own stop never comes, and
/// says so through the returned flag.
fn guard(reactor: &mut Reactor) -> Rc<Cell<bool>> {
    let fired = Rc::new(Cell::new(false));
    let flag = fired.clone();
    reactor.call_later(WAIT, move |r| {
        flag.set(true);
        r.stop();
    });
    fired
}

/// The name of the thread this runs on.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Holds jobs until `count` have arrived and the test has opened it.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Arrives, then waits for `count` arrivals and the opening; false if
    /// that took longer than [`WAIT`].
    fn arrive_and_wait(&self, count: usize) -> bool {
        let mut state = self.state.lock().unwrap();
        state.0 += 1;
        self.changed.notify_all();
        let deadline = Instant::now() + WAIT;
        while state.0 < count || !state.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.changed.wait_timeout(state, left).unwrap().0;
        }
        true
    }

    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

#[test]
fn a_thousand_jobs_each_answer_once_on_at_most_n_threads() {
    const JOBS: usize = 1000;
    const THREADS: usize = 3;
    let mut reactor = Reactor::new().unwrap();
    reactor.set_thread_pool_limits(THREADS, JOBS);
    let timed_out = guard(&mut reactor);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let threads = Arc::new(Mutex::new(HashSet::new()));
    // The first THREADS jobs hold their threads until every job was given
    // to the pool: THREADS run at once, and a pool that started a thread
    // per waiting job would start more while they hold.
    let gate = Arc::new(Gate::default());
    let gate_met = Arc::new(AtomicUsize::new(0));
    let answers = Rc::new(RefCell::new(vec![0u32; JOBS]));
    let received = Rc::new(Cell::new(0));
    for i in 0..JOBS {
        let (running, most, threads) = (running.clone(), most.clone(), threads.clone());
        let (gate, gate_met) = (gate.clone(), gate_met.clone());
        let work = move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            threads.lock().unwrap().insert(thread_name());
            if i < THREADS && gate.arrive_and_wait(THREADS) {
                gate_met.fetch_add(1, Ordering::SeqCst);
            }
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        };
        let (answers, received) = (answers.clone(), received.clone());
        let on_done = move |r: &mut Reactor, value: Result<usize, JobPanicked>| {
            assert_eq!(value.unwrap(), i * 2);
            answers.borrow_mut()[i] += 1;
            received.set(received.get() + 1);
            if received.get() == JOBS {
                r.stop();
            }
        };
        reactor.run_in_thread(work, on_done).unwrap();
    }
    assert_eq!(reactor.jobs_in_flight(), JOBS);
    gate.open();
    reactor.run().unwrap();
    assert!(
        !timed_out.get(),
        "only {} of {JOBS} results came back",
        received.get()
    );
    assert!(
        answers.borrow().iter().all(|&n| n == 1),
        "a result came back twice"
    );
    assert_eq!(reactor.jobs_in_flight(), 0);
    assert_eq!(
        gate_met.load(Ordering::SeqCst),
        THREADS,
        "{THREADS} jobs never ran at once"
    );
    assert_eq!(most.load(Ordering::SeqCst), THREADS);
    let threads = threads.lock().unwrap();
    assert_eq!(threads.len(), THREADS, "jobs ran on {threads:?}");
    assert!(threads.iter().all(|name| name.starts_with("reactor-pool-")));
}

#[test]
fn a_panicking_job_is_an_error_for_on_done_and_its_thread_takes_the_next() {
    let mut reactor = Reactor::new().unwrap();
    reactor.set_thread_pool_limits(1, 10);
    let timed_out = guard(&mut reactor);
    let panicked_on = Arc::new(Mutex::new(String::new()));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let record = panicked_on.clone();
    let log = seen.clone();
    reactor
        .run_in_thread(
            move || -> String {
                *record.lock().unwrap() = thread_name();
                panic!("disk on fire");
            },
            move |_, result| log.borrow_mut().push(result.map_err(|e| e.to_string())),
        )
        .unwrap();
    // The job after it, on the one thread there is; its on_done panics too.
    let log = seen.clone();
    reactor
        .run_in_thread(thread_name, move |_, result| {
            log.borrow_mut().push(result.map_err(|e| e.to_string()));
            panic!("on_done on fire");
        })
        .unwrap();
    // And the loop goes on: one more job, given from a timer after those.
    let log = seen.clone();
    reactor.call_later(Duration::ZERO, move |r| {
        r.run_in_thread(thread_name, move |r, result| {
            log.borrow_mut().push(result.map_err(|e| e.to_string()));
            r.stop();
        })
        .unwrap();
    });
    reactor.run().unwrap();
    assert!(!timed_out.get(), "got only {:?}", seen.borrow());
    let thread = panicked_on.lock().unwrap().clone();
    assert_eq!(thread, "reactor-pool-0");
    assert_eq!(
        *seen.borrow(),
        [
            Err("the job panicked: disk on fire".to_string()),
            Ok(thread.clone()),
            Ok(thread)
        ]
    );
}

/// An `on_done` that notes `name` in `order`.
fn note<T>(
    order: &Rc<RefCell<Vec<&'static str>>>,
    name: &'static str,
) -> impl FnOnce(&mut Reactor, Result<T, JobPanicked>) + 'static {
    let order = order.clone();
    move |_, result| {
        assert!(result.is_ok(), "{name} panicked");
        order.borrow_mut().push(name);
    }
}

#[test]
fn a_full_pool_refuses_a_job_and_takes_one_again_once_there_is_room() {
    let mut reactor = Reactor::new().unwrap();
    reactor.set_thread_pool_limits(1, 2);
    let timed_out = guard(&mut reactor);
    let (release, gate) = channel::<()>();
    let order = Rc::new(RefCell::new(Vec::new()));
    // One running (held), two queued: the pool is full.
    let held = move || {
        gate.recv_timeout(WAIT).unwrap();
    };
    // Once a is done there is room for one more.
    let on_a = note(&order, "a");
    let order_d = order.clone();
    reactor
        .run_in_thread(held, move |r, result| {
            on_a(r, result);
            let d = note(&order_d, "d");
            r.run_in_thread(
                || (),
                move |r, result| {
                    d(r, result);
                    r.stop();
                },
            )
            .unwrap();
        })
        .unwrap();
    reactor.run_in_thread(|| (), note(&order, "b")).unwrap();
    reactor.run_in_thread(|| (), note(&order, "c")).unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let (flag, drop_flag) = (ran.clone(), DropFlag(dropped.clone()));
    let refused = reactor.run_in_thread(
        move || flag.store(true, Ordering::SeqCst),
        move |_, _: Result<(), JobPanicked>| drop(drop_flag),
    );
    assert!(
        matches!(refused, Err(PoolError::Full { in_flight: 3 })),
        "{refused:?}"
    );
    assert!(dropped.load(Ordering::SeqCst), "the refused job was kept");
    assert_eq!(reactor.jobs_in_flight(), 3);
    release.send(()).unwrap();
    reactor.run().unwrap();
    assert!(!timed_out.get(), "got only {:?}", order.borrow());
    assert_eq!(*order.borrow(), ["a", "b", "c", "d"]);
    assert!(!ran.load(Ordering::SeqCst), "the refused job ran");
}

#[test]
fn a_stop_waits_for_jobs_within_the_grace_and_abandons_the_rest_without_hanging() {
    const GRACE: Duration = Duration::from_millis(200);
    let (release_a, gate_a) = channel::<()>();
    let (release_b, gate_b) = channel::<()>();
    let b_value_dropped = Arc::new(AtomicBool::new(false));
    let c_ran = Arc::new(AtomicBool::new(false));
    let c_work_dropped = Arc::new(AtomicBool::new(false));
    let (b_flag, c_flag, c_guard, c_dropped) = (
        b_value_dropped.clone(),
        c_ran.clone(),
        DropFlag(c_work_dropped.clone()),
        c_work_dropped.clone(),
    );
    let (done_tx, done) = channel::<(Vec<&'static str>, Duration, usize, bool)>();
    // The reactor lives on a thread of its own, so a stop that hangs shows
    // as a missing answer instead of a hung test.
    let thread = std::thread::spawn(move || {
        let mut reactor = Reactor::new().unwrap();
        reactor.set_thread_pool_limits(1, 10);
        reactor.set_shutdown_grace(GRACE);
        let order = Rc::new(RefCell::new(Vec::new()));
        // a: done during the drain (released by the shutdown hook);
        // b: still running when the grace ends; c: queued behind b.
        let a = move || gate_a.recv_timeout(WAIT).is_ok();
        let b = move || {
            let _ = gate_b.recv_timeout(WAIT);
            DropFlag(b_flag)
        };
        let c = move || {
            let _keep = &c_guard;
            c_flag.store(true, Ordering::SeqCst);
        };
        reactor.run_in_thread(a, note(&order, "a")).unwrap();
        reactor.run_in_thread(b, note(&order, "b")).unwrap();
        reactor.run_in_thread(c, note(&order, "c")).unwrap();
        reactor.add_shutdown_hook(move |_| release_a.send(()).unwrap());
        reactor.call_later(Duration::ZERO, |r| r.stop());
        let started = Instant::now();
        reactor.run().unwrap();
        let took = started.elapsed();
        let order = order.borrow().clone();
        // Read before b is released: the pool's close dropped c, not b's end.
        let c_dropped = c_dropped.load(Ordering::SeqCst);
        done_tx
            .send((order, took, reactor.jobs_in_flight(), c_dropped))
            .unwrap();
    });
    let answer = done.recv_timeout(WAIT);
    // Whatever happened, let b finish so the threads end.
    release_b.send(()).ok();
    let (order, took, in_flight, c_dropped) = answer.expect("the stop hung on a running job");
    thread.join().unwrap();
    assert_eq!(
        order,
        ["a"],
        "a's on_done runs in the drain, b's and c's never"
    );
    assert!(took >= GRACE, "the drain did not wait for b: {took:?}");
    assert!(took < WAIT, "the stop took {took:?}");
    assert_eq!(in_flight, 0, "jobs still counted in flight after the stop");
    assert!(c_dropped, "c was not dropped when the pool closed");
    // b finishes on its thread once released; what it returns is dropped.
    wait_until("b's value is dropped", || {
        b_value_dropped.load(Ordering::SeqCst)
    });
    assert!(!c_ran.load(Ordering::SeqCst), "c ran after the stop");
}
