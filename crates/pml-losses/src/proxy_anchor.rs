use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    blocks::{BLOCK_ENTRIES, block_threads},
    labels::pairwise_equal,
    math::masked_logsumexp_with_slopes,
    tensor::value_with_gradient,
};
use pml_distances::DistanceConfig;
use pml_reducers::{DivisorReducerConfig, ReducerConfig};

use crate::{
    base::{LossSlots, WeightRegularization},
    class_weights::{
        check_batch, check_width, expect_batch, normal, param, positive, replace, value_like,
    },
    common::{convert_to_weights, finite},
    regularizers::RegularizerConfig,
};

const NAME: &str = "ProxyAnchorLoss";
const TERMS: [(&str, ReductionType); 2] = [
    ("pos_loss", ReductionType::Element),
    ("neg_loss", ReductionType::Element),
];

/// Configuration of [`ProxyAnchorLoss`], with PML's argument names and defaults
/// (`num_classes` and `embedding_size` are required, as in PML).
#[derive(Config, Debug)]
pub struct ProxyAnchorLossConfig {
    /// Number of classes (one proxy each).
    pub num_classes: usize,
    /// Width of the embeddings and proxies.
    pub embedding_size: usize,
    /// The margin `δ`.
    #[config(default = 0.1)]
    pub margin: f64,
    /// The scale `α`.
    #[config(default = 32.0)]
    pub alpha: f64,
    /// The similarity (PML's default: `CosineSimilarity`).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `DivisorReducer`: the positive terms divided by the number
    /// of classes in the batch, the negative terms by `num_classes`).
    #[config(default = "ReducerConfig::Divisor(DivisorReducerConfig::new())")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
    /// An optional penalty on the proxies, added as the term `weight_reg_loss`.
    pub weight_regularizer: Option<RegularizerConfig>,
    /// Weight of the proxy penalty.
    #[config(default = 1.0)]
    pub weight_reg_weight: f64,
}

impl ProxyAnchorLossConfig {
    /// Builds the loss on `device`, with PML's initialisation of the proxies
    /// (`kaiming_normal_(mode="fan_out")`: `N(0, 2 / num_classes)`); refuses zero sizes,
    /// non-finite hyperparameters and invalid slots.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<ProxyAnchorLoss<B>, PmlError> {
        positive(NAME, "num_classes", self.num_classes)?;
        positive(NAME, "embedding_size", self.embedding_size)?;
        finite(NAME, "margin", self.margin)?;
        finite(NAME, "alpha", self.alpha)?;
        let std = (2.0 / self.num_classes as f64).sqrt();
        Ok(ProxyAnchorLoss {
            proxies: param(normal([self.num_classes, self.embedding_size], std, device)),
            num_classes: self.num_classes,
            embedding_size: self.embedding_size,
            margin: self.margin,
            alpha: self.alpha,
            slots: LossSlots::build(
                NAME,
                &self.distance,
                &self.reducer,
                self.embedding_regularizer.as_ref(),
                self.embedding_reg_weight,
                &TERMS,
            )?,
            weight_reg: WeightRegularization::build(
                NAME,
                self.weight_regularizer.as_ref(),
                self.weight_reg_weight,
            )?,
        })
    }

    /// Builds the loss on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ProxyAnchorLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Proxy anchor loss (Kim, Kim, Cho & Kwak, "Proxy Anchor Loss for Deep Metric Learning", CVPR
/// 2020; PML's `ProxyAnchorLoss`).
///
/// One trainable proxy `p_c` per class. With `s_ic = s(x_i, p_c)` (cosine by default) and
/// `w_i` PML's miner weight of embedding `i` (`convert_to_weights`, 1 without an indices
/// tuple), each proxy contributes
///
/// `pos_c = log(1 + Σ_{i: y_i = c} e^{α(δ − s_ic) + w_i − 1})`,
/// `neg_c = log(1 + Σ_{i: y_i ≠ c} e^{α(s_ic + δ) + w_i − 1})`
///
/// (for a distance, `s − δ` and `−δ − s`), terms `pos_loss` and `neg_loss` (element reduction
/// over proxies); the default `DivisorReducer` divides `Σ pos_c` by the number of classes
/// present in the batch and `Σ neg_c` by `num_classes`. With a weight regularizer,
/// `weight_reg_loss` on the proxies. [`get_logits`](Self::get_logits) gives `s_ic`.
///
/// `proxies` is a trainable `Param` (`[num_classes, embedding_size]`, PML's attribute name), so
/// the loss nests in a model and is optimized and saved with it.
///
/// # Shapes
/// - embeddings `[n, embedding_size]`, labels `[n]` with values in `0..num_classes`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`](pml_core::LossInput::validate), without
/// labels, with a reference set, when the embeddings are not `embedding_size` wide, or when
/// a label is not below `num_classes` (checked on the device, one scalar read back). Use
/// [`try_forward`](pml_core::MetricLoss::try_forward) to get these as errors.
#[derive(Module, Debug)]
pub struct ProxyAnchorLoss<B: Backend> {
    /// The class proxies, PML's attribute `proxies`, `[num_classes, embedding_size]`.
    pub proxies: Param<Tensor<B, 2>>,
    num_classes: usize,
    embedding_size: usize,
    margin: f64,
    alpha: f64,
    slots: LossSlots,
    weight_reg: WeightRegularization,
}

