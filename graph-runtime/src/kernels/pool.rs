//! The threads matrix products (and loops split by samples,
//! `engine/split.rs`) are split across: a small persistent pool (spawned
//! once, on first use) that runs one job at a time, each thread a share
//! of the output: even, or (`run_rows`, for rows that are independent) in
//! proportion to how fast each thread has lately been, since two cores are
//! rarely equally fast for long. Handing out a job allocates nothing, so a
//! warmed-up training step stays allocation-free at any thread count
//! (rayon's `join`, measured, may allocate per call).
//!
//! A job is handed out through atomics: a worker that has just finished
//! one spins for a while (`SPIN`) watching for the next, so that the
//! products of a sequence's steps, tens of microseconds apart, reach it
//! in well under a microsecond; a worker that waits longer parks on a
//! condition variable and is woken by the next job. The caller runs its
//! own share and spins until the workers are done.
//!
//! Results do not depend on the thread count: a product split into tiles
//! computes every output element with the same operations in the same
//! order as one thread does. A call that finds the pool busy (another
//! thread's product) runs alone on its caller, with the same result.

use std::cell::{Cell, UnsafeCell};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// How many threads large products, and loops split by samples, use: [`set_threads`] if called, else
/// `NNGRAPH_THREADS`, else `RAYON_NUM_THREADS`, else the machine's cores,
/// at most [`MAX_THREADS`]. A variable that is set but is not a whole
/// number from 1 up is skipped, and one above [`MAX_THREADS`] counts as
/// [`MAX_THREADS`]; either way one warning says so on standard error.
pub fn threads() -> usize {
    let local = OVERRIDE.get();
    if local > 0 {
        return local;
    }
    match THREADS.load(Ordering::Relaxed) {
        0 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let (n, warnings) = threads_from(|v| std::env::var(v).ok(), cores);
            for w in warnings {
                eprintln!("nngraph: {w}");
            }
            // Another thread may have read the environment at the same
            // time: the first to store wins, the warnings may show twice.
            match THREADS.compare_exchange(0, n, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => n,
                Err(set) => set,
            }
        }
        n => n,
    }
}

/// The thread count the environment asks for (`var` reads a variable),
/// with `cores` as the fallback, and what is wrong with the variables.
pub(crate) fn threads_from(var: impl Fn(&str) -> Option<String>, cores: usize) -> (usize, Vec<String>) {
    let mut warnings = Vec::new();
    for name in ["NNGRAPH_THREADS", "RAYON_NUM_THREADS"] {
        let Some(value) = var(name) else { continue };
        match value.trim().parse::<usize>() {
            Ok(n) if n > MAX_THREADS => {
                warnings.push(format!(
                    "{name}={value} is more than the {MAX_THREADS} threads a product is split across; using {MAX_THREADS}"
                ));
                return (MAX_THREADS, warnings);
            }
            Ok(n) if n > 0 => return (n, warnings),
            _ => warnings.push(format!(
                "{name}={value:?} is not a whole number from 1 up; ignored"
            )),
        }
    }
    let n = cores.clamp(1, MAX_THREADS);
    if !warnings.is_empty() {
        warnings.push(format!("using the machine's {n} cores"));
    }
    (n, warnings)
}

/// Sets how many threads large products and split loops use (1 to [`MAX_THREADS`]) for the
/// whole process. Results are the same for any count. Another count is an
/// error, and nothing changes.
pub fn set_threads(n: usize) -> crate::Result<()> {
    if !(1..=MAX_THREADS).contains(&n) {
        return Err(crate::Error::Setting {
            owner: "set_threads".into(),
            message: format!("a thread count is from 1 to {MAX_THREADS}, not {n}"),
        });
    }
    THREADS.store(n, Ordering::Relaxed);
    Ok(())
}

/// Runs `f` with products on this thread using `n` threads, whatever the
/// process-wide count; `n` is taken into 1 to [`MAX_THREADS`] (a scoped
/// override for tests and benches: 0 runs on one thread).
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

/// How long a worker watches for the next job before it parks: longer than
/// the gaps between the products of a sequence's steps.
const SPIN: Duration = Duration::from_micros(1000);

