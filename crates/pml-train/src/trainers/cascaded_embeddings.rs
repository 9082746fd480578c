//! [`CascadedEmbeddings`]: PML's `CascadedEmbeddings` trainer.

use std::marker::PhantomData;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use pml_core::{IndicesTuple, LossInput, MetricLoss, Miner};
use pml_miners::AnyMiner;

use super::output::finish_step;
use super::{
    Embedder, EmbeddingOutput, HasLosses, LabeledBatch, NonFinitePolicy, StepGuard, StepOutput,
    Trainer,
};

/// PML's `CascadedEmbeddings` (Yuan et al., "Hard-Aware Deeply Cascaded Embedding", ICCV
/// 2017): the embedding is the concatenation of slices of `embedding_sizes` columns; slice `i`
/// has its own loss (`metric_loss_i`) and optional miner (`tuple_miner_i`). An
/// [`HDCMiner`](pml_miners::HDCMiner) in slice `i` mines from the tuples the previous slice's
/// miner kept (PML's `set_idx_externally`), so later slices see harder and harder examples.
/// The total loss is the sum of the slices' losses; validation uses the whole embedding.
///
/// PML's optional per-slice classifiers are not ported; use
/// [`TrainWithClassifier`](super::TrainWithClassifier) for a classifier.
#[derive(Module, Debug)]
pub struct CascadedEmbeddings<B: Backend, M, L> {
    /// The network; its embeddings have `embedding_sizes.iter().sum()` columns.
    pub model: M,
    /// One loss per slice.
    pub losses: Vec<L>,
    #[module(skip)]
    embedding_sizes: Vec<usize>,
    #[module(skip)]
    miners: Vec<Option<AnyMiner>>,
    #[module(skip)]
    guard: StepGuard,
    backend: PhantomData<B>,
}

impl<B: Backend, M, L> CascadedEmbeddings<B, M, L> {
    /// A trainer with one loss per slice of `embedding_sizes` columns and no miners.
    ///
    /// # Panics
    /// If `losses` and `embedding_sizes` differ in length, or a size is 0.
    pub fn new(model: M, embedding_sizes: Vec<usize>, losses: Vec<L>) -> Self {
        assert_eq!(
            losses.len(),
            embedding_sizes.len(),
            "CascadedEmbeddings: {} losses for {} embedding_sizes",
            losses.len(),
            embedding_sizes.len()
        );
        assert!(
            embedding_sizes.iter().all(|&s| s > 0),
            "CascadedEmbeddings: embedding_sizes must be positive, got {embedding_sizes:?}"
        );
        let miners = vec![None; losses.len()];
        Self {
            model,
            losses,
            embedding_sizes,
            miners,
            guard: StepGuard::default(),
            backend: PhantomData,
        }
    }

    /// The miner of slice `i` (PML's `tuple_miner_i`).
    ///
    /// # Panics
    /// If `i` is not a slice.
    pub fn with_miner(mut self, i: usize, miner: AnyMiner) -> Self {
        assert!(
            i < self.miners.len(),
            "CascadedEmbeddings: slice {i} does not exist ({} slices)",
            self.miners.len()
        );
        self.miners[i] = Some(miner);
        self
    }

    /// What to do with a non-finite loss.
    pub fn with_non_finite(mut self, policy: NonFinitePolicy) -> Self {
        self.guard = StepGuard::new(policy);
        self
    }
}

impl<B: Backend, M, L> Trainer for CascadedEmbeddings<B, M, L> {
    fn guard(&self) -> &StepGuard {
        &self.guard
    }
}

impl<B, M, L> TrainStep for CascadedEmbeddings<B, M, L>
where
    B: AutodiffBackend,
    M: Embedder<B> + AutodiffModule<B>,
    L: MetricLoss<B> + AutodiffModule<B>,
    Self: AutodiffModule<B>,
{
    type Input = M::Batch;
    type Output = StepOutput;

    fn step(&self, batch: M::Batch) -> TrainOutput<StepOutput> {
        let (inputs, labels) = batch.into_parts();
        let embeddings = self.model.embed(inputs);
        let [n, d] = embeddings.dims();
        let total_size: usize = self.embedding_sizes.iter().sum();
        assert_eq!(
            d, total_size,
            "CascadedEmbeddings: the model gives {d} columns, embedding_sizes sum to {total_size}"
        );
        let mut total = embeddings.clone().sum().mul_scalar(0.0);
        let mut start = 0;
        let mut previous: Option<IndicesTuple<B>> = None;
        for ((size, loss), miner) in self
            .embedding_sizes
            .iter()
            .zip(&self.losses)
            .zip(&self.miners)
        {
            let e = embeddings.clone().narrow(1, start, *size);
            start += size;
            let tuple = miner.as_ref().map(|miner| match (miner, previous.take()) {
                (AnyMiner::Hdc(hdc), Some(prev)) => {
                    hdc.set_idx_externally(prev);
                    let t = hdc.mine(e.clone(), labels.clone(), None);
                    hdc.reset_idx();
                    t
                }
                (miner, _) => miner.mine(e.clone(), labels.clone(), None),
            });
            let input = LossInput::new(e, labels.clone());
            let input = match &tuple {
                Some(t) => input.with_indices(t.clone()),
                None => input,
            };
            total = total + loss.forward(input);
            previous = tuple;
        }
        finish_step(self, &self.guard, total, n, None)
    }
}

impl<B: Backend, M: Embedder<B>, L: Module<B>> InferenceStep for CascadedEmbeddings<B, M, L> {
    type Input = M::Batch;
    type Output = EmbeddingOutput<B>;

    fn step(&self, batch: M::Batch) -> EmbeddingOutput<B> {
        let (inputs, labels) = batch.into_parts();
        EmbeddingOutput {
            embeddings: self.model.embed(inputs),
            labels,
        }
    }
}

impl<B, M, L> HasLosses<B> for CascadedEmbeddings<B, M, L>
where
    B: AutodiffBackend,
    L: AutodiffModule<B>,
    Self: AutodiffModule<B>,
{
    type Losses = Vec<L>;

    fn losses(&self) -> &Vec<L> {
        &self.losses
    }

    fn with_losses(mut self, losses: Vec<L>) -> Self {
        self.losses = losses;
        self
    }
}
