use burn::tensor::{Tensor, backend::Backend};

/// A distance or similarity between embeddings (PML's `BaseDistance`).
///
/// Inverted measures (similarities: cosine, dot product) are larger for closer pairs; the
/// helpers [`margin`](Distance::margin), [`smallest`](Distance::smallest) and
/// [`largest`](Distance::largest) let losses be written once for both kinds.
pub trait Distance<B: Backend> {
    /// The matrix between every query row and every reference row.
    ///
    /// `reference = None` means the query itself (PML's `ref_emb=None`); implementations may use
    /// it to make the diagonal exact.
    ///
    /// # Shapes
    /// - `query`: `[n, d]`, `reference`: `[m, d]`
    /// - output: `[n, m]` (`[n, n]` without a reference)
    ///
    /// # Panics
    /// If the widths of `query` and `reference` differ.
    fn forward(&self, query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>) -> Tensor<B, 2>;

    /// `true` for similarities (larger = closer).
    fn is_inverted(&self) -> bool;

    /// How much `x` exceeds `y` in the "farther" direction: `x - y`, or `y - x` for similarities.
    fn margin<const D: usize>(&self, x: Tensor<B, D>, y: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() { y - x } else { x - y }
    }

    /// `∂ margin(x, y) / ∂x`: `1`, or `−1` for similarities.
    fn margin_slope(&self) -> f64 {
        if self.is_inverted() { -1.0 } else { 1.0 }
    }

    /// [`margin`](Distance::margin) with a constant on the right: `x - c`, or `c - x`.
    fn margin_to<const D: usize>(&self, x: Tensor<B, D>, c: f64) -> Tensor<B, D> {
        if self.is_inverted() {
            x.neg().add_scalar(c)
        } else {
            x.sub_scalar(c)
        }
    }

    /// [`margin`](Distance::margin) with a constant on the left: `c - x`, or `x - c`.
    fn margin_from<const D: usize>(&self, c: f64, x: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() {
            x.sub_scalar(c)
        } else {
            x.neg().add_scalar(c)
        }
    }

    /// Element-wise closest of two values: `min`, or `max` for similarities.
    fn smallest<const D: usize>(&self, a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() {
            a.max_pair(b)
        } else {
            a.min_pair(b)
        }
    }

    /// Element-wise farthest of two values: `max`, or `min` for similarities.
    fn largest<const D: usize>(&self, a: Tensor<B, D>, b: Tensor<B, D>) -> Tensor<B, D> {
        if self.is_inverted() {
            a.min_pair(b)
        } else {
            a.max_pair(b)
        }
    }
}
