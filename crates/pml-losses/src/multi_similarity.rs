use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    math::masked_logsumexp_with_slopes, tensor::value_with_gradient,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    generic_pair::{PairMasks, anchor_losses},
    regularizers::RegularizerConfig,
};

/// Configuration of [`MultiSimilarityLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct MultiSimilarityLossConfig {
    /// The exponential weight `α` of positive pairs.
    #[config(default = 2.0)]
    pub alpha: f64,
    /// The exponential weight `β` of negative pairs.
    #[config(default = 50.0)]
    pub beta: f64,
    /// The shift `λ` applied to both.
    #[config(default = 0.5)]
    pub base: f64,
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

impl MultiSimilarityLossConfig {
    /// Builds the loss, refusing non-positive `alpha` or `beta`.
    pub fn try_init(&self) -> Result<MultiSimilarityLoss, PmlError> {
        for (name, v) in [("alpha", self.alpha), ("beta", self.beta)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "MultiSimilarityLoss: must be positive",
                ));
            }
        }
        if !self.base.is_finite() {
            return Err(PmlError::invalid_argument(
                "base",
                self.base,
                "MultiSimilarityLoss: must be finite",
            ));
        }
        Ok(MultiSimilarityLoss {
            alpha: self.alpha,
            beta: self.beta,
            base: self.base,
            slots: LossSlots::build(
                "MultiSimilarityLoss",
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &[("loss", ReductionType::Element)],
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> MultiSimilarityLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The multi-similarity loss (Wang et al., "Multi-Similarity Loss with General Pair Weighting
/// for Deep Metric Learning", CVPR 2019; PML's `MultiSimilarityLoss`): for each anchor `i`, with
/// `P(i)`, `N(i)` its positives and negatives and `s` the similarity,
///
/// `L_i = (1/α) log(1 + Σ_{p∈P(i)} exp(−α (s_ip − λ))) + (1/β) log(1 + Σ_{n∈N(i)} exp(β (s_in − λ)))`
///
/// (with a distance, `s − λ` becomes `λ − d`). Computed with masks over the `[n, m]` matrix,
/// block by block of anchors, off the autodiff graph: the gradient w.r.t. `s_ij` is
/// `−w⁺_ij` for positives and `w⁻_ij` for negatives, `w` being the softmax weights of the two
/// log-sum-exps.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct MultiSimilarityLoss {
    alpha: f64,
    beta: f64,
    base: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for MultiSimilarityLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let d = &self.slots.distance;
        let slope = Distance::<B>::margin_slope(d);
        // Each anchor's loss and its derivatives w.r.t. its distance row, off the autodiff
        // graph; the gradient reaches the row through `Σ_j slopes_ij · mat_ij`.
        let row_losses = |masks: PairMasks<B>| {
            let rows = masks.mat().dims()[0];
            let dc = masks.mat().clone();
            let pos_exp = d.margin_to(dc.clone(), self.base).mul_scalar(self.alpha);
            let neg_exp = d.margin_from(self.base, dc).mul_scalar(self.beta);
            let (pos, pos_slopes) =
                masked_logsumexp_with_slopes(pos_exp, Some(masks.pos.clone()), true);
            let (neg, neg_slopes) =
                masked_logsumexp_with_slopes(neg_exp, Some(masks.neg.clone()), true);
            let value = pos.div_scalar(self.alpha) + neg.div_scalar(self.beta);
            let slopes = (pos_slopes - neg_slopes).mul_scalar(slope);
            value_with_gradient(value.reshape([rows]), masks.link_rows(slopes))
        };
        let terms = match anchor_losses(&self.slots, input, row_losses) {
            None => LossTerms::zeros(&["loss"]),
            Some((losses, counts)) => {
                let losses = counts.gated(losses);
                let n = losses.dims()[0];
                let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &losses.device());
                LossTerms::new().with(LossTerm::element("loss", losses, idx))
            }
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

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // s01 = 1 (positive), s02 = s12 = 0 (negative); α = 1, β = 1, λ = 0.5.
        // Anchors 0, 1: log(1 + e^{−0.5}) + log(1 + e^{−0.5}); anchor 2: no positive,
        // log(1 + 2e^{−0.5}) for its two negatives. Mean over 3 anchors.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = MultiSimilarityLossConfig::new()
            .with_alpha(1.0)
            .with_beta(1.0)
            .init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let a = (1.0 + (-0.5f64).exp()).ln();
        let want = (4.0 * a + (1.0 + 2.0 * (-0.5f64).exp()).ln()) / 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = MultiSimilarityLossConfig::new().with_beta(5.0).init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 6);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(&MultiSimilarityLossConfig::new().init(), 7);
    }
}
