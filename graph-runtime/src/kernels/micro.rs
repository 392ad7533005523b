//! The micro-kernel of each element type: for f32 the AVX-512 one (a 6 x 32
//! tile) when the CPU has it, the AVX2 + FMA one (6 x 16; 6 x 8 for f64)
//! when it has those (after checking the operands' bounds, so that it may
//! read them unchecked), the portable one otherwise.

use super::gemm::{Kernel, Lanes};
#[cfg(target_arch = "x86_64")]
use super::simd;
use crate::Float;

/// The portable micro-kernel: fixed-size loops the compiler unrolls, over
/// the first `rows` rows of the tile.
#[allow(clippy::too_many_arguments)]
pub(super) fn portable<T: Float, const MR: usize, const NR: usize>(
    kc: usize,
    a: Lanes<'_, T>,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    add: bool,
    rows: usize,
) {
    let mut acc = [[T::zero(); NR]; MR];
    let acc = &mut acc[..rows];
    for p in 0..kc {
        let bp = &b[p * ldb..p * ldb + NR];
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = a.data[p * a.step + i * a.lane];
            for (x, &bj) in row.iter_mut().zip(bp) {
                *x += ai * bj;
            }
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let out = &mut c[i * ldc..i * ldc + NR];
        if add {
            out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
        } else {
            out.copy_from_slice(row);
        }
    }
}

/// A SIMD tile function of `simd.rs`: `(kc, a, step, lane, b, ldb, c, ldc, add)`.
#[cfg(target_arch = "x86_64")]
type SimdTile<T> = unsafe fn(usize, *const T, usize, usize, *const T, usize, *mut T, usize, bool, usize);

/// Runs a SIMD tile `nr` wide after checking that the operands hold what
/// it reads and writes, so that it may access them unchecked.
///
/// # Safety
/// The CPU has the features `tile` is compiled for.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn checked<T>(
    tile: SimdTile<T>,
    nr: usize,
    kc: usize,
    a: Lanes<'_, T>,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
    add: bool,
    rows: usize,
) {
    assert!(kc > 0 && ldb >= nr && ldc >= nr, "tile strides");
    assert!((1..=6).contains(&rows), "a tile's rows");
    assert!(
        a.data.len() > (kc - 1) * a.step + (rows - 1) * a.lane,
        "a tile's a"
    );
    assert!(b.len() >= (kc - 1) * ldb + nr, "a tile's b");
    assert!(c.len() >= (rows - 1) * ldc + nr, "a tile's c");
    // SAFETY: the bounds are checked above; the features are the caller's.
    unsafe {
        tile(
            kc,
            a.data.as_ptr(),
            a.step,
            a.lane,
            b.as_ptr(),
            ldb,
            c.as_mut_ptr(),
            ldc,
            add,
            rows,
        )
    }
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

    fn tile(
        kc: usize,
        a: Lanes<'_, f32>,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
        ldc: usize,
        add: bool,
        rows: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if simd::wide() {
            // SAFETY: the CPU has AVX-512 F.
            return unsafe { checked(simd::tile_f32_wide, 32, kc, a, b, ldb, c, ldc, add, rows) };
        }
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { checked(simd::tile_f32, 16, kc, a, b, ldb, c, ldc, add, rows) };
        }
        portable::<f32, 6, 16>(kc, a, b, ldb, c, ldc, add, rows);
    }
}

impl Kernel for f64 {
    const MR: usize = 6;

    fn nr() -> usize {
        8
    }

    fn tile(
        kc: usize,
        a: Lanes<'_, f64>,
        b: &[f64],
        ldb: usize,
        c: &mut [f64],
        ldc: usize,
        add: bool,
        rows: usize,
    ) {
        #[cfg(target_arch = "x86_64")]
        if simd::available() {
            // SAFETY: the CPU has AVX2 and FMA.
            return unsafe { checked(simd::tile_f64, 8, kc, a, b, ldb, c, ldc, add, rows) };
        }
        portable::<f64, 6, 8>(kc, a, b, ldb, c, ldc, add, rows);
    }
}
