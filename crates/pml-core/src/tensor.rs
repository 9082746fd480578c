//! Small tensor helpers Burn does not provide, written once for every pml crate.

use burn::tensor::{
    BasicOps, Bool, Element, FloatDType, Int, Tensor, TensorData, backend::Backend,
};

use std::ops::Range;

use crate::labels::pairwise_equal;

/// `true` at `(i, offset + i)`: the diagonal of a square matrix, or of the block of its rows
/// `offset..offset + rows` (`shape = [rows, cols]`). (Burn's `diag_mask` is the complement,
/// built through an `[rows, cols]` integer matrix; here one comparison of the row and column
/// indices, broadcast.)
pub fn diagonal<B: Backend>(
    shape: [usize; 2],
    offset: usize,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let [rows, cols] = shape;
    diagonal_of_tile(offset..offset + rows, 0..cols, device)
}

/// The [`diagonal`] of a square matrix on its tile of rows `rows` and columns `cols`:
/// `[rows.len(), cols.len()]`, `true` where the row index equals the column index.
pub fn diagonal_of_tile<B: Backend>(
    rows: Range<usize>,
    cols: Range<usize>,
    device: &B::Device,
) -> Tensor<B, 2, Bool> {
    let range = |r: Range<usize>| r.start as i64..r.end as i64;
    pairwise_equal(
        &Tensor::arange(range(rows), device),
        &Tensor::arange(range(cols), device),
    )
}

/// `x.narrow(dim, range.start, range.len())`, or `x` itself where `range` spans the whole
/// dimension (no view, and on the autodiff graph no node).
///
/// # Panics
/// If `range` is not inside `0..x.dims()[dim]`.
pub fn narrow_to<B: Backend, const D: usize, K: BasicOps<B>>(
    x: Tensor<B, D, K>,
    dim: usize,
    range: Range<usize>,
) -> Tensor<B, D, K> {
    if range == (0..x.dims()[dim]) {
        x
    } else {
        x.narrow(dim, range.start, range.len())
    }
}

/// `true` where `x` is NaN, on every backend and CPU.
///
/// Burn's `is_nan` is `x != x`, and burn-ndarray's SIMD float equality on CPUs without AVX-512
/// (macerator's AVX2 path, `_CMP_EQ_UQ`) holds whenever an operand is NaN: there `is_nan` is
/// false everywhere, and `equal_elem(c)` true at every NaN. The ordered `x ≤ +∞` is false for
/// NaN only, on every path (and for the same reason pml-rs tests `x = ±∞` as `x ≥ +∞` and
/// `x ≤ −∞`).
pub fn is_nan<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D, Bool> {
    x.lower_equal_elem(f64::INFINITY).bool_not()
}

/// `true` where a maximum over entries masked with `−∞` (`max_dim`) found none left.
///
/// Burn-ndarray's `max_dim` of an all-`−∞` row is `−∞`, but CubeCL's reductions (WGPU, CUDA)
/// start from the type's lowest finite value, so there it is `f32::MIN` (or `f64::MIN`): both,
/// and nothing above them, count as empty.
pub fn empty_max<B: Backend, const D: usize>(max: Tensor<B, D>) -> Tensor<B, D, Bool> {
    max.lower_equal_elem(f64::from(f32::MIN))
}

/// Reads a 1-D Int tensor back to the host as `i64`, whatever the backend's int type
/// (`i64` on ndarray, `i32` on wgpu).
///
/// This synchronizes with the device: keep it out of hot paths.
pub fn int_vec<B: Backend>(tensor: Tensor<B, 1, Int>) -> Vec<i64> {
    tensor.into_data().iter::<i64>().collect()
}

/// Builds a 1-D Int tensor from host values on `device`.
pub fn int_tensor<B: Backend>(values: &[i64], device: &B::Device) -> Tensor<B, 1, Int> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

/// Reads a float tensor back to the host as `f64`.
///
/// This synchronizes with the device: keep it out of hot paths.
pub fn float_vec<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f64> {
    tensor.into_data().iter::<f64>().collect()
}

