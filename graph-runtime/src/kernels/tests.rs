//! The products against a naive triple loop, around every block edge, with
//! each kernel the CPU has (AVX-512, AVX2) and with the portable ones.

use super::gemm::{Kernel, Lanes};
use super::*;

fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

fn fill(len: usize, seed: f64) -> Vec<f64> {
    (0..len).map(|i| ((i as f64 + seed) * 0.37).sin()).collect()
}

/// Sizes around every block edge: tiles of 6 and 32, 16 or 8, blocks of 72,
/// 256 and 2048; products of at most `SMALL_WORK` (2048) multiply-adds,
/// which skip the blocked path, and just above it.
const SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (5, 9, 3),
    (6, 8, 16),
    (7, 17, 13),
    (9, 3, 1),
    (8, 16, 16),
    (8, 16, 17),
    (1, 2049, 1),
    (6, 24, 16),
    (7, 41, 13),
    (9, 230, 1),
    (73, 257, 35),
    (12, 600, 17),
    (3, 5, 2050),
    (7, 33, 31),
    (6, 64, 32),
    (33, 70, 65),
    // Many rows: x · wᵀ with wᵀ packed per call, a last partial panel.
    (300, 37, 65),
];

/// Every product in f64 against the naive one.
fn check_f64_products() {
    for &(m, k, n) in SIZES {
        let a = fill(m * k, 1.0);
        let b = fill(k * n, 2.0);
        let want = naive(&a, &b, m, k, n);
        let tol = 1e-12 * k as f64;

        let mut c = vec![f64::NAN; m * n];
        matmul_a_bt(&a, &transpose(&b, k, n), &mut c, m, k, n);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < tol, "a_bt {m}x{k}x{n}: {x} vs {y}");
        }

        let mut c = vec![1.0; m * n];
        matmul_a_b_acc(&a, &b, &mut c, m, k, n);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - 1.0 - y).abs() < tol, "a_b_acc {m}x{k}x{n}");
        }

        let mut c = vec![-1.0; m * n];
        matmul_at_b_acc(&transpose(&a, m, k), &b, &mut c, k, m, n);
        for (x, y) in c.iter().zip(&want) {
            assert!((x + 1.0 - y).abs() < tol, "at_b_acc {m}x{k}x{n}");
        }
    }
}

/// Every product in f32 against the naive one in f64.
fn check_f32_products() {
    let f32s = |v: &[f64]| -> Vec<f32> { v.iter().map(|&x| x as f32).collect() };
    for &(m, k, n) in SIZES {
        let a = fill(m * k, 3.0);
        let b = fill(k * n, 4.0);
        let want = naive(&a, &b, m, k, n);
        let tol = 1e-5 * k as f64;
        let close = |c: &[f32], offset: f64, what: &str| {
            for (x, y) in c.iter().zip(&want) {
                assert!(
                    (*x as f64 - offset - y).abs() < tol,
                    "f32 {what} {m}x{k}x{n}: {x} vs {y}"
                );
            }
        };
        let mut c = vec![f32::NAN; m * n];
        matmul_a_bt(&f32s(&a), &f32s(&transpose(&b, k, n)), &mut c, m, k, n);
        close(&c, 0.0, "a_bt");
        let mut c = vec![1.0f32; m * n];
        matmul_a_b_acc(&f32s(&a), &f32s(&b), &mut c, m, k, n);
        close(&c, 1.0, "a_b_acc");
        let mut c = vec![-1.0f32; m * n];
        matmul_at_b_acc(&f32s(&transpose(&a, m, k)), &f32s(&b), &mut c, k, m, n);
        close(&c, -1.0, "at_b_acc");
    }
}

#[test]
fn products_match_naive_for_awkward_sizes() {
    // The best kernels the CPU has, then AVX2 (where the best are wider).
    for level in [Level::Best, Level::Avx2] {
        with_level(level, || {
            check_f64_products();
            check_f32_products();
        });
    }
}

/// The AVX-512 tile and the AVX2 tile compute each element by the same
/// chain of fused multiply-adds: the same bits whichever the CPU picks.
#[test]
fn the_wide_and_the_narrow_tiles_give_the_same_bits() {
    let f32s = |v: Vec<f64>| -> Vec<f32> { v.into_iter().map(|x| x as f32).collect() };
    for (m, k, n) in [(50, 128, 512), (200, 300, 256), (33, 70, 65)] {
        let (a, b, bt) = (
            f32s(fill(m * k, 0.1)),
            f32s(fill(k * n, 0.2)),
            f32s(fill(n * k, 0.3)),
        );
        let run = || {
            let mut c1 = vec![0.0f32; m * n];
            matmul_a_bt(&a, &bt, &mut c1, m, k, n);
            let mut c2 = vec![0.25f32; m * n];
            matmul_a_b_acc(&a, &b, &mut c2, m, k, n);
            [c1, c2]
        };
        let (best, avx2) = (with_level(Level::Best, run), with_level(Level::Avx2, run));
        for (x, y) in best.iter().zip(&avx2) {
            assert!(same_bits(x, y), "{m} x {k} x {n}");
        }
    }
}

/// The portable kernels and the blocked paths through them, on any CPU.
#[test]
fn portable_products_match_naive_for_awkward_sizes() {
    with_portable_kernels(|| {
        #[cfg(target_arch = "x86_64")]
        assert!(
            !simd::available(),
            "the override must switch the SIMD kernels off"
        );
        check_f64_products();
        check_f32_products();
    });
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        simd::available(),
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        "the override ends with the closure"
    );
}

