//! [`BarRenderer`]: a quiet burn-train renderer, one kdam progress bar per training epoch.

use kdam::{Bar, BarExt};

use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};

/// A renderer for non-interactive runs (logs, CI, pipes), where burn-train's terminal
/// dashboard cannot show and its CLI renderer prints a line per batch: a kdam bar over each
/// training epoch's items on stderr, or nothing when disabled. The per-epoch metrics are
/// printed by [`History`](super::History).
pub struct BarRenderer {
    bar: Option<Bar>,
    epoch: usize,
    enabled: bool,
}

impl BarRenderer {
    /// A renderer that draws bars when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self {
            bar: None,
            epoch: 0,
            enabled,
        }
    }
}

impl MetricsRendererTraining for BarRenderer {
    fn update_train(&mut self, _state: MetricState) {}

    fn update_valid(&mut self, _state: MetricState) {}

    fn render_train(&mut self, item: TrainingProgress, _indicators: Vec<ProgressType>) {
        if !self.enabled {
            return;
        }
        let Some(progress) = item.progress else {
            return;
        };
        let epoch = item.global_progress.items_processed;
        if self.bar.is_none() || epoch != self.epoch {
            self.epoch = epoch;
            self.bar = Bar::builder()
                .desc(format!(
                    "epoch {epoch}/{}",
                    item.global_progress.items_total
                ))
                .total(progress.items_total)
                .leave(false)
                .build()
                .ok();
        }
        if let Some(bar) = &mut self.bar {
            let _ = bar.update_to(progress.items_processed);
        }
    }

    fn render_valid(&mut self, _item: TrainingProgress, _indicators: Vec<ProgressType>) {
        if let Some(mut bar) = self.bar.take() {
            let _ = bar.clear();
        }
    }
}

impl MetricsRendererEvaluation for BarRenderer {
    fn update_test(&mut self, _name: EvaluationName, _state: MetricState) {}

    fn render_test(&mut self, _item: EvaluationProgress, _indicators: Vec<ProgressType>) {}
}

impl MetricsRenderer for BarRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, _definition: MetricDefinition) {}
}
