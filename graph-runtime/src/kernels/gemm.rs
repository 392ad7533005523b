//! The blocked GEMM: BLIS-style blocks of `A` and `B`, each packed into a
//! per-thread buffer unless it can be read in place, multiplied by a
//! register-blocked micro-kernel (`micro.rs`, `simd.rs`); and `x · wᵀ`, with
//! `wᵀ` packed and `x` read in place, or (`rows_times_packed`) the other
//! way round.

use super::split::Columns;
use super::Operand;
use crate::Float;

/// `c = x · wᵀ [+ bias]` (x `(m, k)`, w `(n, k)`, c `(m, n)`), computed as
/// `cᵀ = w · xᵀ`: the rows of `w` (a weight matrix, the large operand) are
/// read in place as the kernel's broadcast side, and only `xᵀ` (a batch of
/// activations) is packed. Packing `w` instead would be redone at every
/// step of a sequence. Computes the columns `c.cols()` of `c` (rows of `w`),
/// which start on a multiple of `MR`.
pub(super) fn rows_times_packed<T: Kernel>(
    m: usize,
    k: usize,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    mut c: Columns<'_, T>,
    buf: &mut Vec<T>,
) {
    let (mr, nr) = (T::MR, T::nr());
    // One panel of `xᵀ` at a time: the buffer's size does not depend on
    // how many rows this thread was given, so a warm thread never grows it.
    let x_len = k * nr;
    if buf.len() < x_len {
        buf.resize(x_len, T::zero());
    }
    let xpanel = &mut buf[..x_len];
    // xᵀ(p, j) = x[j * k + p]: lane j (a sample) is contiguous along p.
    let xt = Operand {
        data: x,
        rs: 1,
        cs: k,
    };
    let mut tile = [T::zero(); MAX_TILE];
    let tile = &mut tile[..mr * nr];
    let cols = c.cols();
    for j0 in (0..m).step_by(nr) {
        pack(xpanel, nr, xt, 0, j0, k, nr.min(m - j0), false);
        let xpanel: &[T] = xpanel;
        for i0 in cols.clone().step_by(mr) {
            let rows = mr.min(cols.end - i0);
            let a = Lanes::rows(&w[i0 * k..(i0 + rows) * k], k);
            T::tile(k, a, xpanel, nr, tile, nr, false, rows);
            // The tile is cᵀ[i0.., j0..]: write it back transposed.
            for jj in 0..nr.min(m - j0) {
                let row = &mut c.row(j0 + jj)[i0 - cols.start..i0 - cols.start + rows];
                for (ii, out) in row.iter_mut().enumerate() {
                    *out = tile[ii * nr + jj];
                }
                if let Some(bias) = bias {
                    row.iter_mut()
                        .zip(&bias[i0..i0 + rows])
                        .for_each(|(y, &b)| *y += b);
                }
            }
        }
    }
}

/// `c = x · wᵀ [+ bias]` (x `(m, k)`, c `(m, n)`) for the columns `c.cols()`, which
/// are whole panels of `NR` from a multiple of `NR`, with `wt` the packed
/// `wᵀ` (`packed.rs`): `x` is read in place, six rows at a time, and each
/// tile is a block of `c` as it lies. Every element is the same chain of
/// fused multiply-adds as by [`rows_times_packed`] (the two factors of each
/// swapped), so the results are the same.
pub(super) fn rows_times_wt<T: Kernel>(
    m: usize,
    k: usize,
    x: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    mut c: Columns<'_, T>,
) {
    let (mr, nr) = (T::MR, T::nr());
    let mut tile = [T::zero(); MAX_TILE];
    let tile = &mut tile[..mr * nr];
    let cols = c.cols();
    for j0 in cols.clone().step_by(nr) {
        let panel = &wt[j0 / nr * k * nr..(j0 / nr + 1) * k * nr];
        let (at, width) = (j0 - cols.start, nr.min(cols.end - j0));
        for i0 in (0..m).step_by(mr) {
            let rows = mr.min(m - i0);
            let a = Lanes::rows(&x[i0 * k..(i0 + rows) * k], k);
            T::tile(k, a, panel, nr, tile, nr, false, rows);
            for ii in 0..rows {
                let (out, t) = (
                    &mut c.row(i0 + ii)[at..at + width],
                    &tile[ii * nr..ii * nr + width],
                );
                match bias {
                    Some(bias) => {
                        let bias = &bias[j0..j0 + width];
                        out.iter_mut()
                            .zip(t)
                            .zip(bias)
                            .for_each(|((y, &t), &b)| *y = t + b);
                    }
                    None => out.copy_from_slice(t),
                }
            }
        }
    }
}

