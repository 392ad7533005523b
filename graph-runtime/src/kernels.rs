//! Dense matrix products that never allocate once warmed up.
//!
//! ndarray's `dot` (matrixmultiply) allocates a packing buffer on every call,
//! which would break the promise that a warmed-up training step allocates
//! nothing. This is a BLIS-style GEMM instead: blocks of `A`, and of `B`
//! unless its rows can be read in place, are packed into a per-thread buffer
//! (grown on first use, then reused) and multiplied by a register-blocked
//! micro-kernel: 6 x 16 (f32) or 6 x 8 (f64) with AVX2 and FMA when the CPU
//! has them (detected at run time), a portable one otherwise.
//!
//! The three products a linear layer needs are thin wrappers that describe
//! their operands by strides.

use crate::Float;
use std::cell::RefCell;

/// A read-only matrix operand: element `(i, j)` is at `i * rs + j * cs`.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Operand<'a, T> {
    data: &'a [T],
    rs: usize,
    cs: usize,
}

/// `c = a · bᵀ` where `a` is `(m, k)`, `b` is `(n, k)` and `c` is `(m, n)`,
/// all row-major and contiguous. Overwrites `c`.
pub fn matmul_a_bt<F: Float>(a: &[F], b: &[F], c: &mut [F], m: usize, k: usize, n: usize) {
    assert_eq!(
        (a.len(), b.len(), c.len()),
        (m * k, n * k, m * n),
        "matmul_a_bt: operand sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(F::zero());
        return;
    }
    F::rows_times_packed(m, k, n, a, b, c);
}

/// `c = x · wᵀ` (x `(m, k)`, w `(n, k)`, c `(m, n)`), computed as
/// `cᵀ = w · xᵀ`: the rows of `w` (a weight matrix, the large operand) are
/// read in place as the kernel's broadcast side, and only `xᵀ` (a batch of
/// activations) is packed. Packing `w` instead would be redone at every
/// step of a sequence.
fn rows_times_packed<T: Kernel>(
    m: usize,
    k: usize,
    n: usize,
    x: &[T],
    w: &[T],
    c: &mut [T],
    buf: &mut Vec<T>,
) {
    let (mr, nr) = (T::MR, T::NR);
    let panels = m.div_ceil(nr);
    let (x_len, w_len) = (panels * k * nr, k * mr);
    if buf.len() < x_len + w_len {
        buf.resize(x_len + w_len, T::zero());
    }
    let (xpack, wpack) = buf.split_at_mut(x_len);
    // xᵀ(p, j) = x[j * k + p]: lane j (a sample) is contiguous along p.
    let xt = Operand {
        data: x,
        rs: 1,
        cs: k,
    };
    for (q, j0) in (0..m).step_by(nr).enumerate() {
        pack(
            &mut xpack[q * k * nr..(q + 1) * k * nr],
            nr,
            xt,
            0,
            j0,
            k,
            nr.min(m - j0),
            false,
        );
    }
    let mut tile = [T::zero(); 6 * 16];
    let tile = &mut tile[..mr * nr];
    for i0 in (0..n).step_by(mr) {
        let rows = mr.min(n - i0);
        let packed_rows = rows < mr;
        if packed_rows {
            pack(
                &mut wpack[..k * mr],
                mr,
                Operand {
                    data: w,
                    rs: k,
                    cs: 1,
                },
                i0,
                0,
                k,
                rows,
                true,
            );
        }
        for (q, j0) in (0..m).step_by(nr).enumerate() {
            let xpanel = &xpack[q * k * nr..(q + 1) * k * nr];
            if packed_rows {
                T::kernel(k, &wpack[..k * mr], xpanel, nr, tile);
            } else {
                T::kernel_rows(k, &w[i0 * k..(i0 + mr) * k], k, xpanel, tile);
            }
            // The tile is cᵀ[i0.., j0..]: write it back transposed.
            for jj in 0..nr.min(m - j0) {
                let row = &mut c[(j0 + jj) * n + i0..(j0 + jj) * n + i0 + rows];
                for (ii, out) in row.iter_mut().enumerate() {
                    *out = tile[ii * nr + jj];
                }
            }
        }
    }
}

