//! The products against a naive triple loop, around every block edge, with
//! the SIMD kernels and with the portable ones.

use super::micro::{portable, portable_rows};
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

/// Sizes around every block edge: tiles of 6 and 16 (8), blocks of 72,
/// 256 and 2048.
const SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (5, 9, 3),
    (6, 8, 16),
    (7, 17, 13),
    (9, 3, 1),
    (73, 257, 35),
    (12, 600, 17),
    (3, 5, 2050),
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
    check_f64_products();
    check_f32_products();
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

#[test]
fn portable_rows_kernel_matches_naive() {
    // The fallback of the in-place kernel, exercised whatever the CPU:
    // six rows of a (lda = 7, kc = 5 used), b packed 8 wide.
    let (kc, lda) = (5, 7);
    let (a, b) = (fill(6 * lda, 0.25), fill(kc * 8, 2.5));
    let mut tile = [f64::NAN; 48];
    portable_rows::<f64>(kc, &a, lda, &b, 6, 8, &mut tile);
    for i in 0..6 {
        for j in 0..8 {
            let want: f64 = (0..kc).map(|p| a[i * lda + p] * b[p * 8 + j]).sum();
            assert!((tile[i * 8 + j] - want).abs() < 1e-12);
        }
    }
}

#[test]
fn portable_kernel_matches_naive() {
    // The fallback kernel, exercised whatever the CPU.
    let (kc, a, b) = (5, fill(5 * 6, 0.5), fill(5 * 8, 1.5));
    let mut tile = [0.0; 48];
    portable::<f64, 6, 8>(kc, &a, &b, 8, &mut tile);
    for i in 0..6 {
        for j in 0..8 {
            let want: f64 = (0..kc).map(|p| a[p * 6 + i] * b[p * 8 + j]).sum();
            assert!((tile[i * 8 + j] - want).abs() < 1e-12);
        }
    }
}
