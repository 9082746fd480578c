//! [`UnsupervisedEmbeddingsUsingAugmentations`]: PML 1.x's trainer of the same name.

use std::fmt::Debug;
use std::marker::PhantomData;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use pml_core::MetricLoss;
use pml_miners::AnyMiner;

use super::metric_loss_only::metric_loss;
use super::output::finish_step;
use super::{
    Embedder, EmbeddingOutput, HasLosses, LabeledBatch, NonFinitePolicy, StepGuard, StepOutput,
    Trainer,
};

/// The views of a batch for [`UnsupervisedEmbeddingsUsingAugmentations`] (PML's `transforms`):
/// view `v` of every input of the batch. Implement it for every backend, like an
/// [`Embedder`].
pub trait Augmentation<B: Backend, X>: Clone + Debug + Send + Sync {
    /// How many views each input gets (PML: `len(transforms)`, at least 2 for a useful loss).
    fn num_views(&self) -> usize;

    /// View `view` (`0..num_views`) of the batch's inputs.
    fn view(&self, inputs: X, view: usize) -> X;
}

/// PML's `UnsupervisedEmbeddingsUsingAugmentations` (PML 1.x; removed from PML 2, ported for
/// completeness): labels are ignored; each input gets `num_views` augmented views, and the
/// views of the same input share a pseudo-label (its position in the batch), so a metric loss
/// pulls the views of an input together and pushes other inputs away. Validation embeds the
/// plain labelled batches with their real labels.
#[derive(Module, Debug)]
pub struct UnsupervisedEmbeddingsUsingAugmentations<B: Backend, M, L, A> {
    /// The network.
    pub model: M,
    /// The metric loss.
    pub loss: L,
    #[module(skip)]
    augmentation: A,
    #[module(skip)]
    miner: Option<AnyMiner>,
    #[module(skip)]
    guard: StepGuard,
    backend: PhantomData<B>,
}

impl<B: Backend, M, L, A> UnsupervisedEmbeddingsUsingAugmentations<B, M, L, A> {
    /// A trainer of `model` with `loss` on the views `augmentation` makes.
    pub fn new(model: M, loss: L, augmentation: A) -> Self {
        Self {
            model,
            loss,
            augmentation,
            miner: None,
            guard: StepGuard::default(),
            backend: PhantomData,
        }
    }

    /// Mines the views with this miner.
    pub fn with_miner(mut self, miner: AnyMiner) -> Self {
        self.miner = Some(miner);
        self
    }

    /// What to do with a non-finite loss.
    pub fn with_non_finite(mut self, policy: NonFinitePolicy) -> Self {
        self.guard = StepGuard::new(policy);
        self
    }
}

impl<B: Backend, M, L, A> Trainer for UnsupervisedEmbeddingsUsingAugmentations<B, M, L, A> {
    fn guard(&self) -> &StepGuard {
        &self.guard
    }
}

impl<B, M, L, A> TrainStep for UnsupervisedEmbeddingsUsingAugmentations<B, M, L, A>
where
    B: AutodiffBackend,
    M: Embedder<B> + AutodiffModule<B>,
    L: MetricLoss<B> + AutodiffModule<B>,
    A: Augmentation<B, <M::Batch as LabeledBatch<B>>::Input>,
    <M::Batch as LabeledBatch<B>>::Input: Clone,
    Self: AutodiffModule<B>,
{
    type Input = M::Batch;
    type Output = StepOutput;

    fn step(&self, batch: M::Batch) -> TrainOutput<StepOutput> {
        let (inputs, labels) = batch.into_parts();
        let n = labels.dims()[0];
        let device = labels.device();
        let views = self.augmentation.num_views();
        let embeddings: Vec<Tensor<B, 2>> = (0..views)
            .map(|v| self.model.embed(self.augmentation.view(inputs.clone(), v)))
            .collect();
        let pseudo = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
        let pseudo = Tensor::cat(vec![pseudo; views], 0);
        let embeddings = Tensor::cat(embeddings, 0);
        let loss = metric_loss(&self.loss, self.miner.as_ref(), embeddings, pseudo);
        finish_step(self, &self.guard, loss, n * views, None)
    }
}

impl<B: Backend, M: Embedder<B>, L: Module<B>, A: Clone + Debug + Send + Sync> InferenceStep
    for UnsupervisedEmbeddingsUsingAugmentations<B, M, L, A>
{
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

impl<B, M, L, A> HasLosses<B> for UnsupervisedEmbeddingsUsingAugmentations<B, M, L, A>
where
    B: AutodiffBackend,
    L: AutodiffModule<B>,
    Self: AutodiffModule<B>,
{
    type Losses = L;

    fn losses(&self) -> &L {
        &self.loss
    }

    fn with_losses(mut self, losses: L) -> Self {
        self.loss = losses;
        self
    }
}
