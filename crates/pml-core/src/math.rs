//! Numerically stable functions shared by the pml crates, written once.

use burn::tensor::{Bool, Tensor, activation::relu, backend::Backend};

use crate::tensor::{constant, empty_max};

/// `a · b` for `a: [m, k]`, `b: [k, n]`, also when a dimension is zero (an empty batch, an
/// empty reference, zero-width embeddings), where burn-ndarray 0.21's matmul divides by zero:
/// the product is then the `[m, n]` zero matrix (empty when `m` or `n` is zero).
///
/// # Panics
/// If the inner dimensions differ, as `Tensor::matmul`.
pub fn matmul<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 2> {
    let ([m, k], [kb, n]) = (a.dims(), b.dims());
    if m == 0 || k == 0 || n == 0 {
        assert_eq!(k, kb, "matmul: a is [{m}, {k}] but b is [{kb}, {n}]");
        return Tensor::zeros([m, n], (&a.device(), a.dtype()));
    }
    a.matmul(b)
}

/// Squared Euclidean distances from inner products: `‖a_i‖² + ‖b_j‖² − 2 G_ij`, clamped at
/// zero (rounding can make it slightly negative).
///
/// # Shapes
/// - `gram`: `[n, m]`, `a_sq`: `[n, 1]`, `b_sq_t`: `[1, m]`; output `[n, m]`
pub fn squared_distances<B: Backend>(
    gram: Tensor<B, 2>,
    a_sq: Tensor<B, 2>,
    b_sq_t: Tensor<B, 2>,
) -> Tensor<B, 2> {
    (gram.mul_scalar(-2.0) + a_sq + b_sq_t).clamp_min(0.0)
}

/// Softplus `log(1 + exp(x))`, computed as `max(x, 0) + log1p(exp(-|x|))` so that it neither
/// overflows for large `x` nor loses precision for very negative `x`.
pub fn softplus<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    relu(x.clone()) + x.abs().neg().exp().log1p()
}

/// `1 / (1 + exp(−x))` in the tensor's own dtype (burn's `sigmoid` computes in `f32`): the
/// derivative of [`softplus`].
pub fn logistic<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    scalar_div(1.0, x.neg().exp().add_scalar(1.0))
}

/// `c / x` element-wise, correctly rounded.
///
/// Burn's `recip` is not, on burn-ndarray with SIMD: its `f32` reciprocal is the CPU's
/// approximate instruction (`rcp_ps`, about 12 correct bits with AVX2, 14 with AVX-512), which
/// put `PNPLoss`' and `SmoothAPLoss`' gradients (sigmoids at temperature 0.01) 1e-3 to 3e-3 off
/// PML's on an AVX2 machine. A division is exact.
pub fn scalar_div<B: Backend, const D: usize>(c: f64, x: Tensor<B, D>) -> Tensor<B, D> {
    x.full_like(c) / x
}

/// `s^(1/p)` for `s >= 0`, with a zero gradient where `s == 0` (where the true derivative is
/// infinite), as PyTorch's `norm` and `cdist` backward passes do.
///
/// The root and its derivative `s^(1/p − 1) / p` are computed off the autodiff graph and
/// attached by one product, as in
/// [`value_with_gradient`](crate::tensor::value_with_gradient): Burn's own backward pass of `sqrt`
/// evaluates a `powf` over the whole input, the most expensive step of a distance matrix's
/// gradient.
pub fn safe_root<B: Backend, const D: usize>(s: Tensor<B, D>, p: f64) -> Tensor<B, D> {
    if p == 1.0 {
        return relu(s);
    }
    let zero = s.clone().lower_equal_elem(0.0);
    let sc = constant(s.clone()).mask_fill(zero.clone(), 1.0);
    let (root, slopes) = if p == 2.0 {
        let root = sc.sqrt();
        (root.clone(), scalar_div(0.5, root))
    } else {
        let slopes = sc.clone().powf_scalar(1.0 / p - 1.0).div_scalar(p);
        (sc.powf_scalar(1.0 / p), slopes)
    };
    let root = root.mask_fill(zero.clone(), 0.0);
    if !B::ad_enabled(&s.device()) {
        return root;
    }
    // Where `s` overflowed to +∞ the root is +∞ and the link's `∞ · 0` is NaN: zero it there.
    let overflow = root.clone().greater_equal_elem(f64::INFINITY);
    let link = s * slopes.mask_fill(zero, 0.0);
    root + (link.clone() - constant(link)).mask_fill(overflow, 0.0)
}

