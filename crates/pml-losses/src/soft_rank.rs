//! Sigmoid-relaxed ranks for the ranking losses (SmoothAP, PNP), chunked over anchors so that
//! memory stays `O(chunk · k · n)` instead of `O(n³)`, forward and backward.
//!
//! For anchors `a`, candidate columns `b_{a,k}` and a kernel `K[a, k, c] ∈ {0, 1}`:
//!
//! `R[a, k] = Σ_c σ((s[a, c] − s[a, b_{a,k}]) / T) · K[a, k, c]`.
//!
//! Autodiff through this would keep every `[chunk, k, n]` slice of the graph alive until the
//! backward pass (`O(n³)` again), so the losses compute `R` on detached values, take the
//! derivative of the loss w.r.t. `R` analytically, and turn it into `G = ∂L/∂s` with
//! [`SoftRank::backprop`], again chunk by chunk. The loss is then returned as
//! `L + Σ G ⊙ (s − stop_gradient(s))`: the same value, and the exact gradient w.r.t. `s` (and,
//! through `s`'s own graph, w.r.t. the embeddings). Second derivatives are not available.

use std::ops::Range;

use burn::tensor::{IndexingUpdateOp, Int, Tensor, backend::Backend};
use pml_core::math::logistic;

/// Elements of one `[chunk, k, n]` slice.
const CHUNK_ELEMENTS: usize = 1 << 23;

/// The relaxation: temperature, and PNP's clamp of the sigmoid's argument to `[-50, 50]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SoftRank {
    pub temperature: f64,
    pub clamp: bool,
}

/// The candidate columns of a chunk of anchors, `[chunk, k]`, and its kernel, broadcastable to
/// `[chunk, k, n]`.
pub(crate) type ChunkFn<'a, B> = dyn Fn(Range<usize>) -> (Tensor<B, 2, Int>, Tensor<B, 3>) + 'a;

impl SoftRank {
    /// Anchors per chunk for `k` candidate columns among `n`.
    fn chunk(k: usize, n: usize) -> usize {
        (CHUNK_ELEMENTS / (k * n).max(1)).max(1)
    }

    /// `σ(x)` and `dσ/dx` for `x = (s[a, c] − s[a, b]) / T`, `[chunk, k, n]`.
    fn sigmoid_and_slope<B: Backend>(
        &self,
        s: &Tensor<B, 2>,
        rows: Range<usize>,
        columns: Tensor<B, 2, Int>,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let n = s.dims()[1];
        let c = rows.end - rows.start;
        let k = columns.dims()[1];
        let block = s.clone().slice([rows, 0..n]);
        let at_b = block.clone().gather(1, columns).reshape([c, k, 1]);
        let x = (block.reshape([c, 1, n]) - at_b).div_scalar(self.temperature);
        if self.clamp {
            let inside = x.clone().abs().lower_equal_elem(50.0);
            let y = logistic(x.clamp(-50.0, 50.0));
            let slope = (y.clone() * y.clone().neg().add_scalar(1.0))
                .div_scalar(self.temperature)
                .mask_fill(inside.bool_not(), 0.0);
            (y, slope)
        } else {
            let y = logistic(x);
            let slope = (y.clone() * y.clone().neg().add_scalar(1.0)).div_scalar(self.temperature);
            (y, slope)
        }
    }

    /// `R[a, k]` for every anchor, `[n_anchors, k]`, from detached similarities `s` `[n, n]`.
    pub fn ranks<B: Backend>(
        &self,
        s: &Tensor<B, 2>,
        k: usize,
        chunk: &ChunkFn<B>,
    ) -> Tensor<B, 2> {
        let s = s.clone().detach();
        let n = s.dims()[0];
        let step = Self::chunk(k, n);
        let parts = (0..n)
            .step_by(step)
            .map(|start| {
                let rows = start..(start + step).min(n);
                let c = rows.end - rows.start;
                let (columns, kernel) = chunk(rows.clone());
                let (y, _) = self.sigmoid_and_slope(&s, rows, columns);
                (y * kernel).sum_dim(2).reshape([c, k])
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    /// `G[a, x] = ∂/∂s[a, x] Σ_k W[a, k] R[a, k]`, `[n, n]`, for weights `W` `[n, k]`.
    pub fn backprop<B: Backend>(
        &self,
        s: &Tensor<B, 2>,
        weights: Tensor<B, 2>,
        chunk: &ChunkFn<B>,
    ) -> Tensor<B, 2> {
        let s = s.clone().detach();
        let weights = weights.detach();
        let [n, k] = weights.dims();
        let step = Self::chunk(k, n);
        let parts = (0..n)
            .step_by(step)
            .map(|start| {
                let rows = start..(start + step).min(n);
                let c = rows.end - rows.start;
                let (columns, kernel) = chunk(rows.clone());
                let (_, slope) = self.sigmoid_and_slope(&s, rows.clone(), columns.clone());
                let w = weights.clone().slice([rows, 0..k]).reshape([c, k, 1]);
                let p = slope * kernel * w;
                // s[a, c] enters with +, s[a, b] with −.
                let plus = p.clone().sum_dim(1).reshape([c, n]);
                let minus = p.sum_dim(2).reshape([c, k]);
                let zeros = Tensor::<B, 2>::zeros([c, n], (&s.device(), s.dtype()));
                plus - zeros.scatter(1, columns, minus, IndexingUpdateOp::Add)
            })
            .collect();
        Tensor::cat(parts, 0)
    }
}

/// `value + Σ_x G[a, x] (s[a, x] − stop_gradient(s[a, x]))` per row: `value` `[n]` with the
/// gradient `G` `[n, n]` attached through `s`.
pub(crate) fn attach_row_gradient<B: Backend>(
    value: Tensor<B, 1>,
    grad: Tensor<B, 2>,
    s: Tensor<B, 2>,
) -> Tensor<B, 1> {
    let n = value.dims()[0];
    let delta = s.clone() - s.detach();
    value.detach() + (grad.detach() * delta).sum_dim(1).reshape([n])
}
