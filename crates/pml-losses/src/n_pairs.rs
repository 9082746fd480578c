use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::convert_to_pairs,
    tensor::{int_tensor, int_vec},
};
use pml_distances::{DistanceConfig, DotProductSimilarityConfig};
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{cross_entropy_rows, refuse_reference, require_labels},
    regularizers::RegularizerConfig,
};

const NAME: &str = "NPairsLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// Configuration of [`NPairsLoss`], with PML's argument names and defaults (the loss has no
/// hyperparameter of its own).
#[derive(Config, Debug)]
pub struct NPairsLossConfig {
    /// The similarity (PML's default: `DotProductSimilarity`, normalized embeddings).
    #[config(default = "DistanceConfig::DotProduct(DotProductSimilarityConfig::new())")]
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

impl NPairsLossConfig {
    /// Builds the loss, refusing invalid slots.
    pub fn try_init(&self) -> Result<NPairsLoss, PmlError> {
        Ok(NPairsLoss {
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
    pub fn init(&self) -> NPairsLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The N-pair loss (Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
/// Objective", NeurIPS 2016; PML's `NPairsLoss`).
///
/// One positive pair `(aₖ, pₖ)` is kept per label (the first one, in the order of the pairs,
/// for each label in increasing order); with `S[k, l] = s(aₖ, p_l)` (negated for distances),
/// each anchor's loss is the cross entropy of picking its own positive among all the kept
/// positives:
///
/// `L_k = −log( exp(S[k, k]) / Σ_l exp(S[k, l]) )`,
///
/// returned per anchor (term `loss`, element reduction, indexed by the anchors). Pairs come from
/// the labels or from an indices tuple (the positive pairs of it).
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, or with a reference set
/// (PML: "ref_emb is not supported for this loss function").
#[derive(Module, Clone, Debug)]
pub struct NPairsLoss {
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for NPairsLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = require_labels(input, NAME);
        refuse_reference(input, NAME);
        let [a1, p, _, _] = convert_to_pairs(input);
        // PML's `convert_to_pos_pairs_with_unique_labels`: np.unique(labels[a], return_index)
        // keeps the first pair of each label, in increasing label order. The pair list is
        // already on the host side of an argwhere; this reads its labels back once.
        let pair_labels = if a1.dims()[0] == 0 {
            Vec::new()
        } else {
            int_vec(labels.select(0, a1.clone()))
        };
        let mut firsts: Vec<(i64, i64)> = Vec::new();
        for (k, &l) in pair_labels.iter().enumerate() {
            if !firsts.iter().any(|&(seen, _)| seen == l) {
                firsts.push((l, k as i64));
            }
        }
        firsts.sort_unstable();
        let terms = if firsts.is_empty() {
            LossTerms::zeros(&["loss"])
        } else {
            let keep: Vec<i64> = firsts.iter().map(|&(_, k)| k).collect();
            let device = input.embeddings.device();
            let keep = int_tensor::<B>(&keep, &device);
            let anchors = a1.select(0, keep.clone());
            let positives = p.select(0, keep);
            let d = &self.slots.distance;
            let mut sim = d.forward(
                input.embeddings.clone().select(0, anchors.clone()),
                Some(input.embeddings.clone().select(0, positives)),
            );
            if !Distance::<B>::is_inverted(d) {
                sim = sim.neg();
            }
            let k = firsts.len() as i64;
            let targets = Tensor::<B, 1, burn::tensor::Int>::arange(0..k, &device);
            let losses = cross_entropy_rows(sim, targets);
            LossTerms::new().with(LossTerm::element("loss", losses, anchors))
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

    fn raw() -> NPairsLossConfig {
        NPairsLossConfig::new().with_distance(DistanceConfig::DotProduct(
            DotProductSimilarityConfig::new().with_normalize_embeddings(false),
        ))
    }

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Labels 0,0,1,1: kept pairs (0,1) and (2,3). S = [[x0·x1, x0·x3], [x2·x1, x2·x3]]
        // = [[1, 0], [0, 1]]; each row loses log(1 + e^-1)... = log(e + 1) − 1.
        let x =
            Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1, 1], &device);
        let loss = raw()
            .init()
            .forward(LossInput::new(x, labels))
            .into_scalar() as f64;
        let want = (1f64.exp() + 1.0).ln() - 1.0;
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }

    #[test]
    fn no_positive_pair_gives_a_zero_loss_with_a_graph() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[0.0, 1.0], [1.0, 0.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
        let loss = NPairsLossConfig::new()
            .init()
            .forward(LossInput::new(x.clone(), labels));
        assert_eq!(loss.clone().into_scalar(), 0.0);
        assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0; 4]);
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        // PML keeps the first positive pair of each label, so a permutation that reorders the
        // samples of a label picks other pairs: permute while keeping each label's order.
        let labels = [0, 1, 2, 0, 1, 2, 0, 3, 1];
        let perm = crate::proptests::shuffled_keeping_label_order(&labels, 3);
        crate::proptests::check_permutation(&NPairsLossConfig::new().init(), &labels, &perm);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        crate::gradcheck::check_gradients(&NPairsLossConfig::new().init(), &labels, 5, 1);
        crate::gradcheck::check_gradients(&raw().init(), &labels, 5, 2);
    }
}
