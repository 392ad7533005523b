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

/// One register-tiled micro-kernel per vector width and float type: a tile
/// of 6 rows by two vectors, `c (6 x NR at row stride ldc) = [c +]
/// Σ_p a(p, i) · b[p * ldb + j]`, twelve accumulators, two loads of `b`
/// and six broadcasts of `a` per step; or only its first `rows` rows (a
/// batch's last rows: 25 samples are four whole tiles and one row, which a
/// whole tile would compute six times over). `a`'s lane `i` at step `p` is
/// `a[p * step + i * lane]`: packed (`step = 6`, `lane = 1`), rows read in
/// place (`step = 1`, `lane` the row stride) or steps read in place
/// (`step` the row stride, `lane = 1`). Every tile computes each element by
/// the same chain of fused multiply-adds, so results do not depend on the
/// tile's width or on how `a` and `b` are laid out.
macro_rules! tile_kernel {
    ($name:ident, $body:ident, $t:ty, $feature:literal, $half:literal,
     $zero:ident, $load:ident, $store:ident, $add:ident, $bcast:ident, $fma:ident) => {
        #[doc = concat!("The 6 x ", stringify!($half), " x 2 ", stringify!($t), " tile (", $feature, "); see `tile_kernel!`.")]
        ///
        /// A packed `a` and a packed `b` (`ldb` of two vectors) each take a
        /// copy of the loop with the strides known at compile time: a
        /// run-time stride costs a quarter of the speed. A tile of fewer
        /// rows takes the run-time strides: it is at most one per column
        /// panel of a product.
        ///
        /// # Safety
        #[doc = concat!("The CPU has ", $feature, "; `kc > 0`; `1 <= rows <= 6`; `a` holds every `a[p * step + i * lane]` for `p < kc`, `i < rows`; `b` holds `(kc - 1) * ldb + ", stringify!($half), " * 2` values; `c` has `rows` rows of that many writable values `ldc` apart.")]
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $name(
            kc: usize,
            a: *const $t,
            step: usize,
            lane: usize,
            b: *const $t,
            ldb: usize,
            c: *mut $t,
            ldc: usize,
            add: bool,
            rows: usize,
        ) {
            const NR: usize = 2 * $half;
            match (rows, step == 6 && lane == 1, ldb == NR) {
                (6, true, true) => $body::<true, true, 6>(kc, a, 6, 1, b, NR, c, ldc, add),
                (6, true, false) => $body::<true, false, 6>(kc, a, 6, 1, b, ldb, c, ldc, add),
                (6, false, true) => $body::<false, true, 6>(kc, a, step, lane, b, NR, c, ldc, add),
                (6, false, false) => $body::<false, false, 6>(kc, a, step, lane, b, ldb, c, ldc, add),
                (5, ..) => $body::<false, false, 5>(kc, a, step, lane, b, ldb, c, ldc, add),
                (4, ..) => $body::<false, false, 4>(kc, a, step, lane, b, ldb, c, ldc, add),
                (3, ..) => $body::<false, false, 3>(kc, a, step, lane, b, ldb, c, ldc, add),
                (2, ..) => $body::<false, false, 2>(kc, a, step, lane, b, ldb, c, ldc, add),
                _ => $body::<false, false, 1>(kc, a, step, lane, b, ldb, c, ldc, add),
            }
        }

        /// # Safety
        #[doc = concat!("As [`", stringify!($name), "`] for `ROWS` rows, with `a` packed when `PACKED_A` and `ldb` of two vectors when `PACKED_B`.")]
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = $feature)]
        unsafe fn $body<const PACKED_A: bool, const PACKED_B: bool, const ROWS: usize>(
            kc: usize,
            a: *const $t,
            step: usize,
            lane: usize,
            b: *const $t,
            ldb: usize,
            c: *mut $t,
            ldc: usize,
            add: bool,
        ) {
            let (step, lane) = if PACKED_A { (6, 1) } else { (step, lane) };
            let ldb = if PACKED_B { 2 * $half } else { ldb };
            let lanes: [*const $t; ROWS] = std::array::from_fn(|i| a.add(i * lane));
            let mut acc = [[$zero(); 2]; ROWS];
            for p in 0..kc {
                let bp = b.add(p * ldb);
                let b0 = $load(bp);
                let b1 = $load(bp.add($half));
                for (row, l) in acc.iter_mut().zip(&lanes) {
                    let ai = $bcast(*l.add(p * step));
                    row[0] = $fma(ai, b0, row[0]);
                    row[1] = $fma(ai, b1, row[1]);
                }
            }
            for (i, row) in acc.iter().enumerate() {
                let (c0, c1) = (c.add(i * ldc), c.add(i * ldc + $half));
                if add {
                    $store(c0, $add($load(c0), row[0]));
                    $store(c1, $add($load(c1), row[1]));
                } else {
                    $store(c0, row[0]);
                    $store(c1, row[1]);
                }
            }
        }
    };
}

tile_kernel!(
    tile_f32,
    tile_f32_body,
    f32,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_add_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps
);
tile_kernel!(
    tile_f64,
    tile_f64_body,
    f64,
    "avx2,fma",
    4,
    _mm256_setzero_pd,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_add_pd,
    _mm256_set1_pd,
    _mm256_fmadd_pd
);
tile_kernel!(
    tile_f32_wide,
    tile_f32_wide_body,
    f32,
    "avx512f",
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_add_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps
);
