use burn::tensor::{Tensor, backend::Backend};

/// A regularizer on embeddings or on a loss's weights (PML's `BaseRegularizer`): a penalty
/// per row, reduced by the regularizer's own reducer.
pub trait Regularizer<B: Backend> {
    /// The reduced penalty on `x` (`[n, d]`), shape `[1]`.
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1>;
}
