//! PML's testers: embed dataset splits with a model, batch by batch, then compute accuracies.

use std::collections::BTreeMap;

use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{PmlError, math::normalize_rows, tensor::int_tensor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    AccuracyCalculator, AccuracyCalculatorConfig, AccuracyInput, EmbeddingModel, EvalDataset,
    Labels, MetricValue, TwoStreamDataset, progress::Progress,
};

/// PML's `label_hierarchy_level`: which label columns are evaluated.
///
/// Serializes as PML writes it: an integer, `"all"`, or a list of integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelHierarchyLevel {
    /// One level.
    Level(usize),
    /// Every column of the labels.
    All,
    /// These levels.
    Levels(Vec<usize>),
}

impl Serialize for LabelHierarchyLevel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Level(l) => s.serialize_u64(*l as u64),
            Self::All => s.serialize_str("all"),
            Self::Levels(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for LabelHierarchyLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Level(u64),
            Word(String),
            Levels(Vec<u64>),
        }
        match Raw::deserialize(d)? {
            Raw::Level(l) => Ok(Self::Level(l as usize)),
            Raw::Word(w) if w == "all" => Ok(Self::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "label_hierarchy_level must be an integer, \"all\" or a list, got \"{w}\""
            ))),
            Raw::Levels(v) => Ok(Self::Levels(v.into_iter().map(|l| l as usize).collect())),
        }
    }
}

impl LabelHierarchyLevel {
    fn levels(&self, available: usize) -> Result<Vec<usize>, PmlError> {
        let levels = match self {
            Self::All => (0..available).collect(),
            Self::Level(l) => vec![*l],
            Self::Levels(v) => v.clone(),
        };
        if let Some(bad) = levels.iter().find(|&&l| l >= available) {
            return Err(PmlError::invalid_argument(
                "label_hierarchy_level",
                bad,
                format!("the labels have {available} level(s)"),
            ));
        }
        Ok(levels)
    }

    fn to_key(&self) -> String {
        match self {
            Self::Level(l) => l.to_string(),
            Self::All => "all".into(),
            Self::Levels(v) => v.iter().map(usize::to_string).collect::<Vec<_>>().join("_"),
        }
    }
}

/// Configuration of the testers, with PML's `BaseTester` argument names and defaults.
#[derive(Config, Debug)]
pub struct TesterConfig {
    /// L2-normalize the embeddings before computing accuracies.
    #[config(default = true)]
    pub normalize_embeddings: bool,
    /// Items per model call.
    #[config(default = 32)]
    pub batch_size: usize,
    /// Which label columns to evaluate.
    #[config(default = "LabelHierarchyLevel::Level(0)")]
    pub label_hierarchy_level: LabelHierarchyLevel,
    /// The accuracy calculator (PML's default `AccuracyCalculator()`); use
    /// [`Tester::with_accuracy_calculator`] for one with custom metrics or comparison.
    #[config(default = "AccuracyCalculatorConfig::new()")]
    pub accuracy_calculator: AccuracyCalculatorConfig,
    /// Show a progress bar while embedding.
    #[config(default = true)]
    pub progress: bool,
}

impl TesterConfig {
    /// Builds a tester of the given kind.
    ///
    /// # Errors
    /// A zero `batch_size` or an invalid accuracy calculator configuration.
    pub fn try_init<K: TesterKind>(&self) -> Result<Tester<K>, PmlError> {
        if self.batch_size == 0 {
            return Err(PmlError::invalid_argument(
                "batch_size",
                0,
                "must be positive",
            ));
        }
        Ok(Tester {
            config: self.clone(),
            calculator: self.accuracy_calculator.try_init()?,
            _kind: K::default(),
        })
    }

