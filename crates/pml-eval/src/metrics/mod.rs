//! The accuracy metrics: PML's seven, and the trait for user-defined ones.

pub mod clustering;
pub(crate) mod retrieval;

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{Labels, Neighbors};

/// A metric's value: one number, or one per class (in sorted label order) with
/// `return_per_class`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MetricValue {
    /// The average over queries (or over classes with `avg_of_avgs`).
    Scalar(f64),
    /// One average per query class, in sorted label order.
    PerClass(Vec<f64>),
}

impl MetricValue {
    /// The value when it is a single number.
    pub fn as_scalar(&self) -> Option<f64> {
        match self {
            Self::Scalar(x) => Some(*x),
            Self::PerClass(_) => None,
        }
    }

    /// The values as a list (a single number gives a list of one).
    pub fn to_vec(&self) -> Vec<f64> {
        match self {
            Self::Scalar(x) => vec![*x],
            Self::PerClass(v) => v.clone(),
        }
    }
}

/// A custom label comparison: `true` when a query's label row matches a reference's.
pub type LabelComparisonFn = Arc<dyn Fn(&[i64], &[i64]) -> bool + Send + Sync>;

/// What the kNN step computed, shared by the retrieval metrics.
#[derive(Clone, Debug)]
pub struct KnnContext {
    /// The neighbours of every query, best first, the query itself already removed when the
    /// reference includes the queries.
    pub neighbors: Neighbors,
    /// PML's `label_counts`: each distinct query label (sorted) with the number of reference
    /// rows that match it.
    pub label_counts: Vec<(Vec<i64>, usize)>,
    /// Query labels without any matching reference (other than the query itself).
    pub lone_query_labels: Vec<Vec<i64>>,
    /// `false` for queries whose label is lone: the retrieval metrics ignore them.
    pub not_lone_query_mask: Vec<bool>,
}

/// Everything a metric can use (PML's `kwargs` of `_get_accuracy`).
pub struct MetricContext<'a> {
    /// Labels of the queries.
    pub query_labels: &'a Labels,
    /// Labels of the references.
    pub reference_labels: &'a Labels,
    /// Whether the reference set starts with the queries.
    pub ref_includes_query: bool,
    /// Average per class first, then over classes.
    pub avg_of_avgs: bool,
    /// Return one value per class.
    pub return_per_class: bool,
    /// The kNN results, when a selected metric needs them.
    pub knn: Option<&'a KnnContext>,
    /// The k-means cluster of each query, when a selected metric needs clustering.
    pub cluster_labels: Option<&'a [i64]>,
    pub(crate) comparison: Option<&'a LabelComparisonFn>,
}

impl MetricContext<'_> {
    /// Whether two label rows match: the custom comparison, or equality.
    pub fn same_label(&self, a: &[i64], b: &[i64]) -> bool {
        match self.comparison {
            Some(f) => f(a, b),
            None => a == b,
        }
    }

    /// PML's `maybe_get_avg_of_avgs`: the mean of `per_sample`, or with `avg_of_avgs` the mean
    /// of the per-class means, or with `return_per_class` the per-class means (classes are the
    /// distinct rows of `sample_labels`, sorted).
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn reduce(&self, per_sample: &[f64], sample_labels: &Labels) -> MetricValue {
        assert_eq!(
            per_sample.len(),
            sample_labels.len(),
            "reduce: {} values for {} labels",
            per_sample.len(),
            sample_labels.len()
        );
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        if !(self.avg_of_avgs || self.return_per_class) {
            return MetricValue::Scalar(mean(per_sample));
        }
        let classes = sample_labels.unique_rows();
        let pos: HashMap<&[i64], usize> =
            classes.iter().enumerate().map(|(i, &c)| (c, i)).collect();
        let mut sums = vec![0.0; classes.len()];
        let mut counts = vec![0usize; classes.len()];
        for (i, v) in per_sample.iter().enumerate() {
            let c = pos[sample_labels.row(i)];
            sums[c] += v;
            counts[c] += 1;
        }
        let per_class: Vec<f64> = sums
            .iter()
            .zip(&counts)
            .map(|(s, &c)| s / c as f64)
            .collect();
        if self.return_per_class {
            MetricValue::PerClass(per_class)
        } else {
            MetricValue::Scalar(mean(&per_class))
        }
    }

    /// NaN (one per distinct query label with `return_per_class`): the value of a retrieval
    /// metric when every query is lone.
    pub fn nan_value(&self) -> MetricValue {
        if self.return_per_class {
            let n = self.knn.map_or(0, |k| k.label_counts.len());
            MetricValue::PerClass(vec![f64::NAN; n])
        } else {
            MetricValue::Scalar(f64::NAN)
        }
    }
}

/// A user-defined accuracy metric, computed next to PML's seven (PML: a `calculate_<name>`
/// method on an `AccuracyCalculator` subclass).
///
/// ```
/// use pml_eval::{AccuracyCalculatorConfig, CustomMetric, Labels, MetricContext, MetricValue};
///
/// /// The fraction of queries whose two nearest neighbours both match.
/// struct PrecisionAt2;
/// impl CustomMetric for PrecisionAt2 {
///     fn name(&self) -> &str { "precision_at_2" }
///     fn compute(&self, ctx: &MetricContext<'_>) -> MetricValue {
///         let knn = ctx.knn.unwrap();
///         let per_query: Vec<f64> = (0..ctx.query_labels.len()).map(|i| {
///             let hits = knn.neighbors.indices_of(i).iter().take(2)
///                 .filter(|&&j| ctx.same_label(ctx.query_labels.row(i), ctx.reference_labels.row(j)))
///                 .count();
///             hits as f64 / 2.0
///         }).collect();
///         ctx.reduce(&per_query, ctx.query_labels)
///     }
/// }
///
/// let calc = AccuracyCalculatorConfig::new()
///     .with_include(vec!["precision_at_1".into(), "precision_at_2".into()])
///     .try_init_with(vec![Box::new(PrecisionAt2)])
///     .unwrap();
/// assert_eq!(calc.metric_names(), vec!["precision_at_1", "precision_at_2"]);
/// # let _ = Labels::new(vec![0]);
/// ```
pub trait CustomMetric: Send + Sync {
    /// The key of the metric in the results (and its name for `include` / `exclude`).
    fn name(&self) -> &str;

    /// Whether [`MetricContext::knn`] must be computed.
    fn requires_knn(&self) -> bool {
        true
    }

    /// Whether [`MetricContext::cluster_labels`] must be computed.
    fn requires_clustering(&self) -> bool {
        false
    }

    /// The metric's value.
    fn compute(&self, ctx: &MetricContext<'_>) -> MetricValue;
}
