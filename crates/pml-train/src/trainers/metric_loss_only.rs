//! [`MetricLossOnly`]: PML's `MetricLossOnly` trainer.

use std::marker::PhantomData;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use pml_core::{LossInput, MetricLoss, Miner};
use pml_miners::AnyMiner;

use super::output::finish_step;
use super::{
    Embedder, EmbeddingOutput, HasLosses, LabeledBatch, NonFinitePolicy, StepGuard, StepOutput,
    Trainer,
};

/// PML's `MetricLossOnly`: embeddings of the batch, an optional tuple miner, one metric loss.
///
/// A Burn module holding the network and the loss (whose parameters, if any, train with it:
/// see [`LossOptimizer`](super::LossOptimizer)); burn-train's `Learner` runs it through
/// [`TrainStep`] (training: embed, mine, loss, backward) and [`InferenceStep`] (validation:
/// embed). Train it with [`fit`](super::fit).
///
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::nn::{Linear, LinearConfig};
/// use burn::module::Module;
/// use burn::tensor::{Tensor, backend::Backend};
/// use pml_losses::TripletMarginLossConfig;
/// use pml_miners::{AnyMiner, MultiSimilarityMinerConfig};
/// use pml_train::datasets::VectorBatch;
/// use pml_train::trainers::{Embedder, MetricLossOnly};
///
/// #[derive(Module, Debug)]
/// struct Net<B: Backend> { fc: Linear<B> }
/// impl<B: Backend> Embedder<B> for Net<B> {
///     type Batch = VectorBatch<B>;
///     fn embed(&self, x: Tensor<B, 2>) -> Tensor<B, 2> { self.fc.forward(x) }
/// }
///
/// type B = Autodiff<NdArray>;
/// let net = Net { fc: LinearConfig::new(8, 4).init::<B>(&Default::default()) };
/// let trainer: MetricLossOnly<B, _, _> =
///     MetricLossOnly::new(net, TripletMarginLossConfig::new().with_margin(0.1).init())
///     .with_miner(AnyMiner::MultiSimilarity(
///         MultiSimilarityMinerConfig::new().with_epsilon(0.1).init(),
///     ));
/// # let _ = trainer;
/// ```
#[derive(Module, Debug)]
pub struct MetricLossOnly<B: Backend, M, L> {
    /// The network (PML's `trunk` and `embedder`).
    pub model: M,
    /// The metric loss (PML's `loss_funcs["metric_loss"]`).
    pub loss: L,
    #[module(skip)]
    miner: Option<AnyMiner>,
    #[module(skip)]
    guard: StepGuard,
    backend: PhantomData<B>,
}

impl<B: Backend, M, L> MetricLossOnly<B, M, L> {
    /// A trainer of `model` with `loss`, no miner, skipping non-finite batches.
    pub fn new(model: M, loss: L) -> Self {
        Self {
            model,
            loss,
            miner: None,
            guard: StepGuard::default(),
            backend: PhantomData,
        }
    }

    /// Mines each batch with this miner (PML's `mining_funcs["tuple_miner"]`).
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

impl<B: Backend, M, L> Trainer for MetricLossOnly<B, M, L> {
    fn guard(&self) -> &StepGuard {
        &self.guard
    }
}

/// The loss of one labelled batch of embeddings, mined when a miner is given (PML's
/// `maybe_mine_embeddings` + `maybe_get_metric_loss`).
pub(crate) fn metric_loss<B: Backend, L: MetricLoss<B>>(
    loss: &L,
    miner: Option<&AnyMiner>,
    embeddings: burn::tensor::Tensor<B, 2>,
    labels: burn::tensor::Tensor<B, 1, burn::tensor::Int>,
) -> burn::tensor::Tensor<B, 1> {
    let input = LossInput::new(embeddings.clone(), labels.clone());
    let input = match miner {
        Some(m) => input.with_indices(m.mine(embeddings, labels, None)),
        None => input,
    };
    loss.forward(input)
}

impl<B, M, L> TrainStep for MetricLossOnly<B, M, L>
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
        let n = embeddings.dims()[0];
        let loss = metric_loss(&self.loss, self.miner.as_ref(), embeddings, labels);
        finish_step(self, &self.guard, loss, n, None)
    }
}

impl<B: Backend, M: Embedder<B>, L: Module<B>> InferenceStep for MetricLossOnly<B, M, L> {
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

impl<B, M, L> HasLosses<B> for MetricLossOnly<B, M, L>
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
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
