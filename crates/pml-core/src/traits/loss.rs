use burn::tensor::{Tensor, backend::Backend};

use crate::{LossInput, LossTerms, PmlError};

/// A metric-learning loss (PML's `BaseMetricLossFunction`).
///
/// [`forward_terms`](MetricLoss::forward_terms) is PML's `compute_loss` plus the embedding
/// regularization: the unreduced terms; [`forward`](MetricLoss::forward) reduces them with the
/// loss's reducer into the scalar to backpropagate.
pub trait MetricLoss<B: Backend> {
    /// The unreduced loss terms for these inputs.
    ///
    /// # Panics
    /// On shape errors (see [`LossInput::validate`]) or when the inputs lack what the loss needs
    /// (labels or an indices tuple).
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B>;

    /// Reduces terms produced by [`forward_terms`](MetricLoss::forward_terms) for `input` with
    /// this loss's reducer, to a tensor of shape `[1]`.
    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1>;

    /// The reduced loss, shape `[1]`.
    ///
    /// # Panics
    /// As [`forward_terms`](MetricLoss::forward_terms).
    fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
        let terms = self.forward_terms(&input);
        self.reduce(terms, &input)
    }

    /// [`forward`](MetricLoss::forward) for untrusted batches: shape errors and non-finite
    /// embeddings become a [`PmlError`] naming the argument instead of a panic or a NaN loss,
    /// so a training loop can skip the batch. Costs one small device read-back.
    fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
        input.check()?;
        Ok(self.forward(input))
    }
}
