//! The threads large matrix products are split across: a small persistent
//! pool (spawned once, on first use) that runs one job at a time, each
//! thread a fixed share of the output's rows. Handing out a job allocates
//! nothing, so a warmed-up training step stays allocation-free at any
//! thread count (rayon's `join`, measured, may allocate per call).
//!
//! Results do not depend on the thread count: a product split by rows
//! computes every output element with the same operations in the same
//! order as one thread does. A call that finds the pool busy (another
//! thread's product) runs alone on its caller, with the same result.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

/// The most threads a product is split across.
pub const MAX_THREADS: usize = 16;

/// The thread count set by [`set_threads`], 0 until set (then read from
/// the environment).
static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// A per-thread override, set by [`with_threads`].
    static OVERRIDE: Cell<usize> = const { Cell::new(0) };
}

/// Jobs the pool's workers have run (for tests: proof that work was split).
static WORKER_JOBS: AtomicU64 = AtomicU64::new(0);

/// How many threads large products use: [`set_threads`] if called, else
/// `NNGRAPH_THREADS`, else `RAYON_NUM_THREADS`, else the machine's cores.
pub fn threads() -> usize {
    let local = OVERRIDE.get();
    if local > 0 {
        return local;
    }
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let from_env = ["NNGRAPH_THREADS", "RAYON_NUM_THREADS"]
                .iter()
                .find_map(|v| std::env::var(v).ok()?.parse::<usize>().ok())
                .filter(|&n| n > 0);
            let n = from_env
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
                .min(MAX_THREADS);
            THREADS.store(n, Ordering::Relaxed);
            n
        }
        n => n,
    }
}

/// Sets how many threads large products use (1 to [`MAX_THREADS`]) for the
/// whole process. Results are the same for any count.
pub fn set_threads(n: usize) {
    THREADS.store(n.clamp(1, MAX_THREADS), Ordering::Relaxed);
}

/// Runs `f` with products on this thread using `n` threads, whatever the
/// process-wide count.
pub fn with_threads<R>(n: usize, f: impl FnOnce() -> R) -> R {
    let before = OVERRIDE.replace(n.clamp(1, MAX_THREADS));
    let result = f();
    OVERRIDE.set(before);
    result
}

/// How many jobs the pool's worker threads have run so far.
pub fn worker_jobs() -> u64 {
    WORKER_JOBS.load(Ordering::Relaxed)
}

/// A job's task, its lifetime erased: valid until the dispatching call
/// returns, which it does only after every worker has finished with it.
#[derive(Clone, Copy)]
struct Task(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync` and outlives every use (see `Task`).
unsafe impl Send for Task {}

struct State {
    /// Incremented per job; a worker runs each generation once.
    generation: u64,
    task: Option<Task>,
    /// Threads taking part in this job (the caller is part 0).
    parts: usize,
    /// Workers of this job not yet done.
    pending: usize,
    /// A worker's task panicked.
    panicked: bool,
}

struct Pool {
    state: Mutex<State>,
    start: Condvar,
    done: Condvar,
    /// Held by the caller for the duration of a job: one job at a time.
    busy: Mutex<()>,
    workers: AtomicUsize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State {
            generation: 0,
            task: None,
            parts: 0,
            pending: 0,
            panicked: false,
        }),
        start: Condvar::new(),
        done: Condvar::new(),
        busy: Mutex::new(()),
        workers: AtomicUsize::new(0),
    })
}

impl Pool {
    /// Makes sure `n` workers exist (each spawned once, for the process);
    /// how many there are. Called by the dispatcher while it holds `busy`
    /// and before it publishes its job.
    fn grow(&'static self, n: usize) -> usize {
        while self.workers.load(Ordering::Acquire) < n {
            let index = self.workers.load(Ordering::Acquire) + 1;
            // The worker waits for the job after this generation: the one
            // about to be published, which it must not miss.
            let seen = self.state.lock().unwrap_or_else(|e| e.into_inner()).generation;
            let spawned = std::thread::Builder::new()
                .name(format!("nngraph-{index}"))
                .spawn(move || self.work(index, seen));
            if spawned.is_err() {
                break; // no more threads: the job uses those there are
            }
            self.workers.fetch_add(1, Ordering::AcqRel);
        }
        self.workers.load(Ordering::Acquire)
    }

    fn work(&self, index: usize, mut seen: u64) {
        loop {
            let task = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                while state.generation == seen {
                    state = self.start.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                seen = state.generation;
                if index >= state.parts {
                    continue; // not part of this job
                }
                state.task
            };
            let ok = match task {
                // SAFETY: the dispatcher keeps the task alive until `pending`
                // reaches zero, which this worker's decrement below precedes.
                Some(Task(f)) => {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*f)(index) })).is_ok()
                }
                None => true,
            };
            WORKER_JOBS.fetch_add(1, Ordering::Relaxed);
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.panicked |= !ok;
            state.pending -= 1;
            if state.pending == 0 {
                self.done.notify_all();
            }
        }
    }
}

/// Runs `f(0)`, ..., `f(parts - 1)`, part 0 on the calling thread and the
/// others on the pool's workers, and returns when all are done. Runs every
/// part on the caller when the pool is busy or `parts` is 1.
pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    if parts <= 1 {
        f(0);
        return;
    }
    let pool = pool();
    let Ok(_busy) = pool.busy.try_lock() else {
        (0..parts).for_each(f);
        return;
    };
    // With fewer workers than asked for (none could be spawned), the parts
    // without a worker run on the caller: the same result.
    let workers = pool.grow(parts - 1);
    if workers + 1 < parts {
        (0..parts).for_each(f);
        return;
    }
    // SAFETY: `f` outlives the job: this function waits below until every
    // worker is done with it before returning.
    let task: Task = Task(unsafe {
        std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync + 'static)>(f)
    });
    {
        let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
        state.generation += 1;
        state.task = Some(task);
        state.parts = parts;
        state.pending = parts - 1;
        state.panicked = false;
        pool.start.notify_all();
    }
    let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    while state.pending > 0 {
        state = pool.done.wait(state).unwrap_or_else(|e| e.into_inner());
    }
    state.task = None;
    let panicked = state.panicked;
    drop(state);
    if let Err(payload) = mine {
        std::panic::resume_unwind(payload);
    }
    assert!(!panicked, "a matrix-product thread panicked");
}

/// Splits `rows` into `parts` runs of whole micro-tiles (`align` rows):
/// the start of part `p`. The same split for the same arguments.
pub fn split(rows: usize, parts: usize, align: usize, p: usize) -> usize {
    let tiles = rows.div_ceil(align);
    (tiles * p / parts * align).min(rows)
}
