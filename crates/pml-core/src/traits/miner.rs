use burn::tensor::{Int, Tensor, backend::Backend};

use crate::{IndicesTuple, Reference};

/// A miner: selects informative pairs or triplets from a batch (PML's `BaseMiner`), on the
/// device and without building an autodiff graph.
pub trait Miner<B: Backend> {
    /// Mines `embeddings` (`[n, d]`) with `labels` (`[n]`), against `reference` when given
    /// (else the batch itself, without self-pairs).
    ///
    /// # Panics
    /// If `labels` is not as long as the batch, or the reference has no labels.
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B>;
}