/// Block sizes: `KC` rows of `B` and columns of `A` per packed block, `MC`
/// rows of `A`, `NC` columns of `B`; chosen so a packed `A` block stays in
/// L2 and a `B` micro-panel in L1.
pub(super) const KC: usize = 256;
const MC: usize = 72;
const NC: usize = 2048;

/// The longest row of `B` read in place (see `blocked`).
const IN_PLACE_ROW_BYTES: usize = 1024;

/// Products of at least this many rows pack `B` however it is laid out
/// (see `blocked`): the packing costs at most 1/128 of the multiply-adds.
const PACK_B_ROWS: usize = 128;

/// The longest stride of an A read in place (see `blocked`). At 4 KiB a
/// 1024³ `aᵀ · b` ran slower in place than packed (50.7 against 63.3
/// GFLOP/s, one thread, Intel AVX-512 VM), likely because a block of `MC`
/// rows (or steps) that far apart spans more pages than the TLB holds.
const IN_PLACE_A_BYTES: usize = 2048;

/// The widest panel a kernel packs (`NR` of the AVX-512 f32 tile).
const MAX_WIDTH: usize = 32;

/// The largest register tile, `MR x NR`.
const MAX_TILE: usize = 6 * MAX_WIDTH;

/// `a`'s side of a micro-kernel's tile: lane `i` (row `i` of the tile) at
/// step `p` is `data[p * step + i * lane]`.
#[derive(Clone, Copy)]
pub(super) struct Lanes<'a, T> {
    pub(super) data: &'a [T],
    pub(super) step: usize,
    pub(super) lane: usize,
}

impl<'a, T: Kernel> Lanes<'a, T> {
    /// Packed: `MR` lanes per step, one step after another.
    pub(super) fn packed(data: &'a [T]) -> Self {
        Lanes {
            data,
            step: T::MR,
            lane: 1,
        }
    }

    /// `MR` rows of a row-major matrix read in place, `lda` apart.
    pub(super) fn rows(data: &'a [T], lda: usize) -> Self {
        Lanes {
            data,
            step: 1,
            lane: lda,
        }
    }

    /// `MR` adjacent values of each of `kc` rows `lda` apart, read in place
    /// (the lanes are the columns of a row-major matrix).
    pub(super) fn steps(data: &'a [T], lda: usize) -> Self {
        Lanes {
            data,
            step: lda,
            lane: 1,
        }
    }
}

/// A scalar type with a micro-kernel.
pub(super) trait Kernel: Float {
    /// Rows of the register tile.
    const MR: usize;
    /// Columns of the register tile, which the CPU decides (wider with
    /// AVX-512); the same for every call of one product.
    fn nr() -> usize;
    /// `c (rows x NR at row stride ldc) = [c +] Σ_p a(p, i) · b[p * ldb + j]`
    /// over `kc` steps, `b` packed (`ldb == NR`) or read in place, for the
    /// first `rows` (1 to `MR`) rows of the tile: `a`'s other lanes are not
    /// read, `c`'s other rows not written. Each element is the same chain of
    /// fused multiply-adds whatever `rows` is.
    #[allow(clippy::too_many_arguments)]
    fn tile(
        kc: usize,
        a: Lanes<'_, Self>,
        b: &[Self],
        ldb: usize,
        c: &mut [Self],
        ldc: usize,
        add: bool,
        rows: usize,
    );
}