struct Pool {
    /// Per job, the job's number and how many threads take part in it (the
    /// caller is part 0), as `number << 8 | parts`, written once the job is
    /// (SeqCst); a worker runs each generation once. One word, so that a
    /// worker reads the part count of the job it saw: read apart, a worker
    /// not in one job but late to see it could read the next job's count,
    /// take part in that job, then take part in it again.
    generation: AtomicU64,
    /// The job: written by the dispatcher while no worker reads it (every
    /// worker of the previous job has finished), read by the workers after
    /// they see its generation.
    task: UnsafeCell<Option<Task>>,
    /// Workers of the job not yet done.
    pending: AtomicUsize,
    /// A worker's task panicked.
    panicked: AtomicBool,
    /// Held by the caller for the duration of a job: one job at a time.
    busy: Mutex<()>,
    workers: AtomicUsize,
    /// Workers parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    park: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `task` is written only by the holder of `busy` while no worker
// reads it, and read by workers only between a generation's publication
// (Release/Acquire) and their decrement of `pending`, which the dispatcher
// waits for before writing again.
unsafe impl Sync for Pool {}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        generation: AtomicU64::new(0),
        task: UnsafeCell::new(None),
        pending: AtomicUsize::new(0),
        panicked: AtomicBool::new(false),
        busy: Mutex::new(()),
        workers: AtomicUsize::new(0),
        sleepers: AtomicUsize::new(0),
        park: Mutex::new(()),
        wake: Condvar::new(),
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
            let seen = self.generation.load(Ordering::Acquire);
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

    /// Waits for a generation other than `seen`: spinning for [`SPIN`],
    /// then parked.
    fn next(&self, seen: u64) -> u64 {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let g = self.generation.load(Ordering::Acquire);
            if g != seen {
                return g;
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() > SPIN {
                break;
            }
        }
        let mut guard = self.park.lock().unwrap_or_else(|e| e.into_inner());
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let g = loop {
            let g = self.generation.load(Ordering::SeqCst);
            if g != seen {
                break g;
            }
            guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        g
    }

    fn work(&self, index: usize, mut seen: u64) {
        loop {
            seen = self.next(seen);
            if index >= generation_parts(seen) {
                continue; // not part of this job
            }
            // SAFETY: see `Pool`'s `Sync`: the job is not written again
            // before this worker's decrement of `pending` below.
            let task = unsafe { *self.task.get() };
            let ok = match task {
                // SAFETY: the dispatcher keeps the task alive until `pending`
                // reaches zero, which this worker's decrement below precedes.
                Some(Task(f)) => {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*f)(index) })).is_ok()
                }
                None => true,
            };
            WORKER_JOBS.fetch_add(1, Ordering::Relaxed);
            if !ok {
                self.panicked.store(true, Ordering::Release);
            }
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Runs `f(0)`, ..., `f(parts - 1)`, part 0 on the calling thread and the
/// others on the pool's workers, and returns when all are done. Runs every
/// part on the caller when the pool is busy or `parts` is 1.
pub fn run(parts: usize, f: &(dyn Fn(usize) + Sync)) {
    const _: () = assert!(MAX_THREADS < 256, "a generation keeps the part count in 8 bits");
    run_parts(parts, f);
}

/// The part count of a job's generation (see `Pool::generation`).
fn generation_parts(generation: u64) -> usize {
    (generation & 0xff) as usize
}

/// [`run`], saying whether the parts ran on as many threads.
fn run_parts(parts: usize, f: &(dyn Fn(usize) + Sync)) -> bool {
    if parts <= 1 {
        f(0);
        return false;
    }
    let pool = pool();
    let Ok(_busy) = pool.busy.try_lock() else {
        (0..parts).for_each(f);
        return false;
    };
    // With fewer workers than asked for (none could be spawned), the parts
    // without a worker run on the caller: the same result.
    let workers = pool.grow(parts - 1);
    if workers + 1 < parts {
        (0..parts).for_each(f);
        return false;
    }
    // The workers use the caller's kernels.
    let level = super::dispatch::level();
    let f = &|p: usize| super::dispatch::with_level(level, || f(p));
    let f: &(dyn Fn(usize) + Sync) = f;
    // SAFETY: `f` outlives the job: this function waits below until every
    // worker is done with it before returning.
    let task: Task = Task(unsafe {
        std::mem::transmute::<*const (dyn Fn(usize) + Sync + '_), *const (dyn Fn(usize) + Sync + 'static)>(f)
    });
    // SAFETY: no worker reads the job now (the last one's workers are all
    // done: its dispatcher waited for them), and `busy` is ours.
    unsafe { *pool.task.get() = Some(task) };
    pool.pending.store(parts - 1, Ordering::Relaxed);
    pool.panicked.store(false, Ordering::Relaxed);
    // `busy` is ours: no other dispatcher writes the generation meanwhile.
    let number = (pool.generation.load(Ordering::Relaxed) >> 8) + 1;
    pool.generation
        .store(number << 8 | parts as u64, Ordering::SeqCst);
    if pool.sleepers.load(Ordering::SeqCst) > 0 {
        let _guard = pool.park.lock().unwrap_or_else(|e| e.into_inner());
        pool.wake.notify_all();
    }
    let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
    let mut spins = 0u32;
    while pool.pending.load(Ordering::Acquire) > 0 {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(4096) {
            // A worker that was parked takes a while to wake.
            std::thread::yield_now();
        }
    }
    // SAFETY: every worker is done with the job.
    unsafe { *pool.task.get() = None };
    let panicked = pool.panicked.load(Ordering::Acquire);
    if let Err(payload) = mine {
        std::panic::resume_unwind(payload);
    }
    assert!(!panicked, "a matrix-product thread panicked");
    true
}

