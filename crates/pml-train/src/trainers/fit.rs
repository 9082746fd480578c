//! [`fit`]: runs a trainer with burn-train's `Learner` (its optimizers, checkpoints, renderer
//! and metric store), evaluating the validation split with PML's `AccuracyCalculator` at the
//! end of every epoch.

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;

use burn::config::Config;
use burn::data::dataloader::DataLoader;
use burn::lr_scheduler::LrScheduler;
use burn::module::{AutodiffModule, Module};
use burn::optim::Optimizer;
use burn::record::DefaultRecorder;
use burn::tensor::backend::AutodiffBackend;
use burn::train::checkpoint::{
    Checkpointer, CheckpointingAction, CheckpointingStrategy, ComposedCheckpointingStrategy,
    FileCheckpointer, KeepLastNCheckpoints,
};
use burn::train::logger::FileMetricLogger;
use burn::train::metric::store::EventStoreClient;
use burn::train::{InferenceStep, Learner, SupervisedTraining, TrainStep};
use pml_core::PmlError;
use pml_eval::{AccuracyCalculatorConfig, AccuracyK};
use serde::{Deserialize, Serialize};

use super::resume::SkipEpochs;
use super::{
    AccuracyMetric, BarRenderer, EmbeddingOutput, EpochRecord, History, StepGuard, StepLossMetric,
    StepOutput,
};

/// A model burn-train can train with [`fit`]: every trainer of this module.
pub trait Trainer {
    /// The shared step state: non-finite loss policy, step count, interrupter.
    fn guard(&self) -> &StepGuard;
}

/// How training shows its progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProgressKind {
    /// burn-train's terminal dashboard when this crate's `tui` feature is on and stdout is a
    /// terminal, else [`Bars`](Self::Bars).
    #[default]
    Auto,
    /// A [`BarRenderer`]: a kdam bar per epoch on stderr.
    Bars,
    /// Nothing (tests).
    Silent,
}

/// The accuracies [`fit`] computes by default: PML's retrieval metrics with
/// `k = "max_bin_count"`, as in PML's examples.
pub fn default_accuracy_config() -> AccuracyCalculatorConfig {
    AccuracyCalculatorConfig::new()
        .with_include(vec![
            "precision_at_1".into(),
            "r_precision".into(),
            "mean_average_precision_at_r".into(),
        ])
        .with_k(AccuracyK::MaxBinCount)
}

/// Configuration of [`fit`].
#[derive(Config, Debug)]
pub struct FitConfig {
    /// The number of epochs.
    #[config(default = 1)]
    pub num_epochs: usize,
    /// The metrics of the validation split, computed at the end of each epoch.
    #[config(default = "default_accuracy_config()")]
    pub accuracy: AccuracyCalculatorConfig,
    /// The metric that picks the best checkpoint: one of `accuracy`'s (higher is better), or
    /// `"Loss"` (the training loss, lower is better).
    #[config(default = "String::from(\"mean_average_precision_at_r\")")]
    pub checkpoint_metric: String,
    /// Resume from the checkpoint of this epoch (in the same directory): model, optimizer and
    /// learning-rate scheduler states are restored and training goes on from the next epoch,
    /// with the batches an uninterrupted run would have had (the train loader's first
    /// `resume_from` epochs are drawn and dropped).
    #[config(default = "None")]
    pub resume_from: Option<usize>,
    /// Progress display.
    #[config(default = "ProgressKind::Auto")]
    pub progress: ProgressKind,
    /// Print each finished epoch's metrics to stderr.
    #[config(default = true)]
    pub print_epochs: bool,
}

/// What [`fit`] returns.
#[derive(Debug)]
pub struct FitOutcome<M> {
    /// The model at the end of training (inference module).
    pub model: M,
    /// The best epoch by the checkpoint metric, its value, and its model read back from the
    /// checkpoint; `None` when no epoch produced a finite value.
    pub best: Option<(usize, f64, M)>,
    /// Every finished epoch's metrics, train and valid.
    pub history: Vec<EpochRecord>,
    /// How many batches had a non-finite loss.
    pub skipped_batches: usize,
    /// Why training stopped early, if it did.
    pub stopped: Option<String>,
}

