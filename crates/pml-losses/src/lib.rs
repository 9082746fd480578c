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

mod all_triplets;
mod angular;
mod any;
mod arcface;
mod base;
mod circle;
mod class_weights;
mod common;
mod contrastive;
mod cosface;
mod cross_batch_memory;
mod dynamic_soft_margin;
mod examples;
mod fast_ap;
mod generalized_lifted_structure;
mod generic_pair;
#[cfg(test)]
mod gradcheck;
#[cfg(test)]
mod gradcheck_all;
mod histogram;
mod instance;
mod intra_pair_variance;
mod large_margin_softmax;
mod lifted_structure;
mod manifold;
mod margin;
mod margin_softmax;
mod multi_similarity;
mod multiple_losses;
mod n_pairs;
mod nca;
mod normalized_softmax;
mod ntxent;
mod p2s_grad;
mod pnp;
#[cfg(test)]
mod proptests;
mod proxy_anchor;
mod proxy_nca;
mod ranked_list;
pub mod regularizers;
mod self_supervised;
mod signal_to_noise_ratio_contrastive;
mod smooth_ap;
mod soft_rank;
mod soft_triple;
mod sphereface;
mod subcenter_arcface;
mod supcon;
mod threshold_consistent_margin;
mod triplet_margin;
mod tuplet_margin;
mod vicreg;

pub use angular::{AngularLoss, AngularLossConfig};
pub use any::{AnyLoss, BaseLoss, LossConfig};
pub use arcface::{ArcFaceLoss, ArcFaceLossConfig};
pub use circle::{CircleLoss, CircleLossConfig};
pub use contrastive::{ContrastiveLoss, ContrastiveLossConfig};
pub use cosface::{CosFaceLoss, CosFaceLossConfig};
pub use cross_batch_memory::{CrossBatchMemory, CrossBatchMemoryConfig};
pub use dynamic_soft_margin::{DynamicSoftMarginLoss, DynamicSoftMarginLossConfig};
pub use fast_ap::{FastAPLoss, FastAPLossConfig};
pub use generalized_lifted_structure::{
    GeneralizedLiftedStructureLoss, GeneralizedLiftedStructureLossConfig,
};
pub use histogram::{HistogramLoss, HistogramLossConfig};
pub use instance::{InstanceLoss, InstanceLossConfig};
pub use intra_pair_variance::{IntraPairVarianceLoss, IntraPairVarianceLossConfig};
pub use large_margin_softmax::{LargeMarginSoftmaxLoss, LargeMarginSoftmaxLossConfig};
pub use lifted_structure::{LiftedStructureLoss, LiftedStructureLossConfig};
pub use manifold::{ManifoldLoss, ManifoldLossConfig};
pub use margin::{MarginLoss, MarginLossConfig};
pub use multi_similarity::{MultiSimilarityLoss, MultiSimilarityLossConfig};
pub use multiple_losses::{MultipleLosses, MultipleLossesConfig};
pub use n_pairs::{NPairsLoss, NPairsLossConfig};
pub use nca::{NCALoss, NCALossConfig};
pub use normalized_softmax::{NormalizedSoftmaxLoss, NormalizedSoftmaxLossConfig};
pub use ntxent::{NTXentLoss, NTXentLossConfig};
pub use p2s_grad::{P2SGradLoss, P2SGradLossConfig};
pub use pnp::{PNPLoss, PNPLossConfig, PnpVariant};
pub use proxy_anchor::{ProxyAnchorLoss, ProxyAnchorLossConfig};
pub use proxy_nca::{ProxyNCALoss, ProxyNCALossConfig};
pub use ranked_list::{RankedListLoss, RankedListLossConfig};
pub use self_supervised::{SelfSupervisedLoss, SelfSupervisedLossConfig};
pub use signal_to_noise_ratio_contrastive::{
    SignalToNoiseRatioContrastiveLoss, SignalToNoiseRatioContrastiveLossConfig,
};
pub use smooth_ap::{SmoothAPLoss, SmoothAPLossConfig};
pub use soft_triple::{SoftTripleLoss, SoftTripleLossConfig};
pub use sphereface::{SphereFaceLoss, SphereFaceLossConfig};
pub use subcenter_arcface::{SubCenterArcFaceLoss, SubCenterArcFaceLossConfig};
pub use supcon::{SupConLoss, SupConLossConfig};
pub use threshold_consistent_margin::{
    ThresholdConsistentMarginLoss, ThresholdConsistentMarginLossConfig,
};
pub use triplet_margin::{TripletMarginLoss, TripletMarginLossConfig};
pub use tuplet_margin::{TupletMarginLoss, TupletMarginLossConfig};
pub use vicreg::{VICRegLoss, VICRegLossConfig};
