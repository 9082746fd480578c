use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    math::masked_logsumexp_with_slopes,
    tensor::{mask_to_float, value_with_gradient},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    generic_pair::{PairMasks, anchor_losses},
    regularizers::RegularizerConfig,
};

/// Configuration of [`SupConLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct SupConLossConfig {
    /// The temperature `τ` dividing the similarities.
    #[config(default = 0.1)]
    pub temperature: f64,
    /// The distance (PML's default: `CosineSimilarity`).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `AvgNonZeroReducer`).
    #[config(default = "ReducerConfig::avg_non_zero()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl SupConLossConfig {
    /// Builds the loss, refusing a non-positive temperature.
    pub fn try_init(&self) -> Result<SupConLoss, PmlError> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(PmlError::invalid_argument(
                "temperature",
                self.temperature,
                "SupConLoss: must be positive",
            ));
        }
        Ok(SupConLoss {
            temperature: self.temperature,
            slots: LossSlots::build(
                "SupConLoss",
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
    pub fn init(&self) -> SupConLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning", NeurIPS
/// 2020; PML's `SupConLoss`): for each anchor `i` with positives `P(i)` and negatives `N(i)`,
///
/// `L_i = −(1/|P(i)|) Σ_{p∈P(i)} log( exp(s_ip/τ) / Σ_{j∈P(i)∪N(i)} exp(s_ij/τ) )`
///
/// (`s` = similarity, or minus the distance). Zero when the batch has no positive or no
/// negative pair.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct SupConLoss {
    temperature: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for SupConLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let inverted = Distance::<B>::is_inverted(&self.slots.distance);
        let sign = if inverted { 1.0 } else { -1.0 };
        // Each anchor's loss and its derivatives w.r.t. its similarity row, off the autodiff
        // graph; the gradient reaches the row through `Σ_j slopes_ij · mat_ij`.
        let scale = sign / self.temperature;
        let row_losses = |masks: PairMasks<B>| {
            let x = masks.mat().clone().mul_scalar(scale);
            let x = x.clone() - x.max_dim(1);
            let rows = x.dims()[0];
            let candidates = masks.pos.clone().bool_or(masks.neg.clone());
            let (denominator, softmax) =
                masked_logsumexp_with_slopes(x.clone(), Some(candidates), false);
            let log_prob = x - denominator;
            let pos = mask_to_float(masks.pos.clone(), &log_prob);
            let count = pos.clone().sum_dim(1);
            let divisor = count.clone().add_scalar(f32::MIN_POSITIVE as f64);
            let value = (pos.clone() * log_prob).sum_dim(1).neg() / divisor.clone();
            // ∂value_i/∂x_ij = (count_i · softmax_ij − pos_ij) / divisor_i.
            let slopes = (softmax * count - pos) / divisor * scale;
            value_with_gradient(value.reshape([rows]), masks.link_rows(slopes))
        };
        let terms = match anchor_losses(&self.slots, input, row_losses) {
            None => LossTerms::zeros(&["loss"]),
            Some((losses, counts)) => {
                let n = losses.dims()[0];
                // PML returns its zero loss unless there is a positive and a negative pair.
                let valid = counts.any_both().expand([n]);
                let losses = counts.gated(losses.mask_fill(valid.bool_not(), 0.0));
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
        // τ = 1; s01 = 1, s02 = s12 = 0. Anchor 0: −log(e / (e + 1)) (its candidates: 1 and 2);
        // same for anchor 1; anchor 2 has no positive: 0, skipped by AvgNonZero.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = SupConLossConfig::new().with_temperature(1.0).init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = (1.0 + (-1f64).exp()).ln();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = SupConLossConfig::new().with_temperature(0.5).init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 8);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(&SupConLossConfig::new().init(), 9);
    }
}
