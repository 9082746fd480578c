//! Distances of **pml-rs** (PML's `distances` module): [`LpDistance`], [`CosineSimilarity`],
//! [`DotProductSimilarity`], [`SNRDistance`] and [`BatchedDistance`], plus [`DistanceConfig`],
//! a serializable enum of them tagged by PML's class name.
//!
//! Every matrix is computed with one matrix product (`|a|² + |b|² − 2ab` for Lp with `p = 2`),
//! never with per-pair loops, and the same code runs on every Burn backend.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::tensor::Tensor;
//! use pml_distances::LpDistanceConfig;
//! use pml_core::Distance;
//!
//! let device = Default::default();
//! let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device);
//! let d = LpDistanceConfig::new().init().forward(x, None);
//! let v: Vec<f32> = d.into_data().to_vec().unwrap();
//! assert!((v[1] - 2f32.sqrt()).abs() < 1e-6 && v[0] == 0.0);
//! ```
#![warn(missing_docs)]

mod any;
mod batched;
mod common;
mod cosine_similarity;
mod dot_product_similarity;
mod lp;
mod snr;

pub use any::{AnyDistance, DistanceConfig};
pub use batched::{BatchedDistance, BatchedDistanceConfig};
pub use cosine_similarity::{CosineSimilarity, CosineSimilarityConfig};
pub use dot_product_similarity::{DotProductSimilarity, DotProductSimilarityConfig};
pub use lp::{LpDistance, LpDistanceConfig};
pub use snr::{SNRDistance, SNRDistanceConfig};
