//! The x86-64 micro-kernels, chosen at run time: AVX2 + FMA when the CPU
//! has both, and for f32 a twice as wide AVX-512 tile when it has AVX-512
//! (unless this thread asked for narrower ones, `dispatch::with_level`).

use super::dispatch::{level, Level};
use std::arch::x86_64::*;
use std::sync::OnceLock;

/// Whether the AVX2 kernels may run: the CPU has AVX2 and FMA, and this
/// thread has not asked for the portable ones.
pub fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    level() >= Level::Avx2
        && *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// Whether the AVX-512 f32 kernels run: the CPU has AVX-512 F, and this
/// thread has not asked for narrower kernels.
pub fn wide() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    level() == Level::Best && *HAS.get_or_init(|| is_x86_feature_detected!("avx512f"))
}

/// 6 x 16 f32 tile: 12 accumulators of 8 lanes, two loads of `b` and six
/// broadcasts of `a` per step; stored in (or, with `add`, added into) `c`
/// at row stride `ldc`.
///
/// A packed `b` (`ldb == 16`) takes a copy of the loop with the stride
/// known at compile time: a run-time stride costs a quarter of the speed.
///
/// # Safety
/// The CPU has AVX2 and FMA ([`available`]); `kc > 0`; `a` holds
/// `6 * kc` values, `b` holds `(kc - 1) * ldb + 16`, and `c` has 6 rows
/// of 16 writable values `ldc` apart.
pub unsafe fn kernel_f32(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    if ldb == 16 {
        kernel_f32_ldb::<true>(kc, a, b, 16, c, ldc, add)
    } else {
        kernel_f32_ldb::<false>(kc, a, b, ldb, c, ldc, add)
    }
}

/// # Safety
/// As [`kernel_f32`], with `ldb == 16` when `PACKED`.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_f32_ldb<const PACKED: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    let ldb = if PACKED { 16 } else { ldb };
    let mut acc = [[_mm256_setzero_ps(); 2]; 6];
    for p in 0..kc {
        let bp = b.add(p * ldb);
        let b0 = _mm256_loadu_ps(bp);
        let b1 = _mm256_loadu_ps(bp.add(8));
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm256_broadcast_ss(&*a.add(p * 6 + i));
            row[0] = _mm256_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm256_fmadd_ps(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let (c0, c1) = (c.add(i * ldc), c.add(i * ldc + 8));
        if add {
            _mm256_storeu_ps(c0, _mm256_add_ps(_mm256_loadu_ps(c0), row[0]));
            _mm256_storeu_ps(c1, _mm256_add_ps(_mm256_loadu_ps(c1), row[1]));
        } else {
            _mm256_storeu_ps(c0, row[0]);
            _mm256_storeu_ps(c1, row[1]);
        }
    }
}

/// The 6-row tile with `a` read in place from six rows `lda` apart:
/// one function per float type, two vectors of `b` per step.
macro_rules! rows_kernel {
    ($name:ident, $t:ty, $half:literal, $zero:ident, $load:ident, $store:ident, $bcast:ident, $fma:ident) => {
        #[doc = concat!("The 6 x ", stringify!($half), " x 2 ", stringify!($t), " tile with `a` read in place.")]
        ///
        /// # Safety
        /// The CPU has AVX2 and FMA; `kc > 0`; `a` holds six rows of `kc`
        /// values `lda` apart, `b` holds `kc` packed rows of two vectors,
        /// and `tile` has room for the 6-row tile.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn $name(kc: usize, a: *const $t, lda: usize, b: *const $t, tile: *mut $t) {
            const NR: usize = 2 * $half;
            let mut acc = [[$zero(); 2]; 6];
            let rows: [*const $t; 6] = std::array::from_fn(|i| a.add(i * lda));
            for p in 0..kc {
                let b0 = $load(b.add(p * NR));
                let b1 = $load(b.add(p * NR + $half));
                for (row, r) in acc.iter_mut().zip(&rows) {
                    let ai = $bcast(&*r.add(p));
                    row[0] = $fma(ai, b0, row[0]);
                    row[1] = $fma(ai, b1, row[1]);
                }
            }
            for (i, row) in acc.iter().enumerate() {
                $store(tile.add(i * NR), row[0]);
                $store(tile.add(i * NR + $half), row[1]);
            }
        }
    };
}

rows_kernel!(
    kernel_f32_rows,
    f32,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_broadcast_ss,
    _mm256_fmadd_ps
);
rows_kernel!(
    kernel_f64_rows,
    f64,
    4,
    _mm256_setzero_pd,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_broadcast_sd,
    _mm256_fmadd_pd
);