/// The `p`-norm of each row, `[n, d] -> [n, 1]` (`p = ∞` gives the largest absolute value).
/// The gradient at a zero row is zero.
pub fn lp_norm_rows<B: Backend>(x: Tensor<B, 2>, p: f64) -> Tensor<B, 2> {
    if p.is_infinite() {
        return x.abs().max_dim(1);
    }
    let s = if p == 2.0 {
        x.powi_scalar(2).sum_dim(1)
    } else if p == 1.0 {
        x.abs().sum_dim(1)
    } else {
        x.abs().powf_scalar(p).sum_dim(1)
    };
    safe_root(s, p)
}

/// Divides each row by its `p`-norm, clamped below at `1e-12` (PyTorch's
/// `torch.nn.functional.normalize`).
///
/// # Shapes
/// `[n, d] -> [n, d]`
pub fn normalize_rows<B: Backend>(x: Tensor<B, 2>, p: f64) -> Tensor<B, 2> {
    let norm = lp_norm_rows(x.clone(), p).clamp_min(1e-12);
    x / norm
}

/// Row-wise log-sum-exp over the entries where `keep` is true, PML's `lmu.logsumexp(x,
/// keep_mask, add_one, dim=1)`:
///
/// `out_i = log(Σ_{j: keep_ij} exp(x_ij) [+ 1 with add_one])`, and `out_i = 0` for rows with no
/// kept entry (with or without `add_one`).
///
/// Stable (the row maximum is subtracted first), and NaN-free in value and gradient: rows
/// without kept entries, and the masked entries, get a zero gradient.
///
/// # Shapes
/// - `x`: `[n, m]`, `keep`: `[n, m]` (`None` keeps everything)
/// - output: `[n, 1]`
pub fn masked_logsumexp<B: Backend>(
    x: Tensor<B, 2>,
    keep: Option<Tensor<B, 2, Bool>>,
    add_one: bool,
) -> Tensor<B, 2> {
    let masked = match &keep {
        Some(k) => x.mask_fill(k.clone().bool_not(), f64::NEG_INFINITY),
        None => x,
    };
    let max = logsumexp_shift(&masked, add_one);
    let mut sum = (masked - max.clone()).exp().sum_dim(1);
    if add_one {
        sum = sum + max.clone().neg().exp();
    }
    let nothing = sum.clone().equal_elem(0.0);
    let out = max + sum.mask_fill(nothing.clone(), 1.0).log();
    match keep {
        Some(k) => {
            let no_kept = k.any_dim(1).bool_not();
            out.mask_fill(no_kept, 0.0)
        }
        None => out.mask_fill(nothing, 0.0),
    }
}

/// The constant subtracted from each row before `exp` in the log-sum-exps above (any value
/// gives the same result and gradient): the row maximum of `masked` (at least 0 with `add_one`,
/// whose extra entry is `exp(0)`), and 0 for rows where every entry is masked, whose `exp` is
/// then 0 everywhere. `[n, m] -> [n, 1]`.
fn logsumexp_shift<B: Backend>(masked: &Tensor<B, 2>, add_one: bool) -> Tensor<B, 2> {
    let max = constant(masked.clone()).max_dim(1);
    let max = if add_one { max.clamp_min(0.0) } else { max };
    max.clone().mask_fill(empty_max(max), 0.0)
}

