//! [`LossConfig::examples`]: one buildable config of every loss and wrapper.

use pml_core::config::Spec;

use crate::{
    ArcFaceLossConfig, ContrastiveLossConfig, CosFaceLossConfig, CrossBatchMemoryConfig,
    LargeMarginSoftmaxLossConfig, LossConfig, ManifoldLossConfig, MultipleLossesConfig,
    NormalizedSoftmaxLossConfig, P2SGradLossConfig, ProxyAnchorLossConfig, ProxyNCALossConfig,
    RankedListLossConfig, SelfSupervisedLossConfig, SoftTripleLossConfig, SphereFaceLossConfig,
    SubCenterArcFaceLossConfig, TripletMarginLossConfig,
};

impl LossConfig {
    /// One config of every loss and wrapper in [`LossConfig::PML_NAMES`] order: PML's defaults,
    /// with the required arguments filled in (`embedding_size` / `descriptors_dim` / `l` for
    /// the width, `num_classes`; RankedListLoss's `margin = 0.4`, `Tn = 1`; wrappers hold a `ContrastiveLoss` or `TripletMarginLoss`,
    /// `CrossBatchMemory` keeps 16 rows). For tests, tools and fuzzing seeds that must reach
    /// every loss.
    ///
    /// ```
    /// use pml_losses::LossConfig;
    /// let all = LossConfig::examples(4, 3);
    /// assert_eq!(all.len(), LossConfig::PML_NAMES.len());
    /// assert!(all.iter().all(|c| c.try_init::<burn::backend::NdArray>(&Default::default()).is_ok()));
    /// ```
    ///
    /// # Panics
    /// Never for the registered losses (the doc example builds them all): only if a loss with
    /// required arguments were added without an example here.
    pub fn examples(embedding_size: usize, num_classes: usize) -> Vec<LossConfig> {
        let (e, c) = (embedding_size, num_classes);
        let contrastive = || Box::new(Self::Contrastive(ContrastiveLossConfig::new()));
        let triplet = || Self::TripletMargin(TripletMarginLossConfig::new());
        Self::PML_NAMES
            .iter()
            .map(|&name| match name {
                "ArcFaceLoss" => Self::ArcFace(ArcFaceLossConfig::new(c, e)),
                "CosFaceLoss" => Self::CosFace(CosFaceLossConfig::new(c, e)),
                "LargeMarginSoftmaxLoss" => {
                    Self::LargeMarginSoftmax(LargeMarginSoftmaxLossConfig::new(c, e))
                }
                "NormalizedSoftmaxLoss" => {
                    Self::NormalizedSoftmax(NormalizedSoftmaxLossConfig::new(c, e))
                }
                "ProxyAnchorLoss" => Self::ProxyAnchor(ProxyAnchorLossConfig::new(c, e)),
                "ProxyNCALoss" => Self::ProxyNCA(ProxyNCALossConfig::new(c, e)),
                "SoftTripleLoss" => Self::SoftTriple(SoftTripleLossConfig::new(c, e)),
                "SphereFaceLoss" => Self::SphereFace(SphereFaceLossConfig::new(c, e)),
                "SubCenterArcFaceLoss" => {
                    Self::SubCenterArcFace(SubCenterArcFaceLossConfig::new(c, e))
                }
                "P2SGradLoss" => Self::P2SGrad(P2SGradLossConfig::new(e, c)),
                "ManifoldLoss" => Self::Manifold(ManifoldLossConfig::new(e)),
                "RankedListLoss" => Self::RankedList(
                    RankedListLossConfig::new()
                        .with_margin(Some(0.4))
                        .with_Tn(Some(1.0)),
                ),
                "SelfSupervisedLoss" => {
                    Self::SelfSupervised(SelfSupervisedLossConfig::new(Box::new(triplet())))
                }
                "MultipleLosses" => {
                    Self::MultipleLosses(MultipleLossesConfig::new(vec![*contrastive(), triplet()]))
                }
                "CrossBatchMemory" => Self::CrossBatchMemory(
                    CrossBatchMemoryConfig::new(contrastive(), e).with_memory_size(16),
                ),
                other => Self::from_spec(&Spec {
                    name: other.to_string(),
                    params: Default::default(),
                })
                .unwrap_or_else(|err| panic!("no example config for {other}: {err}")),
            })
            .collect()
    }
}