/// One product of [`blocked`]: `c (m x n) = [c +] a · b` for the `A` all
/// parts share. `packed_b`, when given, is `b` packed by columns for all
/// `k` steps (`packed::pack_columns`), read instead of packing `b` or
/// reading it in place.
#[doc(hidden)]
pub struct Part<'a, T> {
    pub(super) n: usize,
    pub(super) b: Operand<'a, T>,
    pub(super) packed_b: Option<&'a [T]>,
    pub(super) c: &'a mut [T],
}

impl<T> Part<'_, T> {
    /// Its column panels of `nr`, the last one maybe partial.
    fn panels(&self, nr: usize) -> usize {
        self.n.div_ceil(nr)
    }
}

/// The part and the first column of the `g`-th column panel of `parts`,
/// counted across them (each part's panels start on its column 0).
fn panel_of<T>(parts: &[Part<'_, T>], nr: usize, mut g: usize) -> (usize, usize) {
    for (i, part) in parts.iter().enumerate() {
        let panels = part.panels(nr);
        if g < panels {
            return (i, g * nr);
        }
        g -= panels;
    }
    unreachable!("a panel past the parts")
}

/// `c = [c +] a · b` for each part `(b, c)`: products that share their `A`
/// (`m x k`), as the weight gradients of the two projections of an LSTM
/// cell share the gates' gradient, run as one, each block of `A` read for
/// the panels of every part. Every element of each `c` is the same chain of
/// operations as when its part runs alone.
pub(super) fn blocked<T: Kernel>(
    m: usize,
    k: usize,
    a: Operand<'_, T>,
    parts: &mut [Part<'_, T>],
    accumulate: bool,
    buf: &mut Vec<T>,
) {
    let (mr, nr) = (T::MR, T::nr());
    // A B whose rows are contiguous and short (a weight matrix in backward,
    // or the activations) is read in place rather than packed when the
    // product has few rows (a step's batch): packing would be done again at
    // every step of a sequence. With many rows the packing is paid once for
    // all of them, and a packed panel stays in L1 where one read in place,
    // its rows a power of two apart, falls into a few of L1's sets and is
    // read from L2 by every tile (W4's gradients over a sequence, one
    // thread: 13% faster packed). Rows far apart are packed all the same:
    // a panel reads KC rows, and one page per row costs more in address
    // translation than the packing saves. A last, partial panel is always
    // packed.
    let in_place = |b: &Operand<'_, T>| {
        b.cs == 1 && b.rs * std::mem::size_of::<T>() <= IN_PLACE_ROW_BYTES && m < PACK_B_ROWS
    };
    let any_in_place = parts.iter().any(|p| p.packed_b.is_none() && in_place(&p.b));
    // An A whose rows, or whose columns, are contiguous and close is read
    // in place by the micro-kernel (MR rows, or MR adjacent columns, `kc`
    // steps long): packing a row-major A is a transposition that cost more
    // than the kernel's strided reads (W4's backward, one thread: 5% of an
    // iteration). Far apart, a block spans too many pages and is packed.
    let a_stride = if a.cs == 1 { a.rs } else { a.cs };
    let a_in_place = (a.cs == 1 || a.rs == 1) && a_stride * std::mem::size_of::<T>() <= IN_PLACE_A_BYTES;
    let panels: usize = parts.iter().map(|p| p.panels(nr)).sum();
    let nc_max = if any_in_place { nr } else { NC.min(panels * nr) };
    let kc_max = KC.min(k);
    // A whole block of A whatever `m` is: a thread's share of rows changes
    // from job to job (`pool::run_rows`), and its buffer is then never
    // grown once warm.
    let mc_max = MC;
    let (b_len, a_len) = (kc_max * nc_max, kc_max * mc_max);
    if buf.len() < a_len + b_len {
        buf.resize(a_len + b_len, T::zero());
    }
    let (bpack, rest) = buf.split_at_mut(b_len);
    let apack = &mut rest[..a_len];
    let mut tile = [T::zero(); MAX_TILE];
    let tile = &mut tile[..mr * nr];

    // Blocks of `nc_max / nr` column panels, counted across the parts.
    let per_block = nc_max / nr;
    for first in (0..panels).step_by(per_block) {
        let block = first..panels.min(first + per_block);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            // Pack B[pc.., panel] for each panel of the block, zero padded.
            for (slot, g) in block.clone().enumerate() {
                let (i, j0) = panel_of(parts, nr, g);
                let part = &parts[i];
                if part.packed_b.is_none() && !in_place(&part.b) {
                    let dst = &mut bpack[slot * kc * nr..(slot + 1) * kc * nr];
                    pack(dst, nr, part.b, pc, j0, kc, nr.min(part.n - j0), false);
                }
            }
            let add = accumulate || pc > 0;
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // Pack A[ic.., pc..] into row panels of MR, zero padded,
                // unless it is read in place (a last panel of fewer rows
                // too: the kernel reads only its rows).
                if !a_in_place {
                    for (panel, i0) in (0..mc).step_by(mr).enumerate() {
                        let dst = &mut apack[panel * kc * mr..(panel + 1) * kc * mr];
                        pack(dst, mr, a, ic + i0, pc, kc, mr.min(mc - i0), true);
                    }
                }
                for (slot, g) in block.clone().enumerate() {
                    let (i, j0) = panel_of(parts, nr, g);
                    let part = &mut parts[i];
                    let (n, b) = (part.n, part.b);
                    let cols = nr.min(n - j0);
                    let (bpanel, ldb): (&[T], usize) = if let Some(panels) = part.packed_b {
                        let at = j0 / nr * k * nr + pc * nr;
                        (&panels[at..at + kc * nr], nr)
                    } else if !in_place(&b) {
                        (&bpack[slot * kc * nr..(slot + 1) * kc * nr], nr)
                    } else if cols == nr {
                        let start = pc * b.rs + j0;
                        (&b.data[start..start + (kc - 1) * b.rs + nr], b.rs)
                    } else {
                        pack(&mut bpack[..kc * nr], nr, b, pc, j0, kc, cols, false);
                        (&bpack[..kc * nr], nr)
                    };
                    let c = &mut *part.c;
                    for (ap, i0) in (0..mc).step_by(mr).enumerate() {
                        let rows = mr.min(mc - i0);
                        let apanel = if a_in_place {
                            // Lane i at step p is A(ic + i0 + i, pc + p).
                            let at = &a.data[(ic + i0) * a.rs + pc * a.cs..];
                            if a.cs == 1 {
                                Lanes::rows(at, a.rs)
                            } else {
                                Lanes::steps(at, a.cs)
                            }
                        } else {
                            Lanes::packed(&apack[ap * kc * mr..(ap + 1) * kc * mr])
                        };
                        if cols == nr {
                            let start = (ic + i0) * n + j0;
                            let end = start + (rows - 1) * n + nr;
                            T::tile(kc, apanel, bpanel, ldb, &mut c[start..end], n, add, rows);
                            continue;
                        }
                        T::tile(kc, apanel, bpanel, ldb, tile, nr, false, rows);
                        for ii in 0..rows {
                            let start = (ic + i0 + ii) * n + j0;
                            let out = &mut c[start..start + cols];
                            let t = &tile[ii * nr..ii * nr + cols];
                            if add {
                                out.iter_mut().zip(t).for_each(|(o, &v)| *o += v);
                            } else {
                                out.copy_from_slice(t);
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
                32 => unsafe { copy_fixed::<T, 32>(out, from) },
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
