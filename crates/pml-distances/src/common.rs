//! Pieces shared by the distances: the options of PML's `BaseDistance`.

use burn::tensor::{Tensor, backend::Backend};
use pml_core::{math::normalize_rows, tensor::diagonal};

/// Options every PML distance has (`normalize_embeddings`, `p`, `power`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct BaseOptions {
    pub normalize_embeddings: bool,
    pub p: f64,
    pub power: f64,
}

impl BaseOptions {
    /// # Panics
    /// If `p` is not positive or `power` is not finite.
    pub fn new(name: &str, normalize_embeddings: bool, p: f64, power: f64) -> Self {
        assert!(p > 0.0, "{name}: `p` must be positive, got {p}");
        assert!(
            power.is_finite(),
            "{name}: `power` must be finite, got {power}"
        );
        Self {
            normalize_embeddings,
            p,
            power,
        }
    }

    pub fn maybe_normalize<B: Backend>(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        if self.normalize_embeddings {
            normalize_rows(x, self.p)
        } else {
            x
        }
    }

    pub fn apply_power<B: Backend>(&self, mat: Tensor<B, 2>) -> Tensor<B, 2> {
        if self.power == 1.0 {
            mat
        } else {
            mat.powf_scalar(self.power)
        }
    }
}

/// Checks the inputs of `Distance::forward`.
///
/// # Panics
/// If the widths differ.
pub(crate) fn check_widths<B: Backend>(
    name: &str,
    query: &Tensor<B, 2>,
    reference: Option<&Tensor<B, 2>>,
) {
    if let Some(r) = reference {
        assert_eq!(
            query.dims()[1],
            r.dims()[1],
            "{name}: query shape {:?} and reference shape {:?} differ in width",
            query.dims(),
            r.dims()
        );
    }
}

/// `|a_i|² + |b_j|² − 2 a_i·b_j`, clamped at zero, `[n, m]`; with `b = None` (`b = a`) the
/// diagonal is exactly zero.
pub(crate) fn squared_euclidean<B: Backend>(
    a: Tensor<B, 2>,
    b: Option<Tensor<B, 2>>,
) -> Tensor<B, 2> {
    let a_sq = a.clone().powi_scalar(2).sum_dim(1);
    let is_self = b.is_none();
    let b = b.unwrap_or_else(|| a.clone());
    let b_sq = b.clone().powi_scalar(2).sum_dim(1).transpose();
    let d2 =
        pml_core::math::squared_distances(pml_core::math::matmul(a, b.transpose()), a_sq, b_sq);
    if is_self {
        let n = d2.dims()[0];
        let device = d2.device();
        d2.mask_fill(diagonal([n, n], 0, &device), 0.0)
    } else {
        d2
    }
}

/// Whether the query, the reference or the width is empty: [`Distance::detached`] then
/// declines (the caller's `forward` handles these).
///
/// [`Distance::detached`]: pml_core::Distance::detached
pub(crate) fn has_empty_side<B: Backend>(
    query: &Tensor<B, 2>,
    reference: Option<&Tensor<B, 2>>,
) -> bool {
    let [n, d] = query.dims();
    n == 0 || d == 0 || reference.is_some_and(|r| r.dims()[0] == 0)
}

/// The `[n, m]` matrix of an empty query or reference (`n = 0` or `m = 0`), or `None`: Burn's
/// ops on zero-size tensors are not all defined, so the distances return it before computing.
pub(crate) fn empty_matrix<B: Backend>(
    query: &Tensor<B, 2>,
    reference: Option<&Tensor<B, 2>>,
) -> Option<Tensor<B, 2>> {
    let n = query.dims()[0];
    let m = reference.map_or(n, |r| r.dims()[0]);
    (n == 0 || m == 0).then(|| Tensor::zeros([n, m], (&query.device(), query.dtype())))
}
