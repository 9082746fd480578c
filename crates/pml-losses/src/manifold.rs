// PML's argument names `K` and `lambdaC` are kept (config fields and spec keys).
#![allow(non_snake_case)]

use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Bool, Int, Tensor, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    math::{masked_logsumexp, normalize_rows, scalar_div},
    rng::SeededRng,
    tensor::int_tensor,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    class_weights::{check_width, normal, param, positive, replace, value_like},
    common::finite,
    regularizers::RegularizerConfig,
};

const NAME: &str = "ManifoldLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::AlreadyReduced)];

/// Configuration of [`ManifoldLoss`], with PML's argument names and defaults (`l` is
/// required, as in PML).
#[derive(Config, Debug)]
pub struct ManifoldLossConfig {
    /// Width of the embeddings and proxies (the paper's `l`).
    pub l: usize,
    /// Number of proxies (meta-classes).
    #[config(default = 50)]
    pub K: usize,
    /// Weight `λ_C` of the context loss: `L = L_int + λ_C L_ctx` (infinite: the context loss
    /// only).
    #[config(default = 1.0)]
    pub lambdaC: f64,
    /// The random walk's `α` in `[0, 1)`: how much similarity each node passes on.
    #[config(default = 0.8)]
    pub alpha: f64,
    /// The margin.
    #[config(default = 5e-4)]
    pub margin: f64,
    /// The similarity (PML's default: `CosineSimilarity`).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// Accepted as in PML; the loss is already reduced, so every reducer passes it through.
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
    /// Seed of the random meta-class assignment (PML draws from PyTorch's global generator).
    #[config(default = 0)]
    pub seed: u64,
}

