use burn::{
    config::Config,
    module::Module,
    tensor::{Bool, Int, Tensor, activation::relu, backend::Backend},
};
use pml_core::{LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{base::LossSlots, common::finite, regularizers::RegularizerConfig};

const NAME: &str = "VICRegLoss";
const TERMS: [(&str, ReductionType); 4] = [
    ("invariance_loss", ReductionType::Element),
    ("variance_loss1", ReductionType::Element),
    ("variance_loss2", ReductionType::Element),
    ("covariance_loss", ReductionType::AlreadyReduced),
];

/// Configuration of [`VICRegLoss`], with PML's argument names and defaults.
///
/// PML refuses a `distance` and an `embedding_regularizer` for this loss; the slots exist so
/// that specs naming them get PML's error instead of an unknown-parameter one.
#[derive(Config, Debug)]
pub struct VICRegLossConfig {
    /// Weight `λ` of the invariance term.
    #[config(default = 25.0)]
    pub invariance_lambda: f64,
    /// Weight `μ` of the variance terms.
    #[config(default = 25.0)]
    pub variance_mu: f64,
    /// Weight `ν` of the covariance term.
    #[config(default = 1.0)]
    pub covariance_v: f64,
    /// Added to the variances before the square root.
    #[config(default = 1e-4)]
    pub eps: f64,
    /// Must be `None`: PML raises "VICRegLoss cannot use a distance function".
    pub distance: Option<DistanceConfig>,
    /// The reducer (PML's default: `MeanReducer`).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// Must be `None`: PML raises "VICRegLoss cannot use a regularizer".
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty (unused: there is no embedding regularizer).
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl VICRegLossConfig {
    /// Builds the loss, refusing non-finite weights, a negative `eps`, a distance or an
    /// embedding regularizer (as PML does), and reducers that cannot reduce its terms.
    pub fn try_init(&self) -> Result<VICRegLoss, PmlError> {
        for (name, v) in [
            ("invariance_lambda", self.invariance_lambda),
            ("variance_mu", self.variance_mu),
            ("covariance_v", self.covariance_v),
            ("eps", self.eps),
        ] {
            finite(NAME, name, v)?;
        }
        if self.eps < 0.0 {
            return Err(PmlError::invalid_argument(
                "eps",
                self.eps,
                "VICRegLoss: must be non-negative",
            ));
        }
        if self.distance.is_some() {
            return Err(PmlError::Unsupported(
                "VICRegLoss cannot use a distance function".into(),
            ));
        }
        if self.embedding_regularizer.is_some() {
            return Err(PmlError::Unsupported(
                "VICRegLoss cannot use a regularizer".into(),
            ));
        }
        Ok(VICRegLoss {
            invariance_lambda: self.invariance_lambda,
            variance_mu: self.variance_mu,
            covariance_v: self.covariance_v,
            eps: self.eps,
            slots: LossSlots::build(
                NAME,
                &DistanceConfig::lp(),
                &self.reducer,
                None,
                self.embedding_reg_weight,
                &TERMS,
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> VICRegLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// VICReg, variance-invariance-covariance regularization (Bardes, Ponce & LeCun, "VICReg:
/// Variance-Invariance-Covariance Regularization for Self-Supervised Learning", ICLR 2022;
/// PML's `VICRegLoss`), a self-supervised loss between two views `Z` (the embeddings) and `Z'`
/// (`ref_emb`, row `i` the other view of row `i`):
///
/// `L(Z, Z') = λ s(Z, Z') + μ [v(Z) + v(Z')] + ν [c(Z) + c(Z')]` with
/// - invariance `s_i = mean_k (z_ik − z'_ik)²`, one term per row (`invariance_loss`);
/// - variance `v_k = [1 − sqrt(Var(z_·k) + eps)]₊ / 2` per dimension, with the unbiased
///   variance (`variance_loss1`, `variance_loss2`, one term per dimension);
/// - covariance `c(Z) = Σ_{k≠l} Cov(Z)_kl² / d` (`covariance_loss`, already reduced).
///
/// With the default `MeanReducer` the element terms are averaged. Without `ref_emb` the batch
/// is its own second view, as in PML.
///
/// # Shapes
/// - embeddings `[n, d]`, optional `ref_emb` `[n, d]`, no labels
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], if `ref_emb` has another number of rows
/// than the embeddings, or with labels, reference labels or an indices tuple (PML: "labels are
/// ref_labels are not supported", "indices_tuple is not supported").
#[derive(Module, Clone, Debug)]
pub struct VICRegLoss {
    invariance_lambda: f64,
    variance_mu: f64,
    covariance_v: f64,
    eps: f64,
    slots: LossSlots,
}

impl VICRegLoss {
    fn variance<B: Backend>(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let d = x.dims()[1];
        let std = x.var(0).add_scalar(self.eps).sqrt().reshape([d]);
        relu(std.neg().add_scalar(1.0)).div_scalar(2.0)
    }

    fn covariance<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 1> {
        let [n, d] = x.dims();
        let centered = x.clone() - x.mean_dim(0);
        let cov = centered
            .clone()
            .transpose()
            .matmul(centered)
            .div_scalar(n as f64 - 1.0);
        // `diag_mask` is true off the diagonal.
        let off = Tensor::<B, 2, Bool>::diag_mask([d, d], 0, &cov.device());
        cov.powi_scalar(2)
            .mask_fill(off.bool_not(), 0.0)
            .sum()
            .div_scalar(d as f64)
    }
}

/// The variance term's unbiased variance needs two rows (PML's gives NaN for one).
fn too_few_rows(n: usize) -> String {
    format!("{NAME}: `embeddings` has {n} row(s), the variance term needs at least 2")
}

impl<B: Backend> MetricLoss<B> for VICRegLoss {
    fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
        input.check()?;
        let n = input.embeddings.dims()[0];
        if n < 2 {
            return Err(PmlError::invalid_input("embeddings", too_few_rows(n)));
        }
        Ok(self.forward(input))
    }

    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        assert!(
            input.indices_tuple.is_none(),
            "{NAME}: indices_tuple is not supported for this loss function"
        );
        let has_ref_labels = input.reference.as_ref().is_some_and(|r| r.labels.is_some());
        assert!(
            input.labels.is_none() && !has_ref_labels,
            "{NAME}: labels and ref_labels are not supported for this loss function"
        );
        let emb = input.embeddings.clone();
        let ref_emb = input.ref_embeddings();
        let [n, d] = emb.dims();
        assert_eq!(
            ref_emb.dims()[0],
            n,
            "{NAME}: `ref_emb` has {} rows, expected as many as the embeddings ({n}): row i is \
             the second view of embedding i",
            ref_emb.dims()[0]
        );
        assert!(n >= 2, "{}", too_few_rows(n));
        let device = emb.device();
        let invariance = (emb.clone() - ref_emb.clone())
            .powi_scalar(2)
            .mean_dim(1)
            .reshape([n])
            .mul_scalar(self.invariance_lambda);
        let rows = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
        let dims = Tensor::<B, 1, Int>::arange(0..d as i64, &device);
        let v1 = self.variance(emb.clone()).mul_scalar(self.variance_mu);
        let v2 = self.variance(ref_emb.clone()).mul_scalar(self.variance_mu);
        let cov = (Self::covariance(emb) + Self::covariance(ref_emb)).mul_scalar(self.covariance_v);
        let terms = LossTerms::new()
            .with(LossTerm::element("invariance_loss", invariance, rows))
            .with(LossTerm::element("variance_loss1", v1, dims.clone()))
            .with(LossTerm::element("variance_loss2", v2, dims))
            .with(LossTerm::already_reduced("covariance_loss", cov));
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
    use burn::tensor::{DType, TensorData};
    use pml_core::tensor::float_vec;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // Z = [[0, 0], [2, 2]], Z' = [[0, 0], [2, 0]].
        // Invariance: rows (0 + 0)/2 = 0 and (0 + 4)/2 = 2 → mean 1, × λ = 1.
        // Variances (unbiased, n = 2): Z: 2, 2; Z': 2, 0. With eps = 0:
        // v(Z) = [1 − √2]₊/2 = 0 per dim; v(Z') = (0, 1/2) → mean 1/4, × μ = 1.
        // Covariances: Z: off-diagonal 2 → 2·4/2 = 4; Z': 0. × ν = 1: 4. Total 1 + 0 + 0.25 + 4.
        let z = Tensor::<B, 2>::from_floats([[0.0, 0.0], [2.0, 2.0]], &device);
        let z2 = Tensor::<B, 2>::from_floats([[0.0, 0.0], [2.0, 0.0]], &device);
        let loss = VICRegLossConfig::new()
            .with_invariance_lambda(1.0)
            .with_variance_mu(1.0)
            .with_eps(0.0)
            .init()
            .forward(LossInput::unlabeled(z).with_unlabeled_reference(z2))
            .into_scalar();
        assert!((loss - 5.25).abs() < 1e-5, "{loss}");
    }

    #[test]
    fn a_distance_is_refused_as_in_pml() {
        let err = VICRegLossConfig::new()
            .with_distance(Some(DistanceConfig::cosine()))
            .try_init()
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot use a distance function"), "{err}");
    }

    #[test]
    #[should_panic(expected = "labels and ref_labels are not supported")]
    fn labels_are_refused() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::zeros([2, 2], &device);
        let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 1], &device);
        VICRegLossConfig::new()
            .init()
            .forward(LossInput::new(x, labels));
    }

    fn views(values: &[f32], n: usize, d: usize, perm: &[usize]) -> LossInput<NdArray> {
        let device = Default::default();
        let take = |offset: usize| -> Tensor<NdArray, 2> {
            let rows: Vec<f32> = perm
                .iter()
                .flat_map(|&i| values[offset + i * d..offset + (i + 1) * d].iter().copied())
                .collect();
            Tensor::from_data(TensorData::new(rows, [n, d]), &device)
        };
        LossInput::unlabeled(take(0)).with_unlabeled_reference(take(n * d))
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        let (n, d) = (9, 4);
        let loss = VICRegLossConfig::new().init();
        for seed in 0..3 {
            let values = crate::proptests::random_values(2 * n, d, seed);
            let identity: Vec<usize> = (0..n).collect();
            let perm = crate::proptests::shuffled(n, seed + 10);
            let a = float_vec(loss.forward(views(&values, n, d, &identity)))[0];
            let b = float_vec(loss.forward(views(&values, n, d, &perm)))[0];
            assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // `check_gradients` passes labels; VICReg takes none, so check by hand here with the
        // same central differences, w.r.t. both views.
        type B64 = crate::gradcheck::B64;
        let (n, d) = (6, 3);
        let values: Vec<f64> = crate::proptests::random_values(2 * n, d, 3)
            .into_iter()
            .map(f64::from)
            .collect();
        let loss = VICRegLossConfig::new().with_variance_mu(5.0).init();
        let device = Default::default();
        let eval = |v: &[f64]| -> (f64, Tensor<B64, 2>) {
            let all = Tensor::<B64, 2>::from_data(
                TensorData::new(v.to_vec(), [2 * n, d]),
                (&device, DType::F64),
            )
            .require_grad();
            let z = all.clone().slice([0..n, 0..d]);
            let z2 = all.clone().slice([n..2 * n, 0..d]);
            let value = loss.forward(LossInput::unlabeled(z).with_unlabeled_reference(z2));
            (value.into_scalar(), all)
        };
        let all = Tensor::<B64, 2>::from_data(
            TensorData::new(values.clone(), [2 * n, d]),
            (&device, DType::F64),
        )
        .require_grad();
        let value = loss.forward(
            LossInput::unlabeled(all.clone().slice([0..n, 0..d]))
                .with_unlabeled_reference(all.clone().slice([n..2 * n, 0..d])),
        );
        let analytic = float_vec(all.grad(&value.backward()).unwrap());
        let h = 1e-6;
        for i in 0..values.len() {
            let (mut plus, mut minus) = (values.clone(), values.clone());
            plus[i] += h;
            minus[i] -= h;
            let numeric = (eval(&plus).0 - eval(&minus).0) / (2.0 * h);
            assert!(
                (analytic[i] - numeric).abs() <= 1e-6 * numeric.abs().max(1.0),
                "gradient {i}: {} vs {numeric}",
                analytic[i]
            );
        }
    }
}
