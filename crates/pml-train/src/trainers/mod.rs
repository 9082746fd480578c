//! Trainers: PML's training loops as burn-train models.
//!
//! PML's trainers own their loop; here each trainer is a Burn module (network + losses + miner)
//! that implements burn-train's [`TrainStep`](burn::train::TrainStep) and
//! [`InferenceStep`](burn::train::InferenceStep), so burn-train's `Learner` runs it with its
//! optimizers, learning-rate schedulers, checkpoints, metric loggers, renderers (the terminal
//! dashboard with the `tui` feature) and multi-device strategies. [`fit`] wires it up the PML
//! way: the training loss and, after each epoch, PML's `AccuracyCalculator` on a validation
//! split ([`AccuracyMetric`]), the best checkpoint by a chosen metric, resuming.
//!
//! | PML | here |
//! |---|---|
//! | `MetricLossOnly` | [`MetricLossOnly`] |
//! | `TrainWithClassifier` | [`TrainWithClassifier`] |
//! | `CascadedEmbeddings` | [`CascadedEmbeddings`] |
//! | `TwoStreamMetricLoss` | [`TwoStreamMetricLoss`] |
//! | `UnsupervisedEmbeddingsUsingAugmentations` (PML 1.x) | [`UnsupervisedEmbeddingsUsingAugmentations`] |
//! | `DeepAdversarialMetricLearning` | [`DeepAdversarialMetricLearning`] |
//! | `models` (`trunk`, `embedder`, `classifier`, `generator`) | an [`Embedder`] and [`Head`]s |
//! | `optimizers` per model and per loss | the learner's optimizer; [`LossOptimizer`] for loss parameters |
//! | `sampler` | [`SamplerDataLoader`](crate::samplers::SamplerDataLoader) as the train loader |
//! | `end_of_epoch_hook` with a tester | [`AccuracyMetric`] on the valid loader, [`History`] |
//!
//! What burn-train's `Learner` cannot express, and what is done instead: it has one optimizer
//! and one learning rate, so the loss parameters' optimizer is folded into it
//! ([`LossOptimizer`]); its step sees no epoch number, so the epoch schedule of
//! [`DeepAdversarialMetricLearning`] counts steps ([`StepGuard::steps`]).
//!
//! A batch whose loss is NaN or infinite never updates the model: the [`NonFinitePolicy`]
//! skips it or stops the run cleanly.

mod batch;
mod cascaded_embeddings;
mod deep_adversarial_metric_learning;
mod fit;
mod guard;
mod history;
mod metric_loss_only;
mod metrics;
mod model;
mod optimizer;
mod output;
mod progress;
mod resume;
mod train_with_classifier;
mod two_stream_metric_loss;
mod unsupervised_embeddings_using_augmentations;

#[cfg(test)]
mod tests;

pub use batch::{LabeledBatch, TwoStreamBatch};
pub use cascaded_embeddings::CascadedEmbeddings;
pub use deep_adversarial_metric_learning::{
    DeepAdversarialMetricLearning, DeepAdversarialMetricLearningConfig,
};
pub use fit::{FitConfig, FitOutcome, ProgressKind, Trainer, default_accuracy_config, fit};
pub use guard::{NonFinitePolicy, StepGuard};
pub use history::{EpochRecord, History};
pub use metric_loss_only::MetricLossOnly;
pub use metrics::{AccuracyMetric, EmbeddingsInput, StepLossInput, StepLossMetric};
pub use model::{Embedder, Head};
pub use optimizer::{HasLosses, LossOptimizer};
pub use output::{EmbeddingOutput, StepOutput};
pub use progress::BarRenderer;
pub use train_with_classifier::TrainWithClassifier;
pub use two_stream_metric_loss::TwoStreamMetricLoss;
pub use unsupervised_embeddings_using_augmentations::{
    Augmentation, UnsupervisedEmbeddingsUsingAugmentations,
};
