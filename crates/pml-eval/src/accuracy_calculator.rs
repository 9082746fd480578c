//! PML's `AccuracyCalculator`: retrieval and clustering accuracy of an embedding space.

use std::{collections::BTreeMap, sync::Arc};

use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::PmlError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    CustomMetric, KMeans, KMeansConfig, Knn, KnnConfig, KnnContext, LabelComparisonFn, Labels,
    MetricContext, MetricValue,
    metrics::{
        clustering::{adjusted_mutual_info, normalized_mutual_info},
        retrieval::{Retrieval, compute},
    },
};

/// The metric values of one evaluation, by metric name (sorted, as PML's dict).
pub type Accuracies = BTreeMap<String, MetricValue>;

/// PML's `k`: how many neighbours the retrieval metrics look at.
///
/// Serializes as PML writes it: `null`, an integer, or `"max_bin_count"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AccuracyK {
    /// PML's `None`: every reference (minus the query itself when the reference includes the
    /// queries).
    #[default]
    All,
    /// This many neighbours.
    Count(usize),
    /// The size of the largest class in the reference (minus one when the reference includes
    /// the queries): the smallest `k` that makes `r_precision` and
    /// `mean_average_precision_at_r` exact.
    MaxBinCount,
}

impl Serialize for AccuracyK {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => s.serialize_none(),
            Self::Count(k) => s.serialize_u64(*k as u64),
            Self::MaxBinCount => s.serialize_str("max_bin_count"),
        }
    }
}

impl<'de> Deserialize<'de> for AccuracyK {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Count(u64),
        }
        let msg = "k must be an integer greater than 0, or null, or \"max_bin_count\"";
        match Option::<Raw>::deserialize(d)? {
            None => Ok(Self::All),
            Some(Raw::Word(w)) if w == "max_bin_count" => Ok(Self::MaxBinCount),
            Some(Raw::Count(k)) if k > 0 => Ok(Self::Count(k as usize)),
            Some(Raw::Word(w)) => Err(serde::de::Error::custom(format!("{msg}, got \"{w}\""))),
            Some(Raw::Count(k)) => Err(serde::de::Error::custom(format!("{msg}, got {k}"))),
        }
    }
}

/// PML's seven metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    Ami,
    Nmi,
    MeanAveragePrecision,
    MeanAveragePrecisionAtR,
    MeanReciprocalRank,
    PrecisionAt1,
    RPrecision,
}

const BUILTINS: [(Builtin, &str); 7] = [
    (Builtin::Ami, "AMI"),
    (Builtin::Nmi, "NMI"),
    (Builtin::MeanAveragePrecision, "mean_average_precision"),
    (
        Builtin::MeanAveragePrecisionAtR,
        "mean_average_precision_at_r",
    ),
    (Builtin::MeanReciprocalRank, "mean_reciprocal_rank"),
    (Builtin::PrecisionAt1, "precision_at_1"),
    (Builtin::RPrecision, "r_precision"),
];

impl Builtin {
    fn requires_clustering(self) -> bool {
        matches!(self, Self::Ami | Self::Nmi)
    }
}

/// Configuration of [`AccuracyCalculator`], with PML's argument names and defaults.
///
/// ```
/// use pml_eval::{AccuracyCalculatorConfig, AccuracyK};
/// let c: AccuracyCalculatorConfig = serde_json::from_str(
///     r#"{"include": [], "exclude": ["NMI", "AMI"], "k": "max_bin_count",
///         "avg_of_avgs": false, "return_per_class": false,
///         "knn": {"metric": "l2", "query_batch_size": 1024, "reference_batch_size": 4096,
///                 "selection": "auto", "progress": true},
///         "kmeans": {"n_init": 10, "max_iter": 300, "tol": 1e-4, "seed": 0, "batch_size": 4096}}"#,
/// ).unwrap();
/// assert_eq!(c.k, AccuracyK::MaxBinCount);
/// assert_eq!(c.init().metric_names().len(), 5);
/// ```
#[derive(Config, Debug)]
pub struct AccuracyCalculatorConfig {
    /// Metrics to compute; empty = all (PML's seven plus the custom ones).
    #[config(default = "Vec::new()")]
    pub include: Vec<String>,
    /// Metrics to leave out.
    #[config(default = "Vec::new()")]
    pub exclude: Vec<String>,
    /// Average the per-query values per class first, then over classes.
    #[config(default = false)]
    pub avg_of_avgs: bool,
    /// Return one value per class (sorted label order) for the retrieval metrics.
    #[config(default = false)]
    pub return_per_class: bool,
    /// How many neighbours the retrieval metrics use.
    #[config(default = "AccuracyK::All")]
    pub k: AccuracyK,
    /// The exact kNN search (PML's `knn_func`, a faiss flat L2 index by default).
    #[config(default = "KnnConfig::new()")]
    pub knn: KnnConfig,
    /// The k-means for NMI and AMI (PML's `kmeans_func`).
    #[config(default = "KMeansConfig::new()")]
    pub kmeans: KMeansConfig,
}

