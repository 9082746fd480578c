use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    labels::matches_and_diffs,
    math::scalar_div,
    tensor::{diagonal, mask_to_float},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;
use serde::{Deserialize, Serialize};

use crate::{
    base::LossSlots,
    common::{finite, refuse_indices_tuple, refuse_reference, require_cosine, require_labels},
    regularizers::RegularizerConfig,
    soft_rank::{SoftRank, attach_row_gradient},
};

const NAME: &str = "PNPLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::AlreadyReduced)];

/// The rank function `f` of [`PNPLoss`] (PML's `variant` strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PnpVariant {
    /// `f(R) = R`: the plain number of negatives ranked before the positive.
    O,
    /// `f(R) = log(1 + R)` (decreasing derivative, "Ds").
    Ds,
    /// `f(R) = 1 / (1 + R)^α`, and the loss is `1 − mean` ("Dq").
    Dq,
    /// `f(R) = (1 + R) log(1 + R)` (increasing derivative, "Iu").
    Iu,
    /// `f(R) = (bR − log(1 + bR)) / b²` ("Ib").
    Ib,
}

/// Configuration of [`PNPLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct PNPLossConfig {
    /// `b` of the `Ib` variant.
    #[config(default = 2.0)]
    pub b: f64,
    /// `α` of the `Dq` variant.
    #[config(default = 1.0)]
    pub alpha: f64,
    /// Temperature of the sigmoid that relaxes "ranked before".
    #[config(default = 0.01)]
    pub anneal: f64,
    /// The rank function: `"O"`, `"Ds"`, `"Dq"`, `"Iu"` or `"Ib"`.
    #[config(default = "PnpVariant::O")]
    pub variant: PnpVariant,
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