/// `1` where `mask` is true and `0` elsewhere, with the dtype of `like` (a plain bool-to-float
/// cast would take the device's default dtype).
pub fn mask_to_float<B: Backend, const D: usize>(
    mask: Tensor<B, D, Bool>,
    like: &Tensor<B, D>,
) -> Tensor<B, D> {
    mask.cast(FloatDType::from(like.dtype()))
}

/// `t`'s value outside any autodiff graph: operations on it record nothing (Burn 0.21's
/// `detach` alone keeps `require_grad`, so a detached leaf would still be tracked).
pub fn constant<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    t.detach().set_require_grad(false)
}

/// `t` with its elements laid out contiguously in logical (row-major) order, e.g. a transposed
/// matrix that several products will read. Burn 0.21 has no such operation; a reshape to the
/// same shape is one on burn-ndarray, which copies a view of another layout into the standard
/// one (and leaves a standard one as it is), where its matrix product would copy a strided
/// operand, element by element, at every call.
pub fn contiguous<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    let shape = t.shape();
    t.reshape(shape)
}

/// A tensor whose value is `value` and whose gradient is that of `link`: `value + (link −
/// constant(link))`, where the difference is exactly zero for finite `link`.
///
/// This lets a loss compute its value and its derivatives off the autodiff graph (on
/// [`constant`]s, where no intermediate is kept for the backward pass) and attach them through
/// one cheap differentiable expression: with `link = Σ slopes ⊙ x`, the gradient w.r.t. `x` is
/// `slopes`.
pub fn value_with_gradient<B: Backend, const D: usize>(
    value: Tensor<B, D>,
    link: Tensor<B, D>,
) -> Tensor<B, D> {
    value + (link.clone() - constant(link))
}

/// `values[indices]` for a 1-D tensor (PyTorch's `values[indices]`), differentiably for floats.
///
/// The same result as `values.select(0, indices)`, computed as a `gather`: burn-ndarray's
/// `select` (and its backward, `select_assign`) walks the indices one at a time through
/// ndarray's axis views, with an allocation per index, which made it the largest cost of the
/// tuple-based losses and miners; its `gather` is one flat loop, and both are one kernel on the
/// GPU backends.
///
/// # Shapes
/// - `values`: `[n]`, `indices`: `[k]` with every index `< n`; output `[k]`
pub fn take<B: Backend, K>(values: Tensor<B, 1, K>, indices: Tensor<B, 1, Int>) -> Tensor<B, 1, K>
where
    K: BasicOps<B>,
    K::Elem: Element,
{
    values.gather(0, indices)
}

/// Gathers `matrix[rows[k], cols[k]]` for every `k`, differentiably.
///
/// # Shapes
/// - `matrix`: `[n, m]`
/// - `rows`, `cols`: `[k]`, with `rows < n` and `cols < m`
/// - output: `[k]`
pub fn gather_pairs<B: Backend>(
    matrix: Tensor<B, 2>,
    rows: Tensor<B, 1, Int>,
    cols: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let [n, m] = matrix.dims();
    let flat = rows.mul_scalar(m as i64).add(cols);
    take(matrix.reshape([n * m]), flat)
}

/// The indices of the true entries of a 1-D mask, in increasing order.
///
/// Like Burn's `argwhere`, this reads the mask back from the device once: use it for the
/// final list of selected indices, not inside a loop.
pub fn argwhere_1d<B: Backend>(mask: Tensor<B, 1, Bool>) -> Tensor<B, 1, Int> {
    let n = mask.dims()[0];
    let [_, indices] = argwhere_2d(mask.reshape([1, n]));
    indices
}

