use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Int, Tensor, activation::softmax, backend::Backend},
};
use pml_core::{Distance, LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::{LossSlots, WeightRegularization},
    class_weights::{
        check_batch, check_width, expect_batch, one_hot_like, param, positive, replace, uniform,
        value_like,
    },
    common::{convert_to_weights, cross_entropy_rows, finite},
    regularizers::RegularizerConfig,
};

const NAME: &str = "SoftTripleLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::Element)];

/// Configuration of [`SoftTripleLoss`], with PML's argument names and defaults
/// (`num_classes` and `embedding_size` are required, as in PML).
#[derive(Config, Debug)]
pub struct SoftTripleLossConfig {
    /// Number of classes.
    pub num_classes: usize,
    /// Width of the embeddings and centers.
    pub embedding_size: usize,
    /// Centers per class `K`.
    #[config(default = 10)]
    pub centers_per_class: usize,
    /// The scale `λ` of the logits.
    #[config(default = 20.0)]
    pub la: f64,
    /// The softmax temperature `γ` over a class's centers (similarities are divided by it).
    #[config(default = 0.1)]
    pub gamma: f64,
    /// The margin `δ` subtracted from the target class's similarity.
    #[config(default = 0.01)]
    pub margin: f64,
    /// The similarity (PML's default: `CosineSimilarity`; PML requires a similarity).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// The reducer (PML's default: `MeanReducer`).
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
    /// An optional penalty on the centers (the rows of `fcᵀ`; the paper's
    /// `SparseCentersRegularizer`), added as the term `weight_reg_loss`.
    pub weight_regularizer: Option<RegularizerConfig>,
    /// Weight of the center penalty.
    #[config(default = 1.0)]
    pub weight_reg_weight: f64,
}

