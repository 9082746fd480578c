//! [`DeepAdversarialMetricLearning`]: PML's `DeepAdversarialMetricLearning` trainer.

use std::marker::PhantomData;
use std::sync::Arc;

use burn::config::Config;
use burn::module::{AutodiffModule, Module, list_param_ids};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use pml_core::labels::random_triplets;
use pml_core::rng::SeededRng;
use pml_core::{IndicesTuple, LossInput, MetricLoss, PmlError};
use pml_miners::AnyMiner;

use super::metric_loss_only::metric_loss;
use super::output::finish_step;
use super::{Embedder, EmbeddingOutput, Head, LabeledBatch, StepGuard, StepOutput, Trainer};

/// Configuration of [`DeepAdversarialMetricLearning`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct DeepAdversarialMetricLearningConfig {
    /// Training steps per epoch (PML's `iterations_per_epoch`): the step's epoch decides the
    /// phase.
    pub iterations_per_epoch: usize,
    /// Epochs that train only the metric networks (trunk, embedder).
    #[config(default = 0)]
    pub metric_alone_epochs: usize,
    /// Epochs after those that train only the generator.
    #[config(default = 0)]
    pub g_alone_epochs: usize,
    /// Random triplets per anchor fed to the generator.
    #[config(default = 100)]
    pub g_triplets_per_anchor: usize,
    /// The margin of `g_adv_loss` (a `TripletMarginLoss`, PML's default 0.05), negated as in
    /// PML.
    #[config(default = 0.05)]
    pub g_adv_margin: f64,
    /// Loss weights: `metric_loss`, `synth_loss`, `g_adv_loss`, `g_hard_loss`, `g_reg_loss`.
    #[config(default = "[1.0; 5]")]
    pub loss_weights: [f64; 5],
    /// Seed of the random triplets.
    #[config(default = 0)]
    pub seed: u64,
}

impl DeepAdversarialMetricLearningConfig {
    /// Builds the trainer (`trunk` gives PML's penultimate embeddings, `embedder` the final
    /// ones, `generator` maps concatenated `[anchor, positive, negative]` penultimate
    /// embeddings to a synthetic negative).
    ///
    /// # Errors
    /// `iterations_per_epoch` or `g_triplets_per_anchor` of 0, a negative or non-finite weight.
    pub fn try_init<B: Backend, T, E, G, L>(
        &self,
        trunk: T,
        embedder: E,
        generator: G,
        metric_loss: L,
        synth_loss: L,
    ) -> Result<DeepAdversarialMetricLearning<B, T, E, G, L>, PmlError> {
        if self.iterations_per_epoch == 0 {
            return Err(PmlError::invalid_argument(
                "iterations_per_epoch",
                0,
                "must be positive",
            ));
        }
        if self.g_triplets_per_anchor == 0 {
            return Err(PmlError::invalid_argument(
                "g_triplets_per_anchor",
                0,
                "must be positive",
            ));
        }
        if let Some(w) = self
            .loss_weights
            .iter()
            .find(|w| !w.is_finite() || **w < 0.0)
        {
            return Err(PmlError::invalid_argument(
                "loss_weights",
                w,
                "must be finite and >= 0",
            ));
        }
        Ok(DeepAdversarialMetricLearning {
            trunk,
            embedder,
            generator,
            metric_loss,
            synth_loss,
            miner: None,
            config: self.clone(),
            rng: Arc::new(SeededRng::new(self.seed)),
            guard: StepGuard::default(),
            backend: PhantomData,
        })
    }
}