/// The `(row, column)` indices of the true entries of a 2-D mask, in row-major order
/// (PyTorch's `torch.where(mask)`).
///
/// Like Burn's `argwhere`, this reads the mask back from the device once: use it for the
/// final list of selected pairs, not inside a loop. (Burn 0.21's `argwhere` allocates two
/// vectors per true entry on the host; this writes the two index lists directly.)
pub fn argwhere_2d<B: Backend>(mask: Tensor<B, 2, Bool>) -> [Tensor<B, 1, Int>; 2] {
    let [_, m] = mask.dims();
    let device = mask.device();
    let data = mask.into_data();
    let (mut rows, mut cols) = (Vec::new(), Vec::new());
    let mut push = |k: usize| {
        rows.push((k / m) as i64);
        cols.push((k % m) as i64);
    };
    match data.as_slice::<bool>() {
        Ok(flags) => flags
            .iter()
            .enumerate()
            .filter(|(_, v)| **v)
            .for_each(|(k, _)| push(k)),
        Err(_) => data
            .iter::<bool>()
            .enumerate()
            .filter(|(_, v)| *v)
            .for_each(|(k, _)| push(k)),
    }
    [rows, cols].map(|v| {
        let k = v.len();
        Tensor::from_data(TensorData::new(v, [k]), &device)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    #[test]
    fn is_nan_marks_nan_only() {
        let device = Default::default();
        // Long enough for burn-ndarray's SIMD path.
        let values: Vec<f32> = [f32::NAN, 0.0, f32::INFINITY, f32::NEG_INFINITY, -1.5]
            .into_iter()
            .cycle()
            .take(40)
            .collect();
        let x = Tensor::<B, 1>::from_floats(values.as_slice(), &device);
        let got: Vec<bool> = is_nan(x).into_data().iter::<bool>().collect();
        let expected: Vec<bool> = values.iter().map(|v| v.is_nan()).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn empty_max_covers_the_start_values_of_both_reductions() {
        let device = Default::default();
        // −∞ (burn-ndarray's max of an all-masked row) and f32::MIN (CubeCL's) are empty;
        // every other value, however low, is a maximum.
        let values = [
            f32::NEG_INFINITY,
            f32::MIN,
            -3.0e38,
            -1.0e30,
            0.0,
            f32::INFINITY,
        ];
        let max = Tensor::<B, 1>::from_floats(values, &device);
        let got: Vec<bool> = empty_max(max).into_data().iter::<bool>().collect();
        assert_eq!(got, [true, true, false, false, false, false]);
    }

    #[test]
    fn diagonal_of_a_block_of_rows() {
        let device = Default::default();
        let got: Vec<bool> = diagonal::<B>([2, 4], 1, &device)
            .into_data()
            .iter::<bool>()
            .collect();
        let expected = [false, true, false, false, false, false, true, false];
        assert_eq!(got, expected);
        assert_eq!(diagonal::<B>([0, 3], 0, &device).dims(), [0, 3]);
    }

    #[test]
    fn int_round_trip() {
        let device = Default::default();
        let t = int_tensor::<B>(&[3, 0, 7], &device);
        assert_eq!(int_vec(t), vec![3, 0, 7]);
    }

    #[test]
    fn argwhere_in_row_major_order() {
        let device = Default::default();
        let mask = Tensor::<B, 2, Bool>::from_bool(
            TensorData::new(vec![false, true, true, false, false, true], [2, 3]),
            &device,
        );
        let [r, c] = argwhere_2d(mask.clone());
        assert_eq!((int_vec(r), int_vec(c)), (vec![0, 0, 1], vec![1, 2, 2]));
        let none = argwhere_2d(mask.clone().bool_and(mask.bool_not()));
        assert_eq!(none[0].dims(), [0]);
        let v =
            Tensor::<B, 1, Bool>::from_bool(TensorData::new(vec![true, false, true], [3]), &device);
        assert_eq!(int_vec(argwhere_1d(v)), vec![0, 2]);
    }

    #[test]
    fn gathers_pairs() {
        let device = Default::default();
        let m = Tensor::<B, 2>::from_floats([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], &device);
        let rows = int_tensor::<B>(&[1, 0, 1], &device);
        let cols = int_tensor::<B>(&[2, 1, 0], &device);
        assert_eq!(float_vec(gather_pairs(m, rows, cols)), vec![5.0, 1.0, 3.0]);
    }
}
