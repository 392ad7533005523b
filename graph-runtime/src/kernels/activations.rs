//! `exp`, `tanh` and the logistic function on f32 slices, sixteen lanes at a
//! time with AVX-512 F when the CPU has it, eight with AVX2 + FMA when it has
//! those, and a portable twin of the same algorithm otherwise: the same
//! operations lane by lane, so the same bits on every path. (libm's scalar
//! `tanhf` and `expf` took a quarter of a char-model training step.)
//!
//! - `exp`: `x = n ln2 + r` with `|r| <= ln2 / 2` (ln2 in two parts, so that
//!   `r` is exact), `e^r = 1 + r + r² p(r)` with `p` of degree 5, times `2^n`
//!   built in the exponent bits.
//! - `tanh`: for `|x| < 0.625`, `x + x³ q(x²)` with `q` of degree 5 (no
//!   cancellation near 0); above, `1 - 2 / (e^{2|x|} + 1)` with the sign of
//!   `x`; `±1` from `|x| = 9.1` on, where it is `±1` in f32. NaN stays NaN.
//! - logistic: `1 / (1 + e^{-x})`; 0 below -88.72283, where `e^{-x}`
//!   overflows f32 (as torch's).
//! - `exp` on its own: `+inf` above 88.72283 (where `e^x` overflows f32),
//!   subnormal from -87.34 down to -103.97208, `0` below, NaN stays NaN.
//!
//! The coefficients were fitted for this crate (weighted least squares of
//! the relative error on Chebyshev nodes). Measured error against f64 over a
//! dense sweep (`tests.rs`: every 1e-5 over [-20, 20], magnitudes down to
//! 1e-30, both signs): at most 1 ulp for `tanh`, 3 ulp for the logistic
//! function (where it is a normal f32) and 1 ulp for `exp` (over
//! [-87.3, 88.7]), for the SIMD and portable versions.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const EXP_P: [f32; 6] = [
    0.5,
    0.166_666_66,
    0.041_666_47,
    0.008_333_521,
    0.001_393_320_3,
    0.000_197_504_73,
];
const TANH_Q: [f32; 6] = [
    -0.333_333_3,
    0.133_332_01,
    -0.053_946_253,
    0.021_698_201,
    -0.008_171_769,
    0.002_138_207_4,
];
/// Below this `|x|`, the odd polynomial.
const TANH_SMALL: f32 = 0.625;
/// From this `|x|` on, `tanh` is `±1` in f32.
const TANH_ONE: f32 = 9.1;
/// The largest `x` whose `e^x` is a finite f32 (`e^x` overflows above it).
const EXP_MAX: f32 = 88.722_83;
/// Below this, `e^x` is under half the smallest subnormal f32: 0.
const EXP_MIN: f32 = -103.972_08;

/// `e^x` for `x` in `[EXP_MIN, EXP_MAX]` (the caller clamps).
#[inline(always)]
fn exp_in_range(x: f32) -> f32 {
    // Ties to even, as the vector kernels round.
    let n = (x * LOG2E).round_ties_even();
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    let mut p = EXP_P[5];
    for &c in EXP_P[..5].iter().rev() {
        p = p.mul_add(r, c);
    }
    let er = (r * r).mul_add(p, 1.0 + r);
    // 2^n as two normal powers of two: n reaches 128 at EXP_MAX, -150 at
    // EXP_MIN, where the second product rounds once to a subnormal.
    let n = n as i32;
    let half = n >> 1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    er * pow2(half) * pow2(n - half)
}

/// `tanh(x)`, the portable twin of the SIMD kernel.
#[inline]
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < TANH_SMALL {
        let z = x * x;
        let mut q = TANH_Q[5];
        for &c in TANH_Q[..5].iter().rev() {
            q = q.mul_add(z, c);
        }
        // tanh is odd: the sign of x, which keeps tanh(-0) = -0.
        return (x * z).mul_add(q, x).copysign(x);
    }
    let e = exp_in_range(2.0 * a.min(TANH_ONE));
    (1.0 - 2.0 / (e + 1.0)).copysign(x)
}

/// `1 / (1 + e^{-x})`, the portable twin of the SIMD kernel.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if -x > EXP_MAX {
        // e^{-x} overflows: 0, as torch's `1 / (1 + inf)`.
        return 0.0;
    }
    let e = exp_in_range((-x).max(EXP_MIN));
    1.0 / (1.0 + e)
}

/// `e^x`, the portable twin of the SIMD kernel.
#[inline]
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else if x > EXP_MAX {
        f32::INFINITY
    } else if x < EXP_MIN {
        0.0
    } else {
        exp_in_range(x)
    }
}

