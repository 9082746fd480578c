//! Evaluation of **pml-rs**: what users run to measure and use an embedding space.
//!
//! * [`AccuracyCalculator`]: PML's `AccuracyCalculator` — `precision_at_1`, `r_precision`,
//!   `mean_average_precision_at_r`, `mean_average_precision`, `mean_reciprocal_rank`, `NMI`,
//!   `AMI`, and user-defined metrics ([`CustomMetric`]).
//! * [`Knn`]: exact k-nearest neighbours on the Burn device in blocks (no faiss), L2, inner
//!   product or cosine, ties resolved by index like faiss's flat index.
//! * [`KMeans`]: k-means on the device with k-means++ seeding and restarts; NMI and AMI with
//!   scikit-learn's definitions ([`metrics::clustering`]).
//! * [`InferenceModel`], [`EmbeddingIndex`], [`MatchFinder`]: nearest-neighbour queries over
//!   an index that can be saved and loaded, matching by threshold, and threshold calibration
//!   for a target precision ([`calibrate_threshold`]).
//! * Testers ([`GlobalEmbeddingSpaceTester`], [`WithSameParentLabelTester`],
//!   [`GlobalTwoStreamEmbeddingSpaceTester`]): embed dataset splits ([`EvalDataset`]) with any
//!   model ([`EmbeddingModel`], e.g. a closure) batch by batch, then compute the accuracies.
//!
//! Everything is generic over Burn's `Backend`; only the final `k` neighbours per query (and,
//! on CPU backends, one bounded block of distances at a time) are read back to the host.
#![warn(missing_docs)]

mod accuracy_calculator;
mod inference;
mod kmeans;
mod knn;
mod labels;
mod match_finder;
pub mod metrics;
mod model;
mod progress;
mod tester;

pub use accuracy_calculator::{
    Accuracies, AccuracyCalculator, AccuracyCalculatorConfig, AccuracyInput, AccuracyK,
};
pub use inference::{EmbeddingIndex, InferenceModel, InferenceModelConfig};
pub use kmeans::{KMeans, KMeansConfig, KMeansResult};
pub use knn::{Knn, KnnConfig, KnnMetric, Neighbors, TopKSelection};
pub use labels::Labels;
pub use match_finder::{
    Calibration, MatchDistance, MatchFinder, MatchFinderConfig, calibrate_threshold,
};
pub use metrics::{CustomMetric, KnnContext, LabelComparisonFn, MetricContext, MetricValue};
pub use model::{EmbeddingModel, EvalDataset, TensorDataset, TwoStreamDataset};
pub use tester::{
    Global, GlobalEmbeddingSpaceTester, GlobalTwoStreamEmbeddingSpaceTester, LabelHierarchyLevel,
    SplitAccuracies, SplitsToEval, Tester, TesterConfig, TesterKind, WithSameParentLabel,
    WithSameParentLabelTester,
};