    /// Builds a tester of the given kind.
    ///
    /// # Panics
    /// On an invalid configuration.
    pub fn init<K: TesterKind>(&self) -> Tester<K> {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Which PML tester a [`Tester`] is; decides how queries and references are compared.
pub trait TesterKind: Default + Clone + std::fmt::Debug {
    /// PML's class name.
    const NAME: &'static str;
}

/// PML's `GlobalEmbeddingSpaceTester`: every query against the whole reference set.
#[derive(Clone, Copy, Debug, Default)]
pub struct Global;
impl TesterKind for Global {
    const NAME: &'static str = "GlobalEmbeddingSpaceTester";
}

/// PML's `WithSameParentLabelTester`: for label level `L`, queries are only compared with
/// references of the same parent label (level `L + 1`), and the accuracies are averaged over
/// parents.
#[derive(Clone, Copy, Debug, Default)]
pub struct WithSameParentLabel;
impl TesterKind for WithSameParentLabel {
    const NAME: &'static str = "WithSameParentLabelTester";
}

/// PML's `GlobalEmbeddingSpaceTester` (global) tester.
pub type GlobalEmbeddingSpaceTester = Tester<Global>;
/// PML's `WithSameParentLabelTester`.
pub type WithSameParentLabelTester = Tester<WithSameParentLabel>;

/// The accuracies of one query split (PML's `all_accuracies[split]`): keys
/// `<metric>_level<L>`, and `AVERAGE_<metric>` when several levels are evaluated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitAccuracies {
    /// The epoch passed to `test`.
    pub epoch: usize,
    /// The reference splits the queries were compared with.
    pub reference_splits: Vec<String>,
    /// Metric values by key.
    pub accuracies: BTreeMap<String, MetricValue>,
}

/// A PML tester (see [`GlobalEmbeddingSpaceTester`], [`WithSameParentLabelTester`]; the
/// two-stream one is [`GlobalTwoStreamEmbeddingSpaceTester`]).
///
/// ```
/// use std::collections::BTreeMap;
/// use burn::backend::NdArray;
/// use burn::tensor::Tensor;
/// use pml_eval::{GlobalEmbeddingSpaceTester, Labels, TensorDataset, TesterConfig};
///
/// type B = NdArray;
/// let device = Default::default();
/// let x = Tensor::<B, 2>::from_floats([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]], &device);
/// let mut splits = BTreeMap::new();
/// splits.insert("val".to_string(), TensorDataset::new(x, Labels::new(vec![0, 0, 1, 1])));
/// let tester: GlobalEmbeddingSpaceTester = TesterConfig::new()
///     .with_batch_size(3)
///     .with_accuracy_calculator(pml_eval::AccuracyCalculatorConfig::new()
///         .with_include(vec!["precision_at_1".into()]))
///     .init();
/// let model = |x: Tensor<B, 2>| x; // any Fn(batch) -> embeddings
/// let results = tester.test(&splits, 3, &model, None, &device).unwrap();
/// assert_eq!(results["val"].accuracies["precision_at_1_level0"].as_scalar(), Some(1.0));
/// ```
#[derive(Clone, Debug)]
pub struct Tester<K: TesterKind> {
    config: TesterConfig,
    calculator: AccuracyCalculator,
    _kind: K,
}

/// Query split names with their reference splits (PML's `splits_to_eval`).
pub type SplitsToEval = Vec<(String, Vec<String>)>;

impl<K: TesterKind> Tester<K> {
    /// Replaces the accuracy calculator (e.g. one with custom metrics).
    pub fn with_accuracy_calculator(mut self, calculator: AccuracyCalculator) -> Self {
        self.calculator = calculator;
        self
    }

    /// The accuracy calculator.
    pub fn accuracy_calculator(&self) -> &AccuracyCalculator {
        &self.calculator
    }

    /// Embeds a whole split batch by batch (PML's `get_all_embeddings`): `[n, d]` embeddings,
    /// normalized with `normalize_embeddings`, and the label rows.
    pub fn get_all_embeddings<B: Backend, D: EvalDataset<B>, M: EmbeddingModel<B, D::Input>>(
        &self,
        dataset: &D,
        model: &M,
        device: &B::Device,
    ) -> Result<(Tensor<B, 2>, Labels), PmlError> {
        let n = dataset.len();
        if n == 0 {
            return Err(PmlError::invalid_input("dataset", "the split is empty"));
        }
        let bs = self.config.batch_size;
        let mut progress = Progress::new("embedding", n.div_ceil(bs), self.config.progress);
        let mut parts = Vec::new();
        let mut labels: Option<Labels> = None;
        for s in (0..n).step_by(bs) {
            let e = (s + bs).min(n);
            let (input, l) = dataset.batch(s..e, device);
            let emb = model.embed(input);
            check_batch(emb.dims()[0], l.len(), e - s)?;
            parts.push(emb);
            labels = Some(match labels {
                None => l,
                Some(prev) => {
                    if prev.width() != l.width() {
                        return Err(PmlError::invalid_input(
                            "labels",
                            format!("label width changes from {} to {}", prev.width(), l.width()),
                        ));
                    }
                    prev.concat(&l)
                }
            });
            progress.tick(1);
        }
        let emb = Tensor::cat(parts, 0);
        let emb = if self.config.normalize_embeddings {
            normalize_rows(emb, 2.0)
        } else {
            emb
        };
        Ok((emb, labels.expect("n > 0")))
    }

