use burn::tensor::{Tensor, backend::Backend};
use pml_core::{PmlError, Regularizer};

use super::{
    CenterInvariantRegularizer, CenterInvariantRegularizerConfig, LpRegularizer,
    LpRegularizerConfig, RegularFaceRegularizer, RegularFaceRegularizerConfig,
    SparseCentersRegularizer, SparseCentersRegularizerConfig, ZeroMeanRegularizer,
    ZeroMeanRegularizerConfig,
};

/// Any regularizer, by configuration: the type of a loss's `embedding_regularizer` and
/// `weight_regularizer` slots.
/// Serializes as a PML spec, `{"name": "LpRegularizer", "params": {"p": 2}}`.
#[derive(Clone, Debug)]
pub enum RegularizerConfig {
    /// [`LpRegularizer`].
    Lp(LpRegularizerConfig),
    /// [`ZeroMeanRegularizer`].
    ZeroMean(ZeroMeanRegularizerConfig),
    /// [`CenterInvariantRegularizer`].
    CenterInvariant(CenterInvariantRegularizerConfig),
    /// [`RegularFaceRegularizer`].
    RegularFace(RegularFaceRegularizerConfig),
    /// [`SparseCentersRegularizer`].
    SparseCenters(SparseCentersRegularizerConfig),
}

pml_core::spec_enum!(RegularizerConfig {
    Lp(LpRegularizerConfig) = "LpRegularizer" => LpRegularizerConfig::new(),
    ZeroMean(ZeroMeanRegularizerConfig) = "ZeroMeanRegularizer" => ZeroMeanRegularizerConfig::new(),
    CenterInvariant(CenterInvariantRegularizerConfig) = "CenterInvariantRegularizer"
        => CenterInvariantRegularizerConfig::new(),
    RegularFace(RegularFaceRegularizerConfig) = "RegularFaceRegularizer"
        => RegularFaceRegularizerConfig::new(),
    SparseCenters(SparseCentersRegularizerConfig) = "SparseCentersRegularizer"
        => SparseCentersRegularizerConfig::new(2, 2); requires ["num_classes", "centers_per_class"],
});

impl RegularizerConfig {
    /// Checks the hyperparameters without building.
    pub fn validate(&self) -> Result<(), PmlError> {
        match self {
            Self::Lp(c) if c.p <= 0.0 => Err(PmlError::invalid_argument(
                "p",
                c.p,
                "LpRegularizer: p must be positive",
            )),
            Self::Lp(c) => c.reducer.validate(),
            Self::ZeroMean(c) => c.reducer.validate(),
            Self::CenterInvariant(c) => c.validate(),
            Self::RegularFace(c) => c.validate(),
            Self::SparseCenters(c) => c.validate(),
        }
    }

    /// Builds the regularizer.
    ///
    /// # Panics
    /// On invalid hyperparameters (see [`validate`](Self::validate)).
    pub fn init(&self) -> AnyRegularizer {
        match self {
            Self::Lp(c) => AnyRegularizer::Lp(c.init()),
            Self::ZeroMean(c) => AnyRegularizer::ZeroMean(c.init()),
            Self::CenterInvariant(c) => AnyRegularizer::CenterInvariant(c.init()),
            Self::RegularFace(c) => AnyRegularizer::RegularFace(c.init()),
            Self::SparseCenters(c) => AnyRegularizer::SparseCenters(c.init()),
        }
    }
}

/// Any built regularizer (see [`RegularizerConfig`]).
#[derive(Clone, Debug)]
pub enum AnyRegularizer {
    /// [`LpRegularizer`].
    Lp(LpRegularizer),
    /// [`ZeroMeanRegularizer`].
    ZeroMean(ZeroMeanRegularizer),
    /// [`CenterInvariantRegularizer`].
    CenterInvariant(CenterInvariantRegularizer),
    /// [`RegularFaceRegularizer`].
    RegularFace(RegularFaceRegularizer),
    /// [`SparseCentersRegularizer`].
    SparseCenters(SparseCentersRegularizer),
}

impl<B: Backend> Regularizer<B> for AnyRegularizer {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        match self {
            Self::Lp(r) => r.forward(x),
            Self::ZeroMean(r) => r.forward(x),
            Self::CenterInvariant(r) => r.forward(x),
            Self::RegularFace(r) => r.forward(x),
            Self::SparseCenters(r) => r.forward(x),
        }
    }
}
