//! burn-train metrics of the trainers: the training loss ([`StepLossMetric`]) and the
//! end-of-epoch accuracies of the validation split ([`AccuracyMetric`]).

use std::sync::{Arc, Mutex};

use burn::tensor::{Int, Tensor, backend::Backend};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Metric, MetricAttributes, MetricMetadata, MetricName, Numeric, NumericAttributes, NumericEntry,
    SerializedEntry,
};
use pml_core::{PmlError, tensor::int_vec};
use pml_eval::{Accuracies, AccuracyCalculator, AccuracyCalculatorConfig, AccuracyInput};

/// What [`StepLossMetric`] reads from a training step.
#[derive(Clone, Debug)]
pub struct StepLossInput {
    /// The step's loss.
    pub loss: f64,
    /// The number of items in the batch (the weight of the loss in the epoch's mean).
    pub batch_size: usize,
    /// The batch was skipped (non-finite loss): it does not count in the epoch's mean.
    pub skipped: bool,
}

/// The training loss, averaged over the items of the epoch (burn-train's `LossMetric`, except
/// that skipped batches do not count). Named `"Loss"`.
#[derive(Clone, Default)]
pub struct StepLossMetric {
    state: NumericMetricState,
}

impl StepLossMetric {
    /// The metric's name.
    pub const NAME: &'static str = "Loss";

    /// A new metric.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Metric for StepLossMetric {
    type Input = StepLossInput;

    fn name(&self) -> MetricName {
        Arc::new(Self::NAME.to_string())
    }

    fn update(&mut self, item: &StepLossInput, _metadata: &MetricMetadata) -> SerializedEntry {
        if item.skipped {
            let entry = NumericEntry::Aggregated {
                aggregated_value: 0.0,
                count: 0,
            };
            return SerializedEntry::new(
                format!("batch skipped (loss {})", item.loss),
                entry.serialize(),
            );
        }
        self.state.update(
            item.loss,
            item.batch_size,
            FormatOptions::new(self.name()).precision(4),
        )
    }

    fn clear(&mut self) {
        self.state.reset();
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: false,
        }
        .into()
    }
}

impl Numeric for StepLossMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

/// What [`AccuracyMetric`] reads from a validation step.
#[derive(Clone, Debug)]
pub struct EmbeddingsInput<B: Backend> {
    /// `[batch, d]`.
    pub embeddings: Tensor<B, 2>,
    /// `[batch]`.
    pub labels: Tensor<B, 1, Int>,
}

/// One metric of PML's [`AccuracyCalculator`] on the whole validation split, as a burn-train
/// metric: logged and rendered beside the loss, usable by burn-train's checkpointing and early
/// stopping (`Split::Valid`, `Aggregate::Mean`).
///
/// The validation batches' embeddings are collected on the device; when the last batch of the
/// epoch arrives, the calculator runs once for all the metrics of a
/// [`group`](Self::group) (queries = reference = the split, PML's
/// `GlobalEmbeddingSpaceTester` default). Earlier batches report a zero-weight entry, so the
/// epoch's mean is the accuracy of the whole split.
#[derive(Clone)]
pub struct AccuracyMetric<B: Backend> {
    name: MetricName,
    shared: Arc<Shared<B>>,
    last: f64,
}

struct Shared<B: Backend> {
    calculator: AccuracyCalculator,
    state: Mutex<State<B>>,
}

struct State<B: Backend> {
    last_item: Option<(usize, usize)>,
    embeddings: Vec<Tensor<B, 2>>,
    labels: Vec<Tensor<B, 1, Int>>,
    result: Option<Result<Accuracies, String>>,
}

impl<B: Backend> AccuracyMetric<B> {
    /// One metric per accuracy the calculator computes, sharing one computation per epoch.
    ///
    /// # Errors
    /// An invalid calculator configuration, or one whose metrics are not single numbers
    /// (`return_per_class`).
    pub fn group(config: &AccuracyCalculatorConfig) -> Result<Vec<Self>, PmlError> {
        if config.return_per_class {
            return Err(PmlError::invalid_argument(
                "return_per_class",
                true,
                "training metrics must be single numbers",
            ));
        }
        let calculator = config.try_init()?;
        let names: Vec<String> = calculator
            .metric_names()
            .into_iter()
            .map(str::to_string)
            .collect();
        let shared = Arc::new(Shared {
            calculator,
            state: Mutex::new(State {
                last_item: None,
                embeddings: Vec::new(),
                labels: Vec::new(),
                result: None,
            }),
        });
        Ok(names
            .into_iter()
            .map(|name| Self {
                name: Arc::new(name),
                shared: shared.clone(),
                last: f64::NAN,
            })
            .collect())
    }
}

impl<B: Backend> State<B> {
    fn compute(&mut self, calculator: &AccuracyCalculator) -> Result<Accuracies, String> {
        let embeddings = Tensor::cat(std::mem::take(&mut self.embeddings), 0);
        let labels: Vec<i64> = std::mem::take(&mut self.labels)
            .into_iter()
            .flat_map(int_vec)
            .collect();
        calculator
            .get_accuracy(AccuracyInput::new(embeddings, labels))
            .map_err(|e| e.to_string())
    }
}

impl<B: Backend> Metric for AccuracyMetric<B> {
    type Input = EmbeddingsInput<B>;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &EmbeddingsInput<B>, metadata: &MetricMetadata) -> SerializedEntry {
        let key = (
            metadata.global_progress.items_processed,
            metadata.progress.items_processed,
        );
        let done = metadata.progress.items_processed >= metadata.progress.items_total;
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.last_item != Some(key) {
            state.last_item = Some(key);
            state.embeddings.push(item.embeddings.clone());
            state.labels.push(item.labels.clone());
        }
        if !done {
            let entry = NumericEntry::Aggregated {
                aggregated_value: 0.0,
                count: 0,
            };
            return SerializedEntry::new("pending".into(), entry.serialize());
        }
        if state.result.is_none() {
            let result = state.compute(&self.shared.calculator);
            if let Err(e) = &result {
                log::warn!("the accuracy of the validation split failed: {e}");
            }
            state.result = Some(result);
        }
        self.last = match &state.result {
            Some(Ok(acc)) => acc
                .get(self.name.as_str())
                .and_then(|v| v.as_scalar())
                .unwrap_or(f64::NAN),
            _ => f64::NAN,
        };
        let entry = NumericEntry::Aggregated {
            aggregated_value: self.last,
            count: 1,
        };
        SerializedEntry::new(format!("{:.4}", self.last), entry.serialize())
    }

    fn clear(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.last_item = None;
        state.embeddings.clear();
        state.labels.clear();
        state.result = None;
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: None,
            higher_is_better: true,
        }
        .into()
    }
}

impl<B: Backend> Numeric for AccuracyMetric<B> {
    fn value(&self) -> NumericEntry {
        NumericEntry::Value(self.last)
    }

    fn running_value(&self) -> NumericEntry {
        NumericEntry::Value(self.last)
    }
}