/// Every micro-kernel (portable, AVX2, AVX-512 where the CPU has them) on
/// each layout of `a` (packed, rows in place, steps in place), with `b` and
/// `c` strided, stored and added, against the sums written out; and on
/// fewer rows than a whole tile: those rows bit for bit as the whole tile's,
/// the others of `c` untouched.
#[test]
fn every_tile_reads_each_layout_of_a() {
    fn check<T: Kernel + Into<f64>>(from: fn(f64) -> T, tol: f64) {
        let (mr, nr, kc) = (T::MR, T::nr(), 7);
        let (lda, ldb, ldc) = (kc + 3, nr + 5, nr + 2);
        let a: Vec<T> = fill(kc * lda.max(mr) + mr * lda, 0.25)
            .into_iter()
            .map(from)
            .collect();
        let b: Vec<T> = fill(kc * ldb, 2.5).into_iter().map(from).collect();
        let c0: Vec<T> = fill(mr * ldc, 0.75).into_iter().map(from).collect();
        type Layout = (&'static str, usize, usize);
        let layouts: [Layout; 3] = [("packed", mr, 1), ("rows", 1, lda), ("steps", lda, 1)];
        for (name, step, lane) in layouts {
            let at = |p: usize, i: usize| a[p * step + i * lane].into();
            for add in [false, true] {
                let mut whole = c0.clone();
                let lanes = Lanes { data: &a, step, lane };
                T::tile(kc, lanes, &b, ldb, &mut whole, ldc, add, mr);
                for i in 0..mr {
                    for j in 0..nr {
                        let sum: f64 = (0..kc).map(|p| at(p, i) * b[p * ldb + j].into()).sum();
                        let want = sum + if add { c0[i * ldc + j].into() } else { 0.0 };
                        let got: f64 = whole[i * ldc + j].into();
                        assert!(
                            (got - want).abs() < tol,
                            "{name} add={add} ({i}, {j}): {got} vs {want}"
                        );
                    }
                    // Past the tile's columns nothing is written.
                    for j in nr..ldc {
                        assert_eq!(
                            whole[i * ldc + j].into(),
                            c0[i * ldc + j].into(),
                            "{name} wrote past nr"
                        );
                    }
                }
                for rows in 1..mr {
                    // `a` just long enough for `rows` lanes, `c` for `rows` rows.
                    let used = (kc - 1) * step + (rows - 1) * lane + 1;
                    let lanes = Lanes {
                        data: &a[..used],
                        step,
                        lane,
                    };
                    let mut c = c0.clone();
                    let end = (rows - 1) * ldc + nr;
                    T::tile(kc, lanes, &b, ldb, &mut c[..end], ldc, add, rows);
                    for i in 0..mr {
                        for j in 0..ldc {
                            let (got, want): (f64, f64) = if i < rows && j < nr {
                                (c[i * ldc + j].into(), whole[i * ldc + j].into())
                            } else {
                                (c[i * ldc + j].into(), c0[i * ldc + j].into())
                            };
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{name} add={add} rows={rows} ({i}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }
    for level in [Level::Portable, Level::Avx2, Level::Best] {
        with_level(level, || {
            check::<f64>(|v| v, 1e-12);
            check::<f32>(|v| v as f32, 1e-4);
        });
    }
}

/// Large products give the same bits on one thread and on two, and the
/// work is split when two are asked for.
#[test]
fn products_are_bit_identical_on_any_thread_count() {
    // Split by rows, by columns, and a sequence step's size (50 x 128 x 512).
    for (m, k, n) in [
        (200, 300, 256),
        (64, 1024, 1024),
        (61, 2048, 96),
        (50, 128, 512),
        (520, 70, 65),
    ] {
        for threads in [2, 3, 4] {
            bit_identical_to_one_thread(m, k, n, threads);
        }
    }
}

fn bit_identical_to_one_thread(m: usize, k: usize, n: usize, threads: usize) {
    use super::pool::{with_threads, worker_jobs};
    let a: Vec<f32> = fill(m * k, 0.3).iter().map(|&v| v as f32).collect();
    let b: Vec<f32> = fill(k * n, 0.7).iter().map(|&v| v as f32).collect();
    let bt: Vec<f32> = fill(n * k, 0.9).iter().map(|&v| v as f32).collect();
    let at: Vec<f32> = fill(k * m, 1.1).iter().map(|&v| v as f32).collect();
    let run = || {
        let mut c1 = vec![0.0f32; m * n];
        matmul_a_bt(&a, &bt, &mut c1, m, k, n);
        let mut c2 = vec![0.5f32; m * n];
        matmul_a_b_acc(&a, &b, &mut c2, m, k, n);
        let mut c3 = vec![-0.5f32; m * n];
        matmul_at_b_acc(&at, &b, &mut c3, k, m, n);
        [c1, c2, c3]
    };
    let one = with_threads(1, run);
    // The pool may be busy with another test's product, in which case a call
    // runs alone: try until a job was split.
    let mut split = false;
    for _ in 0..50 {
        let before = worker_jobs();
        let many = with_threads(threads, run);
        for (x, y) in one.iter().zip(&many) {
            assert!(
                same_bits(x, y),
                "the same bits on 1 and {threads} threads for {m} x {k} x {n}"
            );
        }
        if worker_jobs() > before {
            split = true;
            break;
        }
    }
    assert!(split, "{threads} threads split the work of {m} x {k} x {n}");
}

/// Distance in units in the last place between two finite f32.
fn ulps(a: f32, b: f32) -> u64 {
    let ordered = |x: f32| {
        let bits = x.to_bits() as i32;
        (if bits < 0 { i32::MIN - bits } else { bits }) as i64
    };
    (ordered(a) - ordered(b)).unsigned_abs()
}

/// The inputs of the accuracy sweep: every 1e-5 over [-20, 20], magnitudes
/// from 1e-30 to 1 on a log scale, both signs, and the tails.
fn sweep() -> Vec<f32> {
    let mut xs: Vec<f32> = (0..=4_000_000).map(|i| -20.0 + i as f32 * 1e-5).collect();
    for i in 0..=3000 {
        let m = 10f32.powf(-30.0 + i as f32 * 0.01);
        xs.extend([m, -m]);
    }
    xs.extend([
        0.0, -0.0, 50.0, -50.0, 86.0, -86.0, 88.5, -88.5, 100.0, -100.0, 1e30, -1e30,
    ]);
    xs
}

/// The largest error in ulps of `f` (on a copy of `xs`, in place) against
/// `reference` in f64, over the inputs `keep` accepts.
fn worst(
    xs: &[f32],
    f: impl Fn(&mut [f32]),
    reference: impl Fn(f64) -> f64,
    keep: impl Fn(f32) -> bool,
) -> (u64, f32) {
    let mut ys = xs.to_vec();
    f(&mut ys);
    xs.iter()
        .zip(&ys)
        .filter(|(&x, _)| keep(x))
        .map(|(&x, &y)| (ulps(y, reference(x as f64) as f32), x))
        .max_by_key(|&(u, _)| u)
        .unwrap()
}

/// `f()` through the SIMD kernels (where the CPU has them) and through the
/// portable ones, each result named.
fn on_both_paths<R>(f: impl Fn() -> R) -> [(&'static str, R); 2] {
    [("SIMD", f()), ("portable", with_portable_kernels(&f))]
}

#[test]
fn the_kernel_level_reaches_the_threads_a_product_is_split_across() {
    // A portable product on two threads: the worker uses the portable
    // kernels too, so the result is that of the portable kernels on one.
    let (m, k, n) = (64, 1024, 1024);
    let a: Vec<f32> = fill(m * k, 0.5).iter().map(|&v| v as f32).collect();
    let bt: Vec<f32> = fill(n * k, 0.6).iter().map(|&v| v as f32).collect();
    let run = |threads: usize| {
        super::pool::with_threads(threads, || {
            with_portable_kernels(|| {
                let mut c = vec![0.0f32; m * n];
                matmul_a_bt(&a, &bt, &mut c, m, k, n);
                c
            })
        })
    };
    let one = run(1);
    for _ in 0..5 {
        assert!(same_bits(&run(2), &one));
    }
}

#[test]
fn vectorised_tanh_and_sigmoid_are_within_their_documented_ulps() {
    use super::activations::{sigmoid, sigmoid_in_place, tanh, tanh_in_place};
    let xs = sweep();
    let logistic = |x: f64| 1.0 / (1.0 + (-x).exp());
    // Below -87.3 the logistic is not a normal f32: checked apart.
    let normal = |x: f32| x > -87.3;
    for (what, (t, s)) in on_both_paths(|| {
        (
            worst(&xs, tanh_in_place, f64::tanh, |_| true),
            worst(&xs, sigmoid_in_place, logistic, normal),
        )
    }) {
        eprintln!(
            "{what}: tanh {} ulp (at {}), sigmoid {} ulp (at {})",
            t.0, t.1, s.0, s.1
        );
        assert!(t.0 <= 1, "{what} tanh: {} ulp at {}", t.0, t.1);
        assert!(s.0 <= 3, "{what} sigmoid: {} ulp at {}", s.0, s.1);
    }
    // Tails, signs and NaN.
    for x in [-1e30f32, -100.0, -88.5] {
        assert!((0.0..1.2e-38).contains(&sigmoid(x)), "sigmoid({x})");
    }
    assert_eq!((tanh(20.0), tanh(-20.0), tanh(1e30)), (1.0, -1.0, 1.0));
    assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
    let mut nan = [f32::NAN; 9];
    tanh_in_place(&mut nan);
    assert!(nan.iter().all(|v| v.is_nan()));
    sigmoid_in_place(&mut nan);
    assert!(nan.iter().all(|v| v.is_nan()) && sigmoid(f32::NAN).is_nan() && tanh(f32::NAN).is_nan());
}

/// `exp`, `tanh` and the logistic function give the same bits with the
/// AVX-512 kernels, the AVX2 ones and the portable twins (each where the CPU
/// has it), over the accuracy sweep and the special values, for slices of
/// every length up to 40 (whole vectors and a last, partial one) and at
/// every offset of a longer slice.
#[test]
fn activations_give_the_same_bits_on_every_kernel_level() {
    use super::activations::{exp_in_place, sigmoid_in_place, tanh_in_place};
    let mut xs = sweep();
    xs.extend([
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        1e-45,
        -1e-45,
    ]);
    type InPlace = fn(&mut [f32]);
    let functions: [(&str, InPlace); 3] = [
        ("exp", exp_in_place),
        ("tanh", tanh_in_place),
        ("sigmoid", sigmoid_in_place),
    ];
    for (name, f) in functions {
        let at = |level: Level, xs: &[f32]| {
            let mut ys = xs.to_vec();
            with_level(level, || f(&mut ys));
            ys.iter().map(|y| y.to_bits()).collect::<Vec<u32>>()
        };
        let portable = at(Level::Portable, &xs);
        for level in [Level::Avx2, Level::Best] {
            let got = at(level, &xs);
            let first = got.iter().zip(&portable).position(|(a, b)| a != b);
            assert_eq!(
                first,
                None,
                "{name} at {level:?} differs from the portable twin (at x = {:?})",
                first.map(|i| xs[i])
            );
            // Short slices, and slices starting anywhere in a vector.
            let tail = &xs[xs.len() - 48..];
            for len in 0..=40 {
                for start in [0, 3] {
                    let part = &tail[start..start + len];
                    assert_eq!(
                        at(level, part),
                        at(Level::Portable, part),
                        "{name} at {level:?}, {len} values from {start}"
                    );
                }
            }
        }
    }
}

#[test]
fn vectorised_exp_is_within_one_ulp_and_saturates() {
    use super::activations::{exp, exp_in_place};
    // Where e^x is a normal f32.
    let xs: Vec<f32> = sweep()
        .into_iter()
        .filter(|&x| (-87.3..=88.7).contains(&x))
        .collect();
    let wide: Vec<f32> = (0..=176_000)
        .map(|i| -87.3 + i as f32 * 1e-3)
        .filter(|&x| x <= 88.7)
        .collect();
    for (what, (a, b)) in on_both_paths(|| {
        (
            worst(&xs, exp_in_place, f64::exp, |_| true),
            worst(&wide, exp_in_place, f64::exp, |_| true),
        )
    }) {
        eprintln!(
            "{what}: exp {} ulp (at {}), {} ulp over [-87.3, 88.7] (at {})",
            a.0, a.1, b.0, b.1
        );
        assert!(
            a.0 <= 1 && b.0 <= 1,
            "{what} exp: {} ulp at {}, {} ulp at {}",
            a.0,
            a.1,
            b.0,
            b.1
        );
    }
    let tails = || {
        let mut t = [
            88.722_84f32,
            1e30,
            f32::INFINITY,
            -103.98,
            -1e30,
            f32::NEG_INFINITY,
            f32::NAN,
            0.0,
            -0.0,
        ];
        exp_in_place(&mut t);
        t
    };
    for (what, t) in on_both_paths(tails) {
        let inf = f32::INFINITY;
        assert_eq!(&t[..6], &[inf, inf, inf, 0.0, 0.0, 0.0], "{what}");
        assert!(t[6].is_nan(), "{what}");
        assert_eq!((t[7], t[8]), (1.0, 1.0), "{what}");
    }
    assert!(exp(f32::NAN).is_nan());
    // Subnormal results, within one step of f64's, and the last finite one.
    let low: Vec<f32> = (0..=16_700).map(|i| -87.3 - i as f32 * 1e-3).collect();
    for (what, t) in on_both_paths(|| {
        let mut t = low.clone();
        exp_in_place(&mut t);
        t
    }) {
        for (&x, &e) in low.iter().zip(&t) {
            let step = f32::from_bits(1) as f64;
            assert!(
                (e as f64 - (x as f64).exp()).abs() <= step,
                "{what}: exp({x}) = {e:e}"
            );
        }
    }
    assert!(exp(88.722_83).is_finite() && exp(88.722_84).is_infinite());
}

#[test]
fn the_thread_count_from_the_environment_follows_its_rule_and_says_what_it_ignored() {
    use super::pool::{set_threads, threads_from, MAX_THREADS};
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    };
    assert_eq!(threads_from(env(&[]), 2), (2, vec![]));
    assert_eq!(threads_from(env(&[("NNGRAPH_THREADS", "3")]), 2), (3, vec![]));
    assert_eq!(threads_from(env(&[("RAYON_NUM_THREADS", " 1 ")]), 2), (1, vec![]));
    // NNGRAPH_THREADS first; one that cannot be used is named and skipped.
    for bad in ["abc", "0", "-1", "", "2.5"] {
        let pairs: &'static [(&str, &str)] = Box::leak(Box::new([("NNGRAPH_THREADS", bad)]));
        let (n, warnings) = threads_from(env(pairs), 2);
        assert_eq!(n, 2);
        assert_eq!(
            warnings,
            [
                format!("NNGRAPH_THREADS={bad:?} is not a whole number from 1 up; ignored"),
                "using the machine's 2 cores".to_string()
            ]
        );
    }
    let (n, warnings) = threads_from(env(&[("NNGRAPH_THREADS", "x"), ("RAYON_NUM_THREADS", "2")]), 8);
    assert_eq!((n, warnings.len()), (2, 1));
    let (n, warnings) = threads_from(env(&[("NNGRAPH_THREADS", "10000")]), 2);
    assert_eq!(n, MAX_THREADS);
    assert_eq!(
        warnings,
        [format!("NNGRAPH_THREADS=10000 is more than the {MAX_THREADS} threads a product is split across; using {MAX_THREADS}")]
    );
    assert_eq!(threads_from(env(&[]), 1000).0, MAX_THREADS);
    // set_threads refuses what it cannot use.
    for n in [0, MAX_THREADS + 1] {
        let err = set_threads(n).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("set_threads: a thread count is from 1 to {MAX_THREADS}, not {n}")
        );
    }
}

/// `f` on `threads` threads with the kernels the CPU has (`path` "SIMD")
/// or the portable ones.
fn on_threads_and_path(threads: usize, path: &str, f: &dyn Fn() -> Vec<f32>) -> Vec<f32> {
    super::pool::with_threads(threads, || {
        if path == "SIMD" {
            f()
        } else {
            with_portable_kernels(f)
        }
    })
}

/// Whether `a` and `b` hold the same values bit for bit (and as many).
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Each of `got` within 1e-4 (relative, and absolute near zero) of `want`.
fn assert_close(got: &[f32], want: &[f64], what: &str) {
    for (g, e) in got.iter().zip(want) {
        assert!(
            (*g as f64 - e).abs() <= 1e-4 * (1.0 + e.abs()),
            "{what}: {g} against {e}"
        );
    }
}

/// On 1 and 2 threads, with each kernel the CPU has and the portable ones:
/// `product` outside a pass, then at its first three uses inside one (the
/// first reads the weight as it lies, the next ones its packed copy), gives
/// the bits of `reference`, which packs nothing.
fn assert_packed_uses_match(what: &str, reference: &dyn Fn() -> Vec<f32>, product: &dyn Fn() -> Vec<f32>) {
    use super::packed::PassScope;
    for threads in [1, 2] {
        for (path, _) in on_both_paths(|| ()) {
            let run = |f: &dyn Fn() -> Vec<f32>| on_threads_and_path(threads, path, f);
            let want = run(reference);
            let outside = run(product);
            assert!(
                same_bits(&outside, &want),
                "{what}, {threads} thread(s), {path}, outside a pass"
            );
            let _pass = PassScope::enter();
            for use_ in 0..3 {
                let inside = run(product);
                assert!(
                    same_bits(&inside, &want),
                    "{what}, {threads} thread(s), {path}, use {use_}"
                );
            }
        }
    }
}

/// Inside a pass, `x · wᵀ` with few rows takes `wᵀ` packed from its second
/// use on: the same bits as outside a pass (with each kernel the CPU has
/// and the portable ones, on 1 and 2 threads), and a weight changed
/// between passes is packed again, never read stale.
#[test]
fn weights_packed_for_a_pass_give_the_same_bits_and_follow_changes_between_passes() {
    use super::packed::PassScope;
    for (m, k, n) in [
        (50, 128, 512),
        (7, 33, 31),
        (33, 70, 65),
        (5, 9, 300),
        (12, 600, 17),
    ] {
        let x: Vec<f32> = fill(m * k, 0.3).iter().map(|&v| v as f32).collect();
        let mut w: Vec<f32> = fill(n * k, 0.9).iter().map(|&v| v as f32).collect();
        let product = |w: &[f32]| {
            let mut c = vec![0.0f32; m * n];
            matmul_x_wt(&x, w, None, &mut c, m, k, n);
            c
        };
        let unpacked = || {
            let mut c = vec![0.0f32; m * n];
            matmul_a_bt(&x, &w, &mut c, m, k, n);
            c
        };
        assert_packed_uses_match(&format!("{m} x {k} x {n}"), &unpacked, &|| product(&w));
        // The weight changes between two passes: the next pass sees it.
        {
            let _pass = PassScope::enter();
            product(&w);
            product(&w);
        }
        w.iter_mut().for_each(|v| *v = -*v * 0.5);
        let wf: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want = naive(&xf, &transpose(&wf, n, k), m, k, n);
        let _pass = PassScope::enter();
        for _ in 0..2 {
            let got = product(&w);
            assert_close(&got, &want, &format!("{m} x {k} x {n}"));
        }
        // `matmul_a_bt`, for any matrix, keeps nothing: a matrix changed in
        // place within one pass is read as it is now.
        let mut other = w.clone();
        for round in 0..3 {
            other.iter_mut().for_each(|v| *v += 0.25);
            let of: Vec<f64> = other.iter().map(|&v| v as f64).collect();
            let want = naive(&xf, &transpose(&of, n, k), m, k, n);
            let mut got = vec![0.0f32; m * n];
            matmul_a_bt(&x, &other, &mut got, m, k, n);
            assert_close(&got, &want, &format!("round {round}"));
        }
    }
}

/// Inside a pass, `dy · w` (a layer's input gradient) takes `w` packed by
/// columns from its second use on: the same bits as `matmul_a_b_acc` (with
/// each kernel the CPU has and the portable ones, on 1 and 2 threads, over
/// several blocks of `k` and a last, partial panel of columns), adding to
/// what `c` holds; a weight changed between passes is packed again.
#[test]
fn weights_packed_by_columns_for_a_pass_give_the_same_bits_and_follow_changes() {
    use super::packed::PassScope;
    for (m, k, n) in [
        (25, 512, 128),
        (50, 512, 128),
        (7, 33, 31),
        (13, 600, 65),
        (6, 300, 17),
    ] {
        let dy: Vec<f32> = fill(m * k, 0.4).iter().map(|&v| v as f32).collect();
        let mut w: Vec<f32> = fill(k * n, 0.8).iter().map(|&v| v as f32).collect();
        let start: Vec<f32> = fill(m * n, 0.2).iter().map(|&v| v as f32).collect();
        let product = |w: &[f32], packed: bool| {
            let mut c = start.clone();
            if packed {
                matmul_dy_w(&dy, w, &mut c, m, k, n);
            } else {
                matmul_a_b_acc(&dy, w, &mut c, m, k, n);
            }
            c
        };
        assert_packed_uses_match(&format!("{m} x {k} x {n}"), &|| product(&w, false), &|| {
            product(&w, true)
        });
        // The weight changes between two passes: the next pass sees it.
        {
            let _pass = PassScope::enter();
            product(&w, true);
            product(&w, true);
        }
        w.iter_mut().for_each(|v| *v = -*v * 0.5);
        let (dyf, wf): (Vec<f64>, Vec<f64>) = (
            dy.iter().map(|&v| v as f64).collect(),
            w.iter().map(|&v| v as f64).collect(),
        );
        let want: Vec<f64> = naive(&dyf, &wf, m, k, n)
            .iter()
            .zip(&start)
            .map(|(p, &s)| p + s as f64)
            .collect();
        let _pass = PassScope::enter();
        for _ in 0..2 {
            let got = product(&w, true);
            assert_close(&got, &want, &format!("{m} x {k} x {n}"));
        }
    }
}

/// With many rows the blocked product packs `b` whatever its layout, and
/// with few reads short rows in place: the same bits either way, on every
/// kernel (the rows of one product computed with many and with few).
#[test]
fn many_and_few_rows_of_a_b_give_the_same_bits() {
    for (k, n) in [(512, 128), (300, 17), (64, 40)] {
        let many = 300;
        let a: Vec<f32> = fill(many * k, 0.6).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = fill(k * n, 0.1).iter().map(|&v| v as f32).collect();
        for path in ["SIMD", "portable"] {
            let go = |f: &dyn Fn() -> Vec<f32>| {
                if path == "SIMD" {
                    f()
                } else {
                    with_portable_kernels(f)
                }
            };
            let all = go(&|| {
                let mut c = vec![0.0f32; many * n];
                super::pool::with_threads(1, || matmul_a_b_acc(&a, &b, &mut c, many, k, n));
                c
            });
            for r0 in (0..many).step_by(25) {
                let part = go(&|| {
                    let mut c = vec![0.0f32; 25 * n];
                    super::pool::with_threads(1, || {
                        matmul_a_b_acc(&a[r0 * k..(r0 + 25) * k], &b, &mut c, 25, k, n)
                    });
                    c
                });
                assert!(
                    same_bits(&part, &all[r0 * n..(r0 + 25) * n]),
                    "{k} x {n}, {path}, rows from {r0}"
                );
            }
        }
    }
}

/// Runs split by the threads' measured shares cover every row once, in
/// order, in whole tiles (the last may be short), each part at least a tile
/// while there are tiles enough, however uneven the shares.
#[test]
fn runs_by_shares_cover_every_row_once_in_whole_tiles() {
    use super::pool::{run_rows, set_shares, with_threads};
    use std::sync::Mutex;
    let _serial = SHARES_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for shares in [[0, 0, 0], [1, 3, 1], [900, 10, 1], [1, 1000, 1000]] {
        set_shares(&shares);
        for rows in [1, 5, 7, 50, 64, 65, 2500] {
            for align in [1, 6, 32] {
                for parts in 1..=3 {
                    let seen = Mutex::new(vec![None; parts]);
                    with_threads(parts, || {
                        run_rows(parts, rows, align, &|p, run| {
                            seen.lock().unwrap()[p] = Some(run);
                        })
                    });
                    let runs: Vec<_> = seen
                        .into_inner()
                        .unwrap()
                        .into_iter()
                        .map(Option::unwrap)
                        .collect();
                    let tiles = rows.div_ceil(align);
                    assert_eq!(
                        (runs[0].start, runs[parts - 1].end),
                        (0, rows),
                        "{shares:?} {rows} {align} {parts}"
                    );
                    for p in 0..parts {
                        assert!(runs[p].start % align == 0 || runs[p].start == rows, "{runs:?}");
                        assert!(tiles < parts || !runs[p].is_empty(), "{shares:?}: {runs:?}");
                        if p > 0 {
                            assert_eq!(runs[p - 1].end, runs[p].start, "{runs:?}");
                        }
                    }
                }
            }
        }
    }
    set_shares(&[]);
}

/// Products split by uneven shares give the bits of one thread.
#[test]
fn products_split_by_uneven_shares_give_the_bits_of_one_thread() {
    use super::pool::{set_shares, with_threads};
    let _serial = SHARES_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // The second shape: many rows per thread (`b` packed), two blocks of
    // `k` and a last, partial panel.
    for (m, k, n) in [(300, 130, 70), (600, 300, 70)] {
        let a: Vec<f32> = fill(m * k, 0.7).iter().map(|&v| v as f32).collect();
        let b: Vec<f32> = fill(k * n, 0.3).iter().map(|&v| v as f32).collect();
        let g: Vec<f32> = fill(m * n, 0.9).iter().map(|&v| v as f32).collect();
        let start = |len: usize| fill(len, 0.5).iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let products = || {
            let (mut ab, mut atg) = (start(m * n), start(k * n));
            matmul_a_b_acc(&a, &b, &mut ab, m, k, n);
            matmul_at_b_acc(&a, &g, &mut atg, m, k, n);
            (ab, atg)
        };
        let one = with_threads(1, products);
        let (af, bf, gf): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            a.iter().map(|&v| v as f64).collect(),
            b.iter().map(|&v| v as f64).collect(),
            g.iter().map(|&v| v as f64).collect(),
        );
        let plus_start = |p: Vec<f64>| {
            p.iter()
                .zip(start(p.len()))
                .map(|(p, s)| p + s as f64)
                .collect::<Vec<f64>>()
        };
        assert_close(&one.0, &plus_start(naive(&af, &bf, m, k, n)), "a · b");
        assert_close(
            &one.1,
            &plus_start(naive(&transpose(&af, m, k), &gf, k, m, n)),
            "aᵀ · g",
        );
        for shares in [[1, 5], [5, 1], [1, 1]] {
            set_shares(&shares);
            for threads in [2, 3] {
                let many = with_threads(threads, products);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&one.0),
                    bits(&many.0),
                    "a · b, {m} x {k} x {n}, shares {shares:?}, {threads} threads"
                );
                assert_eq!(
                    bits(&one.1),
                    bits(&many.1),
                    "aᵀ · g, {m} x {k} x {n}, shares {shares:?}, {threads} threads"
                );
            }
        }
    }
    set_shares(&[]);
}

/// The tests that set the threads' shares, one at a time.
static SHARES_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A split covers every row once, in runs of whole tiles, and the parts
/// differ by at most a tile, the first ones (the caller's) the larger.
#[test]
fn splits_are_whole_tiles_and_the_callers_part_is_not_the_smaller() {
    use super::pool::split;
    for rows in [1, 5, 6, 7, 50, 64, 65, 512, 2500] {
        for align in [1, 6, 32] {
            for parts in 1..=4 {
                let starts: Vec<usize> = (0..=parts).map(|p| split(rows, parts, align, p)).collect();
                assert_eq!((starts[0], starts[parts]), (0, rows));
                let sizes: Vec<usize> = starts.windows(2).map(|w| w[1] - w[0]).collect();
                for (p, w) in starts.windows(2).enumerate() {
                    assert!(
                        w[0] <= w[1],
                        "{rows} rows, {parts} parts: part {p} runs backwards"
                    );
                    assert!(
                        w[0] % align == 0 || w[0] == rows,
                        "{rows} rows: part {p} starts inside a tile"
                    );
                }
                let tiles: Vec<usize> = sizes.iter().map(|s| s.div_ceil(align)).collect();
                let (most, least) = (tiles.iter().max().unwrap(), tiles.iter().min().unwrap());
                assert!(
                    most - least <= 1,
                    "{rows} rows / {align}, {parts} parts: {tiles:?}"
                );
                assert_eq!(tiles[0], *most, "{rows} rows / {align}, {parts} parts: {tiles:?}");
            }
        }
    }
}

/// `x · wᵀ + bias` with the bias added as tiles are stored gives the bits
/// of the product with the bias added afterwards, on every path (few rows
/// outside a pass and packed inside one, many rows, tiny products) and
/// thread count.
#[test]
fn a_bias_added_as_tiles_are_stored_gives_the_bits_of_adding_it_after() {
    use super::packed::PassScope;
    use super::pool::with_threads;
    for (m, k, n) in [
        (50, 128, 512),
        (300, 37, 65),
        (7, 33, 31),
        (3, 4, 5),
        (520, 70, 65),
    ] {
        let x: Vec<f32> = fill(m * k, 0.3).iter().map(|&v| v as f32).collect();
        let w: Vec<f32> = fill(n * k, 0.9).iter().map(|&v| v as f32).collect();
        let bias: Vec<f32> = fill(n, 1.7).iter().map(|&v| v as f32 * 3.0).collect();
        let mut want = vec![0.0f32; m * n];
        with_threads(1, || matmul_a_bt(&x, &w, &mut want, m, k, n));
        for row in want.chunks_exact_mut(n) {
            row.iter_mut().zip(&bias).for_each(|(y, &b)| *y += b);
        }
        for threads in [1, 2, 3] {
            for level in [Level::Best, Level::Avx2, Level::Portable] {
                let fused = || {
                    let mut c = vec![f32::NAN; m * n];
                    matmul_x_wt(&x, &w, Some(&bias), &mut c, m, k, n);
                    c
                };
                let outside = with_threads(threads, || with_level(level, fused));
                let _pass = PassScope::enter();
                let first = with_threads(threads, || with_level(level, fused));
                let packed = with_threads(threads, || with_level(level, fused));
                for got in [outside, first, packed] {
                    let same = same_bits(&got, &want);
                    // The portable kernel rounds each product apart from its sum.
                    let close = got
                        .iter()
                        .zip(&want)
                        .all(|(a, b)| (a - b).abs() <= 1e-4 * (1.0 + b.abs()));
                    assert!(
                        if level == Level::Portable { close } else { same },
                        "{m} x {k} x {n}, {threads} thread(s), {level:?}"
                    );
                }
            }
        }
    }
}

/// A bias's gradient, the column sums, matches the sums written out (in
/// row order for a small matrix; for a large one, four runs of rows each
/// summed from zero, the runs' sums added in order, then to the gradient)
/// and has the same bits on any thread count; within a pass, the sums kept
/// for a second call are the same, and a new pass sums a changed matrix
/// again.
#[test]
fn column_sums_match_and_do_not_depend_on_the_thread_count() {
    use super::pool::with_threads;
    for (m, n, runs) in [
        (2500, 512, 4),
        (3, 5, 1),
        (2500, 65, 4),
        (1, 1, 1),
        (2500, 40, 1),
        (7, 20_000, 4),
    ] {
        let a: Vec<f32> = fill(m * n, 0.4).iter().map(|&v| v as f32).collect();
        let start: Vec<f32> = fill(n, 2.0).iter().map(|&v| v as f32).collect();
        let run = |threads| {
            let mut sums = start.clone();
            with_threads(threads, || add_column_sums(&a, m, n, &mut sums));
            sums
        };
        let one = run(1);
        for j in 0..n {
            let want = if runs == 1 {
                (0..m).fold(start[j], |s, r| s + a[r * n + j])
            } else {
                let run_sum =
                    |k: usize| (m * k / runs..m * (k + 1) / runs).fold(0.0f32, |p, r| p + a[r * n + j]);
                start[j] + (1..runs).fold(run_sum(0), |s, k| s + run_sum(k))
            };
            assert_eq!(one[j].to_bits(), want.to_bits(), "column {j} of {m} x {n}");
        }
        for threads in [2, 3] {
            assert_eq!(run(threads), one, "{m} x {n} on {threads} threads");
        }
        {
            let _pass = super::packed::PassScope::enter();
            for threads in [1, 2, 1] {
                assert_eq!(run(threads), one, "{m} x {n}, in a pass, {threads} thread(s)");
            }
        }
    }
    // A matrix changed between two passes is summed again.
    let (m, n) = (2500, 512);
    let mut a: Vec<f32> = fill(m * n, 0.8).iter().map(|&v| v as f32).collect();
    let sum_of = |a: &[f32]| {
        let _pass = super::packed::PassScope::enter();
        let mut sums = vec![0.0f32; n];
        add_column_sums(a, m, n, &mut sums);
        add_column_sums(a, m, n, &mut sums);
        sums
    };
    let before = sum_of(&a);
    a.iter_mut().for_each(|v| *v = -*v * 0.5);
    let after = sum_of(&a);
    for j in 0..n {
        let want = 2.0 * (0..m).map(|r| a[r * n + j] as f64).sum::<f64>();
        assert!(
            (after[j] as f64 - want).abs() <= 1e-3 * (1.0 + want.abs()),
            "column {j}: {} against {want}",
            after[j]
        );
        assert_ne!(before[j], after[j], "column {j}");
    }
}

/// Row runs cover every row once, each run handed the rows it names, on
/// any thread count (large matrices are split, small ones are not).
#[test]
fn row_runs_hand_each_row_to_one_run() {
    use super::pool::with_threads;
    for (m, n) in [(300_000, 1), (2500, 65), (7, 3), (1, 1)] {
        for threads in [1, 2, 3] {
            let mut c = vec![-1.0f64; m * n];
            with_threads(threads, || {
                for_row_runs(m, n, m * n, &mut c, |r0, r1, rows| {
                    assert_eq!(rows.len(), (r1 - r0) * n, "run {r0}..{r1}");
                    for (r, row) in (r0..r1).zip(rows.chunks_exact_mut(n)) {
                        row.iter_mut().for_each(|v| *v += r as f64 + 1.0);
                    }
                })
            });
            for r in 0..m {
                assert!(
                    c[r * n..(r + 1) * n].iter().all(|&v| v == r as f64),
                    "row {r} of {m} on {threads}"
                );
            }
        }
    }
}

/// `exp_shifted` (loops compiled for AVX2 and FMA where the CPU has them)
/// gives, at every kernel level, the bits of the formula it stands for
/// evaluated one element at a time: the exact difference, the level's
/// `exp`, and the correction as a fused multiply-add from the standard
/// library.
#[test]
fn shifted_exponentials_give_the_bits_of_the_formula_element_by_element() {
    use super::activations::{difference, exp_shifted, SHIFTED_CHUNK};
    fn check<F: crate::Float>(of: impl Fn(f64) -> F) {
        let specials = [f64::NEG_INFINITY, -200.0, -103.0, -87.5, -1e-30, 0.0, -0.0, 1e-7];
        for len in [0, 1, 7, 8, 9, 33, SHIFTED_CHUNK] {
            for (s, shift) in [0.0, 3.7, -12.25, 1e4].into_iter().enumerate() {
                let x: Vec<F> = (0..len)
                    .map(|i| match i % 5 {
                        0 => of(specials[(i / 5 + s) % specials.len()]),
                        _ => of(((i * 7 + s) as f64 * 0.731).sin() * 30.0 + shift),
                    })
                    .collect();
                let shift = of(shift);
                let mut out = vec![F::zero(); len];
                exp_shifted(&x, shift, &mut out);
                let (mut want, err): (Vec<F>, Vec<F>) = x.iter().map(|&v| difference(v, shift)).unzip();
                F::exp_in_place(&mut want);
                for (w, &e) in want.iter_mut().zip(&err) {
                    *w = w.mul_add(e, *w);
                }
                for (j, (o, w)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        crate::Float::to_f64(*o).to_bits() == crate::Float::to_f64(*w).to_bits(),
                        "element {j} of {len}, shift {shift:?}: {o:?} against {w:?}"
                    );
                }
            }
        }
    }
    for level in [Level::Portable, Level::Avx2, Level::Best] {
        with_level(level, || {
            check::<f32>(|v| v as f32);
            check::<f64>(|v| v);
        });
    }
}

/// A product's rows come out with the same bits however many rows it has:
/// fewer rows take the small path (under `SMALL_WORK` multiply-adds), more
/// the micro-kernels, and both compute each element alike. A loop split
/// across threads by samples relies on it (each thread's products have
/// fewer rows than the whole batch's).
#[test]
fn a_products_rows_have_the_same_bits_whatever_its_number_of_rows() {
    fn check<F: crate::Float>(of: impl Fn(f64) -> F) {
        let bits = |v: &[F]| {
            v.iter()
                .map(|&x| crate::Float::to_f64(x).to_bits())
                .collect::<Vec<_>>()
        };
        // (few rows, small path; many rows, blocked), k and n around the
        // tiles and past a KC block of 256.
        for (few, many, k, n) in [
            (2, 64, 12, 12),
            (3, 40, 7, 17),
            (1, 30, 600, 2),
            (2, 24, 300, 3),
            (11, 32, 12, 12),
        ] {
            let a: Vec<F> = fill(many * k, 0.3).into_iter().map(&of).collect();
            let w: Vec<F> = fill(n * k, 0.7).into_iter().map(&of).collect();
            let wt: Vec<F> = fill(k * n, 0.9).into_iter().map(&of).collect();
            let c0: Vec<F> = fill(many * n, 0.1).into_iter().map(&of).collect();
            assert!(few * k * n <= SMALL_WORK && many * k * n > SMALL_WORK);
            // x · wᵀ
            let (mut small, mut large) = (vec![F::zero(); few * n], vec![F::zero(); many * n]);
            matmul_a_bt(&a[..few * k], &w, &mut small, few, k, n);
            matmul_a_bt(&a, &w, &mut large, many, k, n);
            assert_eq!(
                bits(&small),
                bits(&large[..few * n]),
                "a·bᵀ {few}/{many} x {k} x {n}"
            );
            // c += a · b
            let (mut small, mut large) = (c0[..few * n].to_vec(), c0.clone());
            matmul_a_b_acc(&a[..few * k], &wt, &mut small, few, k, n);
            matmul_a_b_acc(&a, &wt, &mut large, many, k, n);
            assert_eq!(
                bits(&small),
                bits(&large[..few * n]),
                "a·b {few}/{many} x {k} x {n}"
            );
        }
    }
    for level in [Level::Portable, Level::Avx2, Level::Best] {
        with_level(level, || {
            check::<f32>(|v| v as f32);
            check::<f64>(|v| v);
        });
    }
}

/// Weight gradients given in a scope wait until one with another `A`
/// comes, or the scope closes, and then run as one product per `A`; each
/// output gets the bits of its product alone, on any thread count and
/// kernel path.
#[test]
fn weight_gradients_grouped_in_a_scope_give_the_bits_of_each_product_alone() {
    use super::grouped::{weight_grad, Scope};
    // Two blocks of k and a last partial one, rows not whole tiles, and
    // widths of whole and partial panels of 32, 16 and 8.
    let (k, m) = (600, 70);
    let widths = [128, 45, 33];
    let f32s =
        |len: usize, seed: f64| -> Vec<f32> { fill(len, seed).into_iter().map(|v| v as f32).collect() };
    let (a, other_a) = (f32s(k * m, 1.0), f32s(k * m, 2.0));
    let bs: Vec<Vec<f32>> = widths.iter().map(|&n| f32s(k * n, n as f64)).collect();
    let start = |n: usize| f32s(m * n, 7.0);
    for path in ["SIMD", "portable"] {
        let mut one_thread = Vec::new();
        for threads in [1, 2, 3] {
            let what = format!("{path}, {threads} thread(s)");
            let got = on_threads_and_path(threads, path, &|| {
                let mut alone: Vec<Vec<f32>> = widths.iter().map(|&n| start(n)).collect();
                for ((c, b), &n) in alone.iter_mut().zip(&bs).zip(&widths) {
                    matmul_at_b_acc(&a, b, c, k, m, n);
                }
                let mut after = start(widths[0]);
                matmul_at_b_acc(&other_a, &bs[0], &mut after, k, m, widths[0]);

                let mut grouped: Vec<Vec<f32>> = widths.iter().map(|&n| start(n)).collect();
                let mut next = start(widths[0]);
                // SAFETY: every buffer outlives the scope, and is only
                // looked at (on this thread, no product running) before it
                // ends.
                let scope = unsafe { Scope::open() };
                for ((c, b), &n) in grouped.iter_mut().zip(&bs).zip(&widths) {
                    weight_grad(&a, b, c, k, m, n);
                }
                let waited = grouped.iter().zip(&widths).all(|(c, &n)| same_bits(c, &start(n)));
                assert!(waited, "{what}: the products ran before another A came");
                weight_grad(&other_a, &bs[0], &mut next, k, m, widths[0]);
                for ((got, want), n) in grouped.iter().zip(&alone).zip(widths) {
                    assert!(
                        same_bits(got, want),
                        "{what}: the product of width {n} in a group"
                    );
                }
                assert!(
                    same_bits(&next, &start(widths[0])),
                    "{what}: another A ran at once"
                );
                drop(scope);
                assert!(
                    same_bits(&next, &after),
                    "{what}: the product left when the scope closed"
                );
                grouped.concat()
            });
            // A group is split by rows like one product: the same bits on
            // any thread count.
            if threads == 1 {
                one_thread = got;
            } else {
                assert!(same_bits(&got, &one_thread), "{what}: against one thread");
            }
        }
    }
}