/// `x = e^x` for each element.
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::wide() {
        // SAFETY: the CPU has AVX-512 F.
        unsafe { wide::exp(x) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::simd::available() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { simd::exp(x) };
        return;
    }
    x.iter_mut().for_each(|v| *v = exp(*v));
}

/// `x = tanh(x)` for each element.
pub fn tanh_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::wide() {
        // SAFETY: the CPU has AVX-512 F.
        unsafe { wide::tanh(x) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::simd::available() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { simd::tanh(x) };
        return;
    }
    x.iter_mut().for_each(|v| *v = tanh(*v));
}

/// `x = 1 / (1 + e^{-x})` for each element.
pub fn sigmoid_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::wide() {
        // SAFETY: the CPU has AVX-512 F.
        unsafe { wide::sigmoid(x) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::simd::available() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { simd::sigmoid(x) };
        return;
    }
    x.iter_mut().for_each(|v| *v = sigmoid(*v));
}

/// `x - shift` as `(s, err)` with `s + err` exact (Knuth's TwoSum): the
/// rounding of `x - shift` would otherwise grow with `|x - shift|` and
/// pass into `e^(x - shift)` as a relative error.
#[inline(always)]
pub(crate) fn difference<F: crate::Float>(x: F, shift: F) -> (F, F) {
    let s = x - shift;
    if !s.is_finite() {
        // -inf - max: e^s is 0 and needs no correction.
        return (s, F::zero());
    }
    let back = s - x;
    (s, (x - (s - back)) + (-shift - back))
}

/// The most values [`exp_shifted`] takes at once.
pub(crate) const SHIFTED_CHUNK: usize = 64;

/// `out_j = e^(x_j - shift)`, with `x_j - shift` taken exactly (see
/// [`difference`]): `e^(s + err) = e^s (1 + err)`, `|err|` at most half an
/// ulp of `s`. At most [`SHIFTED_CHUNK`] values.
pub(crate) fn exp_shifted<F: crate::Float>(x: &[F], shift: F, out: &mut [F]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::available() {
        // SAFETY: the CPU has AVX2 and FMA.
        unsafe { exp_shifted_fma(x, shift, out) };
        return;
    }
    exp_shifted_body(x, shift, out);
}

/// [`exp_shifted`] compiled for AVX2 and FMA: its loops vectorise and
/// `mul_add` is one instruction rather than a call into libm (the same
/// correctly rounded result either way, so the same bits).
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_fma<F: crate::Float>(x: &[F], shift: F, out: &mut [F]) {
    exp_shifted_body(x, shift, out);
}

