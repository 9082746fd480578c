// `Tp` and `Tn` are PML's argument names (the Config derive generates `with_Tp`, `with_Tn`).
#![allow(non_snake_case)]

use burn::{
    config::Config,
    module::Module,
    tensor::{Bool, Int, Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType, labels::pairwise_equal,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{finite, refuse_indices_tuple, refuse_reference, require_labels},
    regularizers::RegularizerConfig,
};

const NAME: &str = "RankedListLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// Configuration of [`RankedListLoss`], with PML's argument names and defaults.
///
/// `margin` and `Tn` have no default in PML: they are `None` here and
/// [`try_init`](Self::try_init) refuses them until set
/// (`RankedListLossConfig::new().with_margin(Some(0.4)).with_Tn(Some(10.0))`).
#[derive(Config, Debug)]
pub struct RankedListLossConfig {
    /// Margin between the positive and the negative sets (required).
    pub margin: Option<f64>,
    /// Temperature of the negative-pair weights (required).
    pub Tn: Option<f64>,
    /// Weight of the negative part, in `[0, 1]` (the positive part gets `1 − imbalance`).
    #[config(default = 0.5)]
    pub imbalance: f64,
    /// The boundary of the negative set; `None` uses `1 + margin / 2`.
    pub alpha: Option<f64>,
    /// Temperature of the positive-pair weights.
    #[config(default = 0.0)]
    pub Tp: f64,
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

impl RankedListLossConfig {
    /// Builds the loss, refusing a missing `margin` or `Tn`, non-finite values and an
    /// `imbalance` outside `[0, 1]` (PML's assertion).
    pub fn try_init(&self) -> Result<RankedListLoss, PmlError> {
        let required = |name: &str, v: Option<f64>| {
            v.ok_or_else(|| {
                PmlError::invalid_argument(name, "None", format!("{NAME}: {name} is required"))
            })
        };
        let margin = required("margin", self.margin)?;
        let tn = required("Tn", self.Tn)?;
        finite(NAME, "margin", margin)?;
        finite(NAME, "Tn", tn)?;
        finite(NAME, "Tp", self.Tp)?;
        if !(0.0..=1.0).contains(&self.imbalance) {
            return Err(PmlError::invalid_argument(
                "imbalance",
                self.imbalance,
                "RankedListLoss: imbalance must be between 0 and 1",
            ));
        }
        let alpha = self.alpha.unwrap_or(1.0 + margin / 2.0);
        finite(NAME, "alpha", alpha)?;
        Ok(RankedListLoss {
            margin,
            imbalance: self.imbalance,
            alpha,
            tp: self.Tp,
            tn,
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
    pub fn init(&self) -> RankedListLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The ranked list loss (Wang, Hua, Kodirov, Hu, Garnier & Robertson, "Ranked List Loss for
/// Deep Metric Learning", CVPR 2019; PML's `RankedListLoss`; the defaults give RLL-Simpler).
///
/// For each query `i`, the positives farther than `α − m` and the negatives closer than `α`
/// (with nonzero distance) are penalized with weights
/// `w⁺_ij = exp(T_p (d_ij − (α − m)))`, `w⁻_ij = exp(T_n (α − d_ij))`:
///
/// `L_P(i) = Σ_j w⁺_ij (d_ij − (α − m)) / (Σ_j w⁺_ij + n·10⁻⁵)`,
/// `L_N(i) = Σ_j w⁻_ij (α − d_ij) / (Σ_j w⁻_ij + n·10⁻⁵)`,
/// `L_i = (1 − imbalance) L_P(i) + imbalance · L_N(i)`,
///
/// one term per query (`loss`, element reduction). As in PML the weights are not detached.
/// PML warns that `Tp` or `Tn` above 5 may overflow; this port masks the exponent before
/// `exp`, so unused entries never overflow.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, or with an indices tuple or
/// a reference set (neither is supported, as in PML).
#[derive(Module, Clone, Debug)]
pub struct RankedListLoss {
    margin: f64,
    imbalance: f64,
    alpha: f64,
    tp: f64,
    tn: f64,
    slots: LossSlots,
}

/// `Σ_j w_ij v_ij / (Σ_j w_ij + n·10⁻⁵)` with `w = exp(t · v)` on `mask` and 0 elsewhere.
fn weighted_mean<B: Backend>(v: Tensor<B, 2>, mask: Tensor<B, 2, Bool>, t: f64) -> Tensor<B, 1> {
    let [n, _] = v.dims();
    let off = mask.clone().bool_not();
    let w = v
        .clone()
        .mask_fill(off.clone(), 0.0)
        .mul_scalar(t)
        .exp()
        .mask_fill(off, 0.0);
    let num = (w.clone() * v).sum_dim(1);
    let den = w.sum_dim(1).add_scalar(n as f64 * 1e-5);
    (num / den).reshape([n])
}

impl<B: Backend> MetricLoss<B> for RankedListLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = require_labels(input, NAME);
        refuse_reference(input, NAME);
        refuse_indices_tuple(input, NAME);
        let n = labels.dims()[0];
        let device = input.embeddings.device();
        // `diag_mask` is false on the diagonal.
        let off_diagonal = Tensor::<B, 2, Bool>::diag_mask([n, n], 0, &device);
        let mat = self
            .slots
            .distance_matrix(input)
            .mask_fill(off_diagonal.clone().bool_not(), 0.0);
        let same = pairwise_equal(&labels, &labels);
        let positive = mat.clone().greater_elem(0.0);
        let neg_mask = same
            .clone()
            .bool_not()
            .bool_and(mat.clone().lower_elem(self.alpha))
            .bool_and(positive.clone());
        let boundary = self.alpha - self.margin;
        let pos_mask = same
            .bool_and(off_diagonal)
            .bool_and(mat.clone().greater_elem(boundary))
            .bool_and(positive);
        let loss_p = weighted_mean(mat.clone().sub_scalar(boundary), pos_mask, self.tp);
        let loss_n = weighted_mean(mat.neg().add_scalar(self.alpha), neg_mask, self.tn);
        let losses = loss_p.mul_scalar(1.0 - self.imbalance) + loss_n.mul_scalar(self.imbalance);
        let indices = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
        let terms = LossTerms::new().with(LossTerm::element("loss", losses, indices));
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
    use pml_distances::LpDistanceConfig;

    type B = Autodiff<NdArray>;

    fn config() -> RankedListLossConfig {
        RankedListLossConfig::new()
            .with_margin(Some(0.5))
            .with_Tn(Some(1.0))
    }

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Points 0, 1, 1.2 on a line (raw distances), labels 0, 0, 1; margin 0.5, α = 1.25,
        // Tp = 0, Tn = 0 (all weights 1), imbalance 0.5, n = 3.
        // Query 0: positive 1 at d = 1 > 0.75 → L_P = 0.25 / (1 + 3e-5); negative at 1.2 < 1.25
        //   → L_N = 0.05 / (1 + 3e-5).
        // Query 1: positive at 1 → same L_P; negative at 0.2 → L_N = 1.05 / (1 + 3e-5).
        // Query 2: no positive → L_P = 0; negatives at 1.2 and 0.2 → (0.05 + 1.05) / (2 + 3e-5).
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.0], [1.2]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = config()
            .with_Tn(Some(0.0))
            .with_distance(DistanceConfig::Lp(
                LpDistanceConfig::new().with_normalize_embeddings(false),
            ))
            .init()
            .forward(LossInput::new(x, labels))
            .into_scalar() as f64;
        let one = 1.0 + 3e-5;
        let q0 = 0.5 * (0.25 / one) + 0.5 * (0.05 / one);
        let q1 = 0.5 * (0.25 / one) + 0.5 * (1.05 / one);
        let q2 = 0.5 * (1.1 / (2.0 + 3e-5));
        let want = (q0 + q1 + q2) / 3.0;
        assert!((loss - want).abs() < 1e-5, "{loss} vs {want}");
    }

    #[test]
    fn margin_and_tn_are_required() {
        let err = RankedListLossConfig::new()
            .with_Tn(Some(1.0))
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("margin is required"), "{err}");
        let err = config()
            .with_imbalance(1.5)
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("imbalance must be between 0 and 1"), "{err}");
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::proptests::check_permutation_invariance(
            &config().with_Tp(0.5).init(),
            &[0, 1, 2, 0, 1, 2, 0, 3, 1],
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        // Normalized distances lie in [0, 2]: α = 1.25 and α − m = 0.75 split them.
        let c = config().with_Tp(0.7).with_Tn(Some(2.0));
        crate::gradcheck::check_gradients(&c.init(), &labels, 5, 1);
    }
}