impl SoftTripleLossConfig {
    /// Builds the loss on `device`, with PML's initialisation of `fc`
    /// (`kaiming_uniform_(a=√5)`: `U(−1/√(C·K), 1/√(C·K))`); refuses zero sizes, a zero or
    /// non-finite `gamma`, non-finite hyperparameters, a distance (PML asserts a similarity)
    /// and invalid slots.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<SoftTripleLoss<B>, PmlError> {
        positive(NAME, "num_classes", self.num_classes)?;
        positive(NAME, "embedding_size", self.embedding_size)?;
        positive(NAME, "centers_per_class", self.centers_per_class)?;
        for (name, v) in [
            ("la", self.la),
            ("gamma", self.gamma),
            ("margin", self.margin),
        ] {
            finite(NAME, name, v)?;
        }
        if self.gamma == 0.0 {
            return Err(PmlError::invalid_argument(
                "gamma",
                0,
                format!("{NAME}: must be non-zero"),
            ));
        }
        if !matches!(
            self.distance,
            DistanceConfig::Cosine(_) | DistanceConfig::DotProduct(_)
        ) {
            return Err(PmlError::Unsupported(format!(
                "{NAME} requires a similarity (an inverted distance), got {}",
                self.distance.pml_name()
            )));
        }
        let total = self.num_classes * self.centers_per_class;
        let bound = 1.0 / (total as f64).sqrt();
        Ok(SoftTripleLoss {
            fc: param(uniform([self.embedding_size, total], bound, device)),
            num_classes: self.num_classes,
            embedding_size: self.embedding_size,
            centers_per_class: self.centers_per_class,
            la: self.la,
            gamma: self.gamma,
            margin: self.margin,
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
    pub fn init<B: Backend>(&self, device: &B::Device) -> SoftTripleLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// SoftTriple loss (Qian et al., "SoftTriple Loss: Deep Metric Learning Without Triplet
/// Sampling", ICCV 2019; PML's `SoftTripleLoss`).
///
/// Each class has `K` trainable centers (columns of `fc`). The similarity of embedding `x_i`
/// to class `c` is the softmax-weighted mean of its similarities to the class's centers,
///
/// `S_ic = Σ_k softmax_k(s(x_i, w_ck) / γ) · s(x_i, w_ck)`,
///
/// and each embedding loses the cross entropy `−log softmax(λ (S_i − δ e_{y_i}))_{y_i}` times
/// its miner weight (PML's `convert_to_weights`). Term `loss` (element reduction, mean by
/// default) and, with a weight regularizer (the paper's
/// [`SparseCentersRegularizer`](crate::regularizers::SparseCentersRegularizer)),
/// `weight_reg_loss` on the rows of `fcᵀ`. [`get_logits`](Self::get_logits) gives `S`.
///
/// `fc` is a trainable `Param` (`[embedding_size, num_classes · centers_per_class]`, PML's
/// attribute name), so the loss nests in a model and is optimized and saved with it.
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
pub struct SoftTripleLoss<B: Backend> {
    /// The class centers, PML's attribute `fc`, `[embedding_size, num_classes ·
    /// centers_per_class]` (columns `c·K .. (c+1)·K` belong to class `c`).
    pub fc: Param<Tensor<B, 2>>,
    num_classes: usize,
    embedding_size: usize,
    centers_per_class: usize,
    la: f64,
    gamma: f64,
    margin: f64,
    slots: LossSlots,
    weight_reg: WeightRegularization,
}

impl<B: Backend> SoftTripleLoss<B> {
    /// Replaces `fc` with the given values (same shape; the parameter id is kept).
    ///
    /// # Panics
    /// If the shape differs from `fc`'s.
    pub fn with_fc(mut self, fc: Tensor<B, 2>) -> Self {
        self.fc = replace(&self.fc, fc, NAME, "fc");
        self
    }

    /// PML's `get_logits`: the relaxed class similarities `S`, `[n, num_classes]`.
    ///
    /// # Panics
    /// If the embeddings are not `embedding_size` wide.
    pub fn get_logits(&self, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        if let Err(e) = check_width(NAME, &embeddings, "embedding_size", self.embedding_size) {
            panic!("{e}");
        }
        let fc = value_like(&self.fc, &embeddings);
        self.class_similarity(fc, embeddings)
    }

    fn class_similarity(&self, fc: Tensor<B, 2>, embeddings: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = embeddings.dims()[0];
        let (c, k) = (self.num_classes, self.centers_per_class);
        let sim = self
            .slots
            .distance
            .forward(embeddings, Some(fc.transpose()))
            .reshape([n, c, k]);
        let prob = softmax(sim.clone().div_scalar(self.gamma), 2);
        (prob * sim).sum_dim(2).reshape([n, c])
    }
}

impl<B: Backend> MetricLoss<B> for SoftTripleLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        let labels = expect_batch(NAME, input, self.embedding_size, self.num_classes);
        let embeddings = input.embeddings.clone();
        let n = embeddings.dims()[0];
        let fc = value_like(&self.fc, &embeddings);
        let weights = convert_to_weights(input.indices_tuple.as_ref(), &embeddings, false);
        let sim = self.class_similarity(fc.clone(), embeddings.clone());
        let margin = one_hot_like(&labels, &sim).mul_scalar(self.margin);
        let logits = (sim - margin).mul_scalar(self.la);
        let losses = cross_entropy_rows(logits, labels) * weights;
        let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &embeddings.device());
        let mut terms = LossTerms::new().with(LossTerm::element("loss", losses, idx));
        self.weight_reg.add(&mut terms, fc.transpose());
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
        // One center per class: S = cosines. Centers e₀, e₁, x = (1, 0), label 1: S = (1, 0);
        // λ = 1, δ = 0.5: logits (1, −0.5), loss = ln(1 + e^{1.5}).
        let loss = SoftTripleLossConfig::new(2, 2)
            .with_centers_per_class(1)
            .with_la(1.0)
            .with_margin(0.5)
            .init::<B>(&device)
            .with_fc(Tensor::from_floats([[1.0, 0.0], [0.0, 1.0]], &device));
        let x = Tensor::<B, 2>::from_floats([[1.0, 0.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([1], &device);
        let v = loss.forward(LossInput::new(x, labels)).into_scalar();
        assert!((v - (1.0 + 1.5f32.exp()).ln()).abs() < 1e-5, "{v}");
    }

    #[test]
    fn class_similarity_is_a_softmax_weighted_mean() {
        let device = Default::default();
        // Two centers e₀, e₁ for one class, x = (1, 0): similarities (1, 0), γ = 1:
        // S = e/(e + 1).
        let loss = SoftTripleLossConfig::new(1, 2)
            .with_centers_per_class(2)
            .with_gamma(1.0)
            .init::<B>(&device)
            .with_fc(Tensor::from_floats([[1.0, 0.0], [0.0, 1.0]], &device));
        let s = loss
            .get_logits(Tensor::from_floats([[1.0, 0.0]], &device))
            .into_scalar();
        let e = std::f32::consts::E;
        assert!((s - e / (e + 1.0)).abs() < 1e-6, "{s}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = SoftTripleLossConfig::new(3, 4)
            .with_centers_per_class(2)
            .with_la(4.0)
            .with_gamma(0.5)
            .init::<crate::gradcheck::B64>(&Default::default());
        crate::gradcheck::check_gradients(&loss, &[0, 1, 2, 0, 1, 2], 4, 29);
    }
}