/// Splits `rows` into `parts` runs of whole micro-tiles (`align` rows):
/// the start of part `p`. The same split for the same arguments. Tiles
/// that do not divide evenly go to the first parts: the caller runs part 0
/// at once while the workers take a moment to start (a step's backward
/// product, 9 tiles of 6 rows for a batch of 50, was 4 on the caller and 5
/// on the worker, and the caller waited).
pub fn split(rows: usize, parts: usize, align: usize, p: usize) -> usize {
    let tiles = rows.div_ceil(align);
    ((tiles * p).div_ceil(parts) * align).min(rows)
}

/// How fast each thread has been on the jobs of [`run_rows`] lately, as
/// its share of a job (in units of [`Shares::ONE`]; 0 before any job): the
/// calling thread at 0, the workers after it. Two cores are rarely equally
/// fast for long: another process, or a virtual machine's host, takes
/// time from one of them, and an even split then leaves the other waiting
/// (measured on a 2-vCPU VM: one thread 10% to 40% slower than the other
/// over minutes, the side changing from run to run).
struct Shares([AtomicU64; MAX_THREADS]);

impl Shares {
    const ONE: u64 = 1 << 20;

    /// The share of thread `p` among `parts` (equal until measured).
    fn of(&self, p: usize, parts: usize) -> u64 {
        match self.0[p].load(Ordering::Relaxed) {
            0 => Self::ONE / parts as u64,
            w => w,
        }
    }
}

static SHARES: Shares = Shares([const { AtomicU64::new(0) }; MAX_THREADS]);

/// Sets the threads' shares (tests: a split as uneven as it may get).
#[cfg(test)]
pub(crate) fn set_shares(shares: &[u64]) {
    for (p, s) in SHARES.0.iter().enumerate() {
        s.store(shares.get(p).copied().unwrap_or(0), Ordering::Relaxed);
    }
}

/// Parts shorter than this (on every thread) are too short to time.
const TIMED: Duration = Duration::from_micros(50);

/// Runs `f(p, rows)` for `parts` runs of `0..rows` in whole tiles of
/// `align` rows, one per thread as [`run`] does, the runs' lengths in
/// proportion to how fast each thread has been (see [`Shares`]), each run
/// at least a tile while there are tiles enough. For work whose rows are
/// independent (the results do not depend on the split): how fast each
/// part ran is measured and the shares moved a quarter of the way to it.
pub(crate) fn run_rows(parts: usize, rows: usize, align: usize, f: &(dyn Fn(usize, Range<usize>) + Sync)) {
    let parts = parts.clamp(1, MAX_THREADS);
    let tiles = rows.div_ceil(align.max(1));
    let mut starts = [0usize; MAX_THREADS + 1];
    let share = |p: usize| SHARES.of(p, parts);
    let total: u64 = (0..parts).map(share).sum();
    let mut before = 0u64;
    for p in 1..parts {
        before += share(p - 1);
        let at = ((tiles as u128 * before as u128 + total as u128 / 2) / total as u128) as usize;
        // At least one tile for each part while there are tiles enough.
        let at = at.clamp(
            starts[p - 1] + usize::from(tiles >= parts),
            tiles - (parts - p).min(tiles),
        );
        starts[p] = at.max(starts[p - 1]);
    }
    starts[parts] = tiles;
    let run_of = |p: usize| (starts[p] * align).min(rows)..(starts[p + 1] * align).min(rows);
    let took: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];
    let split = run_parts(parts, &|p| {
        let start = Instant::now();
        f(p, run_of(p));
        took[p].store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    });
    if !split {
        return;
    }
    // Rows per nanosecond on each thread; nothing learned from parts too
    // short to time, or empty.
    let mut rates = [0f64; MAX_THREADS];
    for (p, (rate, took)) in rates.iter_mut().zip(&took).take(parts).enumerate() {
        let (len, ns) = (run_of(p).len(), took.load(Ordering::Relaxed));
        if len == 0 || ns < TIMED.as_nanos() as u64 {
            return;
        }
        *rate = len as f64 / ns as f64;
    }
    let sum: f64 = rates[..parts].iter().sum();
    let even = Shares::ONE as f64 / parts as f64;
    for (p, rate) in rates.iter().take(parts).enumerate() {
        let now = SHARES.of(p, parts) as f64;
        let measured = Shares::ONE as f64 * rate / sum;
        // A quarter of the way, and never below half or above one and a
        // half of an even share: one disturbed job moves the split little.
        let next = (now + (measured - now) / 4.0).clamp(even / 2.0, even * 1.5);
        SHARES.0[p].store(next.max(1.0) as u64, Ordering::Relaxed);
    }
}
