//! The distinct rows of a matrix whose rows repeat. A layer over an
//! embedding's output sees each of a vocabulary's rows many times (a
//! character model's 2500 rows of a sequence hold 65 distinct ones): `x ·
//! Wᵀ` is then each distinct row's product, copied, and `dYᵀ · X` the
//! product of the distinct rows with the sums of their rows of `dY`.
//!
//! Rows are equal when every value has the same bits; a row's hash is only
//! where to look, every match is compared in full. The scan gives up as
//! soon as it has seen more distinct rows than asked for, so a matrix that
//! does not repeat costs the hashing of that many rows.

use crate::Float;
use std::cell::RefCell;

/// The distinct rows of one matrix (see [`with_distinct_rows`]).
#[derive(Debug, Default)]
pub(crate) struct Distinct {
    /// For each row, the index of its distinct row.
    pub(crate) of_row: Vec<u32>,
    /// The first row of each distinct row, in order of first appearance.
    pub(crate) first: Vec<usize>,
    /// Open addressing: 1 + the distinct row's index, 0 for an empty slot.
    table: Vec<u32>,
    /// Each distinct row's hash.
    hashes: Vec<u64>,
}

thread_local! {
    /// Kept between calls, so that a warm caller allocates nothing.
    static DISTINCT: RefCell<Distinct> = RefCell::new(Distinct::default());
}

/// `f(Some(d))` with `d` the distinct rows of `x` (`rows` rows of `width`)
/// when there are at most `limit` of them, else `f(None)`.
pub(crate) fn with_distinct_rows<F: Float, R>(
    x: &[F],
    width: usize,
    limit: usize,
    f: impl FnOnce(Option<&Distinct>) -> R,
) -> R {
    assert!(
        width > 0 && x.len().is_multiple_of(width),
        "with_distinct_rows: rows of {width}"
    );
    // Taken out for the call, so that `f` may use the pool or this
    // function again without a borrow held.
    let mut d = DISTINCT.with(|d| std::mem::take(&mut *d.borrow_mut()));
    let found = find(&mut d, x, width, limit);
    let result = f(found.then_some(&d));
    DISTINCT.with(|slot| *slot.borrow_mut() = d);
    result
}

/// Fills `d` with the distinct rows of `x`; `false` once there are more
/// than `limit`.
fn find<F: Float>(d: &mut Distinct, x: &[F], width: usize, limit: usize) -> bool {
    let rows = x.len() / width;
    let slots = (2 * limit + 2).next_power_of_two();
    d.of_row.clear();
    d.first.clear();
    d.hashes.clear();
    d.table.clear();
    d.table.resize(slots, 0);
    let row = |r: usize| &x[r * width..(r + 1) * width];
    for r in 0..rows {
        let values = row(r);
        let hash = hash(values);
        let mut at = (hash as usize) & (slots - 1);
        let index = loop {
            match d.table[at] {
                0 => {
                    if d.first.len() == limit {
                        return false;
                    }
                    d.first.push(r);
                    d.hashes.push(hash);
                    d.table[at] = d.first.len() as u32;
                    break d.first.len() - 1;
                }
                slot => {
                    let i = slot as usize - 1;
                    if d.hashes[i] == hash && same_bits(row(d.first[i]), values) {
                        break i;
                    }
                    at = (at + 1) & (slots - 1);
                }
            }
        };
        d.of_row.push(index as u32);
    }
    true
}

/// A row's values as bytes: equal rows are equal bytes.
fn bytes<F: Float>(values: &[F]) -> &[u8] {
    // SAFETY: `F` is f32 or f64 (`Float` is sealed through `Kernels`),
    // plain old data: every byte of the slice is initialised.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

/// A hash of a row's bytes: each 8-byte word xor a constant of its
/// position, summed (no multiply and no dependency from one word to the
/// next, so that it is cheap), then mixed.
fn hash<F: Float>(values: &[F]) -> u64 {
    const STEP: u64 = 0x9E37_79B9_7F4A_7C15;
    let words = bytes(values).chunks_exact(8);
    let tail = words
        .remainder()
        .iter()
        .fold(0u64, |h, &b| (h << 8) | u64::from(b));
    let (sum, _) = words.fold((tail, STEP), |(h, c), w| {
        let word = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        (h.wrapping_add(word ^ c), c.wrapping_add(STEP))
    });
    let mixed = (sum ^ (sum >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed ^ (mixed >> 29)
}

/// Whether two rows hold the same bits.
fn same_bits<F: Float>(a: &[F], b: &[F]) -> bool {
    bytes(a) == bytes(b)
}

#[cfg(test)]
mod tests {
    use super::with_distinct_rows;

    /// Rows repeating in any order map to their first appearance; a value
    /// differing in the last column, or in its sign only, makes another row;
    /// more distinct rows than the limit give up.
    #[test]
    fn distinct_rows_are_found_and_too_many_give_up() {
        let width = 5;
        let base: Vec<Vec<f32>> = (0..7)
            .map(|i| (0..width).map(|j| (i * width + j) as f32 * 0.25).collect())
            .collect();
        let mut near = base[3].clone();
        near[width - 1] += 1e-6;
        let mut signed = base[0].clone();
        signed[0] = -0.0;
        let order = [3usize, 0, 3, 6, 1, 0, 6, 6, 2, 3];
        let mut x: Vec<f32> = order.iter().flat_map(|&i| base[i].clone()).collect();
        x.extend(&near);
        x.extend(&signed);
        let (of_row, first) = with_distinct_rows(&x, width, 8, |d| {
            let d = d.expect("8 distinct rows at most");
            (d.of_row.clone(), d.first.clone())
        });
        assert_eq!(first, vec![0, 1, 3, 4, 8, 10, 11]);
        assert_eq!(of_row, vec![0, 1, 0, 2, 3, 1, 2, 2, 4, 0, 5, 6]);
        for (r, &i) in of_row.iter().enumerate() {
            let (row, kept) = (&x[r * width..][..width], &x[first[i as usize] * width..][..width]);
            assert_eq!(row, kept, "row {r}");
        }
        assert!(
            with_distinct_rows(&x, width, 6, |d| d.is_none()),
            "7 distinct rows over a limit of 6"
        );
    }
}