impl PNPLossConfig {
    /// Builds the loss, refusing non-finite values, a non-positive `anneal` or `b`, a distance
    /// other than `CosineSimilarity` (as PML's `assert_distance_type`) and invalid slots.
    pub fn try_init(&self) -> Result<PNPLoss, PmlError> {
        finite(NAME, "alpha", self.alpha)?;
        for (name, v) in [("anneal", self.anneal), ("b", self.b)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "PNPLoss: must be positive and finite",
                ));
            }
        }
        require_cosine(&self.distance, NAME)?;
        Ok(PNPLoss {
            b: self.b,
            alpha: self.alpha,
            anneal: self.anneal,
            variant: self.variant,
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
    pub fn init(&self) -> PNPLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The PNP loss (Li, Zhuo et al., "Rethinking the Optimization of Average Precision: Only
/// Penalizing Negative Instances before Positive Ones is Enough", AAAI 2022; PML's `PNPLoss`).
///
/// For a query `a`, its positives `b ∈ P(a)` (same label, and `a` itself when it has another
/// positive) and the relaxed number of negatives ranked before `b`,
///
/// `R(a, b) = Σ_{c: y_c ≠ y_b} σ((s_ac − s_ab) / anneal)` (argument clamped to `[−50, 50]`),
///
/// the loss is `L = mean_a (1/|P(a)|) Σ_{b ∈ P(a)} f(R(a, b))` over the queries with a positive,
/// with `f` chosen by `variant` (see [`PnpVariant`]; `Dq` returns `1 − L`). One
/// already-reduced term `loss`; zero when no query has a positive.
///
/// The `[n, n, n]` sigmoid terms are computed in chunks of anchors, forward and backward (see
/// the `soft_rank` module), so memory stays bounded for large batches.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], without labels, or with an indices tuple or
/// a reference set (neither is supported, as in PML).
#[derive(Module, Clone, Debug)]
pub struct PNPLoss {
    b: f64,
    alpha: f64,
    anneal: f64,
    variant: PnpVariant,
    slots: LossSlots,
}

impl PNPLoss {
    /// `f(R)` and `f'(R)`.
    fn rank_function<B: Backend>(&self, r: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let one_plus = r.clone().add_scalar(1.0);
        match self.variant {
            PnpVariant::O => (r.clone(), r.ones_like()),
            PnpVariant::Ds => (one_plus.clone().log(), scalar_div(1.0, one_plus)),
            PnpVariant::Dq => (
                one_plus.clone().powf_scalar(-self.alpha),
                one_plus
                    .powf_scalar(-self.alpha - 1.0)
                    .mul_scalar(-self.alpha),
            ),
            PnpVariant::Iu => {
                let log = one_plus.clone().log();
                (one_plus * log.clone(), log.add_scalar(1.0))
            }
            PnpVariant::Ib => {
                let b = self.b;
                let br1 = r.clone().mul_scalar(b).add_scalar(1.0);
                (
                    (r.clone().mul_scalar(b) - br1.clone().log()).div_scalar(b * b),
                    r / br1,
                )
            }
        }
    }
}

impl<B: Backend> MetricLoss<B> for PNPLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        refuse_indices_tuple(input, NAME);
        let labels = require_labels(input, NAME);
        refuse_reference(input, NAME);
        let n = labels.dims()[0];
        let device = input.embeddings.device();
        let s = self.slots.distance_matrix(input);
        let (matches, diffs) = matches_and_diffs(&labels, None);
        // PML's I_pos: the positives, plus the query itself when it has a positive.
        let has_pos = matches.clone().any_dim(1);
        let diagonal = diagonal([n, n], 0, &device);
        let i_pos = mask_to_float(
            matches.bool_or(diagonal.bool_and(has_pos.clone().expand([n, n]))),
            &s,
        );
        let i_neg = mask_to_float(diffs, &s).reshape([1, n, n]);
        let columns = Tensor::<B, 1, Int>::arange(0..n as i64, &device).reshape([1, n]);
        let chunk = |rows: std::ops::Range<usize>| {
            let c = rows.end - rows.start;
            (columns.clone().expand([c, n]), i_neg.clone())
        };
        let rank = SoftRank {
            temperature: self.anneal,
            clamp: true,
        };
        let r = rank.ranks(&s, n, &chunk);
        let (f, df) = self.rank_function(r);
        let n_pos = i_pos.clone().sum_dim(1);
        let safe = mask_to_float(has_pos, &n_pos);
        let count = safe.clone().sum();
        // Per-query means over the positives (0 for queries without one), then their mean.
        let scale = safe / n_pos.clamp_min(1.0) / count.clone().clamp_min(1.0).reshape([1, 1]);
        let per_query = (f * i_pos.clone()).sum_dim(1) * scale.clone();
        let mut value = per_query.sum();
        let mut weights = df * i_pos * scale;
        if self.variant == PnpVariant::Dq {
            // 1 − L, and PML's zero loss when no query has a positive.
            value = value.neg().add_scalar(1.0) * count.clamp_max(1.0);
            weights = weights.neg();
        }
        let grad = rank.backprop(&s, weights, &chunk);
        let row = attach_row_gradient(Tensor::zeros([n], (&device, s.dtype())), grad, s);
        let loss = value.detach() + row.sum();
        let terms = LossTerms::new().with(LossTerm::already_reduced("loss", loss));
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
        // x0 = x1 = e1 (label 0), x2 = e2 (label 1), anneal 1. Query 0: P = {0, 1}, both
        // with s = 1; the negative has s = 0: R = σ(0 − 1) each → L_0 = σ(−1). Query 1: same.
        // Query 2 has no positive. Variant O: L = σ(−1); Ds: log(1 + σ(−1)).
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let sig = 1.0 / (1.0 + 1f64.exp());
        for (variant, want) in [
            (PnpVariant::O, sig),
            (PnpVariant::Ds, (1.0 + sig).ln()),
            (PnpVariant::Dq, 1.0 - 1.0 / (1.0 + sig)),
        ] {
            let loss = PNPLossConfig::new()
                .with_anneal(1.0)
                .with_variant(variant)
                .init()
                .forward(LossInput::new(x.clone(), labels.clone()))
                .into_scalar() as f64;
            assert!((loss - want).abs() < 1e-6, "{variant:?}: {loss} vs {want}");
        }
    }

    #[test]
    fn no_positive_gives_a_zero_loss_with_a_graph() {
        let device = Default::default();
        for variant in [PnpVariant::O, PnpVariant::Dq] {
            let x = Tensor::<B, 2>::from_floats([[0.0, 1.0], [1.0, 0.0]], &device).require_grad();
            let labels = Tensor::<B, 1, Int>::from_ints([0, 1], &device);
            let loss = PNPLossConfig::new()
                .with_variant(variant)
                .init()
                .forward(LossInput::new(x.clone(), labels));
            assert_eq!(loss.clone().into_scalar(), 0.0);
            assert_eq!(float_vec(x.grad(&loss.backward()).unwrap()), vec![0.0; 4]);
        }
    }

    #[test]
    fn variants_parse_from_pml_strings() {
        let c: crate::LossConfig =
            serde_json::from_str(r#"{"name": "PNPLoss", "params": {"variant": "Ib"}}"#).unwrap();
        let crate::LossConfig::Pnp(c) = c else {
            panic!("not a PNPLoss config")
        };
        assert_eq!(c.variant, PnpVariant::Ib);
        assert!(
            serde_json::from_str::<crate::LossConfig>(
                r#"{"name": "PNPLoss", "params": {"variant": "X"}}"#
            )
            .is_err()
        );
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        for variant in [PnpVariant::O, PnpVariant::Ib] {
            crate::proptests::check_permutation_invariance(
                &PNPLossConfig::new()
                    .with_anneal(0.1)
                    .with_variant(variant)
                    .init(),
                &[0, 1, 2, 0, 1, 2, 0, 3, 1],
            );
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        for variant in [
            PnpVariant::O,
            PnpVariant::Ds,
            PnpVariant::Dq,
            PnpVariant::Iu,
            PnpVariant::Ib,
        ] {
            let config = PNPLossConfig::new().with_anneal(0.3).with_variant(variant);
            crate::gradcheck::check_gradients(&config.init(), &labels, 5, 1);
        }
    }

    #[test]
    #[ignore = "slow in debug builds: n = 1024, forward and backward"]
    fn large_batch_forward_and_backward() {
        // Run alone under `/usr/bin/time -v` to see the peak memory (chunked: well under 2 GiB).
        let n = 1024;
        let device = Default::default();
        let labels: Vec<i64> = (0..n as i64).map(|i| i % 64).collect();
        let values = crate::proptests::random_values(n, 64, 1);
        let x = Tensor::<B, 2>::from_data(burn::tensor::TensorData::new(values, [n, 64]), &device)
            .require_grad();
        let loss = PNPLossConfig::new().init().forward(LossInput::new(
            x.clone(),
            pml_core::tensor::int_tensor(&labels, &device),
        ));
        assert!(x.grad(&loss.backward()).is_some());
    }
}