impl AccuracyCalculatorConfig {
    /// Builds the calculator with PML's seven metrics.
    ///
    /// # Errors
    /// Unknown metric names in `include` / `exclude`, `avg_of_avgs` together with
    /// `return_per_class`, `k = Count(0)`, or an invalid kNN / k-means configuration.
    pub fn try_init(&self) -> Result<AccuracyCalculator, PmlError> {
        self.try_init_with(Vec::new())
    }

    /// Builds the calculator with extra user-defined metrics (which `include` / `exclude` may
    /// name).
    ///
    /// # Errors
    /// As [`try_init`](Self::try_init), and a custom metric whose name is taken.
    pub fn try_init_with(
        &self,
        custom: Vec<Box<dyn CustomMetric>>,
    ) -> Result<AccuracyCalculator, PmlError> {
        let custom: Vec<Arc<dyn CustomMetric>> = custom.into_iter().map(Arc::from).collect();
        let mut all: Vec<(String, MetricKind)> = BUILTINS
            .iter()
            .map(|&(b, name)| (name.to_string(), MetricKind::Builtin(b)))
            .collect();
        for (i, m) in custom.iter().enumerate() {
            let name = m.name().to_string();
            if all.iter().any(|(n, _)| *n == name) {
                return Err(PmlError::invalid_argument(
                    "custom metric",
                    name,
                    "a metric with this name exists already",
                ));
            }
            all.push((name, MetricKind::Custom(i)));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let known: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        for (arg, names) in [("include", &self.include), ("exclude", &self.exclude)] {
            if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
                return Err(PmlError::invalid_argument(
                    arg,
                    bad,
                    format!("metrics must be one or more of: {}", known.join(", ")),
                ));
            }
        }
        if self.avg_of_avgs && self.return_per_class {
            return Err(PmlError::invalid_argument(
                "return_per_class",
                true,
                "avg_of_avgs and return_per_class are mutually exclusive",
            ));
        }
        if self.k == AccuracyK::Count(0) {
            return Err(PmlError::invalid_argument(
                "k",
                0,
                "k must be an integer greater than 0, or None, or \"max_bin_count\"",
            ));
        }
        let metrics = select(&all, &self.include, &self.exclude);
        Ok(AccuracyCalculator {
            config: self.clone(),
            metrics,
            custom,
            comparison: None,
            knn: self.knn.try_init()?,
            kmeans: self.kmeans.try_init()?,
        })
    }