    /// Embeds every needed split and computes the accuracies of each query split against its
    /// reference splits (PML's `test`). Without `splits_to_eval` every split is its own
    /// reference. A query split that is among its references is moved to their front (and
    /// `ref_includes_query` is set).
    ///
    /// # Errors
    /// Unknown split names, a query split given twice, bad labels or embeddings (see
    /// [`AccuracyCalculator::get_accuracy`]).
    pub fn test<B: Backend, D: EvalDataset<B>, M: EmbeddingModel<B, D::Input>>(
        &self,
        datasets: &BTreeMap<String, D>,
        epoch: usize,
        model: &M,
        splits_to_eval: Option<SplitsToEval>,
        device: &B::Device,
    ) -> Result<BTreeMap<String, SplitAccuracies>, PmlError> {
        let splits = normalize_splits(datasets.keys(), splits_to_eval)?;
        let mut embedded: BTreeMap<String, (Tensor<B, 2>, Labels)> = BTreeMap::new();
        for (q, refs) in &splits {
            for name in std::iter::once(q).chain(refs) {
                if !embedded.contains_key(name) {
                    let ds = datasets.get(name).ok_or_else(|| {
                        PmlError::invalid_argument(
                            "splits_to_eval",
                            name,
                            "no dataset of this name",
                        )
                    })?;
                    log::info!("Getting embeddings for the {name} split");
                    embedded.insert(name.clone(), self.get_all_embeddings(ds, model, device)?);
                }
            }
        }
        let mut out = BTreeMap::new();
        for (q, refs) in splits {
            log::info!("Computing accuracy for the {q} split w.r.t {refs:?}");
            let (query, query_labels) = embedded[&q].clone();
            let (reference, reference_labels) = combine(&embedded, &refs);
            let ref_includes_query = refs.contains(&q);
            let accuracies = self.accuracies(
                query,
                &query_labels,
                reference,
                &reference_labels,
                ref_includes_query,
            )?;
            out.insert(
                q,
                SplitAccuracies {
                    epoch,
                    reference_splits: refs,
                    accuracies,
                },
            );
        }
        Ok(out)
    }

    /// `<metric>_level<L>` (PML's `accuracies_keyname`).
    fn keyname(metric: &str, level: usize) -> String {
        format!("{metric}_level{level}")
    }

