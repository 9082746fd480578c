//! Shared pieces of the pml-rs examples: backend selection, the MLP, evaluation, and the
//! CSV / PNG outputs.
#![warn(missing_docs)]

pub mod backend;
pub mod plot;
pub mod report;

/// jemalloc keeps freed pages for the next step's tensors; with glibc, every tensor larger than
/// its mapping threshold is a fresh mapping whose pages fault in again at every step.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Relu};
use burn::tensor::{Tensor, backend::Backend};
use pml_core::PmlError;
use pml_eval::{Accuracies, AccuracyCalculatorConfig, AccuracyInput};
use pml_train::datasets::{VectorBatch, VectorDataset};
use pml_train::trainers::Embedder;

/// A multilayer perceptron with ReLU between its linear layers (none after the last), the
/// embedder of the examples. Burn's `Linear` default initialization is PyTorch's
/// (Kaiming-uniform weights, uniform bias in `±1/sqrt(fan_in)`).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    layers: Vec<Linear<B>>,
    relu: Relu,
}

impl<B: Backend> Mlp<B> {
    /// Layers `sizes[0] -> sizes[1] -> ... -> sizes[k]`.
    ///
    /// # Panics
    /// If fewer than two sizes are given.
    pub fn new(sizes: &[usize], device: &B::Device) -> Self {
        assert!(
            sizes.len() >= 2,
            "Mlp needs at least two sizes, got {sizes:?}"
        );
        Self {
            layers: sizes
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            relu: Relu::new(),
        }
    }

    /// `[batch, sizes[k]]` from `[batch, sizes[0]]`.
    pub fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = self.relu.forward(x);
            }
        }
        x
    }
}

impl<B: Backend> Embedder<B> for Mlp<B> {
    type Batch = VectorBatch<B>;

    fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.forward(x)
    }
}

/// The embeddings of a whole dataset, in blocks of 4096 rows.
pub fn embed_all<B: Backend, M: Embedder<B, Batch = VectorBatch<B>>>(
    model: &M,
    data: &VectorDataset,
    device: &B::Device,
) -> Tensor<B, 2> {
    let blocks: Vec<Tensor<B, 2>> = (0..data.len())
        .step_by(4096)
        .map(|start| {
            let idx: Vec<usize> = (start..(start + 4096).min(data.len())).collect();
            model.embed(data.batch::<B>(&idx, device).images)
        })
        .collect();
    Tensor::cat(blocks, 0)
}

/// PML's `AccuracyCalculator` on `embeddings` with queries = reference, as
/// `mnist_reference.py` evaluates (`ref_includes_query`).
///
/// # Errors
/// From the calculator.
pub fn accuracies<B: Backend>(
    config: &AccuracyCalculatorConfig,
    embeddings: Tensor<B, 2>,
    labels: &[i64],
) -> Result<Accuracies, PmlError> {
    config
        .try_init()?
        .get_accuracy(AccuracyInput::new(embeddings, labels.to_vec()))
}
