use burn::{
    config::Config,
    module::Module,
    tensor::{Tensor, activation::relu, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::matches_and_diffs,
    tensor::{argwhere_1d, mask_to_float},
};
use pml_distances::{DistanceConfig, LpDistanceConfig};
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::{convert_to_weights, refuse_reference, require_labels, require_normalized_l2},
    regularizers::RegularizerConfig,
};

const NAME: &str = "FastAPLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// Configuration of [`FastAPLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct FastAPLossConfig {
    /// Number of histogram bins over the distance range `[0, 2^power]`.
    #[config(default = 10)]
    pub num_bins: usize,
    /// The distance: must be `LpDistance` with `p = 2` and normalized embeddings (PML's default:
    /// `LpDistance(power=2)`).
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

impl FastAPLossConfig {
    /// Builds the loss, refusing `num_bins = 0`, a distance other than normalized
    /// `LpDistance(p=2)` (as PML's `assert_distance_type`) and invalid slots.
    pub fn try_init(&self) -> Result<FastAPLoss, PmlError> {
        if self.num_bins == 0 {
            return Err(PmlError::invalid_argument(
                "num_bins",
                0,
                "FastAPLoss: must be positive",
            ));
        }
        require_normalized_l2(&self.distance, None, NAME)?;
        let DistanceConfig::Lp(lp) = &self.distance else {
            unreachable!("checked above")
        };
        Ok(FastAPLoss {
            num_bins: self.num_bins,
            histogram_max: 2f64.powf(lp.power),
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
    pub fn init(&self) -> FastAPLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// FastAP (Cakir, He, Xia, Kulis & Sclaroff, "Deep Metric Learning to Rank", CVPR 2019; PML's
/// `FastAPLoss`): average precision of each query's ranking of the batch, relaxed with a soft
/// histogram of distances.
///
/// The range `[0, 2^power]` of the distances between unit vectors gets `num_bins + 1` edges
/// `c_k` with spacing `Δ`; each distance votes `[1 − |d_ij − c_k| / Δ]₊` for edge `k`. With
/// `h⁺_ik`, `h_ik` the votes of query `i`'s positives and of all its others, and `H⁺`, `H`
/// their cumulative sums over `k`,
///
/// `FastAP_i = (1 / N⁺_i) Σ_k h⁺_ik H⁺_ik / H_ik` (terms with `h⁺ H⁺ = 0` or `H = 0` skipped),
/// `L_i = (1 − FastAP_i) · w_i`,
///
/// for the queries with at least one positive (`N⁺_i` of them), where `w_i` is PML's miner
/// weight (`count / max count` in the indices tuple, or 1). Term `loss`, element reduction.
/// Memory is `O((num_bins + 1) · n²)`, one `[n, n]` histogram slice per edge.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, or with a reference set
/// (PML: "ref_emb is not supported for this loss function").
#[derive(Module, Clone, Debug)]
pub struct FastAPLoss {
    num_bins: usize,
    histogram_max: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for FastAPLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = require_labels(input, NAME);
        refuse_reference(input, NAME);
        let n = labels.dims()[0];
        let weights = convert_to_weights(input.indices_tuple.as_ref(), &input.embeddings, false);
        let dist = self.slots.distance_matrix(input);
        let (matches, diffs) = matches_and_diffs(&labels, None);
        let i_pos = mask_to_float(matches, &dist);
        let i_neg = mask_to_float(diffs, &dist);
        let n_pos = i_pos.clone().sum_dim(1).reshape([n]);
        let delta = self.histogram_max / self.num_bins as f64;
        let (pos_cols, neg_cols): (Vec<_>, Vec<_>) = (0..=self.num_bins)
            .map(|k| {
                let mid = self.histogram_max * k as f64 / self.num_bins as f64;
                let pulse = relu(
                    dist.clone()
                        .sub_scalar(mid)
                        .abs()
                        .div_scalar(delta)
                        .neg()
                        .add_scalar(1.0),
                );
                (
                    (pulse.clone() * i_pos.clone()).sum_dim(1),
                    (pulse * i_neg.clone()).sum_dim(1),
                )
            })
            .unzip();
        let pos_hist = Tensor::cat(pos_cols, 1);
        let neg_hist = Tensor::cat(neg_cols, 1);
        let total_pos = pos_hist.clone().cumsum(1);
        let total = (pos_hist.clone() + neg_hist).cumsum(1);
        let product = pos_hist * total_pos;
        let safe_h = product
            .clone()
            .greater_elem(0.0)
            .bool_and(total.clone().greater_elem(0.0));
        let unsafe_h = safe_h.clone().bool_not();
        let fast_ap = (product.mask_fill(unsafe_h.clone(), 0.0) / total.mask_fill(unsafe_h, 1.0))
            .sum_dim(1)
            .reshape([n]);
        // PML returns its zero loss when no (query, bin) term is usable at all.
        let any_h = safe_h.any().reshape([1]).expand([n]);
        let keep = argwhere_1d(n_pos.clone().greater_elem(0.0).bool_and(any_h));
        let terms = if keep.dims()[0] == 0 {
            LossTerms::zeros(&["loss"])
        } else {
            let ap = fast_ap.select(0, keep.clone()) / n_pos.select(0, keep.clone());
            let losses = ap.neg().add_scalar(1.0) * weights.select(0, keep.clone());
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

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Unit vectors e1, e1, e2 with labels 0, 0, 1; squared distances 0 (same) and 2;
        // 2 bins over [0, 4]: edges 0, 2, 4, Δ = 2. Query 0: its positive votes 1 at edge 0,
        // its negative 1 at edge 1 → h⁺ = (1, 0, 0), H⁺ = (1, 1, 1), H = (1, 2, 2):
        // FastAP = 1·1/1 = 1, loss 0. Same for query 1; query 2 has no positive.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let config = FastAPLossConfig::new().with_num_bins(2);
        let loss = config.init().forward(LossInput::new(x, labels.clone()));
        assert!(loss.into_scalar().abs() < 1e-6);
        // Labels 0, 1, 0: query 0's positive (e2) votes at edge 1, its negative at edge 0 →
        // h⁺ = (0, 1, 0), H⁺ = (0, 1, 1), H = (1, 2, 2): FastAP = 1·1/2. Query 2's positive
        // and negative both vote at edge 1: H = (0, 2, 2), FastAP = 1/2 too. Loss 1/2.
        let y = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let swapped = Tensor::<B, 1, Int>::from_ints([0, 1, 0], &device);
        let loss = config
            .init()
            .forward(LossInput::new(y, swapped))
            .into_scalar();
        assert!((loss - 0.5).abs() < 1e-6, "{loss}");
    }

    #[test]
    fn no_positive_gives_a_zero_loss_with_a_graph() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[0.0, 1.0], [1.0, 0.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
        let loss = FastAPLossConfig::new()
            .init()
            .forward(LossInput::new(x.clone(), labels));
        assert_eq!(loss.clone().into_scalar(), 0.0);
        assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0; 4]);
    }

    #[test]
    fn other_distances_are_refused() {
        assert!(
            FastAPLossConfig::new()
                .with_distance(DistanceConfig::cosine())
                .try_init()
                .is_err()
        );
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::proptests::check_permutation_invariance(
            &FastAPLossConfig::new().init(),
            &[0, 1, 2, 0, 1, 2, 0, 3, 1],
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // The histogram votes are piecewise linear in the distances; random inputs keep them
        // away from the kinks.
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        crate::gradcheck::check_gradients(&FastAPLossConfig::new().init(), &labels, 5, 1);
    }
}