impl<B: Backend> ProxyAnchorLoss<B> {
    /// Replaces the proxies with the given values (same shape; the parameter id is kept).
    ///
    /// # Panics
    /// If the shape differs from the proxies'.
    pub fn with_proxies(mut self, proxies: Tensor<B, 2>) -> Self {
        self.proxies = replace(&self.proxies, proxies, NAME, "proxies");
        self
    }

    /// PML's `get_logits`: the similarity of each embedding to each proxy,
    /// `[n, num_classes]`.
    ///
    /// # Panics
    /// If the embeddings are not `embedding_size` wide.
    pub fn get_logits(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Err(e) = check_width(NAME, &embeddings, "embedding_size", self.embedding_size) {
            panic!("{e}");
        }
        let proxies = value_like(&self.proxies, &embeddings);
        self.slots.distance.forward(embeddings, Some(proxies))
    }
}

impl<B: Backend> MetricLoss<B> for ProxyAnchorLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = expect_batch(NAME, input, self.embedding_size, self.num_classes);
        let embeddings = input.embeddings.clone();
        let n = embeddings.dims()[0];
        let device = embeddings.device();
        let proxies = value_like(&self.proxies, &embeddings);
        let log_weights = convert_to_weights(input.indices_tuple.as_ref(), &embeddings, false)
            .sub_scalar(1.0)
            .reshape([1, n]);
        let d = &self.slots.distance;
        let c = self.num_classes;
        // Proxies (rows) against the batch (columns), in blocks of proxies: each proxy's
        // log-sum-exps run along its row, computed off the autodiff graph with their
        // derivatives, which reach the similarities through the block's links.
        let slope = Distance::<B>::margin_slope(d) * self.alpha;
        let blocks = d.map_detached_blocks(
            proxies.clone(),
            Some(embeddings.clone()),
            BLOCK_ENTRIES,
            block_threads::<B>(&device),
            |rows, sim| {
                let b = rows.len();
                let classes =
                    Tensor::<B, 1, Int>::arange(rows.start as i64..rows.end as i64, &device);
                let is_pos = pairwise_equal(&classes, &labels);
                let pos_exp = d
                    .margin_to(sim.mat().clone(), self.margin)
                    .mul_scalar(self.alpha)
                    + log_weights.clone();
                let neg_exp = d
                    .margin_from(-self.margin, sim.mat().clone())
                    .mul_scalar(self.alpha)
                    + log_weights.clone();
                let (pos, w_pos) =
                    masked_logsumexp_with_slopes(pos_exp, Some(is_pos.clone()), true);
                let (neg, w_neg) =
                    masked_logsumexp_with_slopes(neg_exp, Some(is_pos.clone().bool_not()), true);
                let pos =
                    value_with_gradient(pos.reshape([b]), sim.link_rows(w_pos.mul_scalar(slope)));
                let neg =
                    value_with_gradient(neg.reshape([b]), sim.link_rows(w_neg.mul_scalar(-slope)));
                (pos, neg, is_pos.any_dim(1).reshape([b]))
            },
        );
        let (mut pos, mut neg, mut has_pos) = (vec![], vec![], vec![]);
        for (p, q, h) in blocks {
            pos.push(p);
            neg.push(q);
            has_pos.push(h);
        }
        let (pos, neg) = (Tensor::cat(pos, 0), Tensor::cat(neg, 0));
        let with_pos = crate::class_weights::count_true(Tensor::cat(has_pos, 0), &pos);
        let all =
            Tensor::<B, 1>::from_data(TensorData::new(vec![c as f64], [1]), (&device, pos.dtype()));
        let idx = Tensor::<B, 1, Int>::arange(0..c as i64, &device);
        let mut terms = LossTerms::new()
            .with(LossTerm::element("pos_loss", pos, idx.clone()).with_divisor(with_pos))
            .with(LossTerm::element("neg_loss", neg, idx).with_divisor(all));
        self.weight_reg.add(&mut terms, proxies);
        self.slots.with_regularization(terms, input)
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        self.slots.reduce(&terms, input)
    }

    fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
        input.check()?;
        check_batch(NAME, &input, self.embedding_size, self.num_classes)?;
        Ok(self.forward(input))
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
        // Proxies e₀, e₁; one embedding (1, 0) of class 0: s = (1, 0). With α = 1, δ = 0.5:
        // pos₀ = ln(1 + e^{0.5 − 1}) over 1 class present, pos₁ = 0;
        // neg₁ = ln(1 + e^{0 + 0.5}), neg₀ = 0, over 2 classes.
        let loss = ProxyAnchorLossConfig::new(2, 2)
            .with_alpha(1.0)
            .with_margin(0.5)
            .init::<B>(&device)
            .with_proxies(Tensor::from_floats([[1.0, 0.0], [0.0, 1.0]], &device));
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0], &device);
        let v = loss.forward(LossInput::new(x, labels)).into_scalar() as f64;
        let want = (1.0 + (-0.5f64).exp()).ln() + (1.0 + 0.5f64.exp()).ln() / 2.0;
        assert!((v - want).abs() < 1e-5, "{v} vs {want}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = ProxyAnchorLossConfig::new(4, 4)
            .with_alpha(4.0)
            .init::<crate::gradcheck::B64>(&Default::default());
        crate::gradcheck::check_gradients(&loss, &[0, 1, 2, 0, 1, 2], 4, 19);
    }
}