/// PML's `DeepAdversarialMetricLearning` (Duan et al., "Deep Adversarial Metric Learning", CVPR
/// 2018): a generator turns random real triplets `(anchor, positive, negative)` of penultimate
/// embeddings into synthetic hard negatives; the metric networks learn from the real batch
/// (`metric_loss`) and from the synthetic triplets (`synth_loss`), the generator from
/// `g_adv_loss` (a triplet loss with negated distance and margin, which rewards negatives
/// closer to the anchor than the positive) plus `g_hard_loss` (MSE to the anchor) and
/// `g_reg_loss` (MSE to the real negative), all on L2-normalized rows.
///
/// Phases by epoch: the first `metric_alone_epochs` train the trunk and embedder only, the
/// next `g_alone_epochs` the generator only, then all of them together (the synthetic loss
/// only then). PML's optional classifier is not ported here (use
/// [`TrainWithClassifier`](super::TrainWithClassifier)).
#[derive(Module, Debug)]
pub struct DeepAdversarialMetricLearning<B: Backend, T, E, G, L> {
    /// PML's `trunk`: inputs to penultimate embeddings.
    pub trunk: T,
    /// PML's `embedder`: penultimate to final embeddings.
    pub embedder: E,
    /// PML's `generator`.
    pub generator: G,
    /// The loss on real batches.
    pub metric_loss: L,
    /// The loss on the synthetic triplets.
    pub synth_loss: L,
    #[module(skip)]
    miner: Option<AnyMiner>,
    #[module(skip)]
    config: DeepAdversarialMetricLearningConfig,
    #[module(skip)]
    rng: Arc<SeededRng>,
    #[module(skip)]
    guard: StepGuard,
    backend: PhantomData<B>,
}

