use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use pml_core::{Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{base::LossSlots, generic_pair::pair_distances, regularizers::RegularizerConfig};

const TERMS: [(&str, ReductionType); 2] = [
    ("pos_loss", ReductionType::PosPair),
    ("neg_loss", ReductionType::NegPair),
];

/// Configuration of [`IntraPairVarianceLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct IntraPairVarianceLossConfig {
    /// Tolerance `ε_pos` around the mean positive similarity.
    #[config(default = 0.01)]
    pub pos_eps: f64,
    /// Tolerance `ε_neg` around the mean negative similarity.
    #[config(default = 0.01)]
    pub neg_eps: f64,
    /// The distance (PML's default: `CosineSimilarity`).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer of both terms (PML's default: `MeanReducer`).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl IntraPairVarianceLossConfig {
    /// Builds the loss.
    pub fn try_init(&self) -> Result<IntraPairVarianceLoss, PmlError> {
        for (name, v) in [("pos_eps", self.pos_eps), ("neg_eps", self.neg_eps)] {
            if !v.is_finite() {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "IntraPairVarianceLoss: must be finite",
                ));
            }
        }
        Ok(IntraPairVarianceLoss {
            pos_eps: self.pos_eps,
            neg_eps: self.neg_eps,
            slots: LossSlots::build(
                "IntraPairVarianceLoss",
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &TERMS,
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> IntraPairVarianceLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The intra-pair variance loss (Yu et al., "Deep Metric Learning with Tuplet Margin Loss",
/// ICCV 2019; PML's `IntraPairVarianceLoss`): with `μ_pos`, `μ_neg` the mean positive and
/// negative similarities,
///
/// `L_pos(p) = [(1 − ε_pos) μ_pos − s_p]₊²`, `L_neg(n) = [s_n − (1 + ε_neg) μ_neg]₊²`
///
/// (for a distance the inequalities are reversed), reduced as the terms `pos_loss` and
/// `neg_loss`.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct IntraPairVarianceLoss {
    pos_eps: f64,
    neg_eps: f64,
    slots: LossSlots,
}

/// `(1 − ε) μ − x` when increasing `x` is good, else `x − (1 + ε) μ`.
fn variance_with_eps<B: Backend>(
    pairs: Tensor<B, 1>,
    eps: f64,
    incentivize_increase: bool,
) -> Tensor<B, 1> {
    let mean = pairs.clone().mean();
    let k = pairs.dims()[0];
    if incentivize_increase {
        mean.mul_scalar(1.0 - eps).expand([k]) - pairs
    } else {
        pairs - mean.mul_scalar(1.0 + eps).expand([k])
    }
}

impl<B: Backend> MetricLoss<B> for IntraPairVarianceLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let inverted = Distance::<B>::is_inverted(&self.slots.distance);
        let terms = match pair_distances(&self.slots, input) {
            None => LossTerms::zeros(&["pos_loss", "neg_loss"]),
            Some(pairs) => {
                let pos = match pairs.pos {
                    Some(p) => {
                        let l = relu(variance_with_eps(p, self.pos_eps, inverted)).powi_scalar(2);
                        LossTerm::pos_pair("pos_loss", l, pairs.a1, pairs.p)
                    }
                    None => LossTerm::zero("pos_loss"),
                };
                let neg = match pairs.neg {
                    Some(n) => {
                        let l = relu(variance_with_eps(n, self.neg_eps, !inverted)).powi_scalar(2);
                        LossTerm::neg_pair("neg_loss", l, pairs.a2, pairs.n)
                    }
                    None => LossTerm::zero("neg_loss"),
                };
                LossTerms::new().with(pos).with(neg)
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
    use pml_core::IndicesTuple;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Cosine: s(0,1) = 1, s(0,2) = 0 (positive pairs given explicitly), no negatives.
        // μ_pos = 0.5, ε = 0: L = [0.5 − 1]₊² = 0 and [0.5 − 0]₊² = 0.25; mean 0.125.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let t = IndicesTuple::pairs_from_slices(&[0, 0], &[1, 2], &[], &[], &device);
        let loss = IntraPairVarianceLossConfig::new().with_pos_eps(0.0).init();
        let got = loss
            .forward(LossInput::unlabeled(x).with_indices(t))
            .into_scalar() as f64;
        assert!((got - 0.125).abs() < 1e-6, "{got}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = IntraPairVarianceLossConfig::new().init();
        crate::gradcheck::check_gradients(&loss, &[0, 0, 1, 1, 2, 2, 0, 1], 5, 16);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(
            &IntraPairVarianceLossConfig::new().init(),
            17,
        );
    }
}
