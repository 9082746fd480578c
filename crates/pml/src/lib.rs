//! **pml-rs**: [pytorch-metric-learning](https://github.com/KevinMusgrave/pytorch-metric-learning)
//! (PML) 2.9 on [Burn](https://burn.dev), generic over Burn's `Backend` so the same losses run
//! on CPU, WGPU and CUDA.
//!
//! This facade re-exports the pml crates under PML's module names:
//!
//! | module | crate | PML |
//! |---|---|---|
//! | [`distances`] | `pml-distances` | `pytorch_metric_learning.distances` |
//! | [`losses`] | `pml-losses` | `pytorch_metric_learning.losses` |
//! | [`miners`] | `pml-miners` | `pytorch_metric_learning.miners` |
//! | [`reducers`] | `pml-reducers` | `pytorch_metric_learning.reducers` |
//! | [`regularizers`] | `pml-losses` | `pytorch_metric_learning.regularizers` |
//! | [`core`] | `pml-core` | traits, `utils.loss_and_miner_utils` |
//! | [`eval`] | `pml-eval` | `utils.accuracy_calculator`, `utils.inference`, `testers` |
//!
//! ```
//! use burn::backend::{Autodiff, NdArray};
//! use burn::tensor::{Int, Tensor};
//! use pml::prelude::*;
//!
//! type B = Autodiff<NdArray>;
//! let device = Default::default();
//! let loss = ContrastiveLossConfig::new().with_distance(DistanceConfig::cosine()).init();
//! let embeddings = Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], &device);
//! let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
//! let value = loss.forward(LossInput::new(embeddings, labels));
//! assert!(value.into_scalar() >= 0.0);
//! ```
#![warn(missing_docs)]

#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use pml_core as core;
pub use pml_distances as distances;
pub use pml_eval as eval;
pub use pml_losses as losses;
pub use pml_losses::regularizers;
pub use pml_miners as miners;
pub use pml_reducers as reducers;

/// Everything needed to configure and call losses: `use pml::prelude::*;`.
pub mod prelude {
    pub use pml_core::prelude::*;
    pub use pml_distances::{
        CosineSimilarityConfig, DistanceConfig, DotProductSimilarityConfig, LpDistanceConfig,
        SNRDistanceConfig,
    };
    pub use pml_losses::{
        AngularLossConfig, DynamicSoftMarginLossConfig, FastAPLossConfig, HistogramLossConfig,
        InstanceLossConfig, NCALossConfig, NPairsLossConfig, PNPLossConfig, PnpVariant,
        RankedListLossConfig, SmoothAPLossConfig, ThresholdConsistentMarginLossConfig,
        VICRegLossConfig,
    };
    pub use pml_losses::{
        ArcFaceLossConfig, CosFaceLossConfig, LargeMarginSoftmaxLossConfig, ManifoldLossConfig,
        NormalizedSoftmaxLossConfig, P2SGradLossConfig, ProxyAnchorLossConfig, ProxyNCALossConfig,
        SoftTripleLossConfig, SphereFaceLossConfig, SubCenterArcFaceLossConfig,
        regularizers::{
            CenterInvariantRegularizerConfig, RegularFaceRegularizerConfig,
            SparseCentersRegularizerConfig,
        },
    };
    pub use pml_losses::{
        ContrastiveLossConfig, LossConfig, TripletMarginLossConfig,
        regularizers::{LpRegularizerConfig, RegularizerConfig, ZeroMeanRegularizerConfig},
    };
    pub use pml_miners::MinerConfig;
    pub use pml_reducers::ReducerConfig;
}
