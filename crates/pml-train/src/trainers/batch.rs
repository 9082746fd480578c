//! What the trainers take from a data loader: labelled batches ([`LabeledBatch`]) and the pairs
//! of [`TwoStreamMetricLoss`](super::TwoStreamMetricLoss) ([`TwoStreamBatch`]).

use burn::tensor::{Int, Tensor, backend::Backend};

use crate::datasets::VectorBatch;

/// A batch of model inputs with one class label per item (PML's `(data, labels)`), as a Burn
/// `DataLoader` yields it.
pub trait LabeledBatch<B: Backend>: Send + 'static {
    /// The model inputs of the batch (`Tensor<B, 2>` for vectors, `Tensor<B, 4>` for images).
    type Input;

    /// The inputs and the labels (`[batch]`).
    fn into_parts(self) -> (Self::Input, Tensor<B, 1, Int>);
}

impl<B: Backend> LabeledBatch<B> for VectorBatch<B> {
    type Input = Tensor<B, 2>;

    fn into_parts(self) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
        (self.images, self.labels)
    }
}

/// A batch for [`TwoStreamMetricLoss`](super::TwoStreamMetricLoss): anchors, their positive or
/// negative partners (PML's `posnegs`), one label per pair (PML's two-stream datasets return
/// `(anchor, posneg, label)`).
#[derive(Clone, Debug)]
pub struct TwoStreamBatch<B: Backend, X> {
    /// The anchors' model inputs.
    pub anchors: X,
    /// The partners' model inputs, one per anchor.
    pub posnegs: X,
    /// `[batch]`: an anchor and a partner with the same label are a positive pair.
    pub labels: Tensor<B, 1, Int>,
}