/// 6 x 8 f64 tile: 12 accumulators of 4 lanes, into `tile`.
///
/// # Safety
/// The CPU has AVX2 and FMA; `kc > 0`; `a` holds `6 * kc` values, `b`
/// holds `(kc - 1) * ldb + 8`, and `tile` has room for 48.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn kernel_f64(kc: usize, a: *const f64, b: *const f64, ldb: usize, tile: *mut f64) {
    let mut c = [[_mm256_setzero_pd(); 2]; 6];
    for p in 0..kc {
        let bp = b.add(p * ldb);
        let b0 = _mm256_loadu_pd(bp);
        let b1 = _mm256_loadu_pd(bp.add(4));
        for (i, row) in c.iter_mut().enumerate() {
            let ai = _mm256_broadcast_sd(&*a.add(p * 6 + i));
            row[0] = _mm256_fmadd_pd(ai, b0, row[0]);
            row[1] = _mm256_fmadd_pd(ai, b1, row[1]);
        }
    }
    for (i, row) in c.iter().enumerate() {
        _mm256_storeu_pd(tile.add(i * 8), row[0]);
        _mm256_storeu_pd(tile.add(i * 8 + 4), row[1]);
    }
}

/// 6 x 32 f32 tile with AVX-512: 12 accumulators of 16 lanes, two loads of
/// `b` and six broadcasts of `a` per step; stored in (or, with `add`, added
/// into) `c` at row stride `ldc`. Each element is the same chain of fused
/// multiply-adds as in the AVX2 tile, so results do not depend on the tile.
///
/// # Safety
/// The CPU has AVX-512 F ([`wide`]); `kc > 0`; `a` holds `6 * kc` values,
/// `b` holds `(kc - 1) * ldb + 32`, and `c` has 6 rows of 32 writable
/// values `ldc` apart.
pub unsafe fn kernel_f32_wide(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    if ldb == 32 {
        kernel_f32_wide_ldb::<true>(kc, a, b, 32, c, ldc, add)
    } else {
        kernel_f32_wide_ldb::<false>(kc, a, b, ldb, c, ldc, add)
    }
}

/// # Safety
/// As [`kernel_f32_wide`], with `ldb == 32` when `PACKED`.
#[target_feature(enable = "avx512f")]
unsafe fn kernel_f32_wide_ldb<const PACKED: bool>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    add: bool,
) {
    let ldb = if PACKED { 32 } else { ldb };
    let mut acc = [[_mm512_setzero_ps(); 2]; 6];
    for p in 0..kc {
        let bp = b.add(p * ldb);
        let b0 = _mm512_loadu_ps(bp);
        let b1 = _mm512_loadu_ps(bp.add(16));
        for (i, row) in acc.iter_mut().enumerate() {
            let ai = _mm512_set1_ps(*a.add(p * 6 + i));
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        let (c0, c1) = (c.add(i * ldc), c.add(i * ldc + 16));
        if add {
            _mm512_storeu_ps(c0, _mm512_add_ps(_mm512_loadu_ps(c0), row[0]));
            _mm512_storeu_ps(c1, _mm512_add_ps(_mm512_loadu_ps(c1), row[1]));
        } else {
            _mm512_storeu_ps(c0, row[0]);
            _mm512_storeu_ps(c1, row[1]);
        }
    }
}

/// The 6 x 32 f32 AVX-512 tile with `a` read in place from six rows `lda`
/// apart, `b` packed 32 wide.
///
/// # Safety
/// The CPU has AVX-512 F; `kc > 0`; `a` holds six rows of `kc` values
/// `lda` apart, `b` holds `kc` packed rows of 32, and `tile` has room for
/// 6 x 32.
#[target_feature(enable = "avx512f")]
pub unsafe fn kernel_f32_wide_rows(kc: usize, a: *const f32, lda: usize, b: *const f32, tile: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); 2]; 6];
    let rows: [*const f32; 6] = std::array::from_fn(|i| a.add(i * lda));
    for p in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(p * 32));
        let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
        for (row, r) in acc.iter_mut().zip(&rows) {
            let ai = _mm512_set1_ps(*r.add(p));
            row[0] = _mm512_fmadd_ps(ai, b0, row[0]);
            row[1] = _mm512_fmadd_ps(ai, b1, row[1]);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(tile.add(i * 32), row[0]);
        _mm512_storeu_ps(tile.add(i * 32 + 16), row[1]);
    }
}
