use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType, math::softplus,
    tensor::take,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{base::LossSlots, generic_pair::pair_distances, regularizers::RegularizerConfig};

/// Configuration of [`NTXentLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct NTXentLossConfig {
    /// The temperature `τ` dividing the similarities.
    #[config(default = 0.07)]
    pub temperature: f64,
    /// The distance (PML's default: `CosineSimilarity`).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `MeanReducer`).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl NTXentLossConfig {
    /// Builds the loss, refusing a non-positive temperature.
    pub fn try_init(&self) -> Result<NTXentLoss, PmlError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(PmlError::invalid_argument(
                "temperature",
                self.temperature,
                "NTXentLoss: must be positive",
            ));
        }
        Ok(NTXentLoss {
            temperature: self.temperature,
            slots: LossSlots::build(
                "NTXentLoss",
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &[("loss", ReductionType::PosPair)],
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> NTXentLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// NT-Xent, the normalized temperature-scaled cross entropy of SimCLR (Chen et al., "A Simple
/// Framework for Contrastive Learning of Visual Representations", ICML 2020) and InfoNCE
/// (PML's `NTXentLoss`): for each positive pair `(a, p)`, with `s` the similarity (or minus the
/// distance) and `N(a)` the negatives of `a`,
///
/// `L(a, p) = −log( exp(s_ap/τ) / (exp(s_ap/τ) + Σ_{n∈N(a)} exp(s_an/τ)) )
///          = softplus( log Σ_{n∈N(a)} exp(s_an/τ) − s_ap/τ )`,
///
/// zero for anchors without negatives. The sum over negatives is computed once per anchor from
/// the `[n, m]` matrix, so memory is `O(n·m)` — PML builds a positives × negatives matrix, which
/// runs out of memory for large batches.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct NTXentLoss {
    temperature: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for NTXentLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let terms = match pair_distances(&self.slots, input) {
            Some(pairs) if pairs.pos.is_some() && pairs.neg.is_some() => {
                let inverted = Distance::<B>::is_inverted(&self.slots.distance);
                let sign = if inverted { 1.0 } else { -1.0 };
                let scale = sign / self.temperature;
                let (neg_lse, has_neg) =
                    pairs.negatives_logsumexp(pairs.mat.clone().mul_scalar(scale));
                let pos = pairs.pos.clone().unwrap().mul_scalar(scale);
                let anchor_lse = take(neg_lse, pairs.a1.clone());
                let anchor_has_neg = take(has_neg.int(), pairs.a1.clone()).equal_elem(0);
                let losses = softplus(anchor_lse - pos).mask_fill(anchor_has_neg, 0.0);
                LossTerms::new().with(LossTerm::pos_pair("loss", losses, pairs.a1, pairs.p))
            }
            _ => LossTerms::zeros(&["loss"]),
        };
        self.slots.with_regularization(terms, input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Int;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Unit vectors: 0 and 1 identical (s = 1), 2 orthogonal (s = 0). τ = 1.
        // Pairs (0,1), (1,0): −log(e / (e + 1)) each; mean = softplus(−1).
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = NTXentLossConfig::new().with_temperature(1.0).init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        assert!((got - (1.0 + (-1f64).exp()).ln()).abs() < 1e-6, "{got}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = NTXentLossConfig::new().with_temperature(0.5).init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 5);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(&NTXentLossConfig::new().init(), 6);
    }
}
