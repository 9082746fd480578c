use burn::{
    config::Config,
    module::Module,
    tensor::{Int, Tensor, activation::relu, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    math::{logistic, masked_logsumexp_with_slopes, softplus},
    tensor::value_with_gradient,
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    common::require_cosine,
    generic_pair::{PairMasks, anchor_losses},
    regularizers::RegularizerConfig,
};

/// Configuration of [`CircleLoss`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct CircleLossConfig {
    /// The relaxation `m` (radius of the decision boundary).
    #[config(default = 0.4)]
    pub m: f64,
    /// The scale `γ`.
    #[config(default = 80.0)]
    pub gamma: f64,
    /// The distance: must be `CosineSimilarity`, as in PML.
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `AvgNonZeroReducer`).
    #[config(default = "ReducerConfig::avg_non_zero()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl CircleLossConfig {
    /// Builds the loss, refusing distances other than cosine similarity (as PML does).
    pub fn try_init(&self) -> Result<CircleLoss, PmlError> {
        require_cosine(&self.distance, "CircleLoss")?;
        for (name, v) in [("m", self.m), ("gamma", self.gamma)] {
            if !v.is_finite() {
                return Err(PmlError::invalid_argument(
                    name,
                    v,
                    "CircleLoss: must be finite",
                ));
            }
        }
        Ok(CircleLoss {
            m: self.m,
            gamma: self.gamma,
            slots: LossSlots::build(
                "CircleLoss",
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &[("loss", ReductionType::Element)],
            )?,
        })
    }

    /// Builds the loss.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> CircleLoss {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The circle loss (Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity
