// The weight keeps PML's attribute name `W` (field, setter and record key), so that code and
// checkpoints map one-to-one onto PML's; Burn's derive repeats the name in generated code.
#![allow(non_snake_case)]

use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{
    Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    math::normalize_rows,
};
use pml_distances::{DistanceConfig, DotProductSimilarityConfig};
use pml_reducers::ReducerConfig;

use crate::{
    base::{LossSlots, WeightRegularization},
    class_weights::{
        check_batch, check_width, expect_batch, normal, param, positive, replace, value_like,
    },
    common::{convert_to_weights, cross_entropy_rows, finite},
    regularizers::RegularizerConfig,
};

const NAME: &str = "NormalizedSoftmaxLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// Configuration of [`NormalizedSoftmaxLoss`], with PML's argument names and defaults
/// (`num_classes` and `embedding_size` are required, as in PML).
#[derive(Config, Debug)]
pub struct NormalizedSoftmaxLossConfig {
    /// Number of classes (columns of `W`).
    pub num_classes: usize,
    /// Width of the embeddings (rows of `W`).
    pub embedding_size: usize,
    /// The softmax temperature `τ` (logits are divided by it).
    #[config(default = 0.05)]
    pub temperature: f64,
    /// The similarity (PML's default: `DotProductSimilarity`, normalized embeddings); a
    /// distance is negated.
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
    /// An optional penalty on the class weights (the rows of `Wᵀ`, not normalized), added as
    /// the term `weight_reg_loss`.
    pub weight_regularizer: Option<RegularizerConfig>,
    /// Weight of the weight penalty.
    #[config(default = 1.0)]
    pub weight_reg_weight: f64,
}

impl NormalizedSoftmaxLossConfig {
    /// Builds the loss on `device`, with `W` drawn from `N(0, 1)` as in PML; refuses zero
    /// sizes, a zero or non-finite temperature and invalid slots.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<NormalizedSoftmaxLoss<B>, PmlError> {
        positive(NAME, "num_classes", self.num_classes)?;
        positive(NAME, "embedding_size", self.embedding_size)?;
        finite(NAME, "temperature", self.temperature)?;
        if self.temperature == 0.0 {
            return Err(PmlError::invalid_argument(
                "temperature",
                0,
                format!("{NAME}: must be non-zero"),
            ));
        }
        let norm_p = match &self.distance {
            DistanceConfig::Lp(c) => c.p,
            DistanceConfig::Cosine(c) => c.p,
            DistanceConfig::DotProduct(c) => c.p,
            DistanceConfig::Snr(c) => c.p,
        };
        Ok(NormalizedSoftmaxLoss {
            W: param(normal([self.embedding_size, self.num_classes], 1.0, device)),
            num_classes: self.num_classes,
            embedding_size: self.embedding_size,
            temperature: self.temperature,
            norm_p,
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
    pub fn init<B: Backend>(&self, device: &B::Device) -> NormalizedSoftmaxLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Normalized softmax loss (Zhai & Wu, "Classification is a Strong Baseline for Deep Metric
/// Learning", BMVC 2019; PML's `NormalizedSoftmaxLoss`).
///
/// With `ŵ_c` the column `c` of `W` normalized to unit norm, the logits are
/// `z_ic = s(x_i, ŵ_c) / τ` (`s` the similarity, a distance being negated), and each embedding
/// loses the cross entropy `−log softmax(z_i)_{y_i}` times its miner weight (PML's
/// `convert_to_weights`: `count / max count` of its occurrences in an indices tuple, 1
/// without one). Term `loss` (element reduction, mean by default) and, with a weight
/// regularizer, `weight_reg_loss` on the rows of `Wᵀ`. [`get_logits`](Self::get_logits) gives
/// `z`.
///
/// `W` is a trainable `Param` (`[embedding_size, num_classes]`, PML's attribute name), so the
/// loss nests in a model and is optimized and saved with it.
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
pub struct NormalizedSoftmaxLoss<B: Backend> {
    /// The class weights, PML's attribute `W`, `[embedding_size, num_classes]`.
    pub W: Param<Tensor<B, 2>>,
    num_classes: usize,
    embedding_size: usize,
    temperature: f64,
    norm_p: f64,
    slots: LossSlots,
    weight_reg: WeightRegularization,
}

impl<B: Backend> NormalizedSoftmaxLoss<B> {
    /// Replaces `W` with the given values (same shape; the parameter id is kept).
    ///
    /// # Panics
    /// If the shape differs from `W`'s.
    pub fn with_W(mut self, W: Tensor<B, 2>) -> Self {
        self.W = replace(&self.W, W, NAME, "W");
        self
    }

    /// PML's `get_logits`: `s(x_i, ŵ_c) / τ` (negated for a distance), `[n, num_classes]`.
    ///
    /// # Panics
    /// If the embeddings are not `embedding_size` wide.
    pub fn get_logits(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Err(e) = check_width(NAME, &embeddings, "embedding_size", self.embedding_size) {
            panic!("{e}");
        }
        let w = value_like(&self.W, &embeddings);
        self.logits(w, embeddings)
    }

    fn logits(&self, w: Tensor<B, 2>, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        let d = &self.slots.distance;
        let classes = normalize_rows(w.transpose(), self.norm_p);
        let logits = d
            .forward(embeddings, Some(classes))
            .div_scalar(self.temperature);
        if Distance::<B>::is_inverted(d) {
            logits
        } else {
            logits.neg()
        }
    }
}

impl<B: Backend> MetricLoss<B> for NormalizedSoftmaxLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = expect_batch(NAME, input, self.embedding_size, self.num_classes);
        let embeddings = input.embeddings.clone();
        let n = embeddings.dims()[0];
        let w = value_like(&self.W, &embeddings);
        let weights = convert_to_weights(input.indices_tuple.as_ref(), &embeddings, false);
        let logits = self.logits(w.clone(), embeddings.clone());
        let losses = cross_entropy_rows(logits, labels) * weights;
        let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &embeddings.device());
        let mut terms = LossTerms::new().with(LossTerm::element("loss", losses, idx));
        self.weight_reg.add(&mut terms, w.transpose());
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
        // W columns (2, 0) and (0, 5) normalize to e₀, e₁; x = (3, 4)/5 has cosines 0.6, 0.8.
        // With τ = 0.5: logits 1.2, 1.6, label 0: loss = ln(1 + e^{0.4}).
        let loss = NormalizedSoftmaxLossConfig::new(2, 2)
            .with_temperature(0.5)
            .init::<B>(&device)
            .with_W(Tensor::from_floats([[2.0, 0.0], [0.0, 5.0]], &device));
        let x = Tensor::<B, 2>::from_floats([[0.6, 0.8]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0], &device);
        let v = loss.forward(LossInput::new(x, labels)).into_scalar();
        assert!((v - (1.0 + 0.4f32.exp()).ln()).abs() < 1e-5, "{v}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = NormalizedSoftmaxLossConfig::new(3, 4)
            .with_temperature(0.5)
            .init::<crate::gradcheck::B64>(&Default::default());
        crate::gradcheck::check_gradients(&loss, &[0, 1, 2, 0, 1, 2], 4, 17);
    }
}
