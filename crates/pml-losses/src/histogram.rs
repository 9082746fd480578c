use burn::{
    config::Config,
    module::Module,
    tensor::{Bool, IndexingUpdateOp, Int, Tensor, backend::Backend},
};
use pml_core::{
    IndicesTuple, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::{matches_and_diffs, pairs_to_triplets},
    tensor::{argwhere_2d, gather_pairs},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{base::LossSlots, common::refuse_reference, regularizers::RegularizerConfig};

const NAME: &str = "HistogramLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::AlreadyReduced)];

/// Configuration of [`HistogramLoss`], with PML's argument names and defaults: give `n_bins`
/// or `delta = 2 / n_bins` (both `None`: 100 bins).
#[derive(Config, Debug)]
pub struct HistogramLossConfig {
    /// Number of bins over the similarity range `[-1, 1]`.
    pub n_bins: Option<usize>,
    /// Width of a bin; must equal `2 / n_bins` when both are given.
    pub delta: Option<f64>,
    /// The similarity (PML's default: `CosineSimilarity`).
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

impl HistogramLossConfig {
    /// Builds the loss, refusing `n_bins = 0`, a non-positive `delta`, and a `delta` other than
    /// `2 / n_bins` when both are given (PML's assertion).
    pub fn try_init(&self) -> Result<HistogramLoss, PmlError> {
        if self.n_bins == Some(0) {
            return Err(PmlError::invalid_argument(
                "n_bins",
                0,
                "HistogramLoss: must be positive",
            ));
        }
        if let Some(delta) = self.delta
            && !(delta.is_finite() && delta > 0.0)
        {
            return Err(PmlError::invalid_argument(
                "delta",
                delta,
                "HistogramLoss: must be positive and finite",
            ));
        }
        let delta = match (self.n_bins, self.delta) {
            (Some(n), Some(delta)) => {
                if delta != 2.0 / n as f64 {
                    return Err(PmlError::invalid_argument(
                        "delta",
                        delta,
                        format!(
                            "HistogramLoss: delta and n_bins must satisfy delta = 2/n_bins \
                             (n_bins = {n})"
                        ),
                    ));
                }
                delta
            }
            (None, Some(delta)) => delta,
            (Some(n), None) => 2.0 / n as f64,
            (None, None) => 2.0 / 100.0,
        };
        Ok(HistogramLoss {
            delta,
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
    pub fn init(&self) -> HistogramLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The histogram loss (Ustinova & Lempitsky, "Learning Deep Embeddings with Histogram Loss",
/// NeurIPS 2016; PML's `HistogramLoss`).
///
/// The similarities of the positive pairs and of the negative pairs (each unordered pair once,
/// taken from all triplets, or from the indices tuple) are spread over the nodes
/// `t_r = −1 + r·Δ` by linear interpolation, giving densities `p⁺`, `p⁻`; the loss is the
/// probability that a random negative pair is more similar than a random positive one:
///
/// `L = Σ_r p⁻_r Φ⁺_r`, with `Φ⁺_r = Σ_{q ≤ r} p⁺_q`,
///
/// a single already-reduced term `loss`; zero without triplets. Unlike PML, a similarity of
/// exactly 1 does not index past the last node (PML would fail with an index error): the top
/// bin is clamped, which gives the same interpolated density.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]` (or an indices tuple)
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels and indices tuple, or with a
/// reference set (PML: "ref_emb is not supported for this loss function").
#[derive(Module, Clone, Debug)]
pub struct HistogramLoss {
    delta: f64,
    slots: LossSlots,
}

impl HistogramLoss {
    /// PML's `compute_density`: the interpolated density of `values` over the nodes, `[k]`.
    fn density<B: Backend>(&self, values: Tensor<B, 1>) -> Tensor<B, 1> {
        let size = values.dims()[0];
        let nodes = (1.0 + 2.0 / self.delta).round() as usize;
        let bin = values
            .clone()
            .detach()
            .add_scalar(1.0)
            .div_scalar(self.delta)
            .floor()
            .clamp(0.0, (nodes - 2) as f64);
        let upper = (values.clone().add_scalar(1.0) - bin.clone().mul_scalar(self.delta))
            .div_scalar(self.delta);
        let lower = (bin
            .clone()
            .add_scalar(1.0)
            .mul_scalar(self.delta)
            .sub_scalar(1.0)
            - values)
            .div_scalar(self.delta);
        let bin: Tensor<B, 1, Int> = bin.int();
        let zeros = Tensor::<B, 1>::zeros([nodes], (&upper.device(), upper.dtype()));
        zeros
            .scatter(0, bin.clone().add_scalar(1), upper, IndexingUpdateOp::Add)
            .scatter(0, bin, lower, IndexingUpdateOp::Add)
            .div_scalar(size as f64)
    }
}

/// `[n, n]` mask of the unordered pairs `{rows[k], cols[k]}`, kept on and above the diagonal.
fn unordered_pair_mask<B: Backend>(
    rows: Tensor<B, 1, Int>,
    cols: Tensor<B, 1, Int>,
    n: usize,
    like: &Tensor<B, 2>,
) -> Tensor<B, 2, Bool> {
    let k = rows.dims()[0];
    let flat = rows.mul_scalar(n as i64).add(cols);
    let ones = Tensor::<B, 1>::ones([k], (&like.device(), like.dtype()));
    let zeros = Tensor::<B, 1>::zeros([n * n], (&like.device(), like.dtype()));
    let counts = zeros
        .scatter(0, flat, ones, IndexingUpdateOp::Add)
        .reshape([n, n]);
    let present = counts.clone().greater_elem(0.0);
    let mirrored = counts.transpose().greater_elem(0.0);
    on_or_above_diagonal(present.bool_or(mirrored))
}

fn on_or_above_diagonal<B: Backend>(mask: Tensor<B, 2, Bool>) -> Tensor<B, 2, Bool> {
    let n = mask.dims()[0];
    // `triu_mask` is true strictly below the diagonal.
    let below = Tensor::<B, 2, Bool>::triu_mask([n, n], 0, &mask.device());
    mask.bool_and(below.bool_not())
}

impl<B: Backend> MetricLoss<B> for HistogramLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        refuse_reference(input, NAME);
        let n = input.embeddings.dims()[0];
        let (pos_mask, neg_mask) = match &input.indices_tuple {
            Some(tuple) => {
                let triplets = match tuple {
                    IndicesTuple::Pairs { a1, p, a2, n } => {
                        pairs_to_triplets(a1.clone(), p.clone(), a2.clone(), n.clone())
                    }
                    t => t.clone(),
                };
                let IndicesTuple::Triplets { a, p, n: neg } = triplets else {
                    unreachable!("converted to triplets above")
                };
                (
                    unordered_pair_mask(a.clone(), p, n, &input.embeddings),
                    unordered_pair_mask(a, neg, n, &input.embeddings),
                )
            }
            None => {
                // Every triplet (a, p, n): its pairs are the positive pairs of anchors with a
                // negative and the negative pairs of anchors with a positive.
                let (labels, _) = input.tuple_labels();
                let (matches, diffs) = matches_and_diffs(&labels, None);
                let has_pos = matches.clone().any_dim(1).expand([n, n]);
                let has_neg = diffs.clone().any_dim(1).expand([n, n]);
                let pos = matches.bool_and(has_neg);
                let neg = diffs.bool_and(has_pos);
                (
                    on_or_above_diagonal(pos.clone().bool_or(pos.transpose())),
                    on_or_above_diagonal(neg.clone().bool_or(neg.transpose())),
                )
            }
        };
        let [pr, pc] = argwhere_2d(pos_mask);
        let [nr, nc] = argwhere_2d(neg_mask);
        let terms = if pr.dims()[0] == 0 || nr.dims()[0] == 0 {
            LossTerms::zeros(&["loss"])
        } else {
            let mat = self.slots.distance_matrix(input);
            let p_pos = self.density(gather_pairs(mat.clone(), pr, pc));
            let p_neg = self.density(gather_pairs(mat, nr, nc));
            let loss = (p_neg * p_pos.cumsum(0)).sum();
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
        // x0 = x1 = e1 (label 0), x2 = (cos θ, sin θ) with cos θ = 0.5 (label 1); 4 bins,
        // Δ = 0.5, nodes −1, −0.5, 0, 0.5, 1. Positive pair {0,1}: similarity 1 → node 4.
        // Negative pairs {0,2}, {1,2}: 0.5 → node 3. p⁺ = e₄, Φ⁺ = e₄; p⁻ = e₃ → L = 0.
        // Swap the roles (labels 0, 1, 0): positive {0,2} at 0.5 → Φ⁺ = (0,0,0,1,1);
        // negatives {0,1} (1 → node 4) and {1,2} (0.5 → node 3): p⁻ = (0,0,0,½,½) → L = 1.
        let s = 3f32.sqrt() / 2.0;
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.5, s]], &device);
        let config = HistogramLossConfig::new().with_n_bins(Some(4));
        let l = |labels: [i64; 3]| {
            let labels = Tensor::<B, 1, Int>::from_ints(labels, &device);
            config
                .init()
                .forward(LossInput::new(x.clone(), labels))
                .into_scalar()
        };
        assert!(l([0, 0, 1]).abs() < 1e-5);
        assert!((l([0, 1, 0]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn no_triplet_gives_a_zero_loss_with_a_graph() {
        let device = Default::default();
        let x = Tensor::<B, 2>::from_floats([[0.0, 1.0], [1.0, 0.0]], &device).require_grad();
        let labels = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
        let loss = HistogramLossConfig::new()
            .init()
            .forward(LossInput::new(x.clone(), labels));
        assert_eq!(loss.clone().into_scalar(), 0.0);
        assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0; 4]);
    }

    #[test]
    fn delta_must_match_n_bins() {
        let err = HistogramLossConfig::new()
            .with_n_bins(Some(10))
            .with_delta(Some(0.3))
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("delta = 2/n_bins"), "{err}");
        assert!(
            HistogramLossConfig::new()
                .with_n_bins(Some(10))
                .with_delta(Some(0.2))
                .try_init()
                .is_ok()
        );
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::proptests::check_permutation_invariance(
            &HistogramLossConfig::new().with_n_bins(Some(10)).init(),
            &[0, 1, 2, 0, 1, 2, 0, 3, 1],
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // The densities are piecewise linear in the similarities; random inputs stay away
        // from the bin edges.
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let config = HistogramLossConfig::new().with_n_bins(Some(10));
        crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
    }
}
