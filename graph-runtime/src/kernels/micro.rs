//! The micro-kernel of each element type: for f32 the AVX-512 one (a 6 x 32
//! tile) when the CPU has it, the AVX2 + FMA one (6 x 16; 6 x 8 for f64)
//! when it has those (after checking the panels' bounds, so that it may read
//! them unchecked), the portable one otherwise.

use super::gemm::Kernel;
#[cfg(target_arch = "x86_64")]
use super::simd;
use crate::Float;

/// The portable micro-kernel: fixed-size loops the compiler unrolls.
#[inline(always)]
pub(super) fn portable<T: Float, const MR: usize, const NR: usize>(
    kc: usize,
    a: &[T],
    b: &[T],
    ldb: usize,
    tile: &mut [T],
) {
    let mut acc = [[T::zero(); NR]; MR];
    for p in 0..kc {
        let ap = &a[p * MR..p * MR + MR];
        let bp = &b[p * ldb..p * ldb + NR];
        for (row, &ai) in acc.iter_mut().zip(ap) {
            for (x, &bj) in row.iter_mut().zip(bp) {
                *x += ai * bj;
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        tile[i * NR..(i + 1) * NR].copy_from_slice(row);
    }
}

/// The portable kernel with `a` read in place (see [`Kernel::kernel_rows`]).
pub(super) fn portable_rows<T: Float>(
    kc: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    mr: usize,
    nr: usize,
    tile: &mut [T],
) {
    tile[..mr * nr].fill(T::zero());
    for i in 0..mr {
        let row = &a[i * lda..i * lda + kc];
        let out = &mut tile[i * nr..(i + 1) * nr];
        for (p, &ai) in row.iter().enumerate() {
            for (o, &bj) in out.iter_mut().zip(&b[p * nr..(p + 1) * nr]) {
                *o += ai * bj;
            }
        }
    }
}

/// Checks that the panels hold `kc` steps, so that the SIMD kernels may
/// read them unchecked.
fn check_panels<T>(kc: usize, a: &[T], mr: usize, b: &[T], ldb: usize, nr: usize) {
    assert!(kc > 0 && a.len() >= kc * mr && ldb >= nr && b.len() >= (kc - 1) * ldb + nr);
}

impl Kernel for f32 {
    const MR: usize = 6;

    fn nr() -> usize {
        #[cfg(target_arch = "x86_64")]
        if simd::wide() {
            return 32;
        }
        16
    }

    fn kernel_rows(kc: usize, a: &[f32], lda: usize, b: &[f32], tile: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if simd::wide() {
            assert!(
                kc > 0 && lda >= kc && a.len() >= 5 * lda + kc && b.len() >= kc * 32 && tile.len() >= 192
            );
            // SAFETY: AVX-512 F is present; the bounds are checked above.
            unsafe { simd::kernel_f32_wide_rows(kc, a.as_ptr(), lda, b.as_ptr(), tile.as_mut_ptr()) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            assert!(kc > 0 && lda >= kc && a.len() >= 5 * lda + kc && b.len() >= kc * 16 && tile.len() >= 96);
            // SAFETY: AVX2 and FMA are present; the bounds are checked above.
            unsafe { simd::kernel_f32_rows(kc, a.as_ptr(), lda, b.as_ptr(), tile.as_mut_ptr()) };
            return;
        }
        portable_rows::<f32>(kc, a, lda, b, 6, 16, tile);
    }

    fn kernel_into(
        kc: usize,
        a: &[f32],
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        overwrite: bool,
        tile: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if simd::wide() {
            check_panels(kc, a, 6, b, ldb, 32);
            assert!(ldc >= 32 && c.len() >= 5 * ldc + 32);
            // SAFETY: AVX-512 F is present; the bounds are checked above.
            unsafe {
                simd::kernel_f32_wide(kc, a.as_ptr(), b.as_ptr(), ldb, c.as_mut_ptr(), ldc, !overwrite)
            };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            check_panels(kc, a, 6, b, ldb, 16);
            assert!(ldc >= 16 && c.len() >= 5 * ldc + 16);
            // SAFETY: AVX2 and FMA are present; the bounds are checked above.
            unsafe { simd::kernel_f32(kc, a.as_ptr(), b.as_ptr(), ldb, c.as_mut_ptr(), ldc, !overwrite) };
            return;
        }
        Self::kernel(kc, a, b, ldb, tile);
        for i in 0..6 {
            let out = &mut c[i * ldc..i * ldc + 16];
            let t = &tile[i * 16..(i + 1) * 16];
            if overwrite {
                out.copy_from_slice(t);
            } else {
                out.iter_mut().zip(t).for_each(|(o, &v)| *o += v);
            }
        }
    }

    fn kernel(kc: usize, a: &[f32], b: &[f32], ldb: usize, tile: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if simd::wide() {
            check_panels(kc, a, 6, b, ldb, 32);
            assert!(tile.len() >= 192);
            // SAFETY: the CPU has AVX-512 F; the lengths are checked above.
            unsafe { simd::kernel_f32_wide(kc, a.as_ptr(), b.as_ptr(), ldb, tile.as_mut_ptr(), 32, false) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            check_panels(kc, a, 6, b, ldb, 16);
            assert!(tile.len() >= 96);
            // SAFETY: the CPU has AVX2 and FMA; the lengths are checked above.
            unsafe { simd::kernel_f32(kc, a.as_ptr(), b.as_ptr(), ldb, tile.as_mut_ptr(), 16, false) };
            return;
        }
        portable::<f32, 6, 16>(kc, a, b, ldb, tile);
    }
}

impl Kernel for f64 {
    const MR: usize = 6;

    fn nr() -> usize {
        8
    }

    fn kernel_rows(kc: usize, a: &[f64], lda: usize, b: &[f64], tile: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            assert!(kc > 0 && lda >= kc && a.len() >= 5 * lda + kc && b.len() >= kc * 8 && tile.len() >= 48);
            // SAFETY: as for f32.
            unsafe { simd::kernel_f64_rows(kc, a.as_ptr(), lda, b.as_ptr(), tile.as_mut_ptr()) };
            return;
        }
        portable_rows::<f64>(kc, a, lda, b, 6, 8, tile);
    }

    fn kernel(kc: usize, a: &[f64], b: &[f64], ldb: usize, tile: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            check_panels(kc, a, 6, b, ldb, 8);
            assert!(tile.len() >= 48);
            // SAFETY: as for f32.
            unsafe { simd::kernel_f64(kc, a.as_ptr(), b.as_ptr(), ldb, tile.as_mut_ptr()) };
            return;
        }
        portable::<f64, 6, 8>(kc, a, b, ldb, tile);
    }
}
