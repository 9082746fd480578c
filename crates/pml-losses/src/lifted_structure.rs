use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use pml_core::{Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{base::LossSlots, generic_pair::pair_distances, regularizers::RegularizerConfig};

/// Configuration of [`LiftedStructureLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct LiftedStructureLossConfig {
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

impl LiftedStructureLossConfig {
    /// Builds the loss.
    pub fn try_init(&self) -> Result<LiftedStructureLoss, PmlError> {
        for (name, v) in [
            ("neg_margin", self.neg_margin),
            ("pos_margin", self.pos_margin),
        ] {
            if !v.is_finite() {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "LiftedStructureLoss: must be finite",
                ));
            }
        }
        Ok(LiftedStructureLoss {
            neg_margin: self.neg_margin,
            pos_margin: self.pos_margin,
            slots: LossSlots::build(
                "LiftedStructureLoss",
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
    pub fn init(&self) -> LiftedStructureLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The lifted structure loss (Oh Song et al., "Deep Metric Learning via Lifted Structured
/// Feature Embedding", CVPR 2016; PML's `LiftedStructureLoss`): for each positive pair `(a, p)`,
/// with `N(i)` the negative pairs anchored at `i`,
///
/// `L(a, p) = ½ [ log Σ_{(i,n): i∈{a,p}} exp(m_neg − d_in) + d_ap − m_pos ]₊²`
///
/// (signs swapped for similarities; the ½ because each pair appears in both orders). The sums
/// over negatives are computed once per anchor from the `[n, m]` matrix.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct LiftedStructureLoss {
    neg_margin: f64,
    pos_margin: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for LiftedStructureLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let terms = match pair_distances(&self.slots, input) {
            Some(pairs) if pairs.pos.is_some() && pairs.neg.is_some() => {
                let d = &self.slots.distance;
                let rows = pairs.mat.dims()[0];
                let (lse, has) = pairs.negatives_logsumexp(Distance::<B>::margin_from(
                    d,
                    self.neg_margin,
                    pairs.mat.clone(),
                ));
                // Per-anchor LSE, −∞ for anchors without negatives; an index beyond the batch
                // (a positive in a separate reference set) has none either.
                let lse = lse.mask_fill(has.bool_not(), f64::NEG_INFINITY);
                let at = |idx: &Tensor<B, 1, burn::tensor::Int>| {
                    let outside = idx.clone().greater_equal_elem(rows as i64);
                    let clamped = idx.clone().clamp_max(rows as i64 - 1);
                    lse.clone()
                        .select(0, clamped)
                        .mask_fill(outside, f64::NEG_INFINITY)
                };
                let (la, lp) = (at(&pairs.a1), at(&pairs.p));
                // log(e^la + e^lp), counting a negative pair once when a == p.
                let same = pairs.a1.clone().equal(pairs.p.clone());
                let lp = lp.mask_fill(same, f64::NEG_INFINITY);
                let hi = la.clone().max_pair(lp.clone());
                let none = hi.clone().lower_equal_elem(f64::NEG_INFINITY);
                let hi_safe = hi.clone().mask_fill(none.clone(), 0.0).detach();
                let sum = (la - hi_safe.clone()).exp() + (lp - hi_safe.clone()).exp();
                let neg_loss =
                    (hi_safe + sum.mask_fill(none.clone(), 1.0).log()).mask_fill(none, 0.0);
                let pos = d.margin_to(pairs.pos.clone().unwrap(), self.pos_margin);
                let losses = relu(neg_loss + pos).powi_scalar(2).div_scalar(2.0);
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
        // Raw distances: d01 = 1, d02 = 3, d12 = 2; neg_margin 4. Negative pairs: (0,2), (1,2),
        // (2,0), (2,1). Pair (0,1): negatives anchored at 0 or 1: e^{4−3} + e^{4−2};
        // L = ½ [log(e + e²) + 1]²; same for (1,0). Mean over the 2 positive pairs.
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.0], [3.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = LiftedStructureLossConfig::new()
            .with_neg_margin(4.0)
            .with_distance(DistanceConfig::Lp(
                pml_distances::LpDistanceConfig::new().with_normalize_embeddings(false),
            ))
            .init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = 0.5 * ((1f64.exp() + 2f64.exp()).ln() + 1.0).powi(2);
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = LiftedStructureLossConfig::new().init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 14);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(
            &LiftedStructureLossConfig::new().init(),
            15,
        );
    }
}