/// Optimization", CVPR 2020; PML's `CircleLoss`), for pair labels: for each anchor `i`,
///
/// `L_i = softplus( log Σ_{p∈P(i)} exp(−γ α_p (s_p − Δ_p)) + log Σ_{n∈N(i)} exp(γ α_n (s_n − Δ_n)) )`
///
/// with `α_p = [1 + m − s_p]₊`, `α_n = [s_n + m]₊` (not differentiated), `Δ_p = 1 − m`,
/// `Δ_n = m`; zero for anchors without positives or negatives.
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`], or without labels and indices tuple.
#[derive(Module, Clone, Debug)]
pub struct CircleLoss {
    m: f64,
    gamma: f64,
    slots: LossSlots,
}

impl<B: Backend> MetricLoss<B> for CircleLoss {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        // Each anchor's loss and its derivatives w.r.t. its similarity row, off the autodiff
        // graph (the weights α are constants in PML too); the gradient reaches the row through
        // `Σ_j slopes_ij · s_ij`.
        let row_losses = |masks: PairMasks<B>| {
            let s = masks.mat().clone();
            let rows = s.dims()[0];
            let alpha_p = relu(s.clone().neg().add_scalar(1.0 + self.m)).mul_scalar(-self.gamma);
            let alpha_n = relu(s.clone().add_scalar(self.m)).mul_scalar(self.gamma);
            let logit_p = alpha_p.clone() * s.clone().sub_scalar(1.0 - self.m);
            let logit_n = alpha_n.clone() * s.sub_scalar(self.m);
            // Anchors without a positive or without a negative lose nothing.
            let lacking = masks
                .pos
                .clone()
                .any_dim(1)
                .bool_and(masks.neg.clone().any_dim(1))
                .bool_not();
            let (lse_p, w_p) =
                masked_logsumexp_with_slopes(logit_p, Some(masks.pos.clone()), false);
            let (lse_n, w_n) =
                masked_logsumexp_with_slopes(logit_n, Some(masks.neg.clone()), false);
            let z = lse_p + lse_n;
            let value = softplus(z.clone()).mask_fill(lacking.clone(), 0.0);
            let outer = logistic(z).mask_fill(lacking, 0.0);
            let slopes = (w_p * alpha_p + w_n * alpha_n) * outer;
            value_with_gradient(value.reshape([rows]), masks.link_rows(slopes))
        };
        let terms = match anchor_losses(&self.slots, input, row_losses) {
            None => LossTerms::zeros(&["loss"]),
            Some((losses, counts)) => {
                let losses = counts.gated(losses);
                let n = losses.dims()[0];
                let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &losses.device());
                LossTerms::new().with(LossTerm::element("loss", losses, idx))
            }
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

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // s01 = 1, s02 = s12 = 0; m = 0.25, γ = 1. Anchor 0: α_p = 0.25, logit_p = −0.25·0.25;
        // α_n = 0.25, logit_n = 0.25·(0 − 0.25). L = softplus(−0.0625 − 0.0625) for anchors 0, 1;
        // anchor 2 has no positive: 0, dropped by AvgNonZero.
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0, 0, 1], &device);
        let loss = CircleLossConfig::new().with_m(0.25).with_gamma(1.0).init();
        let got = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = (1.0 + (-0.125f64).exp()).ln();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn refuses_other_distances() {
        let err = CircleLossConfig::new()
            .with_distance(DistanceConfig::lp())
            .try_init()
            .unwrap_err();
        assert!(err.to_string().contains("CosineSimilarity"), "{err}");
    }

    /// CircleLoss (AvgNonZero) with its weights `α` frozen at the similarities of `at`, in
    /// float64 on the host: the function whose derivative at `x = at` the autodiff gradient
    /// is, since `α` is not differentiated (paper and PML).
    fn loss_with_frozen_weights(x: &[f64], at: &[f64], labels: &[i64], m: f64, gamma: f64) -> f64 {
        let n = labels.len();
        let d = x.len() / n;
        let sims = |v: &[f64]| {
            let unit: Vec<Vec<f64>> = v
                .chunks(d)
                .map(|r| {
                    let norm = r.iter().map(|a| a * a).sum::<f64>().sqrt();
                    r.iter().map(|a| a / norm).collect()
                })
                .collect();
            let dot = |i: usize, j: usize| -> f64 {
                unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum()
            };
            (0..n)
                .map(|i| (0..n).map(|j| dot(i, j)).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let (s, s0) = (sims(x), sims(at));
        let lse = |v: &[f64]| {
            let top = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            top + v.iter().map(|a| (a - top).exp()).sum::<f64>().ln()
        };
        let (mut total, mut count) = (0.0, 0);
        for i in 0..n {
            let (mut pos, mut neg) = (Vec::new(), Vec::new());
            for j in (0..n).filter(|&j| j != i) {
                if labels[j] == labels[i] {
                    let alpha = (1.0 + m - s0[i][j]).max(0.0);
                    pos.push(-gamma * alpha * (s[i][j] - (1.0 - m)));
                } else {
                    let alpha = (s0[i][j] + m).max(0.0);
                    neg.push(gamma * alpha * (s[i][j] - m));
                }
            }
            if pos.is_empty() || neg.is_empty() {
                continue;
            }
            let z = lse(&pos) + lse(&neg);
            let softplus = z.max(0.0) + (-z.abs()).exp().ln_1p();
            if softplus > 0.0 {
                total += softplus;
                count += 1;
            }
        }
        total / count as f64
    }

    #[test]
    fn gradient_matches_finite_differences_with_frozen_weights() {
        use crate::gradcheck::{B64, Differences, assert_smooth_gradient, uniform};
        use burn::tensor::{DType, TensorData};
        let labels = [0, 0, 1, 1, 2, 2, 0, 1];
        let (n, d, h) = (labels.len(), 4, 1e-6);
        let device = Default::default();
        for (m, gamma) in [(0.4, 80.0), (0.25, 4.0)] {
            let loss = CircleLossConfig::new().with_m(m).with_gamma(gamma).init();
            for seed in [1, 2, 3] {
                let x = uniform(n * d, seed);
                let emb = Tensor::<B64, 2>::from_data(
                    TensorData::new(x.clone(), [n, d]),
                    (&device, DType::F64),
                )
                .require_grad();
                let out = loss.forward(LossInput::new(
                    emb.clone(),
                    pml_core::tensor::int_tensor(&labels, &device),
                ));
                let analytic = pml_core::tensor::float_vec(emb.grad(&out.backward()).unwrap());
                let value = loss_with_frozen_weights(&x, &x, &labels, m, gamma);
                let at = |i: usize, step: f64| {
                    let mut moved = x.clone();
                    moved[i] += step;
                    loss_with_frozen_weights(&moved, &x, &labels, m, gamma)
                };
                let diff = Differences {
                    value,
                    analytic,
                    forward: (0..n * d).map(|i| (at(i, h) - value) / h).collect(),
                    backward: (0..n * d).map(|i| (value - at(i, -h)) / h).collect(),
                };
                let scale =
                    assert_smooth_gradient(&diff, &format!("m {m}, γ {gamma}, seed {seed}"));
                assert!(scale > 1e-8, "no gradient");
                // The oracle is the loss itself: same value as the autodiff forward pass.
                let got: f64 = out.into_scalar();
                assert!(
                    (got - value).abs() <= 1e-12 * value.abs().max(1.0),
                    "{got} vs {value}"
                );
            }
        }
    }

    #[test]
    fn weights_are_not_differentiated() {
        let device = Default::default();
        // One anchor, one positive (s = 0.5) and one negative (s = 0): with m = 0.25, γ = 1,
        // z = −α_p (s_p − 0.75) + α_n (s_n − 0.25), α_p = 0.75, α_n = 0.25, and
        // dL/ds_p = σ(z)·(−α_p) only (no dα_p/ds_p term).
        let x =
            Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.5, 0.75f32.sqrt()], [0.0, 1.0]], &device)
                .require_grad();
        let loss = CircleLossConfig::new()
            .with_m(0.25)
            .with_gamma(1.0)
            .with_reducer(ReducerConfig::Sum(pml_reducers::SumReducerConfig::new()))
            .init();
        // Two pairs in total: PML's zero-loss rule (at most one pair per list) applies, so use
        // the same pairs twice.
        let t2 =
            pml_core::IndicesTuple::pairs_from_slices(&[0, 0], &[1, 1], &[0, 0], &[2, 2], &device);
        let value = loss.forward(LossInput::unlabeled(x.clone()).with_indices(t2));
        let z: f64 = -0.75 * (0.5 - 0.75) + 0.25 * (0.0 - 0.25);
        let sigma = 1.0 / (1.0 + (-z).exp());
        assert!((value.clone().into_scalar() as f64 - (1.0 + z.exp()).ln()).abs() < 1e-5);
        // ds_01/dx_1 (unnormalized x_1 already has norm 1) is x_0 minus its projection on x_1.
        let g = pml_core::tensor::float_vec(x.grad(&value.backward()).unwrap());
        let dsp_dx1 = [1.0 - 0.5 * 0.5, 0.0 - 0.5 * 0.75f64.sqrt()];
        let want = [sigma * -0.75 * dsp_dx1[0], sigma * -0.75 * dsp_dx1[1]];
        assert!(
            (g[2] - want[0]).abs() < 1e-5 && (g[3] - want[1]).abs() < 1e-5,
            "{g:?} vs {want:?}"
        );
    }

    #[test]
    fn invariant_to_permuting_the_batch() {
        crate::gradcheck::check_permutation_invariance(&CircleLossConfig::new().init(), 11);
    }
}
