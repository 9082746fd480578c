use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, activation::softmax, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::pairwise_equal,
    tensor::{argwhere_1d, diagonal, mask_to_float},
};
use pml_distances::{DistanceConfig, LpDistanceConfig};
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{convert_to_weights, finite, require_labels},
    regularizers::RegularizerConfig,
};

const NAME: &str = "NCALoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// Configuration of [`NCALoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct NCALossConfig {
    /// Multiplies the (negated) distances before the softmax.
    #[config(default = 1.0)]
    pub softmax_scale: f64,
    /// The distance (PML's default: `LpDistance(power=2)`, normalized embeddings).
    #[config(default = "DistanceConfig::Lp(LpDistanceConfig::new().with_power(2.0))")]
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

impl NCALossConfig {
    /// Builds the loss, refusing a non-finite `softmax_scale` and invalid slots.
    pub fn try_init(&self) -> Result<NCALoss, PmlError> {
        finite(NAME, "softmax_scale", self.softmax_scale)?;
        Ok(NCALoss {
            softmax_scale: self.softmax_scale,
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
    pub fn init(&self) -> NCALoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Neighbourhood components analysis (Goldberger, Roweis, Hinton & Salakhutdinov,
/// "Neighbourhood Components Analysis", NeurIPS 2004; PML's `NCALoss`).
///
/// With `p_ij = softmax_j(−scale · d(x_i, y_j))` over the reference set (similarities are not
/// negated; without a reference set the batch is its own reference and `j = i` is left out),
/// each query loses
///
/// `L_i = −log Σ_{j: y_j = y_i} p_ij`, times PML's miner weight of `i`
///
/// (`count / max count` of its occurrences in the indices tuple, or 1 without one). Queries
/// whose probability sum is exactly zero (no same-label reference) are dropped, as in PML. Term
/// `loss`, element reduction; a batch of at most one embedding gives the zero loss.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, or with a reference set
/// without labels.
#[derive(Module, Clone, Debug)]
pub struct NCALoss {
    softmax_scale: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for NCALoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let n = input.embeddings.dims()[0];
        if n <= 1 {
            return self
                .slots
                .with_regularization(LossTerms::zeros(&["loss"]), input);
        }
        let labels = require_labels(input, NAME);
        let ref_labels = input.reference.as_ref().map(|r| {
            r.labels.clone().unwrap_or_else(|| {
                panic!(
                    "{NAME}: ref_labels is required with ref_emb (shape {:?})",
                    r.embeddings.dims()
                )
            })
        });
        let weights = convert_to_weights(
            input.indices_tuple.as_ref(),
            &input.embeddings,
            input.reference.is_some(),
        );
        let d = &self.slots.distance;
        let mut mat = self.slots.distance_matrix(input);
        if !Distance::<B>::is_inverted(d) {
            mat = mat.neg();
        }
        mat = mat.mul_scalar(self.softmax_scale);
        if input.reference.is_none() {
            let diagonal = diagonal([n, n], 0, &mat.device());
            mat = mat.mask_fill(diagonal, f64::NEG_INFINITY);
        }
        let same = pairwise_equal(&labels, ref_labels.as_ref().unwrap_or(&labels));
        let same = mask_to_float(same, &mat);
        let prob = (softmax(mat, 1) * same).sum_dim(1).reshape([n]);
        let keep = argwhere_1d(prob.clone().not_equal_elem(0.0));
        let terms = if keep.dims()[0] == 0 {
            LossTerms::zeros(&["loss"])
        } else {
            let losses = prob.select(0, keep.clone()).log().neg() * weights.select(0, keep.clone());
            LossTerms::new().with(LossTerm::element("loss", losses, keep))
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

    fn raw() -> NCALossConfig {
        NCALossConfig::new().with_distance(DistanceConfig::Lp(
            LpDistanceConfig::new()
                .with_normalize_embeddings(false)
                .with_power(2.0),
        ))
    }

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Points 0, 1, 3 on a line, labels 0, 0, 1. Squared distances: d01 = 1, d02 = 9, d12 = 4.
        // Point 0: p = e^-1 / (e^-1 + e^-9); point 1: e^-1 / (e^-1 + e^-4); point 2 has no
        // same-label neighbour: dropped. Mean of the two.
        let x = Tensor::<B, 2>::from_floats([[0.0], [1.0], [3.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = raw()
            .init()
            .forward(LossInput::new(x, labels))
            .into_scalar() as f64;
        let l0 = (1.0 + (-8f64).exp()).ln();
        let l1 = (1.0 + (-3f64).exp()).ln();
        let want = (l0 + l1) / 2.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn a_single_embedding_gives_a_zero_loss_with_a_graph() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[0.5, 1.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([0], &device);
        let loss = NCALossConfig::new()
            .init()
            .forward(LossInput::new(x.clone(), labels));
        assert_eq!(loss.clone().into_scalar(), 0.0);
        assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0; 2]);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::proptests::check_permutation_invariance(
            &NCALossConfig::new().with_softmax_scale(2.0).init(),
            &[0, 1, 2, 0, 1, 2, 0, 3, 1],
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        crate::gradcheck::check_gradients(&NCALossConfig::new().init(), &labels, 5, 1);
        crate::gradcheck::check_gradients(&raw().with_softmax_scale(0.5).init(), &labels, 5, 2);
    }
}
