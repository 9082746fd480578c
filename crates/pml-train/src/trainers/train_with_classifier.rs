//! [`TrainWithClassifier`]: PML's `TrainWithClassifier` trainer.

use std::marker::PhantomData;

use burn::module::{AutodiffModule, Module};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use pml_core::MetricLoss;
use pml_miners::AnyMiner;

use super::metric_loss_only::metric_loss;
use super::output::finish_step;
use super::{
    Embedder, EmbeddingOutput, HasLosses, Head, LabeledBatch, NonFinitePolicy, StepGuard,
    StepOutput, Trainer,
};

/// PML's `TrainWithClassifier`: [`MetricLossOnly`](super::MetricLossOnly) plus a classifier on
/// the embeddings trained with cross-entropy (PML's `models["classifier"]` and
/// `loss_funcs["classifier_loss"] = CrossEntropyLoss()`); the total loss is
/// `metric_loss_weight * metric_loss + classifier_loss_weight * classifier_loss` (PML's
/// `loss_weights`; a zero weight skips that loss).
///
/// Labels must be class indices `0..num_classes` for the cross-entropy.
#[derive(Module, Debug)]
pub struct TrainWithClassifier<B: Backend, M, C, L> {
    /// The network.
    pub model: M,
    /// The classifier: embeddings to `[batch, num_classes]` logits.
    pub classifier: C,
    /// The metric loss.
    pub loss: L,
    #[module(skip)]
    miner: Option<AnyMiner>,
    #[module(skip)]
    weights: [f64; 2],
    #[module(skip)]
    guard: StepGuard,
    backend: PhantomData<B>,
}

impl<B: Backend, M, C, L> TrainWithClassifier<B, M, C, L> {
    /// A trainer with weights 1 for both losses and no miner.
    pub fn new(model: M, classifier: C, loss: L) -> Self {
        Self {
            model,
            classifier,
            loss,
            miner: None,
            weights: [1.0, 1.0],
            guard: StepGuard::default(),
            backend: PhantomData,
        }
    }

    /// Mines each batch for the metric loss.
    pub fn with_miner(mut self, miner: AnyMiner) -> Self {
        self.miner = Some(miner);
        self
    }

    /// PML's `loss_weights` `{"metric_loss": metric, "classifier_loss": classifier}`.
    ///
    /// # Panics
    /// If a weight is negative or not finite.
    pub fn with_loss_weights(mut self, metric: f64, classifier: f64) -> Self {
        for (name, w) in [("metric_loss", metric), ("classifier_loss", classifier)] {
            assert!(
                w.is_finite() && w >= 0.0,
                "loss weight {name} must be finite and >= 0, got {w}"
            );
        }
        self.weights = [metric, classifier];
        self
    }

    /// What to do with a non-finite loss.
    pub fn with_non_finite(mut self, policy: NonFinitePolicy) -> Self {
        self.guard = StepGuard::new(policy);
        self
    }
}

impl<B: Backend, M, C, L> Trainer for TrainWithClassifier<B, M, C, L> {
    fn guard(&self) -> &StepGuard {
        &self.guard
    }
}

impl<B, M, C, L> TrainStep for TrainWithClassifier<B, M, C, L>
where
    B: AutodiffBackend,
    M: Embedder<B> + AutodiffModule<B>,
    C: Head<B> + AutodiffModule<B>,
    L: MetricLoss<B> + AutodiffModule<B>,
    Self: AutodiffModule<B>,
{
    type Input = M::Batch;
    type Output = StepOutput;

    fn step(&self, batch: M::Batch) -> TrainOutput<StepOutput> {
        let (inputs, labels) = batch.into_parts();
        let embeddings = self.model.embed(inputs);
        let n = embeddings.dims()[0];
        let [wm, wc] = self.weights;
        let mut total = embeddings.clone().sum().mul_scalar(0.0);
        if wm > 0.0 {
            let l = metric_loss(
                &self.loss,
                self.miner.as_ref(),
                embeddings.clone(),
                labels.clone(),
            );
            total = total + l.mul_scalar(wm);
        }
        if wc > 0.0 {
            let logits = self.classifier.forward_head(embeddings.clone());
            let ce = CrossEntropyLossConfig::new()
                .init(&embeddings.device())
                .forward(logits, labels);
            total = total + ce.mul_scalar(wc);
        }
        finish_step(self, &self.guard, total, n, None)
    }
}

impl<B: Backend, M: Embedder<B>, C: Module<B>, L: Module<B>> InferenceStep
    for TrainWithClassifier<B, M, C, L>
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

impl<B, M, C, L> HasLosses<B> for TrainWithClassifier<B, M, C, L>
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
