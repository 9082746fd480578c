use burn::tensor::{Tensor, backend::Backend};
use pml_core::{PmlError, Regularizer};

use super::{LpRegularizer, LpRegularizerConfig, ZeroMeanRegularizer, ZeroMeanRegularizerConfig};

/// Any regularizer, by configuration: the type of a loss's `embedding_regularizer` slot.
/// Serializes as a PML spec, `{"name": "LpRegularizer", "params": {"p": 2}}`.
#[derive(Clone, Debug)]
pub enum RegularizerConfig {
    /// [`LpRegularizer`].
    Lp(LpRegularizerConfig),
    /// [`ZeroMeanRegularizer`].
    ZeroMean(ZeroMeanRegularizerConfig),
}

pml_core::spec_enum!(RegularizerConfig {
    Lp(LpRegularizerConfig) = "LpRegularizer" => LpRegularizerConfig::new(),
    ZeroMean(ZeroMeanRegularizerConfig) = "ZeroMeanRegularizer" => ZeroMeanRegularizerConfig::new(),
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
}

impl<B: Backend> Regularizer<B> for AnyRegularizer {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        match self {
            Self::Lp(r) => r.forward(x),
            Self::ZeroMean(r) => r.forward(x),
        }
    }
}