/// [`masked_logsumexp`] and its derivative w.r.t. `x`: `exp(x_ij − out_i)` on
/// the kept entries (their softmax, next to the extra zero entry with `add_one`), zero
/// elsewhere. For losses that evaluate it off the autodiff graph: one `exp` serves both.
///
/// # Shapes
/// - `x`: `[n, m]`, `keep`: `[n, m]` (`None` keeps everything)
/// - output: `[n, 1]` and `[n, m]`
pub fn masked_logsumexp_with_slopes<B: Backend>(
    x: Tensor<B, 2>,
    keep: Option<Tensor<B, 2, Bool>>,
    add_one: bool,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let masked = match keep {
        Some(k) => x.mask_fill(k.bool_not(), f64::NEG_INFINITY),
        None => x,
    };
    let max = logsumexp_shift(&masked, add_one);
    let exp = (masked - max.clone()).exp();
    let mut sum = exp.clone().sum_dim(1);
    if add_one {
        sum = sum + max.clone().neg().exp();
    }
    // Rows without kept entries: `sum` is 0 (or `exp(0)` with `add_one`), the output 0.
    let nothing = sum.clone().equal_elem(0.0);
    let sum = sum.mask_fill(nothing, 1.0);
    (max + sum.clone().log(), exp / sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::float_vec;
    use burn::backend::{Autodiff, NdArray};

    #[test]
    fn scalar_div_is_correctly_rounded() {
        let device = Default::default();
        // Long enough for burn-ndarray's SIMD path, whose `recip` is approximate.
        let values: Vec<f32> = (1..=64).map(|i| 1.0 + i as f32 * 0.37).collect();
        let x = Tensor::<NdArray, 1>::from_floats(values.as_slice(), &device);
        let got: Vec<f32> = scalar_div(3.0, x).into_data().iter::<f32>().collect();
        let expected: Vec<f32> = values.iter().map(|v| 3.0 / v).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn softplus_is_stable() {
        let device = Default::default();
        let x = Tensor::<NdArray, 1>::from_floats([-100.0, 0.0, 1.0, 100.0], &device);
        let got = float_vec(softplus(x));
        let want = [0.0, 2f64.ln(), (1.0 + 1f64.exp()).ln(), 100.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }

    #[test]
    fn norms_and_normalize() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_floats([[3.0, -4.0], [0.0, 0.0]], &device);
        assert_eq!(float_vec(lp_norm_rows(x.clone(), 2.0)), vec![5.0, 0.0]);
        assert_eq!(float_vec(lp_norm_rows(x.clone(), 1.0)), vec![7.0, 0.0]);
        assert_eq!(
            float_vec(lp_norm_rows(x.clone(), f64::INFINITY)),
            vec![4.0, 0.0]
        );
        let n = float_vec(normalize_rows(x, 2.0));
        assert!((n[0] - 0.6).abs() < 1e-6 && (n[1] + 0.8).abs() < 1e-6);
        assert_eq!(&n[2..], &[0.0, 0.0]);
    }

    #[test]
    fn zero_rows_have_zero_gradient() {
        let device = Default::default();
        let x = Tensor::<Autodiff<NdArray>, 2>::from_floats([[0.0, 0.0], [1.0, 0.0]], &device)
            .require_grad();
        let grads = lp_norm_rows(x.clone(), 2.0).sum().backward();
        let g = float_vec(x.grad(&grads).unwrap());
        assert_eq!(g, vec![0.0, 0.0, 1.0, 0.0]);
    }

    #[test]
    fn masked_logsumexp_matches_pml() {
        let device = Default::default();
        let x = Tensor::<Autodiff<NdArray>, 2>::from_floats(
            [[1.0, 2.0, 3.0], [0.5, -1.0, 100.0], [4.0, 5.0, 6.0]],
            &device,
        )
        .require_grad();
        let keep = Tensor::<Autodiff<NdArray>, 2, Bool>::from_bool(
            burn::tensor::TensorData::from([
                [true, false, true],
                [true, true, false],
                [false, false, false],
            ]),
            &device,
        );
        let out = masked_logsumexp(x.clone(), Some(keep.clone()), false);
        let got = float_vec(out.clone());
        let row0 = (1f64.exp() + 3f64.exp()).ln();
        let row1 = (0.5f64.exp() + (-1f64).exp()).ln();
        assert!((got[0] - row0).abs() < 1e-5 && (got[1] - row1).abs() < 1e-5 && got[2] == 0.0);
        let with_one = float_vec(masked_logsumexp(x.clone(), Some(keep.clone()), true));
        assert!((with_one[0] - (1.0 + 1f64.exp() + 3f64.exp()).ln()).abs() < 1e-5);
        assert_eq!(with_one[2], 0.0);
        let g = float_vec(x.grad(&out.sum().backward()).unwrap());
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        assert!((g[0] - 1f64.exp() / row0.exp()).abs() < 1e-5 && g[1] == 0.0 && g[5] == 0.0);
        assert_eq!(&g[6..], &[0.0, 0.0, 0.0]);
        // The slopes are that gradient, with and without the extra zero entry and the mask.
        for (add_one, keep) in [false, true]
            .into_iter()
            .flat_map(|a| [(a, Some(keep.clone())), (a, None)])
        {
            let x = x.clone().detach();
            let (out, slopes) = masked_logsumexp_with_slopes(x.clone(), keep.clone(), add_one);
            let x = x.require_grad();
            let tracked = masked_logsumexp(x.clone(), keep, add_one);
            for (a, b) in float_vec(out).iter().zip(float_vec(tracked.clone())) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
            let g = float_vec(x.grad(&tracked.sum().backward()).unwrap());
            for (a, b) in float_vec(slopes).iter().zip(&g) {
                assert!((a - b).abs() < 1e-6, "{a} vs {b}");
            }
        }
    }
}
