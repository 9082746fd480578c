use burn::tensor::{Tensor, backend::Backend};
use pml_core::{LossInput, LossTerms, MetricLoss, PmlError};

use crate::{ContrastiveLoss, ContrastiveLossConfig, TripletMarginLoss, TripletMarginLossConfig};

/// Any loss, by configuration. Serializes as a PML spec with every slot inside `params`:
///
/// ```
/// use pml_losses::LossConfig;
/// let c: LossConfig = serde_json::from_str(r#"{
///     "name": "TripletMarginLoss",
///     "params": {"margin": 0.2, "distance": {"name": "CosineSimilarity", "params": {}}}
/// }"#).unwrap();
/// let loss = c.try_init().unwrap();
/// assert_eq!(c.pml_name(), "TripletMarginLoss");
/// # let _ = loss;
/// ```
#[derive(Clone, Debug)]
pub enum LossConfig {
    /// [`ContrastiveLoss`].
    Contrastive(ContrastiveLossConfig),
    /// [`TripletMarginLoss`].
    TripletMargin(TripletMarginLossConfig),
}

pml_core::spec_enum!(LossConfig {
    Contrastive(ContrastiveLossConfig) = "ContrastiveLoss" => ContrastiveLossConfig::new(),
    TripletMargin(TripletMarginLossConfig) = "TripletMarginLoss" => TripletMarginLossConfig::new(),
});

impl LossConfig {
    /// Builds the loss, refusing invalid configurations (including reducers PML refuses).
    pub fn try_init(&self) -> Result<AnyLoss, PmlError> {
        Ok(match self {
            Self::Contrastive(c) => AnyLoss::Contrastive(c.try_init()?),
            Self::TripletMargin(c) => AnyLoss::TripletMargin(c.try_init()?),
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> AnyLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Any built loss (see [`LossConfig`]).
#[derive(Clone, Debug)]
pub enum AnyLoss {
    /// [`ContrastiveLoss`].
    Contrastive(ContrastiveLoss),
    /// [`TripletMarginLoss`].
    TripletMargin(TripletMarginLoss),
}

impl<B: Backend> MetricLoss<B> for AnyLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        match self {
            Self::Contrastive(l) => l.forward_terms(input),
            Self::TripletMargin(l) => l.forward_terms(input),
        }
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        match self {
            Self::Contrastive(l) => l.reduce(terms, input),
            Self::TripletMargin(l) => l.reduce(terms, input),
        }
    }
}
