//! PML's samplers, seeded, and a Burn data loader that follows them.
//!
//! * [`Sampler`]: the dataset indices of one epoch (PyTorch's `Sampler`); [`BatchSampler`]: the
//!   index batches of one epoch; [`BatchedSampler`] groups a `Sampler` into batches.
//! * [`MPerClassSampler`] (built by [`MPerClassSamplerConfig`]): `m` samples per class, batches
//!   of `batch_size / m` classes; a `Sampler` and a `BatchSampler`.
//! * [`HierarchicalSampler`]: batches from a few super classes at a time; a `BatchSampler`.
//! * [`TuplesToWeightsSampler`]: items drawn in proportion to how often a miner picks them,
//!   re-mined with the current model each epoch; a `Sampler`.
//! * [`FixedSetOfTriplets`]: a set of triplets drawn once, reshuffled each epoch; a `Sampler`.
//!
//! Each is built by its `XxxConfig` (PML's argument names and defaults, plus a `seed`) from the
//! dataset's labels; `try_init` returns PML's refusals as
//! [`PmlError::InvalidArgument`](pml_core::PmlError::InvalidArgument), `init` panics with the
//! same message.
//!
//! # Training on a sampler's order
//!
//! Burn's `DataLoaderBuilder` can only shuffle a dataset. [`SamplerDataLoader`] implements Burn's
//! `DataLoader` trait over any [`BatchSampler`]: each call to `iter()` (each epoch) draws new
//! batches from the sampler and runs the dataset items at those indices through a `Batcher`.
//! Hand it to burn-train's `Learner` as an `Arc<dyn DataLoader<B, O>>`, or loop over it:
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::data::dataloader::DataLoader;
//! use pml_train::datasets::{VectorBatcher, mnist_test_set};
//! use pml_train::samplers::{MPerClassSamplerConfig, SamplerDataLoader};
//!
//! let train = mnist_test_set().subset(0..7000);
//! let sampler = MPerClassSamplerConfig::new(16)
//!     .with_batch_size(Some(160))
//!     .with_length_before_new_iter(train.len())
//!     .with_seed(0)
//!     .init(train.labels());
//! let loader = SamplerDataLoader::<NdArray, _, _>::new(
//!     sampler, train, VectorBatcher, Default::default());
//! let batch = loader.iter().next().unwrap(); // 43 batches per epoch
//! assert_eq!(batch.images.dims(), [160, 784]); // 10 classes x 16 images
//! ```
//!
//! Without a Burn data loader, a plain loop does the same: `for indices in
//! sampler.sample_batches() { let batch = dataset.batch::<B>(&indices, &device); ... }`
//! ([`VectorDataset::batch`](crate::datasets::VectorDataset::batch)).

mod common;
mod fixed_set_of_triplets;
mod hierarchical;
mod loader;
mod m_per_class;
mod sampler;
mod tuples_to_weights;

pub use fixed_set_of_triplets::{FixedSetOfTriplets, FixedSetOfTripletsConfig};
pub use hierarchical::{HierarchicalSampler, HierarchicalSamplerConfig, SamplesPerClass};
pub use loader::SamplerDataLoader;
pub use m_per_class::{MPerClassSampler, MPerClassSamplerConfig};
pub use sampler::{BatchSampler, BatchedSampler, Sampler};
pub use tuples_to_weights::{TuplesToWeightsSampler, TuplesToWeightsSamplerConfig};