#[inline(always)]
fn exp_shifted_body<F: crate::Float>(x: &[F], shift: F, out: &mut [F]) {
    let n = x.len().min(out.len()).min(SHIFTED_CHUNK);
    let (x, out) = (&x[..n], &mut out[..n]);
    let mut err = [F::zero(); SHIFTED_CHUNK];
    let err = &mut err[..n];
    for ((o, e), &v) in out.iter_mut().zip(err.iter_mut()).zip(x) {
        (*o, *e) = difference(v, shift);
    }
    F::exp_in_place(out);
    for (o, &e) in out.iter_mut().zip(&*err) {
        *o = o.mul_add(e, *o);
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::*;
    use std::arch::x86_64::*;

    /// `e^x` on eight lanes already clamped to `[EXP_MIN, EXP_MAX]`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8(x: __m256) -> __m256 {
        let n = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_HI), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-LN2_LO), r);
        let mut p = _mm256_set1_ps(EXP_P[5]);
        for &c in EXP_P[..5].iter().rev() {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let one = _mm256_set1_ps(1.0);
        let er = _mm256_fmadd_ps(_mm256_mul_ps(r, r), p, _mm256_add_ps(one, r));
        // 2^n as two normal powers of two: n reaches 128 just below EXP_MAX.
        let n = _mm256_cvtps_epi32(n);
        let half = _mm256_srai_epi32(n, 1);
        let pow2 = |k: __m256i| {
            _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23))
        };
        _mm256_mul_ps(_mm256_mul_ps(er, pow2(half)), pow2(_mm256_sub_epi32(n, half)))
    }

    /// Eight lanes of `tanh`, as the portable `tanh`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tanh8(x: __m256) -> __m256 {
        let sign = _mm256_set1_ps(-0.0);
        let a = _mm256_andnot_ps(sign, x);
        // Small |x|: the odd polynomial.
        let z = _mm256_mul_ps(x, x);
        let mut q = _mm256_set1_ps(TANH_Q[5]);
        for &c in TANH_Q[..5].iter().rev() {
            q = _mm256_fmadd_ps(q, z, _mm256_set1_ps(c));
        }
        let small = _mm256_fmadd_ps(_mm256_mul_ps(x, z), q, x);
        // tanh is odd: the sign of x, which keeps tanh(-0) = -0.
        let small = _mm256_or_ps(_mm256_andnot_ps(sign, small), _mm256_and_ps(sign, x));
        // Large |x|: from the exponential, with the sign of x.
        let e = exp8(_mm256_mul_ps(
            _mm256_set1_ps(2.0),
            _mm256_min_ps(a, _mm256_set1_ps(TANH_ONE)),
        ));
        let one = _mm256_set1_ps(1.0);
        let large = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.0), _mm256_add_ps(e, one)));
        let large = _mm256_or_ps(large, _mm256_and_ps(sign, x));
        let is_small = _mm256_cmp_ps(a, _mm256_set1_ps(TANH_SMALL), _CMP_LT_OQ);
        let t = _mm256_blendv_ps(large, small, is_small);
        // NaN stays NaN.
        let nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        _mm256_blendv_ps(t, x, nan)
    }

    /// Eight lanes of the logistic function, as the portable `sigmoid`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sigmoid8(x: __m256) -> __m256 {
        let neg = _mm256_sub_ps(_mm256_setzero_ps(), x);
        let clamped = _mm256_min_ps(
            _mm256_max_ps(neg, _mm256_set1_ps(EXP_MIN)),
            _mm256_set1_ps(EXP_MAX),
        );
        let one = _mm256_set1_ps(1.0);
        let s = _mm256_div_ps(one, _mm256_add_ps(one, exp8(clamped)));
        let far = _mm256_cmp_ps(neg, _mm256_set1_ps(EXP_MAX), _CMP_GT_OQ);
        let s = _mm256_blendv_ps(s, _mm256_setzero_ps(), far);
        let nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        _mm256_blendv_ps(s, x, nan)
    }

    /// Eight lanes of `exp`, as the portable `exp`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn exp8_full(x: __m256) -> __m256 {
        let clamped = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_MIN)), _mm256_set1_ps(EXP_MAX));
        let e = exp8(clamped);
        let e = _mm256_blendv_ps(
            e,
            _mm256_set1_ps(f32::INFINITY),
            _mm256_cmp_ps(x, _mm256_set1_ps(EXP_MAX), _CMP_GT_OQ),
        );
        let e = _mm256_blendv_ps(
            e,
            _mm256_setzero_ps(),
            _mm256_cmp_ps(x, _mm256_set1_ps(EXP_MIN), _CMP_LT_OQ),
        );
        let nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        _mm256_blendv_ps(e, x, nan)
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            let p = c.as_mut_ptr();
            // SAFETY: `c` holds 8 values.
            unsafe { _mm256_storeu_ps(p, exp8_full(_mm256_loadu_ps(p))) };
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = super::exp(*v));
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tanh(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            let p = c.as_mut_ptr();
            // SAFETY: `c` holds 8 values.
            unsafe { _mm256_storeu_ps(p, tanh8(_mm256_loadu_ps(p))) };
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = super::tanh(*v));
    }

    /// # Safety
    /// The CPU has AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sigmoid(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            let p = c.as_mut_ptr();
            // SAFETY: `c` holds 8 values.
            unsafe { _mm256_storeu_ps(p, sigmoid8(_mm256_loadu_ps(p))) };
        }
        chunks
            .into_remainder()
            .iter_mut()
            .for_each(|v| *v = super::sigmoid(*v));
    }
}

