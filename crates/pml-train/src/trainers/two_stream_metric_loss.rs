//! [`TwoStreamMetricLoss`]: PML's `TwoStreamMetricLoss` trainer.

use std::marker::PhantomData;

use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use pml_core::{IndicesTuple, LossInput, MetricLoss, Miner, Reference, labels::all_triplets};
use pml_miners::AnyMiner;

use super::output::finish_step;
use super::{
    Embedder, EmbeddingOutput, HasLosses, LabeledBatch, NonFinitePolicy, StepGuard, StepOutput,
    Trainer, TwoStreamBatch,
};

/// PML's `TwoStreamMetricLoss`: batches of anchors and partners ([`TwoStreamBatch`]); tuples
/// always go from an anchor to a partner: the miner mines the anchors against the partners as
/// reference, or, without a miner, every triplet (anchor, positive partner, negative partner)
/// is used. The loss sees the anchors and partners stacked, with the partners' indices shifted
/// by the batch size (PML's `shift_indices_tuple`).
///
/// Validation embeds ordinary labelled batches (`M::Batch`).
#[derive(Module, Debug)]
pub struct TwoStreamMetricLoss<B: Backend, M, L> {
    /// The network, shared by both streams.
    pub model: M,
    /// The metric loss.
    pub loss: L,
    #[module(skip)]
    miner: Option<AnyMiner>,
    #[module(skip)]
    guard: StepGuard,
    backend: PhantomData<B>,
}

impl<B: Backend, M, L> TwoStreamMetricLoss<B, M, L> {
    /// A trainer without a miner.
    pub fn new(model: M, loss: L) -> Self {
        Self {
            model,
            loss,
            miner: None,
            guard: StepGuard::default(),
            backend: PhantomData,
        }
    }

    /// Mines anchors against partners with this miner.
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

impl<B: Backend, M, L> Trainer for TwoStreamMetricLoss<B, M, L> {
    fn guard(&self) -> &StepGuard {
        &self.guard
    }
}

fn shift<B: Backend>(t: IndicesTuple<B>, by: usize) -> IndicesTuple<B> {
    let s = |x: Tensor<B, 1, Int>| x.add_scalar(by as i64);
    match t {
        IndicesTuple::Pairs { a1, p, a2, n } => IndicesTuple::Pairs {
            a1,
            p: s(p),
            a2,
            n: s(n),
        },
        IndicesTuple::Triplets { a, p, n } => IndicesTuple::Triplets {
            a,
            p: s(p),
            n: s(n),
        },
    }
}

impl<B, M, L> TrainStep for TwoStreamMetricLoss<B, M, L>
where
    B: AutodiffBackend,
    M: Embedder<B> + AutodiffModule<B>,
    L: MetricLoss<B> + AutodiffModule<B>,
    <M::Batch as LabeledBatch<B>>::Input: Send + 'static,
    Self: AutodiffModule<B>,
{
    type Input = TwoStreamBatch<B, <M::Batch as LabeledBatch<B>>::Input>;
    type Output = StepOutput;

    fn step(&self, batch: Self::Input) -> TrainOutput<StepOutput> {
        let anchors = self.model.embed(batch.anchors);
        let posnegs = self.model.embed(batch.posnegs);
        let labels = batch.labels;
        let n = anchors.dims()[0];
        let tuple = match &self.miner {
            Some(miner) => miner.mine(
                anchors.clone(),
                labels.clone(),
                Some(Reference {
                    embeddings: posnegs.clone(),
                    labels: Some(labels.clone()),
                }),
            ),
            None => all_triplets(&labels, Some(&labels)),
        };
        let embeddings = Tensor::cat(vec![anchors, posnegs], 0);
        let all_labels = Tensor::cat(vec![labels.clone(), labels], 0);
        let loss = self
            .loss
            .forward(LossInput::new(embeddings, all_labels).with_indices(shift(tuple, n)));
        finish_step(self, &self.guard, loss, 2 * n, None)
    }
}

impl<B: Backend, M: Embedder<B>, L: Module<B>> InferenceStep for TwoStreamMetricLoss<B, M, L> {
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

impl<B, M, L> HasLosses<B> for TwoStreamMetricLoss<B, M, L>
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