/// Trains `trainer` with burn-train's `Learner`: `optimizer` and `lr_scheduler` (a plain `f64`
/// is a constant rate) for `config.num_epochs` epochs of `train`; after each epoch embeds
/// `valid` and computes `config.accuracy` (logged and rendered beside the loss, in
/// `directory/train` and `directory/valid` as burn-train writes them); keeps the checkpoint of
/// the last epoch and of the best one by `config.checkpoint_metric` in
/// `directory/checkpoint`; resumes from `config.resume_from`.
///
/// burn-train's `Learner` takes the batches in the data loader's order, so PML's samplers go
/// through [`SamplerDataLoader`](crate::samplers::SamplerDataLoader); loss parameters get their
/// own optimizer through [`LossOptimizer`](super::LossOptimizer).
///
/// # Errors
/// An invalid accuracy configuration, a checkpoint metric that is not computed, a best
/// checkpoint that cannot be read back.
pub fn fit<B, T, O, S, VB>(
    trainer: T,
    optimizer: O,
    lr_scheduler: S,
    train: Arc<dyn DataLoader<B, T::Input>>,
    valid: Arc<dyn DataLoader<B::InnerBackend, VB>>,
    directory: impl AsRef<Path>,
    config: &FitConfig,
) -> Result<FitOutcome<T::InnerModule>, PmlError>
where
    B: AutodiffBackend,
    T: Trainer + TrainStep<Output = StepOutput> + AutodiffModule<B> + Display + 'static,
    T::InnerModule: InferenceStep<Input = VB, Output = EmbeddingOutput<B::InnerBackend>>,
    O: Optimizer<T, B> + 'static,
    S: LrScheduler + 'static,
    VB: Send + 'static,
{
    let directory = directory.as_ref();
    let metrics = AccuracyMetric::<B::InnerBackend>::group(&config.accuracy)?;
    let names: Vec<String> = metrics
        .iter()
        .map(|m| burn::train::metric::Metric::name(m).to_string())
        .collect();
    let by_loss = config.checkpoint_metric == StepLossMetric::NAME;
    if !by_loss && !names.contains(&config.checkpoint_metric) {
        return Err(PmlError::invalid_argument(
            "checkpoint_metric",
            &config.checkpoint_metric,
            format!("not computed; choose Loss or one of: {}", names.join(", ")),
        ));
    }
    let (split, higher) = if by_loss {
        ("train", false)
    } else {
        ("valid", true)
    };
    let history = History::new(config.print_epochs);
    let guard = trainer.guard().clone();
    // A resumed run replays the trained epochs' draws of the loader, so it ends with the model
    // of an uninterrupted run.
    let train: Arc<dyn DataLoader<B, T::Input>> = match config.resume_from {
        Some(epochs) => Arc::new(SkipEpochs::new(train, epochs)),
        None => train,
    };
    let mut training = SupervisedTraining::new(directory, train, valid)
        .num_epochs(config.num_epochs)
        .metric_train_numeric(StepLossMetric::new())
        .with_metric_logger(history.clone())
        .with_metric_logger(FileMetricLogger::new(directory))
        .with_file_checkpointer(DefaultRecorder::new())
        .with_checkpointing_strategy(
            ComposedCheckpointingStrategy::builder()
                .add(KeepLastNCheckpoints::new(1))
                .add(BestCheckpoint {
                    history: history.clone(),
                    metric: config.checkpoint_metric.clone(),
                    split,
                    higher,
                    current: None,
                })
                .build(),
        )
        .with_interrupter(guard.interrupter())
        .with_application_logger(None);
    for metric in metrics {
        training = training.metric_valid_numeric(metric);
    }
    if let Some(epoch) = config.resume_from {
        training = training.checkpoint(epoch);
    }
    let dashboard = cfg!(feature = "tui") && std::io::IsTerminal::is_terminal(&std::io::stdout());
    training = match config.progress {
        ProgressKind::Auto if dashboard => training,
        ProgressKind::Auto | ProgressKind::Bars => training.renderer(BarRenderer::new(true)),
        ProgressKind::Silent => training.renderer(BarRenderer::new(false)),
    };

    let device = trainer.devices().into_iter().next();
    let initial = trainer.clone();
    let result = training.launch(Learner::new(trainer, optimizer, lr_scheduler));

    let best = match history.best_epoch(&config.checkpoint_metric, split, higher) {
        Some((epoch, value)) => {
            let checkpointer = FileCheckpointer::new(
                DefaultRecorder::new(),
                directory.join("checkpoint"),
                "model",
            );
            let device = device.unwrap_or_default();
            let record =
                Checkpointer::<<T as Module<B>>::Record, B>::restore(&checkpointer, epoch, &device)
                    .map_err(|e| {
                        PmlError::invalid_input(
                            "checkpoint",
                            format!("cannot read the best model (epoch {epoch}) back: {e:?}"),
                        )
                    })?;
            Some((epoch, value, initial.load_record(record).valid()))
        }
        None => None,
    };
    let stopped = guard
        .interrupter()
        .should_stop()
        .then(|| guard.interrupter().get_message().unwrap_or_default());
    Ok(FitOutcome {
        model: result.model,
        best,
        history: history.records(),
        skipped_batches: guard.skipped(),
        stopped,
    })
}

/// Keeps the checkpoint of the best epoch by a metric, as burn-train's
/// `MetricCheckpointingStrategy`, but reads the epoch's value from [`History`] after waiting for
/// it: burn-train checkpoints while its metric worker may still be computing the epoch's last
/// values, and the accuracies only arrive with the last validation batch.
struct BestCheckpoint {
    history: History,
    metric: String,
    split: &'static str,
    higher: bool,
    current: Option<usize>,
}

impl CheckpointingStrategy for BestCheckpoint {
    fn checkpointing(
        &mut self,
        epoch: usize,
        _store: &EventStoreClient,
    ) -> Vec<CheckpointingAction> {
        if !self
            .history
            .wait_for(epoch, self.split, std::time::Duration::from_secs(600))
        {
            log::warn!("the metrics of epoch {epoch} did not arrive; its checkpoint is kept");
            return vec![CheckpointingAction::Save];
        }
        let best = self
            .history
            .best_epoch(&self.metric, self.split, self.higher)
            .map_or(epoch, |(e, _)| e);
        let mut actions = Vec::new();
        if let Some(current) = self.current
            && current != best
        {
            actions.push(CheckpointingAction::Delete(current));
        }
        if best == epoch {
            actions.push(CheckpointingAction::Save);
        }
        self.current = Some(best);
        actions
    }
}
