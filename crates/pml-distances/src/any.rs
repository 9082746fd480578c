use burn::tensor::{Tensor, backend::Backend};
use pml_core::{Distance, GramInputs, PmlError};

use crate::{
    CosineSimilarity, CosineSimilarityConfig, DotProductSimilarity, DotProductSimilarityConfig,
    LpDistance, LpDistanceConfig, SNRDistance, SNRDistanceConfig,
};

/// Any distance, by configuration: the type of a loss's or miner's `distance` slot.
///
/// Serializes as a PML spec, `{"name": "CosineSimilarity", "params": {...}}`; absent params
/// take PML's defaults.
///
/// ```
/// use pml_distances::DistanceConfig;
/// let c: DistanceConfig =
///     serde_json::from_str(r#"{"name": "LpDistance", "params": {"power": 2}}"#).unwrap();
/// assert_eq!(c.pml_name(), "LpDistance");
/// ```
#[derive(Clone, Debug)]
pub enum DistanceConfig {
    /// [`LpDistance`].
    Lp(LpDistanceConfig),
    /// [`CosineSimilarity`].
    Cosine(CosineSimilarityConfig),
    /// [`DotProductSimilarity`].
    DotProduct(DotProductSimilarityConfig),
    /// [`SNRDistance`].
    Snr(SNRDistanceConfig),
}

pml_core::spec_enum!(DistanceConfig {
    Lp(LpDistanceConfig) = "LpDistance" => LpDistanceConfig::new(),
    Cosine(CosineSimilarityConfig) = "CosineSimilarity" => CosineSimilarityConfig::new(),
    DotProduct(DotProductSimilarityConfig) = "DotProductSimilarity" => DotProductSimilarityConfig::new(),
    Snr(SNRDistanceConfig) = "SNRDistance" => SNRDistanceConfig::new(),
});

impl DistanceConfig {
    /// PML's default distance for most losses: `LpDistance(p=2)`, normalized embeddings.
    pub fn lp() -> Self {
        Self::Lp(LpDistanceConfig::new())
    }

    /// Cosine similarity with PML's defaults.
    pub fn cosine() -> Self {
        Self::Cosine(CosineSimilarityConfig::new())
    }

    /// Checks the hyperparameters without building: `p > 0` and a finite `power`.
    pub fn validate(&self) -> Result<(), PmlError> {
        let (p, power) = match self {
            Self::Lp(c) => (c.p, c.power),
            Self::Cosine(c) => (c.p, c.power),
            Self::DotProduct(c) => (c.p, c.power),
            Self::Snr(c) => (c.p, c.power),
        };
        if p.is_nan() || p <= 0.0 {
            return Err(PmlError::invalid_argument(
                "p",
                p,
                format!("{}: p must be positive", self.pml_name()),
            ));
        }
        if !power.is_finite() {
            return Err(PmlError::invalid_argument(
                "power",
                power,
                format!("{}: power must be finite", self.pml_name()),
            ));
        }
        Ok(())
    }

    /// Builds the distance.
    ///
    /// # Panics
    /// On invalid hyperparameters (see [`validate`](Self::validate)).
    pub fn init(&self) -> AnyDistance {
        match self {
            Self::Lp(c) => AnyDistance::Lp(c.init()),
            Self::Cosine(c) => AnyDistance::Cosine(c.init()),
            Self::DotProduct(c) => AnyDistance::DotProduct(c.init()),
            Self::Snr(c) => AnyDistance::Snr(c.init()),
        }
    }
}

impl Default for DistanceConfig {
    fn default() -> Self {
        Self::lp()
    }
}

/// Any built distance (see [`DistanceConfig`]).
#[derive(Clone, Debug)]
pub enum AnyDistance {
    /// [`LpDistance`].
    Lp(LpDistance),
    /// [`CosineSimilarity`].
    Cosine(CosineSimilarity),
    /// [`DotProductSimilarity`].
    DotProduct(DotProductSimilarity),
    /// [`SNRDistance`].
    Snr(SNRDistance),
}

impl<B: Backend> Distance<B> for AnyDistance {
    fn forward(&self, query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        match self {
            Self::Lp(d) => d.forward(query, reference),
            Self::Cosine(d) => d.forward(query, reference),
            Self::DotProduct(d) => d.forward(query, reference),
            Self::Snr(d) => d.forward(query, reference),
        }
    }

    fn is_inverted(&self) -> bool {
        match self {
            Self::Lp(d) => Distance::<B>::is_inverted(d),
            Self::Cosine(d) => Distance::<B>::is_inverted(d),
            Self::DotProduct(d) => Distance::<B>::is_inverted(d),
            Self::Snr(d) => Distance::<B>::is_inverted(d),
        }
    }

    fn gram_inputs(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> Option<GramInputs<B>> {
        match self {
            Self::Lp(d) => d.gram_inputs(query, reference),
            Self::Cosine(d) => d.gram_inputs(query, reference),
            Self::DotProduct(d) => d.gram_inputs(query, reference),
            Self::Snr(d) => d.gram_inputs(query, reference),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_round_trip_and_unknown_names_are_refused() {
        for name in [
            "LpDistance",
            "CosineSimilarity",
            "DotProductSimilarity",
            "SNRDistance",
        ] {
            let json = format!(r#"{{"name": "{name}", "params": {{}}}}"#);
            let c: DistanceConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(c.pml_name(), name);
            let back: DistanceConfig =
                serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back.pml_name(), name);
        }
        let err = serde_json::from_str::<DistanceConfig>(r#"{"name": "Nope", "params": {}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not implemented: Nope"), "{err}");
        let err = serde_json::from_str::<DistanceConfig>(
            r#"{"name": "CosineSimilarity", "params": {"normalize_embeddings": false}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown parameter `normalize_embeddings`"),
            "{err}"
        );
    }
}
