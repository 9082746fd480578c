//! What the testers and the inference model need from a model and a dataset.

use std::ops::Range;

use burn::tensor::{Tensor, backend::Backend};

use crate::Labels;

/// A model that maps a batch of inputs to embeddings (PML: `embedder(trunk(x))` in eval mode,
/// without gradients).
///
/// Any `Fn(I) -> Tensor<B, 2>` is one, so a Burn module is used through a closure:
/// `|x| model.forward(x)`.
pub trait EmbeddingModel<B: Backend, I> {
    /// `[batch, d]` embeddings of the batch.
    fn embed(&self, input: I) -> Tensor<B, 2>;
}

impl<B: Backend, I, F: Fn(I) -> Tensor<B, 2>> EmbeddingModel<B, I> for F {
    fn embed(&self, input: I) -> Tensor<B, 2> {
        self(input)
    }
}

/// A dataset split the testers can embed batch by batch.
pub trait EvalDataset<B: Backend> {
    /// A batch of model inputs (for example a `Tensor<B, 4>` of images).
    type Input;

    /// The number of items.
    fn len(&self) -> usize;

    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inputs of the items in `range` and their labels: one row per item, one column per
    /// level of the label hierarchy (width 1 for plain class labels).
    fn batch(&self, range: Range<usize>, device: &B::Device) -> (Self::Input, Labels);
}

/// A dataset of pairs for [`GlobalTwoStreamEmbeddingSpaceTester`](crate::GlobalTwoStreamEmbeddingSpaceTester):
/// each item is an anchor and a positive-or-negative partner with one label row.
pub trait TwoStreamDataset<B: Backend> {
    /// A batch of model inputs.
    type Input;

    /// The number of pairs.
    fn len(&self) -> usize;

    /// Whether there are no pairs.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Anchors, partners and label rows of the pairs in `range`.
    fn batch(&self, range: Range<usize>, device: &B::Device) -> (Self::Input, Self::Input, Labels);
}

/// An in-memory dataset: a `[n, ...]` tensor of inputs with their labels; batches are slices
/// of the first dimension.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::{EvalDataset, Labels, TensorDataset};
///
/// let device = Default::default();
/// let ds = TensorDataset::new(Tensor::<NdArray, 2>::zeros([5, 3], &device), Labels::new(vec![0, 0, 1, 1, 2]));
/// let (x, labels) = EvalDataset::<NdArray>::batch(&ds, 1..3, &device);
/// assert_eq!(x.dims(), [2, 3]);
/// assert_eq!(labels.as_flat(), &[0, 1]);
/// ```
#[derive(Clone, Debug)]
pub struct TensorDataset<B: Backend, const D: usize> {
    inputs: Tensor<B, D>,
    labels: Labels,
}

impl<B: Backend, const D: usize> TensorDataset<B, D> {
    /// Inputs `[n, ...]` and `n` label rows.
    ///
    /// # Panics
    /// If the counts differ.
    pub fn new(inputs: Tensor<B, D>, labels: Labels) -> Self {
        assert_eq!(
            inputs.dims()[0],
            labels.len(),
            "TensorDataset: {} inputs but {} labels",
            inputs.dims()[0],
            labels.len()
        );
        Self { inputs, labels }
    }
}

impl<B: Backend, const D: usize> EvalDataset<B> for TensorDataset<B, D> {
    type Input = Tensor<B, D>;

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn batch(&self, range: Range<usize>, device: &B::Device) -> (Tensor<B, D>, Labels) {
        let idx: Vec<usize> = range.clone().collect();
        let x = self
            .inputs
            .clone()
            .narrow(0, range.start, range.len())
            .to_device(device);
        (x, self.labels.select(&idx))
    }
}