    fn accuracies<B: Backend>(
        &self,
        query: Tensor<B, 2>,
        query_labels: &Labels,
        reference: Tensor<B, 2>,
        reference_labels: &Labels,
        ref_includes_query: bool,
    ) -> Result<BTreeMap<String, MetricValue>, PmlError> {
        let width = query_labels.width();
        let same_parent = K::NAME == WithSameParentLabel::NAME;
        let levels: Vec<usize> = self
            .config
            .label_hierarchy_level
            .levels(width)?
            .into_iter()
            .filter(|&l| !same_parent || l + 1 < width)
            .collect();
        if levels.is_empty() {
            return Err(PmlError::invalid_argument(
                "label_hierarchy_level",
                self.config.label_hierarchy_level.to_key(),
                "no valid label level to evaluate (WithSameParentLabelTester needs a level below \
                 the last one)",
            ));
        }
        let mut out = BTreeMap::new();
        for &level in &levels {
            let ql = query_labels.column(level);
            let rl = reference_labels.column(level);
            let values = if same_parent {
                self.same_parent_accuracies(
                    &query,
                    query_labels,
                    &reference,
                    reference_labels,
                    level,
                    ref_includes_query,
                )?
            } else {
                let input = AccuracyInput::new(query.clone(), ql)
                    .with_reference(reference.clone(), rl)
                    .with_ref_includes_query(ref_includes_query);
                self.calculator.get_accuracy(input)?
            };
            for (metric, v) in values {
                out.insert(Self::keyname(&metric, level), v);
            }
        }
        if levels.len() > 1 {
            for metric in self.calculator.metric_names() {
                let values: Vec<f64> = levels
                    .iter()
                    .filter_map(|&l| out.get(&Self::keyname(metric, l)))
                    .filter_map(MetricValue::as_scalar)
                    .collect();
                if values.len() == levels.len() {
                    out.insert(
                        format!("AVERAGE_{metric}"),
                        MetricValue::Scalar(values.iter().sum::<f64>() / values.len() as f64),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Accuracies at `level` computed within each parent label (level + 1), averaged over
    /// parents (per-class lists are averaged over all their entries, as `np.mean`).
    fn same_parent_accuracies<B: Backend>(
        &self,
        query: &Tensor<B, 2>,
        query_labels: &Labels,
        reference: &Tensor<B, 2>,
        reference_labels: &Labels,
        level: usize,
        ref_includes_query: bool,
    ) -> Result<BTreeMap<String, MetricValue>, PmlError> {
        let qp = query_labels.column(level + 1);
        let rp = reference_labels.column(level + 1);
        let mut parents: Vec<i64> = qp.as_flat().to_vec();
        parents.sort_unstable();
        parents.dedup();
        let device = query.device();
        let mut sums: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for parent in parents {
            let pick = |labels: &Labels| -> Vec<usize> {
                (0..labels.len())
                    .filter(|&i| labels.row(i)[0] == parent)
                    .collect()
            };
            let (qi, ri) = (pick(&qp), pick(&rp));
            let select = |x: &Tensor<B, 2>, idx: &[usize]| {
                let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
                x.clone().select(0, int_tensor::<B>(&idx, &device))
            };
            if ri.is_empty() {
                continue;
            }
            let input =
                AccuracyInput::new(select(query, &qi), query_labels.column(level).select(&qi))
                    .with_reference(
                        select(reference, &ri),
                        reference_labels.column(level).select(&ri),
                    )
                    .with_ref_includes_query(ref_includes_query);
            for (metric, v) in self.calculator.get_accuracy(input)? {
                let entry = sums.entry(metric).or_default();
                let vals = v.to_vec();
                entry.push(vals.iter().sum::<f64>() / vals.len() as f64);
            }
        }
        Ok(sums
            .into_iter()
            .map(|(m, v)| {
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                (m, MetricValue::Scalar(mean))
            })
            .collect())
    }
}

fn check_batch(embeddings: usize, labels: usize, expected: usize) -> Result<(), PmlError> {
    if embeddings != expected || labels != expected {
        return Err(PmlError::invalid_input(
            "batch",
            format!(
                "a batch of {expected} items gave {embeddings} embeddings and {labels} label rows"
            ),
        ));
    }
    Ok(())
}

/// PML's `get_splits_to_compute_embeddings`: defaults, duplicate check, query first among its
/// references.
fn normalize_splits<'a>(
    names: impl Iterator<Item = &'a String>,
    splits_to_eval: Option<SplitsToEval>,
) -> Result<SplitsToEval, PmlError> {
    let splits =
        splits_to_eval.unwrap_or_else(|| names.map(|n| (n.clone(), vec![n.clone()])).collect());
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (q, refs) in splits {
        if seen.contains(&q) {
            return Err(PmlError::invalid_argument(
                "splits_to_eval",
                &q,
                "unsupported: evaluating a query split more than once",
            ));
        }
        seen.push(q.clone());
        let refs = if refs.contains(&q) {
            std::iter::once(q.clone())
                .chain(refs.into_iter().filter(|r| *r != q))
                .collect()
        } else {
            refs
        };
        out.push((q, refs));
    }
    Ok(out)
}

fn combine<B: Backend>(
    embedded: &BTreeMap<String, (Tensor<B, 2>, Labels)>,
    names: &[String],
) -> (Tensor<B, 2>, Labels) {
    let mut tensors = Vec::new();
    let mut labels: Option<Labels> = None;
    for name in names {
        let (e, l) = &embedded[name];
        tensors.push(e.clone());
        labels = Some(match labels {
            None => l.clone(),
            Some(prev) => prev.concat(l),
        });
    }
    (
        Tensor::cat(tensors, 0),
        labels.expect("at least one reference split"),
    )
}

/// PML's `GlobalTwoStreamEmbeddingSpaceTester`: each item is an (anchor, partner) pair with
/// one label; anchors are the queries, partners the reference (`ref_includes_query = false`),
/// and a split can only be its own reference.
#[derive(Clone, Debug)]
pub struct GlobalTwoStreamEmbeddingSpaceTester {
    inner: Tester<Global>,
}

impl GlobalTwoStreamEmbeddingSpaceTester {
    /// A two-stream tester.
    ///
    /// # Errors
    /// As [`TesterConfig::try_init`].
    pub fn new(config: &TesterConfig) -> Result<Self, PmlError> {
        Ok(Self {
            inner: config.try_init()?,
        })
    }

    /// Replaces the accuracy calculator.
    pub fn with_accuracy_calculator(mut self, calculator: AccuracyCalculator) -> Self {
        self.inner.calculator = calculator;
        self
    }

    /// Embeds anchors and partners of a split, batch by batch: `(anchors, partners, labels)`.
    pub fn get_all_embeddings<
        B: Backend,
        D: TwoStreamDataset<B>,
        M: EmbeddingModel<B, D::Input>,
    >(
        &self,
        dataset: &D,
        model: &M,
        device: &B::Device,
    ) -> Result<(Tensor<B, 2>, Tensor<B, 2>, Labels), PmlError> {
        let n = dataset.len();
        if n == 0 {
            return Err(PmlError::invalid_input("dataset", "the split is empty"));
        }
        let config = &self.inner.config;
        let bs = config.batch_size;
        let mut progress = Progress::new("embedding", n.div_ceil(bs), config.progress);
        let (mut anchors, mut partners) = (Vec::new(), Vec::new());
        let mut labels: Option<Labels> = None;
        for s in (0..n).step_by(bs) {
            let e = (s + bs).min(n);
            let (a, p, l) = dataset.batch(s..e, device);
            let (a, p) = (model.embed(a), model.embed(p));
            check_batch(a.dims()[0], l.len(), e - s)?;
            check_batch(p.dims()[0], l.len(), e - s)?;
            anchors.push(a);
            partners.push(p);
            labels = Some(match labels {
                None => l,
                Some(prev) => prev.concat(&l),
            });
            progress.tick(1);
        }
        let norm = |parts: Vec<Tensor<B, 2>>| {
            let t = Tensor::cat(parts, 0);
            if config.normalize_embeddings {
                normalize_rows(t, 2.0)
            } else {
                t
            }
        };
        Ok((norm(anchors), norm(partners), labels.expect("n > 0")))
    }

    /// Computes the accuracies of every split, anchors against partners.
    ///
    /// # Errors
    /// A split evaluated against other splits, unknown split names, bad batches.
    pub fn test<B: Backend, D: TwoStreamDataset<B>, M: EmbeddingModel<B, D::Input>>(
        &self,
        datasets: &BTreeMap<String, D>,
        epoch: usize,
        model: &M,
        splits_to_eval: Option<SplitsToEval>,
        device: &B::Device,
    ) -> Result<BTreeMap<String, SplitAccuracies>, PmlError> {
        let splits = normalize_splits(datasets.keys(), splits_to_eval)?;
        let mut out = BTreeMap::new();
        for (q, refs) in splits {
            if refs != [q.clone()] {
                return Err(PmlError::invalid_argument(
                    "splits_to_eval",
                    format!("{q}: {refs:?}"),
                    "GlobalTwoStreamEmbeddingSpaceTester does not support different reference \
                     and query splits",
                ));
            }
            let ds = datasets.get(&q).ok_or_else(|| {
                PmlError::invalid_argument("splits_to_eval", &q, "no dataset of this name")
            })?;
            let (anchors, partners, labels) = self.get_all_embeddings(ds, model, device)?;
            let accuracies = self
                .inner
                .accuracies(anchors, &labels, partners, &labels, false)?;
            out.insert(
                q,
                SplitAccuracies {
                    epoch,
                    reference_splits: refs,
                    accuracies,
                },
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TensorDataset;
    use burn::backend::NdArray;
    use std::ops::Range;

    type B = NdArray;

    fn calc() -> AccuracyCalculatorConfig {
        AccuracyCalculatorConfig::new()
            .with_include(vec!["precision_at_1".into(), "r_precision".into()])
            .with_knn(crate::KnnConfig::new().with_progress(false))
    }

    fn points(rows: &[[f32; 2]]) -> Tensor<B, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::<B, 1>::from_floats(flat.as_slice(), &Default::default()).reshape([rows.len(), 2])
    }

    #[test]
    fn hierarchy_levels_and_separate_reference_splits() {
        let device = Default::default();
        // Level 0: fine classes; level 1: parent classes.
        let x = points(&[
            [0.0, 1.0],
            [0.1, 1.0],
            [1.0, 0.0],
            [1.0, 0.1],
            [-1.0, 0.0],
            [-1.0, -0.1],
        ]);
        let labels = Labels::from_rows(&[
            vec![0, 0],
            vec![0, 0],
            vec![1, 1],
            vec![1, 1],
            vec![2, 1],
            vec![2, 1],
        ])
        .unwrap();
        let mut splits = BTreeMap::new();
        splits.insert(
            "train".to_string(),
            TensorDataset::new(x.clone(), labels.clone()),
        );
        splits.insert("val".to_string(), TensorDataset::new(x, labels));
        let tester: GlobalEmbeddingSpaceTester = TesterConfig::new()
            .with_batch_size(4)
            .with_progress(false)
            .with_label_hierarchy_level(LabelHierarchyLevel::All)
            .with_accuracy_calculator(calc())
            .init();
        let model = |x: Tensor<B, 2>| x;
        let r = tester
            .test(
                &splits,
                1,
                &model,
                Some(vec![("val".into(), vec!["train".into(), "val".into()])]),
                &device,
            )
            .unwrap();
        let val = &r["val"];
        assert_eq!(
            val.reference_splits,
            vec!["val".to_string(), "train".to_string()]
        );
        assert_eq!(
            val.accuracies["precision_at_1_level0"].as_scalar(),
            Some(1.0)
        );
        assert_eq!(
            val.accuracies["precision_at_1_level1"].as_scalar(),
            Some(1.0)
        );
        assert!(val.accuracies.contains_key("AVERAGE_r_precision"));

        let parent: WithSameParentLabelTester = TesterConfig::new()
            .with_progress(false)
            .with_accuracy_calculator(calc())
            .init();
        let r = parent.test(&splits, 0, &model, None, &device).unwrap();
        assert_eq!(
            r["train"].accuracies["precision_at_1_level0"].as_scalar(),
            Some(1.0)
        );
    }

    struct Pairs(Tensor<B, 2>, Tensor<B, 2>, Labels);
    impl TwoStreamDataset<B> for Pairs {
        type Input = Tensor<B, 2>;
        fn len(&self) -> usize {
            self.2.len()
        }
        fn batch(
            &self,
            r: Range<usize>,
            _device: &burn::tensor::Device<B>,
        ) -> (Tensor<B, 2>, Tensor<B, 2>, Labels) {
            let idx: Vec<usize> = r.clone().collect();
            (
                self.0.clone().narrow(0, r.start, r.len()),
                self.1.clone().narrow(0, r.start, r.len()),
                self.2.select(&idx),
            )
        }
    }

    #[test]
    fn two_stream() {
        let device = Default::default();
        let anchors = points(&[[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]]);
        let partners = points(&[[0.1, 1.0], [1.0, 0.1], [0.0, -1.0]]);
        let mut splits = BTreeMap::new();
        splits.insert(
            "val".to_string(),
            Pairs(anchors, partners, Labels::new(vec![0, 1, 2])),
        );
        let tester = GlobalTwoStreamEmbeddingSpaceTester::new(
            &TesterConfig::new()
                .with_batch_size(2)
                .with_progress(false)
                .with_accuracy_calculator(calc()),
        )
        .unwrap();
        let r = tester
            .test(&splits, 0, &|x: Tensor<B, 2>| x, None, &device)
            .unwrap();
        // After normalization anchor 2 (-1, 0) is √2 from partner 2 (0, -1) and 1.48 from
        // partner 0: every anchor's nearest partner is its own.
        let p1 = r["val"].accuracies["precision_at_1_level0"].as_scalar();
        assert_eq!(p1, Some(1.0));
        let bad = tester.test(
            &splits,
            0,
            &|x: Tensor<B, 2>| x,
            Some(vec![("val".into(), vec!["other".into()])]),
            &device,
        );
        assert!(bad.is_err());
    }
}
