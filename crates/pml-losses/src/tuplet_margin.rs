use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    math::{safe_root, softplus},
    tensor::take,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots, common::require_cosine, generic_pair::pair_distances,
    regularizers::RegularizerConfig,
};

/// Configuration of [`TupletMarginLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct TupletMarginLossConfig {
    /// The angular margin, in degrees.
    #[config(default = 5.73)]
    pub margin: f64,
    /// The scale `s`.
    #[config(default = 64.0)]
    pub scale: f64,
    /// The distance: must be `CosineSimilarity`, as in PML.
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

impl TupletMarginLossConfig {
    /// Builds the loss, refusing distances other than cosine similarity (as PML does).
    pub fn try_init(&self) -> Result<TupletMarginLoss, PmlError> {
        require_cosine(&self.distance, "TupletMarginLoss")?;
        for (name, v) in [("margin", self.margin), ("scale", self.scale)] {
            if !v.is_finite() {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "TupletMarginLoss: must be finite",
                ));
            }
        }
        Ok(TupletMarginLoss {
            margin: self.margin.to_radians(),
            scale: self.scale,
            slots: LossSlots::build(
                "TupletMarginLoss",
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
    pub fn init(&self) -> TupletMarginLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The tuplet margin loss (Yu & Tao, "Deep Metric Learning with Tuplet Margin Loss", ICCV
/// 2019; PML's `TupletMarginLoss`): for each positive pair `(a, p)` with angle
/// `θ_ap = arccos(s_ap)`,
///
/// `L(a, p) = log(1 + Σ_{n∈N(a)} exp(s (cos θ_an − cos(θ_ap − β))))`
///
/// with `β` the margin in radians. The sum over negatives is computed once per anchor.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct TupletMarginLoss {
    /// In radians.
    margin: f64,
    scale: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for TupletMarginLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let terms = match pair_distances(&self.slots, input) {
            Some(pairs) if pairs.pos.is_some() && pairs.neg.is_some() => {
                let (neg_lse, has_neg) =
                    pairs.negatives_logsumexp(pairs.mat.clone().mul_scalar(self.scale));
                let pos = pairs.pos.clone().unwrap();
                // cos(acos(s) − β) = s cos β + sin(acos(s)) sin β.
                // `safe_root` keeps the gradient finite at s = ±1, where PML's acos has an infinite one.
                let sin = safe_root(
                    pos.clone()
                        .powi_scalar(2)
                        .neg()
                        .add_scalar(1.0)
                        .clamp_min(0.0),
                    2.0,
                );
                let shifted = pos.mul_scalar(self.margin.cos()) + sin.mul_scalar(self.margin.sin());
                let anchor_lse = take(neg_lse, pairs.a1.clone());
                let no_neg = take(has_neg.int(), pairs.a1.clone()).equal_elem(0);
                let losses =
                    softplus(anchor_lse - shifted.mul_scalar(self.scale)).mask_fill(no_neg, 0.0);
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
        // s01 = 1 (θ = 0), s02 = s12 = 0; margin 0, scale 1: L = log(1 + e^{0 − 1}) per pair.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = TupletMarginLossConfig::new()
            .with_margin(0.0)
            .with_scale(1.0)
            .init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = (1.0 + (-1f64).exp()).ln();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = TupletMarginLossConfig::new().with_scale(4.0).init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 18);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(&TupletMarginLossConfig::new().init(), 19);
    }
}
