//! Dense matrix products on row-major slices, written so that they never
//! allocate.
//!
//! ndarray's `dot` (matrixmultiply) allocates a packing buffer on every call,
//! which would break the promise that a warmed-up training step allocates
//! nothing. These three products are exactly the ones a linear layer needs;
//! each keeps its innermost loop over contiguous memory so the compiler can
//! vectorise it, and works on four rows at a time so every row of the
//! right-hand matrix loaded from memory is used four times.

use crate::Float;

/// `c = a · bᵀ` where `a` is `(m, k)`, `b` is `(n, k)` and `c` is `(m, n)`,
/// all row-major and contiguous. Overwrites `c`.
pub fn matmul_a_bt<F: Float>(a: &[F], b: &[F], c: &mut [F], m: usize, k: usize, n: usize) {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), n * k);
    debug_assert_eq!(c.len(), m * n);
    let mut i = 0;
    while i + 4 <= m {
        let a0 = &a[i * k..(i + 1) * k];
        let a1 = &a[(i + 1) * k..(i + 2) * k];
        let a2 = &a[(i + 2) * k..(i + 3) * k];
        let a3 = &a[(i + 3) * k..(i + 4) * k];
        for j in 0..n {
            let bj = &b[j * k..(j + 1) * k];
            let (s0, s1, s2, s3) = dot4(a0, a1, a2, a3, bj);
            c[i * n + j] = s0;
            c[(i + 1) * n + j] = s1;
            c[(i + 2) * n + j] = s2;
            c[(i + 3) * n + j] = s3;
        }
        i += 4;
    }
    while i < m {
        let ai = &a[i * k..(i + 1) * k];
        for j in 0..n {
            c[i * n + j] = dot(ai, &b[j * k..(j + 1) * k]);
        }
        i += 1;
    }
}

/// `c += a · b` where `a` is `(m, k)`, `b` is `(k, n)` and `c` is `(m, n)`.
pub fn matmul_a_b_acc<F: Float>(a: &[F], b: &[F], c: &mut [F], m: usize, k: usize, n: usize) {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    debug_assert_eq!(c.len(), m * n);
    for i in 0..m {
        let ci = &mut c[i * n..(i + 1) * n];
        let ai = &a[i * k..(i + 1) * k];
        for (p, &aip) in ai.iter().enumerate() {
            if aip != F::zero() {
                axpy(aip, &b[p * n..(p + 1) * n], ci);
            }
        }
    }
}

/// `c += aᵀ · b` where `a` is `(k, m)`, `b` is `(k, n)` and `c` is `(m, n)`.
pub fn matmul_at_b_acc<F: Float>(a: &[F], b: &[F], c: &mut [F], k: usize, m: usize, n: usize) {
    debug_assert_eq!(a.len(), k * m);
    debug_assert_eq!(b.len(), k * n);
    debug_assert_eq!(c.len(), m * n);
    for p in 0..k {
        let ap = &a[p * m..(p + 1) * m];
        let bp = &b[p * n..(p + 1) * n];
        for (i, &api) in ap.iter().enumerate() {
            if api != F::zero() {
                axpy(api, bp, &mut c[i * n..(i + 1) * n]);
            }
        }
    }
}

/// `y += alpha · x`.
#[inline]
pub fn axpy<F: Float>(alpha: F, x: &[F], y: &mut [F]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Dot product with eight independent partial sums, so the loop vectorises
/// without reassociating a single accumulator.
#[inline]
pub fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [F::zero(); 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (ac, bc) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += ac[l] * bc[l];
        }
    }
    let mut s = (acc[0] + acc[4]) + (acc[1] + acc[5]) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in chunks * 8..n {
        s += a[i] * b[i];
    }
    s
}

#[inline]
fn dot4<F: Float>(a0: &[F], a1: &[F], a2: &[F], a3: &[F], b: &[F]) -> (F, F, F, F) {
    let n = b.len();
    let (a0, a1, a2, a3) = (&a0[..n], &a1[..n], &a2[..n], &a3[..n]);
    let mut acc = [[F::zero(); 8]; 4];
    let chunks = n / 8;
    for c in 0..chunks {
        let r = c * 8..c * 8 + 8;
        let bc = &b[r.clone()];
        let rows = [&a0[r.clone()], &a1[r.clone()], &a2[r.clone()], &a3[r]];
        for (accr, row) in acc.iter_mut().zip(rows) {
            for l in 0..8 {
                accr[l] += row[l] * bc[l];
            }
        }
    }
    let mut out = [F::zero(); 4];
    for (o, accr) in out.iter_mut().zip(&acc) {
        *o = (accr[0] + accr[4]) + (accr[1] + accr[5]) + ((accr[2] + accr[6]) + (accr[3] + accr[7]));
    }
    for i in chunks * 8..n {
        out[0] += a0[i] * b[i];
        out[1] += a1[i] * b[i];
        out[2] += a2[i] * b[i];
        out[3] += a3[i] * b[i];
    }
    (out[0], out[1], out[2], out[3])
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn products_match_naive_for_awkward_sizes() {
        for &(m, k, n) in &[(1, 1, 1), (5, 9, 3), (4, 8, 8), (7, 17, 13), (9, 3, 1)] {
            let a = fill(m * k, 1.0);
            let b = fill(k * n, 2.0);
            let want = naive(&a, &b, m, k, n);

            let mut c = vec![f64::NAN; m * n];
            matmul_a_bt(&a, &transpose(&b, k, n), &mut c, m, k, n);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-12, "a_bt {m}x{k}x{n}: {x} vs {y}");
            }

            let mut c = vec![1.0; m * n];
            matmul_a_b_acc(&a, &b, &mut c, m, k, n);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - 1.0 - y).abs() < 1e-12, "a_b_acc {m}x{k}x{n}");
            }

            let mut c = vec![-1.0; m * n];
            matmul_at_b_acc(&transpose(&a, m, k), &b, &mut c, k, m, n);
            for (x, y) in c.iter().zip(&want) {
                assert!((x + 1.0 - y).abs() < 1e-12, "at_b_acc {m}x{k}x{n}");
            }
        }
    }
}
