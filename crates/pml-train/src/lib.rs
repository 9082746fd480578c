//! Training pieces of **pml-rs**: PML's samplers and the datasets its examples and benchmarks use.
//!
//! * Samplers ([`samplers`]): [`MPerClassSampler`](samplers::MPerClassSampler),
//!   [`HierarchicalSampler`](samplers::HierarchicalSampler),
//!   [`TuplesToWeightsSampler`](samplers::TuplesToWeightsSampler),
//!   [`FixedSetOfTriplets`](samplers::FixedSetOfTriplets), all seeded, and
//!   [`SamplerDataLoader`](samplers::SamplerDataLoader), a Burn `DataLoader` whose batches follow
//!   a sampler's order, drawn anew each epoch.
//! * Datasets ([`datasets`]): MNIST IDX files (the MNIST test set ships embedded), labelled CSV
//!   files (the 8x8 digits ship embedded), and image folders in the official layouts of
//!   CUB-200-2011, Cars196 and Stanford Online Products, each a Burn `Dataset` with a `Batcher`.
//! * [`trainers`]: PML's trainers (`MetricLossOnly`, `TrainWithClassifier`,
//!   `CascadedEmbeddings`, `TwoStreamMetricLoss`, `UnsupervisedEmbeddingsUsingAugmentations`,
//!   `DeepAdversarialMetricLearning`) as burn-train models, and [`fit`](trainers::fit), which runs
//!   them with burn-train's `Learner` and evaluates with PML's `AccuracyCalculator` every epoch.
#![warn(missing_docs)]

pub mod datasets;
pub mod samplers;
pub mod trainers;