/// The same kernels sixteen lanes at a time with AVX-512 F: each lane by
/// the same operations in the same order as `simd`'s eight and as the
/// portable twins, so the same bits (a test compares all three). A last
/// run of fewer than sixteen values is loaded and stored under a mask.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::*;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    fn exp16(x: __m512) -> __m512 {
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            x,
            _mm512_set1_ps(LOG2E),
        ));
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_HI), x);
        let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-LN2_LO), r);
        let mut p = _mm512_set1_ps(EXP_P[5]);
        for &c in EXP_P[..5].iter().rev() {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let one = _mm512_set1_ps(1.0);
        let er = _mm512_fmadd_ps(_mm512_mul_ps(r, r), p, _mm512_add_ps(one, r));
        let n = _mm512_cvtps_epi32(n);
        let half = _mm512_srai_epi32::<1>(n);
        let pow2 = |k: __m512i| {
            _mm512_castsi512_ps(_mm512_slli_epi32::<23>(_mm512_add_epi32(
                k,
                _mm512_set1_epi32(127),
            )))
        };
        _mm512_mul_ps(_mm512_mul_ps(er, pow2(half)), pow2(_mm512_sub_epi32(n, half)))
    }

    /// `x`'s sign bit alone, and `x` without it (integer operations: the
    /// float ones need AVX-512 DQ).
    #[target_feature(enable = "avx512f")]
    fn sign_and_abs(x: __m512) -> (__m512i, __m512) {
        let bits = _mm512_castps_si512(x);
        let sign = _mm512_and_si512(bits, _mm512_set1_epi32(i32::MIN));
        (sign, _mm512_castsi512_ps(_mm512_andnot_si512(sign, bits)))
    }

    /// `magnitude` (its sign bit clear) with the sign bit `sign`.
    #[target_feature(enable = "avx512f")]
    fn with_sign(magnitude: __m512, sign: __m512i) -> __m512 {
        _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), sign))
    }

    #[target_feature(enable = "avx512f")]
    fn tanh16(x: __m512) -> __m512 {
        let (sign, a) = sign_and_abs(x);
        let z = _mm512_mul_ps(x, x);
        let mut q = _mm512_set1_ps(TANH_Q[5]);
        for &c in TANH_Q[..5].iter().rev() {
            q = _mm512_fmadd_ps(q, z, _mm512_set1_ps(c));
        }
        let small = _mm512_fmadd_ps(_mm512_mul_ps(x, z), q, x);
        let small = with_sign(sign_and_abs(small).1, sign);
        let e = exp16(_mm512_mul_ps(
            _mm512_set1_ps(2.0),
            _mm512_min_ps(a, _mm512_set1_ps(TANH_ONE)),
        ));
        let one = _mm512_set1_ps(1.0);
        let large = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, one)));
        let large = with_sign(large, sign);
        let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(TANH_SMALL));
        let t = _mm512_mask_blend_ps(is_small, large, small);
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_blend_ps(nan, t, x)
    }

    #[target_feature(enable = "avx512f")]
    fn sigmoid16(x: __m512) -> __m512 {
        let neg = _mm512_sub_ps(_mm512_setzero_ps(), x);
        let clamped = _mm512_min_ps(
            _mm512_max_ps(neg, _mm512_set1_ps(EXP_MIN)),
            _mm512_set1_ps(EXP_MAX),
        );
        let one = _mm512_set1_ps(1.0);
        let s = _mm512_div_ps(one, _mm512_add_ps(one, exp16(clamped)));
        let far = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(neg, _mm512_set1_ps(EXP_MAX));
        let s = _mm512_mask_blend_ps(far, s, _mm512_setzero_ps());
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_blend_ps(nan, s, x)
    }

    #[target_feature(enable = "avx512f")]
    fn exp16_full(x: __m512) -> __m512 {
        let clamped = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_MIN)), _mm512_set1_ps(EXP_MAX));
        let e = exp16(clamped);
        let over = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(x, _mm512_set1_ps(EXP_MAX));
        let e = _mm512_mask_blend_ps(over, e, _mm512_set1_ps(f32::INFINITY));
        let under = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_set1_ps(EXP_MIN));
        let e = _mm512_mask_blend_ps(under, e, _mm512_setzero_ps());
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
        _mm512_mask_blend_ps(nan, e, x)
    }

    /// `x[i] = f(x[i])`, sixteen at a time, the last few under a mask.
    #[inline(always)]
    fn each(x: &mut [f32], f: impl Fn(__m512) -> __m512) {
        let mut chunks = x.chunks_exact_mut(16);
        for c in &mut chunks {
            let p = c.as_mut_ptr();
            // SAFETY: 16 values at p; the caller has AVX-512 F.
            unsafe { _mm512_storeu_ps(p, f(_mm512_loadu_ps(p))) };
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mask: __mmask16 = (1 << rest.len()) - 1;
            let p = rest.as_mut_ptr();
            // SAFETY: the mask covers the `rest.len()` values at p, and the
            // other lanes are neither read nor written.
            unsafe { _mm512_mask_storeu_ps(p, mask, f(_mm512_maskz_loadu_ps(mask, p))) };
        }
    }

    /// # Safety
    /// The CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp(x: &mut [f32]) {
        each(x, |v| exp16_full(v))
    }

    /// # Safety
    /// The CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tanh(x: &mut [f32]) {
        each(x, |v| tanh16(v))
    }

    /// # Safety
    /// The CPU has AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sigmoid(x: &mut [f32]) {
        each(x, |v| sigmoid16(v))
    }
}
