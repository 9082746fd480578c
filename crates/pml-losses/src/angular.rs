use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::{convert_to_pairs, pairwise_equal},
    math::{masked_logsumexp, normalize_rows},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{finite, require_labels, require_normalized_l2},
    regularizers::RegularizerConfig,
};

const NAME: &str = "AngularLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::PosPair)];

/// Configuration of [`AngularLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct AngularLossConfig {
    /// The angle `α` bounding the triangle's angle at the negative, in degrees.
    #[config(default = 40.0)]
    pub alpha: f64,
    /// The distance: must be `LpDistance(p=2, power=1, normalize_embeddings=True)`, PML's
    /// default.
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

impl AngularLossConfig {
    /// Builds the loss, refusing a non-finite `alpha`, a distance other than normalized
    /// `LpDistance(p=2, power=1)` (as PML's `assert_distance_type`) and invalid slots.
    pub fn try_init(&self) -> Result<AngularLoss, PmlError> {
        finite(NAME, "alpha", self.alpha)?;
        require_normalized_l2(&self.distance, Some(1.0), NAME)?;
        Ok(AngularLoss {
            alpha: self.alpha,
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
    pub fn init(&self) -> AngularLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The angular loss (Wang, Zhou, Wen, Liu & Lin, "Deep Metric Learning with Angular Loss",
/// ICCV 2017; PML's `AngularLoss`), in the N-pair form of the paper: for each positive pair
/// `(a, p)` (unit-normalized `x_a`, `x_p`) and every reference `x_n` whose label differs from
/// the anchor's,
///
/// `f_{a,p,n} = 4 tan²α · (x_a + x_p)ᵀ x_n − 2 (1 + tan²α) · x_aᵀ x_p`,
///
/// `L(a, p) = log(1 + Σ_n exp(f_{a,p,n}))` (0 for an anchor without negatives), term `loss`,
/// positive-pair reduction (mean by default). As in PML, `x_n` is the reference embedding as
/// given (not normalized), and the loss is zero without positive or without negative pairs.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, or with a reference set
/// without labels.
#[derive(Module, Clone, Debug)]
pub struct AngularLoss {
    alpha: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for AngularLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = require_labels(input, NAME);
        let ref_labels = match &input.reference {
            None => labels.clone(),
            Some(r) => r.labels.clone().unwrap_or_else(|| {
                panic!(
                    "{NAME}: ref_labels is required with ref_emb (shape {:?})",
                    r.embeddings.dims()
                )
            }),
        };
        let [a1, p, a2, _] = convert_to_pairs(input);
        let terms = if a1.dims()[0] == 0 || a2.dims()[0] == 0 {
            LossTerms::zeros(&["loss"])
        } else {
            let ref_emb = input.ref_embeddings();
            let anchors = normalize_rows(input.embeddings.clone().select(0, a1.clone()), 2.0);
            let positives = normalize_rows(ref_emb.clone().select(0, p.clone()), 2.0);
            let keep = pairwise_equal(&labels.select(0, a1.clone()), &ref_labels).bool_not();
            let sq_tan = self.alpha.to_radians().tan().powi(2);
            let ap_dot = (anchors.clone() * positives.clone()).sum_dim(1);
            let ap_ref = (anchors + positives).matmul(ref_emb.transpose());
            let f = ap_ref.mul_scalar(4.0 * sq_tan) - ap_dot.mul_scalar(2.0 * (1.0 + sq_tan));
            let k = a1.dims()[0];
            let losses = masked_logsumexp(f, Some(keep), true).reshape([k]);
            LossTerms::new().with(LossTerm::pos_pair("loss", losses, a1, p))
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
    use pml_core::tensor::float_vec;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // x0 = x1 = e1 (label 0), x2 = e2 (label 1); α = 45° so tan²α = 1.
        // Pair (0,1): f = 4 (x0 + x1)·x2 − 4 x0·x1 = 0 − 4 → log(1 + e^-4); pair (1,0) same.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = AngularLossConfig::new()
            .with_alpha(45.0)
            .init()
            .forward(LossInput::new(x, labels))
            .into_scalar() as f64;
        let want = (1.0 + (-4f64).exp()).ln();
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn no_negative_gives_a_zero_loss_with_a_graph() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[0.0, 1.0], [1.0, 0.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([3, 3], &device);
        let loss = AngularLossConfig::new()
            .init()
            .forward(LossInput::new(x.clone(), labels));
        assert_eq!(loss.clone().into_scalar(), 0.0);
        assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0; 4]);
    }

    #[test]
    fn other_distances_are_refused() {
        let err = AngularLossConfig::new()
            .with_distance(DistanceConfig::cosine())
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("requires the distance metric to be LpDistance"),
            "{err}"
        );
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::proptests::check_permutation_invariance(
            &AngularLossConfig::new().init(),
            &[0, 1, 2, 0, 1, 2, 0, 3, 1],
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let config = AngularLossConfig::new().with_alpha(35.0);
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
    }
}
