use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::convert_to_pairs,
    math::normalize_rows,
    tensor::{gather_pairs, mask_to_float},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{finite, require_cosine},
    regularizers::RegularizerConfig,
};

const NAME: &str = "ThresholdConsistentMarginLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::AlreadyReduced)];

/// Configuration of [`ThresholdConsistentMarginLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct ThresholdConsistentMarginLossConfig {
    /// Weight `λ⁺` of the positive part.
    #[config(default = 1.0)]
    pub lambda_plus: f64,
    /// Weight `λ⁻` of the negative part.
    #[config(default = 1.0)]
    pub lambda_minus: f64,
    /// Positive pairs less similar than `m⁺` are penalized.
    #[config(default = 0.9)]
    pub margin_plus: f64,
    /// Negative pairs more similar than `m⁻` are penalized.
    #[config(default = 0.5)]
    pub margin_minus: f64,
    /// The similarity: must be `CosineSimilarity` (PML's default and only choice).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `MeanReducer`; the loss is already reduced).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl ThresholdConsistentMarginLossConfig {
    /// Builds the loss, refusing non-finite values, a distance other than `CosineSimilarity`
    /// (as PML's `assert_distance_type`) and invalid slots.
    pub fn try_init(&self) -> Result<ThresholdConsistentMarginLoss, PmlError> {
        for (name, v) in [
            ("lambda_plus", self.lambda_plus),
            ("lambda_minus", self.lambda_minus),
            ("margin_plus", self.margin_plus),
            ("margin_minus", self.margin_minus),
        ] {
            finite(NAME, name, v)?;
        }
        require_cosine(&self.distance, NAME)?;
        Ok(ThresholdConsistentMarginLoss {
            lambda_plus: self.lambda_plus,
            lambda_minus: self.lambda_minus,
            margin_plus: self.margin_plus,
            margin_minus: self.margin_minus,
            slots: LossSlots::build(
                NAME,
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
    pub fn init(&self) -> ThresholdConsistentMarginLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The threshold-consistent margin (TCM) loss (Zhang, Wang, Chen et al., "Threshold-Consistent
/// Margin Loss for Open-World Deep Metric Learning", 2023, arXiv:2307.04047; PML's
/// `ThresholdConsistentMarginLoss`), a regularizer usually added to another loss.
///
/// With cosine similarities `s` of the positive pairs `P` and negative pairs `N` (from the
/// labels or the indices tuple),
///
/// `L = λ⁺ · Σ_{P: s ≤ m⁺} (m⁺ − s) / |{P: s ≤ m⁺}| + λ⁻ · Σ_{N: s ≥ m⁻} (s − m⁻) / |{N: s ≥ m⁻}|`,
///
/// each part 0 when its set is empty; one already-reduced term `loss`. As in PML, the
/// similarity is always the plain cosine (the `distance` slot's `power` is not used).
///
/// **Fixed PML defect:** PML 2.9 takes both members of every pair from `embeddings`, ignoring
/// `ref_emb` (its pair indices then point into the wrong tensor). Here the second member comes
/// from the reference set when one is given; without `ref_emb` the numbers are PML's.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct ThresholdConsistentMarginLoss {
    lambda_plus: f64,
    lambda_minus: f64,
    margin_plus: f64,
    margin_minus: f64,
    slots: LossSlots,
}

/// `Σ_{mask} v / |mask|`, 0 when the mask is empty.
fn masked_mean<B: Backend>(v: Tensor<B, 1>, active: Tensor<B, 1>) -> Tensor<B, 1> {
    let count = active.clone().sum();
    (v * active).sum() / count.clamp_min(1.0)
}

impl<B: Backend> MetricLoss<B> for ThresholdConsistentMarginLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let [a1, p, a2, n] = convert_to_pairs(input);
        let terms = if a1.dims()[0] == 0 && a2.dims()[0] == 0 {
            LossTerms::zeros(&["loss"])
        } else {
            let q = normalize_rows(input.embeddings.clone(), 2.0);
            let r = match &input.reference {
                Some(r) => normalize_rows(r.embeddings.clone(), 2.0),
                None => q.clone(),
            };
            let sims = q.matmul(r.transpose());
            let part = |rows: Tensor<B, 1, Int>, cols: Tensor<B, 1, Int>, positive: bool| {
                if rows.dims()[0] == 0 {
                    return None;
                }
                let s = gather_pairs(sims.clone(), rows, cols);
                let (violation, active) = if positive {
                    (
                        s.clone().neg().add_scalar(self.margin_plus),
                        s.lower_equal_elem(self.margin_plus),
                    )
                } else {
                    (
                        s.clone().sub_scalar(self.margin_minus),
                        s.greater_equal_elem(self.margin_minus),
                    )
                };
                let active = mask_to_float(active, &violation);
                Some(masked_mean(violation, active))
            };
            let pos = part(a1, p, true).map(|t| t.mul_scalar(self.lambda_plus));
            let neg = part(a2, n, false).map(|t| t.mul_scalar(self.lambda_minus));
            let loss = match (pos, neg) {
                (Some(a), Some(b)) => a + b,
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => unreachable!("one of the pair lists is non-empty"),
            };
            LossTerms::new().with(LossTerm::already_reduced("loss", loss))
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
    use pml_core::tensor::float_vec;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // x0 = e1, x1 = (0.6, 0.8) (label 0), x2 = (0.8, 0.6) (label 1).
        // Positive pairs (0,1), (1,0): s = 0.6 ≤ 0.9 → 0.3 each, mean 0.3.
        // Negative pairs: s(0,2) = 0.8 ≥ 0.5 → 0.3; s(1,2) = 0.96 → 0.46; mean of the four
        // (each pair in both orders) = 0.38. L = 0.3 + 0.38.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = ThresholdConsistentMarginLossConfig::new()
            .init()
            .forward(LossInput::new(x, labels))
            .into_scalar() as f64;
        assert!((loss - 0.68).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn the_reference_set_is_used() {
        let device = Default::default();
        // Query e1 (label 0); reference (0.6, 0.8) with label 0 and e2 with label 1.
        // Positive s = 0.6 → 0.3; negative s = 0 < 0.5 → 0. PML would read rows 0 and 1 of
        // the embeddings instead (and fail on index 1).
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0]], &device);
        let r = Tensor::<B, 2>::from_floats([[0.6, 0.8], [0.0, 1.0]], &device).require_grad();
        let input = LossInput::new(x, Tensor::<B, 1, Int>::from_ints([0], &device))
            .with_reference(r.clone(), Tensor::<B, 1, Int>::from_ints([0, 1], &device));
        let loss = ThresholdConsistentMarginLossConfig::new()
            .init()
            .forward(input);
        assert!((loss.clone().into_scalar() as f64 - 0.3).abs() < 1e-5);
        let g = float_vec(r.grad(&loss.backward()).unwrap());
        assert!(g[0].abs() > 0.0 && g[2] == 0.0 && g[3] == 0.0, "{g:?}");
    }

    #[test]
    fn no_pairs_give_a_zero_loss_with_a_graph() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[0.0, 1.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([0], &device);
        let loss = ThresholdConsistentMarginLossConfig::new()
            .init()
            .forward(LossInput::new(x.clone(), labels));
        assert_eq!(loss.clone().into_scalar(), 0.0);
        assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0; 2]);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::proptests::check_permutation_invariance(
            &ThresholdConsistentMarginLossConfig::new()
                .with_margin_plus(0.3)
                .with_margin_minus(-0.2)
                .init(),
            &[0, 1, 2, 0, 1, 2, 0, 3, 1],
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // Piecewise linear in the similarities (the active sets change only at the margins);
        // random inputs stay away from them.
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let config = ThresholdConsistentMarginLossConfig::new()
            .with_margin_plus(0.5)
            .with_margin_minus(-0.1);
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
    }
}