/// `c += a · b` where `a` is `(m, k)`, `b` is `(k, n)` and `c` is `(m, n)`.
pub fn matmul_a_b_acc<F: Float>(a: &[F], b: &[F], c: &mut [F], m: usize, k: usize, n: usize) {
    debug_assert_eq!((a.len(), b.len(), c.len()), (m * k, k * n, m * n));
    gemm(
        m,
        n,
        k,
        Operand {
            data: a,
            rs: k,
            cs: 1,
        },
        Operand {
            data: b,
            rs: n,
            cs: 1,
        },
        c,
        true,
    );
}

/// `c += aᵀ · b` where `a` is `(k, m)`, `b` is `(k, n)` and `c` is `(m, n)`.
pub fn matmul_at_b_acc<F: Float>(a: &[F], b: &[F], c: &mut [F], k: usize, m: usize, n: usize) {
    debug_assert_eq!((a.len(), b.len(), c.len()), (k * m, k * n, m * n));
    gemm(
        m,
        n,
        k,
        Operand {
            data: a,
            rs: 1,
            cs: m,
        },
        Operand {
            data: b,
            rs: n,
            cs: 1,
        },
        c,
        true,
    );
}

/// `c (m x n, row-major) = [c +] a · b`.
fn gemm<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_, F>,
    b: Operand<'_, F>,
    c: &mut [F],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(F::zero());
        }
        return;
    }
    F::gemm(m, n, k, a, b, c, accumulate);
}

/// The matrix products of one element type, with its own micro-kernel and
/// packing buffer: what [`Float`] carries, so that the products dispatch
/// statically. Sealed: implemented for `f32` and `f64` only.
#[doc(hidden)]
pub trait Gemm: Copy + sealed::Sealed {
    /// `c = a · bᵀ`; see [`matmul_a_bt`].
    fn rows_times_packed(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]);
    /// `c = [c +] a · b` on strided operands.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: Operand<'_, Self>,
        b: Operand<'_, Self>,
        c: &mut [Self],
        accumulate: bool,
    );
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

