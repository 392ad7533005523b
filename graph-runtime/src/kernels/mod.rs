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
//! their operands by strides. Here: the products, the blocked driver and
//! packing; `micro.rs`: each type's micro-kernel (SIMD or portable);
//! `simd.rs`: the AVX2 + FMA kernels; `tests.rs`.

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
    if m * k * n <= SMALL_WORK {
        let a = Operand {
            data: a,
            rs: k,
            cs: 1,
        };
        // bᵀ(p, j) = b[j * k + p].
        let bt = Operand {
            data: b,
            rs: 1,
            cs: k,
        };
        small(m, n, k, a, bt, c, false);
        return;
    }
    by_rows(m, n, m * k * n, TRANSPOSED_TILES, c, |r0, r1, c| {
        F::rows_times_packed(r1 - r0, k, n, &a[r0 * k..r1 * k], b, c)
    });
}

/// Products of at most this many multiply-adds skip packing and tiling:
/// for a few hundred values the blocked path's setup costs more than the
/// arithmetic (it took a third of an iteration of the seed's 4-unit cell).
const SMALL_WORK: usize = 2048;

/// `c = [c +] a · b`, element by element, for products of at most
/// [`SMALL_WORK`] multiply-adds.
fn small<F: Float>(
    m: usize,
    n: usize,
    k: usize,
    a: Operand<'_, F>,
    b: Operand<'_, F>,
    c: &mut [F],
    accumulate: bool,
) {
    for i in 0..m {
        for j in 0..n {
            let mut acc = F::zero();
            for p in 0..k {
                acc += a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
            }
            let out = &mut c[i * n + j];
            *out = if accumulate { *out + acc } else { acc };
        }
    }
}

/// Products of at least this many multiply-adds (about 130 µs on one core)
/// are split across threads; waking a worker costs about what half of a
/// smaller one saves (measured on the char model: 2M multiply-adds per
/// step ran slower on two threads).
const PARALLEL_WORK: usize = 1 << 23;

/// Rows per unit of a split, for products tiled by `MR` rows of the output
/// and for `x · wᵀ`, which is tiled by 16 (f32) or 8 (f64) of its rows: a
/// split falls on tile boundaries, so that every output element is computed
/// exactly as by one thread.
const ROW_TILES: usize = 6;
const TRANSPOSED_TILES: usize = 16;

/// A pointer handed to the threads of one product, each of which writes
/// its own run of rows.
struct Rows<T>(*mut T);
// SAFETY: the threads of a product write disjoint runs of rows (see `by_rows`).
unsafe impl<T: Send> Sync for Rows<T> {}

impl<T> Rows<T> {
    /// The element `offset` past the start. (A method, so that closures
    /// capture the `Rows`, not the raw pointer inside.)
    fn at(&self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// Runs `product(r0, r1, rows of c)` for runs of the `m` rows of `c`
/// (`m x n`), split on multiples of `align` rows across [`pool::threads`]
/// when `work` is large.
fn by_rows<F: Float>(
    m: usize,
    n: usize,
    work: usize,
    align: usize,
    c: &mut [F],
    product: impl Fn(usize, usize, &mut [F]) + Sync,
) {
    let parts = if work >= PARALLEL_WORK {
        pool::threads().min(m.div_ceil(align)).max(1)
    } else {
        1
    };
    if parts == 1 {
        product(0, m, c);
        return;
    }
    let rows = Rows(c.as_mut_ptr());
    let part = |p: usize| {
        let (r0, r1) = (
            pool::split(m, parts, align, p),
            pool::split(m, parts, align, p + 1),
        );
        // SAFETY: the runs r0..r1 of the parts are disjoint and within `c`
        // (`split` is increasing in `p`, from 0 to `m`).
        let c = unsafe { std::slice::from_raw_parts_mut(rows.at(r0 * n), (r1 - r0) * n) };
        product(r0, r1, c);
    };
    pool::run(parts, &part);
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
    by_rows(m, n, m * k * n, ROW_TILES, c, |r0, r1, c| {
        let a = Operand {
            data: &a[r0 * k..],
            rs: k,
            cs: 1,
        };
        let b = Operand {
            data: b,
            rs: n,
            cs: 1,
        };
        gemm(r1 - r0, n, k, a, b, c, true)
    });
}

/// `c += aᵀ · b` where `a` is `(k, m)`, `b` is `(k, n)` and `c` is `(m, n)`.
pub fn matmul_at_b_acc<F: Float>(a: &[F], b: &[F], c: &mut [F], k: usize, m: usize, n: usize) {
    debug_assert_eq!((a.len(), b.len(), c.len()), (k * m, k * n, m * n));
    by_rows(m, n, m * k * n, ROW_TILES, c, |r0, r1, c| {
        // Rows r0.. of aᵀ are columns r0.. of a.
        let a = Operand {
            data: &a[r0..],
            rs: 1,
            cs: m,
        };
        let b = Operand {
            data: b,
            rs: n,
            cs: 1,
        };
        gemm(r1 - r0, n, k, a, b, c, true)
    });
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
    if m * n * k <= SMALL_WORK {
        small(m, n, k, a, b, c, accumulate);
        return;
    }
    F::gemm(m, n, k, a, b, c, accumulate);
}

/// The kernels of one element type (its matrix products, with its own
/// micro-kernel and packing buffer, and its activations): what [`Float`]
/// carries, so that they dispatch statically. Sealed: implemented for `f32`
/// and `f64` only.
#[doc(hidden)]
pub trait Kernels: Copy + sealed::Sealed {
    /// `x = e^x` for each element.
    fn exp_in_place(x: &mut [Self]);
    /// `x = tanh(x)` for each element.
    fn tanh_in_place(x: &mut [Self]);
    /// `x = 1 / (1 + e^{-x})` for each element.
    fn sigmoid_in_place(x: &mut [Self]);
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

/// f32 has vectorised activations; f64 keeps libm's, to full accuracy.
macro_rules! activations_for {
    (f32, exp, $x:ident) => {
        activations::exp_in_place($x)
    };
    (f64, exp, $x:ident) => {
        $x.iter_mut().for_each(|v| *v = v.exp())
    };
    (f32, tanh, $x:ident) => {
        activations::tanh_in_place($x)
    };
    (f32, sigmoid, $x:ident) => {
        activations::sigmoid_in_place($x)
    };
    (f64, tanh, $x:ident) => {
        $x.iter_mut().for_each(|v| *v = v.tanh())
    };
    (f64, sigmoid, $x:ident) => {
        $x.iter_mut().for_each(|v| *v = crate::layers::sigmoid(*v))
    };
}

macro_rules! gemm_for {
    ($t:ident, $pack:ident) => {
        impl Kernels for $t {
            fn exp_in_place(x: &mut [$t]) {
                activations_for!($t, exp, x)
            }

            fn tanh_in_place(x: &mut [$t]) {
                activations_for!($t, tanh, x)
            }

            fn sigmoid_in_place(x: &mut [$t]) {
                activations_for!($t, sigmoid, x)
            }

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
        micro::portable_rows::<Self>(kc, a, lda, b, Self::MR, Self::NR, tile);
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

pub mod activations;
mod micro;
pub mod pool;
#[cfg(target_arch = "x86_64")]
mod simd;

#[cfg(test)]
mod tests;
