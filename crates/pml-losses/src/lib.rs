//! Metric-learning losses of **pml-rs** (PML's `losses` module) and the embedding regularizers
//! they take.
//!
//! Every loss implements [`MetricLoss`](pml_core::MetricLoss): `forward` gives the reduced loss
//! to backpropagate, `forward_terms` the unreduced terms (PML's loss dict). Each has a
//! `XxxConfig` with PML's argument names and defaults, and a place in [`LossConfig`], a
//! serializable enum tagged by PML's class name, so a loss can be built from a JSON spec.
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::tensor::{Int, Tensor, Distribution};
//! use pml_core::{LossInput, MetricLoss};
//! use pml_losses::TripletMarginLossConfig;
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let loss = TripletMarginLossConfig::new().with_margin(0.2).init();
//! let embeddings = Tensor::<B, 2>::random([8, 16], Distribution::Normal(0.0, 1.0), &device)
//!     .require_grad();
//! let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1, 1, 2, 2, 3, 3], &device);
//! let value = loss.forward(LossInput::new(embeddings.clone(), labels));
//! let grads = value.backward();
//! assert!(embeddings.grad(&grads).is_some());
//! ```
#![warn(missing_docs)]

mod any;
mod base;
mod contrastive;
mod generic_pair;
#[cfg(test)]
mod gradcheck;
mod margin;
pub mod regularizers;
mod triplet_margin;

pub use any::{AnyLoss, LossConfig};
pub use contrastive::{ContrastiveLoss, ContrastiveLossConfig};
pub use margin::{MarginLoss, MarginLossConfig};
pub use triplet_margin::{TripletMarginLoss, TripletMarginLossConfig};