thread_local! {
    static PACK_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PACK_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
    /// Set by [`with_portable_kernels`].
    static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with the portable micro-kernels on this thread, whatever the
/// CPU has: how the portable path is tested (and measured) on machines with
/// AVX2.
#[doc(hidden)]
pub fn with_portable_kernels<R>(f: impl FnOnce() -> R) -> R {
    let before = PORTABLE.replace(true);
    let result = f();
    PORTABLE.set(before);
    result
}

macro_rules! gemm_for {
    ($t:ty, $pack:ident) => {
        impl Gemm for $t {
            fn rows_times_packed(m: usize, k: usize, n: usize, a: &[$t], b: &[$t], c: &mut [$t]) {
                $pack.with(|buf| rows_times_packed::<$t>(m, k, n, a, b, c, &mut buf.borrow_mut()));
            }

            fn gemm(
                m: usize,
                n: usize,
                k: usize,
                a: Operand<'_, $t>,
                b: Operand<'_, $t>,
                c: &mut [$t],
                accumulate: bool,
            ) {
                $pack.with(|buf| blocked::<$t>(m, n, k, a, b, c, accumulate, &mut buf.borrow_mut()));
            }
        }
    };
}
gemm_for!(f32, PACK_F32);
gemm_for!(f64, PACK_F64);

/// Block sizes: `KC` rows of `B` and columns of `A` per packed block, `MC`
/// rows of `A`, `NC` columns of `B`; chosen so a packed `A` block stays in
/// L2 and a `B` micro-panel in L1.
const KC: usize = 256;
const MC: usize = 72;
const NC: usize = 2048;

/// The longest row of `B` read in place (see `blocked`).
const IN_PLACE_ROW_BYTES: usize = 1024;

/// The widest panel a kernel packs (`NR` of f32).
const MAX_WIDTH: usize = 16;

/// A scalar type with a micro-kernel.
trait Kernel: Float {
    /// Rows and columns of the register tile.
    const MR: usize;
    const NR: usize;
    /// `tile (MR x NR, row-major) = Σ_p a[p*MR + i] · b[p*ldb + j]` over `kc`:
    /// `a` packed, `b` packed (`ldb == NR`) or read in place.
    fn kernel(kc: usize, a: &[Self], b: &[Self], ldb: usize, tile: &mut [Self]);

    /// The tile with `a` read in place: lane `i` at step `p` is
    /// `a[i * lda + p]` (`MR` rows of a row-major matrix); `b` packed.
    fn kernel_rows(kc: usize, a: &[Self], lda: usize, b: &[Self], tile: &mut [Self]) {
        portable_rows::<Self>(kc, a, lda, b, Self::MR, Self::NR, tile);
    }

    /// The same product added into (or, with `overwrite`, stored in) a full
    /// `MR x NR` block of `c` starting at `c[0]` with row stride `ldc`.
    #[allow(clippy::too_many_arguments)]
    fn kernel_into(
        kc: usize,
        a: &[Self],
        b: &[Self],
        ldb: usize,
        c: &mut [Self],
        ldc: usize,
        overwrite: bool,
        tile: &mut [Self],
    ) {
        Self::kernel(kc, a, b, ldb, tile);
        for i in 0..Self::MR {
            let out = &mut c[i * ldc..i * ldc + Self::NR];
            let t = &tile[i * Self::NR..(i + 1) * Self::NR];
            if overwrite {
                out.copy_from_slice(t);
            } else {
                out.iter_mut().zip(t).for_each(|(o, &v)| *o += v);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn blocked<T: Kernel>(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_, T>,
    b: Operand<'_, T>,
    c: &mut [T],
    accumulate: bool,
    buf: &mut Vec<T>,
) {
    let (mr, nr) = (T::MR, T::NR);
    // A B whose rows are contiguous and short (a weight matrix in backward,
    // or the activations) is read in place rather than packed, which would
    // be done again at every step of a sequence. Rows far apart are packed
    // all the same: a panel reads KC rows, and one page per row costs more
    // in address translation than the packing saves. A last, partial panel
    // is always packed.
    let in_place = b.cs == 1 && b.rs * std::mem::size_of::<T>() <= IN_PLACE_ROW_BYTES;
    let nc_max = if in_place { nr } else { NC.min(n.div_ceil(nr) * nr) };
    let kc_max = KC.min(k);
    let mc_max = MC.min(m.div_ceil(mr) * mr);
    let (b_len, a_len) = (kc_max * nc_max, kc_max * mc_max);
    if buf.len() < a_len + b_len {
        buf.resize(a_len + b_len, T::zero());
    }
    let (bpack, rest) = buf.split_at_mut(b_len);
    let apack = &mut rest[..a_len];
    let mut tile = [T::zero(); 6 * 16];
    let tile = &mut tile[..mr * nr];

    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            // Pack B[pc.., jc..] into column panels of NR, zero padded.
            if !in_place {
                for (panel, j0) in (0..nc).step_by(nr).enumerate() {
                    let dst = &mut bpack[panel * kc * nr..(panel + 1) * kc * nr];
                    pack(dst, nr, b, pc, jc + j0, kc, nr.min(nc - j0), false);
                }
            }
            let overwrite = !accumulate && pc == 0;
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // Pack A[ic.., pc..] into row panels of MR, zero padded.
                for (panel, i0) in (0..mc).step_by(mr).enumerate() {
                    let dst = &mut apack[panel * kc * mr..(panel + 1) * kc * mr];
                    pack(dst, mr, a, ic + i0, pc, kc, mr.min(mc - i0), true);
                }
                for (bp, j0) in (0..nc).step_by(nr).enumerate() {
                    let cols = nr.min(nc - j0);
                    let (bpanel, ldb): (&[T], usize) = if !in_place {
                        (&bpack[bp * kc * nr..(bp + 1) * kc * nr], nr)
                    } else if cols == nr {
                        let start = pc * b.rs + jc + j0;
                        (&b.data[start..start + (kc - 1) * b.rs + nr], b.rs)
                    } else {
                        pack(&mut bpack[..kc * nr], nr, b, pc, jc + j0, kc, cols, false);
                        (&bpack[..kc * nr], nr)
                    };
                    for (ap, i0) in (0..mc).step_by(mr).enumerate() {
                        let apanel = &apack[ap * kc * mr..(ap + 1) * kc * mr];
                        let rows = mr.min(mc - i0);
                        if rows == mr && cols == nr {
                            let start = (ic + i0) * n + jc + j0;
                            let end = start + (mr - 1) * n + nr;
                            T::kernel_into(kc, apanel, bpanel, ldb, &mut c[start..end], n, overwrite, tile);
                            continue;
                        }
                        T::kernel(kc, apanel, bpanel, ldb, tile);
                        for ii in 0..rows {
                            let start = (ic + i0 + ii) * n + jc + j0;
                            let out = &mut c[start..start + cols];
                            let t = &tile[ii * nr..ii * nr + cols];
                            if overwrite {
                                out.copy_from_slice(t);
                            } else {
                                out.iter_mut().zip(t).for_each(|(o, &v)| *o += v);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs a panel: `width` lanes of `kc` steps into `dst[p * width + lane]`,
/// zero padding lanes past `lanes`. For `A` (`rows_are_lanes`) lane `l`,
/// step `p` is `op(i0 + l, j0 + p)`; for `B` it is `op(i0 + p, j0 + l)`.
/// Each lane is read along its own stride, so a contiguous operand is read
/// contiguously whichever way it is laid out.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pack<T: Float>(
    dst: &mut [T],
    width: usize,
    op: Operand<'_, T>,
    i0: usize,
    j0: usize,
    kc: usize,
    lanes: usize,
    rows_are_lanes: bool,
) {
    let (lane_stride, step_stride) = if rows_are_lanes {
        (op.rs, op.cs)
    } else {
        (op.cs, op.rs)
    };
    let base = i0 * op.rs + j0 * op.cs;
    assert!(lanes <= width && width <= MAX_WIDTH && dst.len() >= kc * width);
    if lanes > 0 && kc > 0 {
        let last = base + (lanes - 1) * lane_stride + (kc - 1) * step_stride;
        assert!(last < op.data.len(), "packed block exceeds its operand");
    }
    let src = op.data.as_ptr();
    if step_stride == 1 {
        // Each lane is a contiguous run of kc values: read it in order.
        for l in 0..lanes {
            // SAFETY: base + l * lane_stride + (kc - 1) is within `data` (asserted above).
            let from = unsafe { src.add(base + l * lane_stride) };
            for p in 0..kc {
                // SAFETY: p < kc.
                dst[p * width + l] = unsafe { *from.add(p) };
            }
        }
    } else if lane_stride == 1 {
        // Each step is a contiguous run of `lanes` values: a short copy of a
        // size known at compile time when the panel is full (a call to
        // memmove per step would cost more than the copy).
        for p in 0..kc {
            let out = &mut dst[p * width..p * width + lanes];
            // SAFETY: base + p * step_stride + lanes - 1 is within `data` (asserted above).
            let from = unsafe { src.add(base + p * step_stride) };
            // SAFETY (each arm): `lanes` values are readable at `from`, as above.
            match lanes {
                16 => unsafe { copy_fixed::<T, 16>(out, from) },
                8 => unsafe { copy_fixed::<T, 8>(out, from) },
                6 => unsafe { copy_fixed::<T, 6>(out, from) },
                _ => {
                    for (l, o) in out.iter_mut().enumerate() {
                        // SAFETY: l < lanes.
                        *o = unsafe { *from.add(l) };
                    }
                }
            }
        }
    } else {
        for p in 0..kc {
            for l in 0..lanes {
                dst[p * width + l] = op.data[base + l * lane_stride + p * step_stride];
            }
        }
    }
    if lanes < width {
        for p in 0..kc {
            dst[p * width + lanes..(p + 1) * width].fill(T::zero());
        }
    }
}

/// Copies `N` values from `from` into `out` (of length `N`).
///
/// # Safety
/// `from` must point to `N` consecutive initialised values of `T`.
#[inline(always)]
unsafe fn copy_fixed<T: Copy, const N: usize>(out: &mut [T], from: *const T) {
    let out: &mut [T; N] = out.try_into().expect("a full panel");
    // SAFETY: the caller guarantees N readable values at `from`.
    *out = unsafe { std::ptr::read_unaligned(from as *const [T; N]) };
}

/// The portable micro-kernel: fixed-size loops the compiler unrolls.
#[inline(always)]
fn portable<T: Float, const MR: usize, const NR: usize>(
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
fn portable_rows<T: Float>(kc: usize, a: &[T], lda: usize, b: &[T], mr: usize, nr: usize, tile: &mut [T]) {
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
    const NR: usize = 16;

    fn kernel_rows(kc: usize, a: &[f32], lda: usize, b: &[f32], tile: &mut [f32]) {
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
    const NR: usize = 8;

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

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    /// Whether the SIMD kernels run: the CPU has AVX2 and FMA, and this
    /// thread has not asked for the portable ones.
    pub fn available() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        !super::PORTABLE.get()
            && *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
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
}
