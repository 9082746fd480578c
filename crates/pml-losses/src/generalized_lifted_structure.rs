use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, activation::relu, backend::Backend},
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

/// Configuration of [`GeneralizedLiftedStructureLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct GeneralizedLiftedStructureLossConfig {
    /// Negative pairs closer than this are penalized.
    #[config(default = 1.0)]
    pub neg_margin: f64,
    /// Positive pairs farther than this are penalized.
    #[config(default = 0.0)]
    pub pos_margin: f64,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
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

impl GeneralizedLiftedStructureLossConfig {
    /// Builds the loss.
    pub fn try_init(&self) -> Result<GeneralizedLiftedStructureLoss, PmlError> {
        for (name, v) in [
            ("neg_margin", self.neg_margin),
            ("pos_margin", self.pos_margin),
        ] {
            if !v.is_finite() {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "GeneralizedLiftedStructureLoss: must be finite",
                ));
            }
        }
        Ok(GeneralizedLiftedStructureLoss {
            neg_margin: self.neg_margin,
            pos_margin: self.pos_margin,
            slots: LossSlots::build(
                "GeneralizedLiftedStructureLoss",
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
    pub fn init(&self) -> GeneralizedLiftedStructureLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The generalized lifted structure loss (Hermans et al., "In Defense of the Triplet Loss for
/// Person Re-Identification", 2017, p. 4; PML's `GeneralizedLiftedStructureLoss`): for each
/// anchor `i`,
///
/// `L_i = [ log Σ_{p∈P(i)} exp(d_ip − m_pos) + log Σ_{n∈N(i)} exp(m_neg − d_in) ]₊`
///
/// (signs swapped for similarities); a sum over an empty set counts as 0.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct GeneralizedLiftedStructureLoss {
    neg_margin: f64,
    pos_margin: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for GeneralizedLiftedStructureLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let d = &self.slots.distance;
        let slope = Distance::<B>::margin_slope(d);
        // Each anchor's loss and its derivatives w.r.t. its distance row, off the autodiff
        // graph: `w⁺ − w⁻` (the softmax weights of the two log-sum-exps) where the loss is
        // positive.
        let row_losses = |masks: PairMasks<B>| {
            let rows = masks.mat().dims()[0];
            let (pos, w_pos) = masked_logsumexp_with_slopes(
                d.margin_to(masks.mat().clone(), self.pos_margin),
                Some(masks.pos.clone()),
                false,
            );
            let (neg, w_neg) = masked_logsumexp_with_slopes(
                Distance::<B>::margin_from(d, self.neg_margin, masks.mat().clone()),
                Some(masks.neg.clone()),
                false,
            );
            let z = pos + neg;
            let active = mask_to_float(z.clone().greater_elem(0.0), &z);
            let slopes = (w_pos - w_neg).mul_scalar(slope) * active;
            value_with_gradient(relu(z).reshape([rows]), masks.link_rows(slopes))
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
        // Raw distances on a line: d01 = 1, d02 = 3, d12 = 2. Anchor 0: log e^1 + log e^{1−3} = −1 → 0;
        // anchor 1: 1 + (1 − 2) = 0; anchor 2: no positive: 0 + log(e^{−2} + e^{−1}) < 0 → 0.
        // With neg_margin 4: anchor 0: 1 + 1 = 2; anchor 1: 1 + 2 = 3;
        // anchor 2: log(e^{1} + e^{2}). Mean over 3.
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.0], [3.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = GeneralizedLiftedStructureLossConfig::new()
            .with_neg_margin(4.0)
            .with_distance(DistanceConfig::Lp(
                pml_distances::LpDistanceConfig::new().with_normalize_embeddings(false),
            ))
            .init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = (2.0 + 3.0 + (1f64.exp() + 2f64.exp()).ln()) / 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = GeneralizedLiftedStructureLossConfig::new().init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 12);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(
            &GeneralizedLiftedStructureLossConfig::new().init(),
            13,
        );
    }
}