impl ManifoldLossConfig {
    /// Builds the loss on `device`, with the proxies drawn from `N(0, 1)` as in PML; refuses a
    /// zero `l` or `K`, a negative or NaN `lambdaC` (as PML does), `alpha` outside `[0, 1)`, a
    /// non-finite margin and invalid slots.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<ManifoldLoss<B>, PmlError> {
        positive(NAME, "l", self.l)?;
        positive(NAME, "K", self.K)?;
        if self.lambdaC.is_nan() || self.lambdaC < 0.0 {
            return Err(PmlError::invalid_argument(
                "lambdaC",
                self.lambdaC,
                format!("{NAME}: accepted only non-negative values"),
            ));
        }
        if !(0.0..1.0).contains(&self.alpha) {
            return Err(PmlError::invalid_argument(
                "alpha",
                self.alpha,
                format!("{NAME}: must be in [0, 1)"),
            ));
        }
        finite(NAME, "margin", self.margin)?;
        Ok(ManifoldLoss {
            proxies: param(normal([self.K, self.l], 1.0, device)),
            l: self.l,
            K: self.K,
            lambdaC: self.lambdaC,
            alpha: self.alpha,
            margin: self.margin,
            rng: SeededRng::new(self.seed),
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

    /// Builds the loss on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ManifoldLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Manifold proxy loss (Aziere & Todorovic, "Ensemble Deep Manifold Similarity Learning using
/// Hard Proxies", CVPR 2019; PML's `ManifoldLoss`). Unsupervised: the `N` embeddings are
/// assigned to `K` trainable proxies ("meta-classes"), at random (every proxy at least once,
/// seeded) or as given to [`forward_with_meta_classes`](Self::forward_with_meta_classes).
///
/// On the graph of embeddings and proxies, with `S_ij = exp(2 max(s(z_i, z_j), 0))` off the
/// diagonal and `S̄ = D^{−1/2} S D^{−1/2}` (`D` the row sums), the random walk gives the manifold
/// similarities `F = (1 − α)(I − α S̄)^{−1}` (computed as the Neumann series
/// `Π_j (I + (αS̄)^{2^j})`, exact to the dtype's precision, since Burn has no matrix inverse).
/// With `m_i` the meta-class of embedding `i`,
///
/// `L_int = mean_i log(1 + Σ_{k ≠ m_i, v_ik ≥ 0} e^{v_ik})`, `v_ik = F_{i,N+k} − F_{i,N+m_i} + margin`,
///
/// and `L_ctx` the same on `cos(F_i, F_{N+k})` (cosine between the rows of `F`); the loss is
/// `L_int + λ_C L_ctx` (term `loss`, already reduced). With `λ_C = ∞` it is `L_ctx` alone
/// (PML's code computes `∞ · L_ctx` there, contrary to its documentation).
///
/// `proxies` is a trainable `Param` (`[K, l]`, PML's attribute name).
///
/// # Shapes
/// - embeddings `[N, l]` with `N ≥ K` (for random meta-classes), no labels
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`](pml_core::LossInput::validate), with labels,
/// a reference set or an indices tuple (PML takes meta-classes in `indices_tuple`: use
/// [`forward_with_meta_classes`](Self::forward_with_meta_classes)), when the embeddings are not
/// `l` wide, or with fewer than `K` embeddings and random meta-classes.
#[derive(Module, Debug)]
pub struct ManifoldLoss<B: Backend> {
    /// The proxies, PML's attribute `proxies`, `[K, l]`.
    pub proxies: Param<Tensor<B, 2>>,
    l: usize,
    K: usize,
    lambdaC: f64,
    alpha: f64,
    margin: f64,
    rng: SeededRng,
    slots: LossSlots,
}

impl<B: Backend> ManifoldLoss<B> {
    /// Replaces the proxies with the given values (same shape; the parameter id is kept).
    ///
    /// # Panics
    /// If the shape differs from the proxies'.
    pub fn with_proxies(mut self, proxies: Tensor<B, 2>) -> Self {
        self.proxies = replace(&self.proxies, proxies, NAME, "proxies");
        self
    }

    /// The loss with the given meta-class of each embedding (values in `0..K`; PML's
    /// `indices_tuple` for this loss).
    ///
    /// # Panics
    /// As [`forward_terms`](MetricLoss::forward_terms), or if `meta_classes` is not as long as
    /// the batch.
    pub fn forward_with_meta_classes(
        &self,
        embeddings: Tensor<B, 2>,
        meta_classes: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        let input = LossInput::unlabeled(embeddings);
        let terms = self.terms(&input, Some(meta_classes));
        self.slots.reduce(&terms, &input)
    }

    /// PML's random meta-classes: `0..K` once each, the other `N − K` drawn uniformly, shuffled.
    fn random_meta_classes(&self, n: usize, device: &B::Device) -> Tensor<B, 1, Int> {
        assert!(
            n >= self.K,
            "{NAME}: random meta-classes need at least K = {} embeddings, got {n}",
            self.K
        );
        let mut meta: Vec<i64> = (0..self.K as i64).collect();
        meta.extend((self.K..n).map(|_| self.rng.below(self.K) as i64));
        for i in (1..n).rev() {
            meta.swap(i, self.rng.below(i + 1));
        }
        int_tensor(&meta, device)
    }

    fn check(&self, input: &LossInput<B>) -> Result<(), PmlError> {
        input.check_shapes()?;
        if input.labels.is_some() || input.reference.is_some() {
            return Err(PmlError::Unsupported(format!(
                "{NAME}: labels and ref_emb are not supported for this loss function"
            )));
        }
        if input.indices_tuple.is_some() {
            return Err(PmlError::Unsupported(format!(
                "{NAME}: give meta-classes with forward_with_meta_classes, not an indices tuple"
            )));
        }
        check_width(NAME, &input.embeddings, "l", self.l)?;
        let n = input.embeddings.dims()[0];
        if n < self.K {
            return Err(PmlError::invalid_input(
                "embeddings",
                format!(
                    "{NAME}: random meta-classes need at least K = {} embeddings, got {n}",
                    self.K
                ),
            ));
        }
        Ok(())
    }

    fn terms(&self, input: &LossInput<B>, meta_classes: Option<Tensor<B, 1, Int>>) -> LossTerms<B> {
        input.validate();
        let x = input.embeddings.clone();
        if let Err(e) = check_width(NAME, &x, "l", self.l) {
            panic!("{e}");
        }
        let (n, k) = (x.dims()[0], self.K);
        let device = x.device();
        let meta = meta_classes.unwrap_or_else(|| self.random_meta_classes(n, &device));
        assert_eq!(
            meta.dims()[0],
            n,
            "{NAME}: {} meta-classes for {n} embeddings",
            meta.dims()[0]
        );
        let proxies = value_like(&self.proxies, &x);
        let nodes = Tensor::cat(vec![x, proxies], 0);
        let total = n + k;
        let off_diagonal = Tensor::<B, 2, Bool>::diag_mask([total, total], 0, &device);
        let s = self
            .slots
            .distance
            .forward(nodes, None)
            .clamp_min(0.0)
            .mul_scalar(2.0)
            .exp();
        let s = s.clone().mask_fill(off_diagonal.clone().bool_not(), 0.0);
        let d = scalar_div(1.0, s.clone().sum_dim(1).sqrt());
        let s_bar = s * d.clone() * d.transpose();
        let f = self
            .random_walk(s_bar, off_diagonal.bool_not())
            .mul_scalar(1.0 - self.alpha);
        let f_e = f.clone().slice([0..n, 0..total]);
        let f_p = f.clone().slice([n..total, 0..total]);
        let own = meta.reshape([n, 1]);
        let context = normalize_rows(f_e, 2.0).matmul(normalize_rows(f_p, 2.0).transpose());
        let l_ctx = self.hinge(context, own.clone());
        let loss = if self.lambdaC.is_infinite() {
            l_ctx
        } else {
            let l_int = self.hinge(f.slice([0..n, n..total]), own);
            l_int + l_ctx.mul_scalar(self.lambdaC)
        };
        let terms = LossTerms::new().with(LossTerm::already_reduced("loss", loss));
        self.slots.with_regularization(terms, input)
    }

    /// `(I − α S̄)^{−1} = Π_{j=0}^{J} (I + (αS̄)^{2^j})`, with `J` such that the remainder,
    /// at most `α^{2^{J+1}} / (1 − α)` (the spectral radius of `S̄` is 1), is below `1e-16`.
    fn random_walk(&self, s_bar: Tensor<B, 2>, diagonal: Tensor<B, 2, Bool>) -> Tensor<B, 2> {
        let identity = s_bar.zeros_like().mask_fill(diagonal, 1.0);
        if self.alpha == 0.0 {
            return identity;
        }
        let target = (1e-16 * (1.0 - self.alpha)).ln() / self.alpha.ln();
        let factors = (target.log2().ceil().max(1.0) as usize).min(40);
        let mut power = s_bar.mul_scalar(self.alpha);
        let mut inverse = identity.clone() + power.clone();
        for _ in 1..factors {
            power = power.clone().matmul(power);
            inverse = inverse.clone() + inverse.matmul(power.clone());
        }
        inverse
    }

    /// `mean_i log(1 + Σ_{k ≠ own_i, v_ik ≥ 0} e^{v_ik})`, `v = m − m[i, own_i] + margin`.
    fn hinge(&self, m: Tensor<B, 2>, own: Tensor<B, 2, Int>) -> Tensor<B, 1> {
        let [n, k] = m.dims();
        let v = m.clone() - m.gather(1, own.clone());
        let v = v.add_scalar(self.margin);
        let classes = Tensor::<B, 1, Int>::arange(0..k as i64, &v.device()).reshape([1, k]);
        let not_own = own.expand([n, k]).not_equal(classes.expand([n, k]));
        let keep = not_own.bool_and(v.clone().greater_equal_elem(0.0));
        masked_logsumexp(v, Some(keep), true).mean()
    }
}

impl<B: Backend> MetricLoss<B> for ManifoldLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        if let Err(e) = self.check(input) {
            panic!("{e}");
        }
        self.terms(input, None)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }

    fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
        input.check()?;
        self.check(&input)?;
        Ok(self.forward(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gradcheck::B64;
    use burn::tensor::{DType, TensorData};
    use pml_core::tensor::float_vec;

    fn f64_tensor(rows: &[[f64; 4]]) -> Tensor<B64, 2> {
        let data: Vec<f64> = rows.iter().flatten().copied().collect();
        Tensor::from_data(
            TensorData::new(data, [rows.len(), 4]),
            (&Default::default(), DType::F64),
        )
    }

    fn batch() -> Tensor<B64, 2> {
        f64_tensor(&[
            [0.5, -0.2, 0.1, 0.9],
            [0.3, 0.8, -0.5, 0.1],
            [-0.7, 0.2, 0.4, 0.3],
            [0.6, 0.1, 0.2, 0.7],
            [0.2, 0.9, -0.3, -0.2],
            [-0.5, 0.1, 0.6, 0.1],
        ])
    }

    fn loss(lambda_c: f64, margin: f64) -> ManifoldLoss<B64> {
        ManifoldLossConfig::new(4)
            .with_K(3)
            .with_lambdaC(lambda_c)
            .with_margin(margin)
            .init::<B64>(&Default::default())
            .with_proxies(f64_tensor(&[
                [1.0, 0.0, 0.2, 0.5],
                [0.1, 1.0, -0.4, 0.0],
                [-0.6, 0.2, 0.7, 0.2],
            ]))
    }

    #[test]
    fn matches_pml_with_given_meta_classes() {
        // Values and the proxies' gradient (sum of absolute values) from PML 2.9.0 in float64.
        // PML inverts `I − αS̄` in float32 even for float64 inputs, so its values carry
        // float32 rounding (~1e-9 here); the series here is exact in float64.
        let meta = int_tensor::<B64>(&[2, 0, 1, 1, 2, 0], &Default::default());
        for (lambda_c, margin, want, want_grad) in [
            (1.0, 5e-4, 1.9025816207923092, 0.09597823515571013),
            (0.0, 5e-4, 0.9212867697975115, 0.022298835957726436),
            (2.5, 0.05, 4.151887219885637, 0.227656676368515),
        ] {
            let l = loss(lambda_c, margin);
            let v = l.forward_with_meta_classes(batch(), meta.clone());
            let got = v.clone().into_scalar();
            assert!(
                (got - want).abs() < 1e-7,
                "λ_C = {lambda_c}: {got} vs {want}"
            );
            let g: f64 = float_vec(l.proxies.val().grad(&v.backward()).unwrap())
                .iter()
                .map(|g| g.abs())
                .sum();
            assert!(
                (g - want_grad).abs() < 1e-7,
                "λ_C = {lambda_c}: {g} vs {want_grad}"
            );
        }
    }

    #[test]
    fn random_meta_classes_are_seeded_finite_non_negative_and_train_the_proxies() {
        let device = Default::default();
        let x = batch().require_grad();
        for seed in 0..5 {
            let cfg = ManifoldLossConfig::new(4).with_K(3).with_seed(seed);
            let a = cfg
                .init::<B64>(&device)
                .with_proxies(loss(1.0, 5e-4).proxies.val());
            let b = cfg
                .init::<B64>(&device)
                .with_proxies(loss(1.0, 5e-4).proxies.val());
            let va = a.forward(LossInput::unlabeled(x.clone()));
            let vb = b.forward(LossInput::unlabeled(x.clone()));
            let (sa, sb) = (va.clone().into_scalar(), vb.into_scalar());
            assert!(sa.is_finite() && sa >= 0.0, "seed {seed}: {sa}");
            assert_eq!(sa, sb, "seed {seed}: same seed, same meta-classes");
            let grads = va.backward();
            let gp = float_vec(a.proxies.val().grad(&grads).unwrap());
            let gx = float_vec(x.grad(&grads).unwrap());
            assert!(gp.iter().chain(&gx).all(|g| g.is_finite()));
            if sa > 0.0 {
                assert!(
                    gp.iter().any(|g| *g != 0.0),
                    "seed {seed}: no gradient on the proxies"
                );
            }
        }
    }

    #[test]
    fn refuses_labels_and_too_few_embeddings() {
        let l = loss(1.0, 5e-4);
        let labels = int_tensor::<B64>(&[0, 1, 2, 0, 1, 2], &Default::default());
        assert!(l.try_forward(LossInput::new(batch(), labels)).is_err());
        let small = f64_tensor(&[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]);
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            l.forward(LossInput::unlabeled(small))
        }));
        assert!(err.is_err());
    }
}
