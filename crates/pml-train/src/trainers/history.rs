//! [`History`]: a burn-train metric logger that keeps every epoch's metrics in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use serde::{Deserialize, Serialize};

/// The metrics of one epoch on one split, each the mean over the epoch's items (as
/// burn-train's checkpointing computes it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, from 1.
    pub epoch: usize,
    /// `"train"` or `"valid"`.
    pub split: String,
    /// Metric name to value (`"Loss"`, `"precision_at_1"`, ...).
    pub values: BTreeMap<String, f64>,
}

/// A [`MetricLogger`] that keeps the entries of the run in memory and turns them into one
/// [`EpochRecord`] per epoch and split, optionally printing each to stderr. Clones share the
/// same history, so a clone kept by the caller reads what the learner logged.
#[derive(Clone, Default)]
pub struct History {
    inner: Arc<(Mutex<Inner>, Condvar)>,
}

#[derive(Default)]
struct Inner {
    names: HashMap<MetricId, String>,
    entries: HashMap<(String, usize, Split), Vec<NumericEntry>>,
    current: HashMap<Split, usize>,
    records: Vec<EpochRecord>,
    print: bool,
}

impl History {
    /// An empty history; `print` writes a line per finished epoch and split to stderr.
    pub fn new(print: bool) -> Self {
        let history = Self::default();
        history.lock().print = print;
        history
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the record of `epoch` on `split` is in, at most `timeout`; `false` if it is
    /// not. burn-train computes metrics on a worker thread, so right after an epoch its last
    /// values may still be on their way.
    pub fn wait_for(&self, epoch: usize, split: &str, timeout: Duration) -> bool {
        let has = |inner: &Inner| {
            inner
                .records
                .iter()
                .any(|r| r.epoch == epoch && r.split == split)
        };
        let guard = self.lock();
        let (guard, _) = self
            .inner
            .1
            .wait_timeout_while(guard, timeout, |inner| !has(inner))
            .unwrap_or_else(|e| e.into_inner());
        has(&guard)
    }

    /// The finished epochs so far, in order.
    pub fn records(&self) -> Vec<EpochRecord> {
        self.lock().records.clone()
    }

    /// The epoch with the best value of `metric` on `split` (the first of equal ones), with
    /// the value; NaN values never win.
    pub fn best_epoch(
        &self,
        metric: &str,
        split: &str,
        higher_is_better: bool,
    ) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64)> = None;
        for r in self.lock().records.iter().filter(|r| r.split == split) {
            let Some(&v) = r.values.get(metric) else {
                continue;
            };
            let better = match best {
                _ if v.is_nan() => false,
                None => true,
                Some((_, b)) if higher_is_better => v > b,
                Some((_, b)) => v < b,
            };
            if better {
                best = Some((r.epoch, v));
            }
        }
        best
    }
}

fn mean(entries: &[NumericEntry]) -> Option<f64> {
    let (sum, count) = entries.iter().fold((0.0, 0usize), |(s, n), e| match e {
        NumericEntry::Value(v) => (s + v, n + 1),
        NumericEntry::Aggregated {
            aggregated_value,
            count,
        } if *count > 0 => (s + aggregated_value * *count as f64, n + count),
        NumericEntry::Aggregated { .. } => (s, n),
    });
    (count > 0).then(|| sum / count as f64)
}

impl MetricLogger for History {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let mut inner = self.lock();
        inner.current.insert(split.clone(), epoch);
        for numeric in update.entries_numeric {
            let Some(name) = inner.names.get(&numeric.entry.metric_id).cloned() else {
                continue;
            };
            let Ok(entry) = NumericEntry::deserialize(&numeric.entry.serialized_entry.serialized)
            else {
                continue;
            };
            inner
                .entries
                .entry((name, epoch, split.clone()))
                .or_default()
                .push(entry);
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        self.lock()
            .entries
            .get(&(name.to_string(), epoch, split.clone()))
            .cloned()
            .ok_or_else(|| format!("no entries of {name} for epoch {epoch} ({split})"))
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.lock()
            .names
            .insert(definition.metric_id, definition.name);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let mut inner = self.lock();
        let stored = inner
            .current
            .get(&summary.split)
            .copied()
            .unwrap_or(summary.epoch_number);
        let values: BTreeMap<String, f64> = inner
            .entries
            .iter()
            .filter(|((_, e, s), _)| *e == stored && *s == summary.split)
            .filter_map(|((name, _, _), entries)| mean(entries).map(|v| (name.clone(), v)))
            .collect();
        let record = EpochRecord {
            epoch: summary.epoch_number,
            split: summary.split.to_string(),
            values,
        };
        if inner.print {
            let values: Vec<String> = record
                .values
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            eprintln!(
                "epoch {} {}: {}",
                record.epoch,
                record.split,
                values.join(", ")
            );
        }
        inner.records.push(record);
        drop(inner);
        self.inner.1.notify_all();
    }
}