    /// Builds the calculator.
    ///
    /// # Panics
    /// On an invalid configuration (see [`try_init`](Self::try_init)).
    pub fn init(&self) -> AccuracyCalculator {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MetricKind {
    Builtin(Builtin),
    Custom(usize),
}

fn select(
    all: &[(String, MetricKind)],
    include: &[String],
    exclude: &[String],
) -> Vec<(String, MetricKind)> {
    all.iter()
        .filter(|(n, _)| include.is_empty() || include.contains(n))
        .filter(|(n, _)| !exclude.contains(n))
        .cloned()
        .collect()
}

/// The inputs of [`AccuracyCalculator::get_accuracy`] (PML's `get_accuracy` arguments).
///
/// Without a reference, the queries are their own reference (`ref_includes_query = true`).
#[derive(Clone, Debug)]
pub struct AccuracyInput<B: Backend> {
    /// `[n, d]` query embeddings.
    pub query: Tensor<B, 2>,
    /// One label row per query.
    pub query_labels: Labels,
    /// `[m, d]` reference embeddings.
    pub reference: Option<Tensor<B, 2>>,
    /// One label row per reference.
    pub reference_labels: Option<Labels>,
    /// The first `n` reference rows are the queries (each query's own row is then not counted
    /// as a neighbour).
    pub ref_includes_query: bool,
    /// Restrict this call to these of the calculator's metrics (empty = all of them).
    pub include: Vec<String>,
    /// Leave these of the calculator's metrics out of this call.
    pub exclude: Vec<String>,
}

impl<B: Backend> AccuracyInput<B> {
    /// Queries that are their own reference.
    pub fn new(query: Tensor<B, 2>, query_labels: impl Into<Labels>) -> Self {
        Self {
            query,
            query_labels: query_labels.into(),
            reference: None,
            reference_labels: None,
            ref_includes_query: false,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }

    /// A separate reference set.
    pub fn with_reference(
        mut self,
        reference: Tensor<B, 2>,
        reference_labels: impl Into<Labels>,
    ) -> Self {
        self.reference = Some(reference);
        self.reference_labels = Some(reference_labels.into());
        self
    }

    /// Whether the reference starts with the queries.
    pub fn with_ref_includes_query(mut self, ref_includes_query: bool) -> Self {
        self.ref_includes_query = ref_includes_query;
        self
    }

    /// Restrict this call's metrics.
    pub fn with_include(mut self, include: Vec<String>) -> Self {
        self.include = include;
        self
    }

    /// Leave metrics out of this call.
    pub fn with_exclude(mut self, exclude: Vec<String>) -> Self {
        self.exclude = exclude;
        self
    }
}

/// PML's `AccuracyCalculator`: the accuracy of an embedding space for retrieval
/// (`precision_at_1`, `r_precision`, `mean_average_precision_at_r`, `mean_average_precision`,
/// `mean_reciprocal_rank`, from an exact kNN search on the device) and clustering (`NMI`, `AMI`
/// of a k-means with as many clusters as query labels), plus user-defined metrics
/// ([`CustomMetric`]).
///
/// The formulas are in [`metrics`](crate::metrics); the kNN is [`Knn`], the clustering
/// [`KMeans`]. Queries whose label has no match in the reference (other than themselves) are
/// left out of the retrieval metrics; when none remain these are NaN and a warning is logged.
///
/// ```
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::{AccuracyCalculatorConfig, AccuracyInput};
///
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats(
///     [[0.0, 0.0], [0.0, 0.1], [1.0, 1.0], [1.0, 0.9]], &device);
/// let calc = AccuracyCalculatorConfig::new()
///     .with_include(vec!["precision_at_1".into(), "mean_average_precision_at_r".into()])
///     .init();
/// let acc = calc.get_accuracy(AccuracyInput::new(x, vec![0, 0, 1, 1])).unwrap();
/// assert_eq!(acc["precision_at_1"].as_scalar(), Some(1.0));
/// assert_eq!(acc["mean_average_precision_at_r"].as_scalar(), Some(1.0));
/// ```
#[derive(Clone)]
pub struct AccuracyCalculator {
    config: AccuracyCalculatorConfig,
    metrics: Vec<(String, MetricKind)>,
    custom: Vec<Arc<dyn CustomMetric>>,
    comparison: Option<LabelComparisonFn>,
    knn: Knn,
    kmeans: KMeans,
}

impl std::fmt::Debug for AccuracyCalculator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccuracyCalculator")
            .field("config", &self.config)
            .field("metrics", &self.metric_names())
            .field("custom_label_comparison", &self.comparison.is_some())
            .finish()
    }
}

impl AccuracyCalculator {
    /// The configuration.
    pub fn config(&self) -> &AccuracyCalculatorConfig {
        &self.config
    }

    /// The selected metrics, sorted by name (PML's `get_curr_metrics`).
    pub fn metric_names(&self) -> Vec<&str> {
        self.metrics.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// PML's `description`: `"avg_of_avgs"` or `""`.
    pub fn description(&self) -> &'static str {
        if self.config.avg_of_avgs {
            "avg_of_avgs"
        } else {
            ""
        }
    }

    /// Compares label rows with `f` instead of equality (PML's `label_comparison_fn`), e.g. for
    /// multi-label data a match when two label sets intersect.
    ///
    /// # Errors
    /// When a clustering metric (NMI, AMI) is selected (PML: "Unsupported: clustering + custom
    /// label comparison").
    pub fn with_label_comparison_fn(
        mut self,
        f: impl Fn(&[i64], &[i64]) -> bool + Send + Sync + 'static,
    ) -> Result<Self, PmlError> {
        if let Some((name, _)) = self
            .metrics
            .iter()
            .find(|(_, k)| self.requires_clustering(*k))
        {
            return Err(PmlError::Unsupported(format!(
                "clustering metric {name} with a custom label comparison"
            )));
        }
        self.comparison = Some(Arc::new(f));
        Ok(self)
    }

    fn requires_clustering(&self, kind: MetricKind) -> bool {
        match kind {
            MetricKind::Builtin(b) => b.requires_clustering(),
            MetricKind::Custom(i) => self.custom[i].requires_clustering(),
        }
    }

    fn requires_knn(&self, kind: MetricKind) -> bool {
        match kind {
            MetricKind::Builtin(b) => !b.requires_clustering(),
            MetricKind::Custom(i) => self.custom[i].requires_knn(),
        }
    }

    fn same(&self, a: &[i64], b: &[i64]) -> bool {
        match &self.comparison {
            Some(f) => f(a, b),
            None => a == b,
        }
    }

    /// Computes the selected metrics (PML's `get_accuracy`).
    ///
    /// # Errors
    /// - a reference without labels (or labels without a reference), labels whose count differs
    ///   from the embeddings', label rows of different widths;
    /// - query and reference embeddings of different widths;
    /// - `ref_includes_query` when the reference does not start with the queries (embeddings
    ///   equal within `torch.allclose`'s tolerances, labels equal);
    /// - `include` / `exclude` naming metrics this calculator does not compute;
    /// - clustering metrics with multi-column labels.
    pub fn get_accuracy<B: Backend>(
        &self,
        input: AccuracyInput<B>,
    ) -> Result<Accuracies, PmlError> {
        let AccuracyInput {
            query,
            query_labels,
            reference,
            reference_labels,
            mut ref_includes_query,
            include,
            exclude,
        } = input;
        let [n, d] = query.dims();
        if query_labels.len() != n {
            return Err(PmlError::invalid_input(
                "query_labels",
                format!("{} labels for {n} query embeddings", query_labels.len()),
            ));
        }
        if n == 0 {
            return Err(PmlError::invalid_input("query", "no query embeddings"));
        }
        // Whether the reference is exactly the query: the kNN search then computes each
        // pair's distance once.
        let mut self_search = false;
        let (reference, reference_labels) = match (reference, reference_labels) {
            (None, None) => {
                ref_includes_query = true;
                self_search = true;
                (query.clone(), query_labels.clone())
            }
            (Some(_), None) => {
                return Err(PmlError::invalid_input(
                    "reference_labels",
                    "a reference needs labels (reference_labels is missing)",
                ));
            }
            (None, Some(_)) => {
                return Err(PmlError::invalid_input(
                    "reference",
                    "reference_labels are given without reference embeddings",
                ));
            }
            (Some(r), Some(l)) => (r, l),
        };
        let [m, dr] = reference.dims();
        if dr != d {
            return Err(PmlError::invalid_input(
                "reference",
                format!("query has width {d} but the reference has width {dr}"),
            ));
        }
        if reference_labels.len() != m {
            return Err(PmlError::invalid_input(
                "reference_labels",
                format!(
                    "{} labels for {m} reference embeddings",
                    reference_labels.len()
                ),
            ));
        }
        if reference_labels.width() != query_labels.width() {
            return Err(PmlError::invalid_input(
                "reference_labels",
                format!(
                    "label rows of width {} but the query labels have width {}",
                    reference_labels.width(),
                    query_labels.width()
                ),
            ));
        }
        if ref_includes_query && !self_search {
            self_search =
                check_prefix(&query, &query_labels, &reference, &reference_labels)? && m == n;
        }
        let known: Vec<&str> = self.metric_names();
        for (arg, names) in [("include", &include), ("exclude", &exclude)] {
            if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
                return Err(PmlError::invalid_argument(
                    arg,
                    bad,
                    format!("this calculator computes: {}", known.join(", ")),
                ));
            }
        }
        let metrics = select(&self.metrics, &include, &exclude);

        let knn = if metrics.iter().any(|(_, k)| self.requires_knn(*k)) {
            Some(self.knn_context(
                query.clone(),
                &query_labels,
                (!self_search).then_some(reference),
                &reference_labels,
                ref_includes_query,
                &metrics,
            )?)
        } else {
            None
        };
        let clusters = if metrics.iter().any(|(_, k)| self.requires_clustering(*k)) {
            if query_labels.width() != 1 {
                return Err(PmlError::invalid_input(
                    "query_labels",
                    format!(
                        "clustering metrics need one label per query, got rows of width {}",
                        query_labels.width()
                    ),
                ));
            }
            let n_clusters = query_labels.unique_rows().len();
            Some(self.kmeans.fit(query, n_clusters)?.labels)
        } else {
            None
        };
        let ctx = MetricContext {
            query_labels: &query_labels,
            reference_labels: &reference_labels,
            ref_includes_query,
            avg_of_avgs: self.config.avg_of_avgs,
            return_per_class: self.config.return_per_class,
            knn: knn.as_ref(),
            cluster_labels: clusters.as_deref(),
            comparison: self.comparison.as_ref(),
        };
        let mut out = Accuracies::new();
        for (name, kind) in metrics {
            let value = match kind {
                MetricKind::Builtin(b) => self.builtin(b, &ctx),
                MetricKind::Custom(i) => self.custom[i].compute(&ctx),
            };
            out.insert(name, value);
        }
        Ok(out)
    }

    fn builtin(&self, b: Builtin, ctx: &MetricContext<'_>) -> MetricValue {
        let clusters = || ctx.cluster_labels.expect("clustering was computed");
        match b {
            Builtin::Nmi => MetricValue::Scalar(normalized_mutual_info(
                ctx.query_labels.as_flat(),
                clusters(),
            )),
            Builtin::Ami => {
                MetricValue::Scalar(adjusted_mutual_info(ctx.query_labels.as_flat(), clusters()))
            }
            Builtin::PrecisionAt1 => compute(Retrieval::PrecisionAt1, ctx),
            Builtin::RPrecision => compute(Retrieval::RPrecision, ctx),
            Builtin::MeanAveragePrecisionAtR => compute(Retrieval::MapAtR, ctx),
            Builtin::MeanAveragePrecision => compute(Retrieval::Map, ctx),
            Builtin::MeanReciprocalRank => compute(Retrieval::Mrr, ctx),
        }
    }

    /// Label counts, lone queries, `k` (PML's `determine_k`) and the kNN search; `reference`
    /// is `None` when it is exactly the query.
    fn knn_context<B: Backend>(
        &self,
        query: Tensor<B, 2>,
        query_labels: &Labels,
        reference: Option<Tensor<B, 2>>,
        reference_labels: &Labels,
        ref_includes_query: bool,
        metrics: &[(String, MetricKind)],
    ) -> Result<KnnContext, PmlError> {
        let m = reference_labels.len();
        let label_counts: Vec<(Vec<i64>, usize)> = query_labels
            .unique_rows()
            .into_iter()
            .map(|u| {
                let count = (0..m)
                    .filter(|&j| self.same(u, reference_labels.row(j)))
                    .count();
                (u.to_vec(), count)
            })
            .collect();
        let lone_query_labels: Vec<Vec<i64>> = label_counts
            .iter()
            .filter(|(u, c)| {
                if ref_includes_query {
                    (*c as i64) - i64::from(self.same(u, u)) <= 0
                } else {
                    *c == 0
                }
            })
            .map(|(u, _)| u.clone())
            .collect();
        let not_lone_query_mask: Vec<bool> = (0..query_labels.len())
            .map(|i| {
                !lone_query_labels
                    .iter()
                    .any(|l| l.as_slice() == query_labels.row(i))
            })
            .collect();
        if !not_lone_query_mask.iter().any(|&x| x) {
            log::warn!("None of the query labels are in the reference set.");
        }

        let self_count = usize::from(ref_includes_query);
        let max_bin_count = label_counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
        let k = match self.config.k {
            AccuracyK::MaxBinCount => max_bin_count.saturating_sub(self_count),
            AccuracyK::All => m.saturating_sub(self_count),
            AccuracyK::Count(k) => {
                let at_r: Vec<&str> = metrics
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .filter(|n| ["r_precision", "mean_average_precision_at_r"].contains(n))
                    .collect();
                if k < max_bin_count && !at_r.is_empty() {
                    log::warn!(
                        "You are computing {at_r:?}, but the value for k ({k}) is less than the max bin \
                         count ({max_bin_count}) so the values for these metrics will be incorrect. \
                         To fix this, set k = max_bin_count. If you're looking for MAP@{k} instead \
                         of MAP@R, use mean_average_precision rather than mean_average_precision_at_r."
                    );
                }
                k
            }
        };
        let wanted = k + self_count;
        if wanted > m {
            log::warn!(
                "k = {k} neighbours requested but the reference has only {} candidates; using {}",
                m - self_count,
                m - self_count
            );
        }
        let mut neighbors = match reference {
            None => self.knn.search_self(query, wanted)?,
            Some(reference) => self.knn.search(query, reference, wanted)?,
        };
        if ref_includes_query {
            neighbors = neighbors.without_self();
        }
        Ok(KnnContext {
            neighbors,
            label_counts,
            lone_query_labels,
            not_lone_query_mask,
        })
    }
}

/// `reference[..n] ≈ query` (`torch.allclose`: `|q − r| ≤ 1e-8 + 1e-5 |r|`) and equal labels;
/// returns whether the prefix is exactly the query.
fn check_prefix<B: Backend>(
    query: &Tensor<B, 2>,
    query_labels: &Labels,
    reference: &Tensor<B, 2>,
    reference_labels: &Labels,
) -> Result<bool, PmlError> {
    let [n, d] = query.dims();
    let m = reference.dims()[0];
    let err = || {
        PmlError::invalid_input(
            "ref_includes_query",
            "when ref_includes_query is true, the first len(query) rows of the reference (and of \
             reference_labels) must equal the query (and query_labels)",
        )
    };
    if m < n {
        return Err(err());
    }
    let prefix = reference.clone().slice([0..n, 0..d]);
    let bound = prefix.clone().abs().mul_scalar(1e-5).add_scalar(1e-8);
    let diff = (query.clone() - prefix).abs();
    let close = diff.clone().lower_equal(bound).all();
    let close = close.into_data().iter::<bool>().all(|b| b);
    let labels_equal = (0..n).all(|i| query_labels.row(i) == reference_labels.row(i));
    if close && labels_equal {
        let exact = diff
            .equal_elem(0.0)
            .all()
            .into_data()
            .iter::<bool>()
            .all(|b| b);
        Ok(exact)
    } else {
        Err(err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    fn points(rows: &[[f32; 2]]) -> Tensor<B, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::<B, 1>::from_floats(flat.as_slice(), &Default::default()).reshape([rows.len(), 2])
    }

    #[test]
    fn k_serializes_as_pml_writes_it() {
        for (json, k) in [
            ("null", AccuracyK::All),
            ("7", AccuracyK::Count(7)),
            ("\"max_bin_count\"", AccuracyK::MaxBinCount),
        ] {
            assert_eq!(serde_json::from_str::<AccuracyK>(json).unwrap(), k);
            assert_eq!(serde_json::to_string(&k).unwrap(), json);
        }
        assert!(serde_json::from_str::<AccuracyK>("0").is_err());
        assert!(serde_json::from_str::<AccuracyK>("\"all\"").is_err());
    }

    #[test]
    fn configuration_errors() {
        let bad = AccuracyCalculatorConfig::new().with_include(vec!["precision_at_2".into()]);
        let err = bad.try_init().unwrap_err().to_string();
        assert!(err.contains("precision_at_2"), "{err}");
        let both = AccuracyCalculatorConfig::new()
            .with_avg_of_avgs(true)
            .with_return_per_class(true);
        assert!(both.try_init().is_err());
        let calc = AccuracyCalculatorConfig::new().init();
        assert_eq!(calc.metric_names().len(), 7);
        assert!(calc.with_label_comparison_fn(|a, b| a == b).is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let calc = AccuracyCalculatorConfig::new()
            .with_exclude(vec!["NMI".into(), "AMI".into()])
            .init();
        let q = points(&[[0.0, 0.0], [1.0, 0.0]]);
        let no_labels = AccuracyInput {
            reference_labels: None,
            reference: Some(q.clone()),
            ..AccuracyInput::new(q.clone(), vec![0, 1])
        };
        let err = calc.get_accuracy(no_labels).unwrap_err().to_string();
        assert!(err.contains("reference_labels"), "{err}");
        let wide = Tensor::<B, 2>::zeros([2, 3], &Default::default());
        let err = calc
            .get_accuracy(
                AccuracyInput::new(q.clone(), vec![0, 1]).with_reference(wide, vec![0, 1]),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("width 2") && err.contains("width 3"), "{err}");
        let other = points(&[[5.0, 0.0], [1.0, 0.0], [0.0, 0.0]]);
        let err = calc
            .get_accuracy(
                AccuracyInput::new(q.clone(), vec![0, 1])
                    .with_reference(other, vec![0, 1, 0])
                    .with_ref_includes_query(true),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("ref_includes_query"), "{err}");
        let err = calc
            .get_accuracy(AccuracyInput::new(q, vec![0]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("query_labels"), "{err}");
    }

    #[test]
    fn lone_queries_are_dropped_or_nan() {
        let calc = AccuracyCalculatorConfig::new()
            .with_include(vec!["precision_at_1".into()])
            .init();
        // Label 2 has a single member: it is lone when the reference includes the queries.
        let x = points(&[[0.0, 0.0], [0.0, 0.1], [5.0, 5.0]]);
        let acc = calc
            .get_accuracy(AccuracyInput::new(x.clone(), vec![0, 0, 2]))
            .unwrap();
        assert_eq!(acc["precision_at_1"].as_scalar(), Some(1.0));
        let acc = calc
            .get_accuracy(AccuracyInput::new(x, vec![0, 1, 2]))
            .unwrap();
        assert!(acc["precision_at_1"].as_scalar().unwrap().is_nan());
    }

    #[test]
    fn multi_label_comparison() {
        // Multi-hot labels over 3 tags; a match when two rows share a tag.
        let calc = AccuracyCalculatorConfig::new()
            .with_include(vec!["precision_at_1".into(), "r_precision".into()])
            .init()
            .with_label_comparison_fn(|a, b| a.iter().zip(b).any(|(x, y)| *x == 1 && *y == 1))
            .unwrap();
        let q = points(&[[0.0, 0.0], [10.0, 0.0]]);
        let r = points(&[[0.1, 0.0], [10.1, 0.0], [20.0, 0.0]]);
        let ql = Labels::from_rows(&[vec![1, 1, 0], vec![0, 0, 1]]).unwrap();
        let rl = Labels::from_rows(&[vec![0, 1, 0], vec![1, 0, 0], vec![0, 0, 1]]).unwrap();
        let acc = calc
            .get_accuracy(AccuracyInput::new(q, ql).with_reference(r, rl))
            .unwrap();
        // Query 0 ({0,1}) → ref 0 ({1}): match; query 1 ({2}) → ref 1 ({0}): no match.
        assert_eq!(acc["precision_at_1"].as_scalar(), Some(0.5));
        // Query 0 matches refs 0 and 1 (R = 2): ranks 1, 2 = refs 0, 1 → 1; query 1: R = 1,
        // rank 1 = ref 1 → 0.
        assert_eq!(acc["r_precision"].as_scalar(), Some(0.5));
    }
}
