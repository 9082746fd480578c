//! What the trainers need from the networks they train.

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Tensor, backend::Backend};

use super::LabeledBatch;

/// The network a trainer trains: PML's `trunk` followed by its `embedder`, from a batch's
/// inputs to embeddings.
///
/// Implement it for every backend (`impl<B: Backend> Embedder<B> for MyNet<B>`): the trainers
/// use it with the autodiff backend while training and with its inner backend to evaluate.
pub trait Embedder<B: Backend>: Module<B> {
    /// The batches this network reads (e.g. [`VectorBatch`](crate::datasets::VectorBatch)).
    type Batch: LabeledBatch<B>;

    /// `[batch, d]` embeddings of the batch's inputs.
    fn embed(&self, input: <Self::Batch as LabeledBatch<B>>::Input) -> Tensor<B, 2>;
}

/// A network from vectors to vectors: a classifier (embeddings to logits), PML's `embedder` on
/// top of a trunk, or the generator of
/// [`DeepAdversarialMetricLearning`](super::DeepAdversarialMetricLearning).
pub trait Head<B: Backend>: Module<B> {
    /// `[batch, out]` from `[batch, in]`.
    fn forward_head(&self, input: Tensor<B, 2>) -> Tensor<B, 2>;
}

impl<B: Backend> Head<B> for Linear<B> {
    fn forward_head(&self, input: Tensor<B, 2>) -> Tensor<B, 2> {
        self.forward(input)
    }
}