impl<B: Backend, T, E, G, L> DeepAdversarialMetricLearning<B, T, E, G, L> {
    /// Mines the real batches for `metric_loss`.
    pub fn with_miner(mut self, miner: AnyMiner) -> Self {
        self.miner = Some(miner);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &DeepAdversarialMetricLearningConfig {
        &self.config
    }
}

impl<B: Backend, T, E, G, L> Trainer for DeepAdversarialMetricLearning<B, T, E, G, L> {
    fn guard(&self) -> &StepGuard {
        &self.guard
    }
}

/// Rows `[a0, b0, c0, a1, b1, c1, ...]` from `[a, b, c]` (PML's `unslice_by_n`).
fn interleave<B: Backend>(parts: [Tensor<B, 2>; 3]) -> Tensor<B, 2> {
    let [t, d] = parts[0].dims();
    Tensor::stack::<3>(parts.to_vec(), 1).reshape([3 * t, d])
}

fn normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

fn mse<B: Backend>(a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 1> {
    (a - b).powi_scalar(2).mean()
}

impl<B, T, E, G, L> DeepAdversarialMetricLearning<B, T, E, G, L>
where
    B: AutodiffBackend,
    E: Head<B>,
    G: Head<B>,
    L: MetricLoss<B>,
{
    /// PML's `calculate_synth_loss`: `(synth_loss, g_adv_loss, g_hard_loss, g_reg_loss)`, or
    /// `None` when the batch has no triplet.
    fn synth_losses(
        &self,
        penultimate: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        with_synth: bool,
    ) -> Option<Tensor<B, 1>> {
        let IndicesTuple::Triplets { a, p, n } =
            random_triplets(&labels, None, self.config.g_triplets_per_anchor, &self.rng)
        else {
            unreachable!("random_triplets returns triplets")
        };
        let t = a.dims()[0];
        if t == 0 {
            return None;
        }
        let real_a = penultimate.clone().select(0, a.clone());
        let real_p = penultimate.clone().select(0, p.clone());
        let real_n = penultimate.select(0, n.clone());
        let synthetic = self.generator.forward_head(Tensor::cat(
            vec![real_a.clone(), real_p.clone(), real_n.clone()],
            1,
        ));
        let packed = interleave([real_a.clone(), real_p, synthetic.clone()]);
        let final_emb = self.embedder.forward_head(packed);
        let [_, ws, wadv, whard, wreg] = self.config.loss_weights;
        let label_parts = [a, p, n].map(|i| labels.clone().select(0, i).reshape([t, 1]));
        let packed_labels = Tensor::cat(label_parts.to_vec(), 1).reshape([3 * t]);
        let device = labels.device();
        let idx = |offset: i64| Tensor::<B, 1, Int>::arange_step(offset..3 * t as i64, 3, &device);
        let mut total = final_emb.clone().sum().mul_scalar(0.0);
        if with_synth && ws > 0.0 {
            let triplets = IndicesTuple::triplets(idx(0), idx(1), idx(2));
            let input = LossInput::new(final_emb.clone(), packed_labels).with_indices(triplets);
            total = total + self.synth_loss.forward(input).mul_scalar(ws);
        }
        // g_adv_loss: TripletMarginLoss with distance -LpDistance (normalized rows) and margin
        // -g_adv_margin, reduced by its AvgNonZeroReducer.
        let f = normalize(final_emb);
        let fa = f.clone().select(0, idx(0));
        let fp = f.clone().select(0, idx(1));
        let fneg = f.select(0, idx(2));
        let d_ap = (fa.clone() - fp).powi_scalar(2).sum_dim(1).sqrt();
        let d_an = (fa - fneg).powi_scalar(2).sum_dim(1).sqrt();
        let violation = (d_an - d_ap)
            .sub_scalar(self.config.g_adv_margin)
            .clamp_min(0.0);
        let positive = violation.clone().greater_elem(0.0).float().sum();
        let g_adv = violation.sum() / positive.clamp_min(1.0);
        total = total + g_adv.reshape([1]).mul_scalar(wadv);
        let synthetic = normalize(synthetic);
        total = total + mse(synthetic.clone(), normalize(real_a)).mul_scalar(whard);
        total = total + mse(synthetic, normalize(real_n)).mul_scalar(wreg);
        Some(total)
    }
}

impl<B, T, E, G, L> TrainStep for DeepAdversarialMetricLearning<B, T, E, G, L>
where
    B: AutodiffBackend,
    T: Embedder<B> + AutodiffModule<B>,
    E: Head<B> + AutodiffModule<B>,
    G: Head<B> + AutodiffModule<B>,
    L: MetricLoss<B> + AutodiffModule<B>,
    Self: AutodiffModule<B>,
{
    type Input = T::Batch;
    type Output = StepOutput;

    fn step(&self, batch: T::Batch) -> TrainOutput<StepOutput> {
        let c = &self.config;
        let epoch = self.guard.steps() / c.iterations_per_epoch + 1;
        let metric_alone = epoch <= c.metric_alone_epochs;
        let adv_alone = !metric_alone && epoch <= c.metric_alone_epochs + c.g_alone_epochs;
        let both = !metric_alone && !adv_alone;
        let (inputs, labels) = batch.into_parts();
        let penultimate = self.trunk.embed(inputs);
        let n = penultimate.dims()[0];
        let mut total = penultimate.clone().sum().mul_scalar(0.0);
        if !adv_alone && c.loss_weights[0] > 0.0 {
            let final_emb = self.embedder.forward_head(penultimate.clone());
            let l = metric_loss(
                &self.metric_loss,
                self.miner.as_ref(),
                final_emb,
                labels.clone(),
            );
            total = total + l.mul_scalar(c.loss_weights[0]);
        }
        if !metric_alone && let Some(l) = self.synth_losses(penultimate, labels, both) {
            total = total + l;
        }
        let trainable: Option<Vec<_>> = if metric_alone {
            let mut ids = list_param_ids(&self.trunk);
            ids.extend(list_param_ids(&self.embedder));
            ids.extend(list_param_ids(&self.metric_loss));
            Some(ids)
        } else if adv_alone {
            Some(list_param_ids(&self.generator))
        } else {
            None
        };
        finish_step(self, &self.guard, total, n, trainable.as_deref())
    }
}

impl<B: Backend, T: Embedder<B>, E: Head<B>, G: Module<B>, L: Module<B>> InferenceStep
    for DeepAdversarialMetricLearning<B, T, E, G, L>
{
    type Input = T::Batch;
    type Output = EmbeddingOutput<B>;

    fn step(&self, batch: T::Batch) -> EmbeddingOutput<B> {
        let (inputs, labels) = batch.into_parts();
        EmbeddingOutput {
            embeddings: self.embedder.forward_head(self.trunk.embed(inputs)),
            labels,
        }
    }
}
