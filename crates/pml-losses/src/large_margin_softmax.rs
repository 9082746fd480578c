// The weight keeps PML's attribute name `W` (field, setter and record key), so that code and
// checkpoints map one-to-one onto PML's; Burn's derive repeats the name in generated code.
#![allow(non_snake_case)]

use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Tensor, backend::Backend},
};
use pml_core::PmlError;
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    margin_softmax::{
        LogitScale, MarginSoftmax, MarginSoftmaxParts, TargetMargin, margin_softmax_impls,
    },
    regularizers::RegularizerConfig,
};

/// Configuration of [`LargeMarginSoftmaxLoss`], with PML's argument names and defaults (`num_classes`
/// and `embedding_size` are required, as in PML).
#[derive(Config, Debug)]
pub struct LargeMarginSoftmaxLossConfig {
    /// Number of classes (columns of `W`).
    pub num_classes: usize,
    /// Width of the embeddings (rows of `W`).
    pub embedding_size: usize,
    /// The angular margin `m` (truncated to an integer, as in PML).
    #[config(default = 4.0)]
    pub margin: f64,
    /// The scale `s` of the logits.
    #[config(default = 1.0)]
    pub scale: f64,
    /// The similarity (PML requires `CosineSimilarity`).
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
    /// An optional penalty on the class weights (the rows of `Wᵀ`), added as the term
    /// `weight_reg_loss`.
    pub weight_regularizer: Option<RegularizerConfig>,
    /// Weight of the weight penalty.
    #[config(default = 1.0)]
    pub weight_reg_weight: f64,
}

impl LargeMarginSoftmaxLossConfig {
    /// Builds the loss on `device`, with `W` drawn from `N(0, 1)` as in PML; refuses zero
    /// sizes, non-finite hyperparameters and distances other than `CosineSimilarity`.
    pub fn try_init<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<LargeMarginSoftmaxLoss<B>, PmlError> {
        let base = MarginSoftmax::build(MarginSoftmaxParts {
            name: "LargeMarginSoftmaxLoss",
            num_classes: self.num_classes,
            embedding_size: self.embedding_size,
            sub_centers: 1,
            margin: TargetMargin::Multiplicative(self.margin as usize),
            scaling: LogitScale::Magnitudes,
            scale: self.scale,
            distance: &self.distance,
            reducer: &self.reducer,
            embedding_regularizer: self.embedding_regularizer.as_ref(),
            embedding_reg_weight: self.embedding_reg_weight,
            weight_regularizer: self.weight_regularizer.as_ref(),
            weight_reg_weight: self.weight_reg_weight,
        })?;
        Ok(LargeMarginSoftmaxLoss {
            W: base.init_weights(device),
            base,
        })
    }

    /// Builds the loss on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> LargeMarginSoftmaxLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Large-margin softmax loss (Liu et al., "Large-Margin Softmax Loss for Convolutional Neural
/// Networks", ICML 2016; PML's `LargeMarginSoftmaxLoss`).
///
/// With `θ_ic` the angle between embedding `x_i` and class weight `w_c` (column `c` of `W`),
/// the logits are `s ‖x_i‖ ‖w_c‖ cos θ_ic`, except for the target class, whose cosine becomes
/// `ψ(θ) = (−1)^k cos(mθ) − 2k`, `k = ⌊mθ/π⌋` (`m` an integer, `cos(mθ)` by the multiple-angle
/// formula, the paper's equations 6 and 7); each embedding loses the cross entropy of these
/// logits times its miner weight (PML's `convert_to_weights`). Term `loss` (element reduction,
/// mean by default) and, with a weight regularizer, `weight_reg_loss` on the rows of `Wᵀ`.
/// [`get_logits`](Self::get_logits) gives `s ‖x_i‖ ‖w_c‖ cos θ_ic`.
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
pub struct LargeMarginSoftmaxLoss<B: Backend> {
    /// The class weights, PML's attribute `W`, `[embedding_size, num_classes]`.
    pub W: Param<Tensor<B, 2>>,
    base: MarginSoftmax,
}

margin_softmax_impls!(LargeMarginSoftmaxLoss);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Int;
    use pml_core::{LossInput, MetricLoss};

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value() {
        let device = Default::default();
        // W = 3·identity, x = (2, 0), label 0: θ = 0, ψ = cos 0 = 1 for any m. Logits
        // ‖x‖‖w‖(1, 0) = (6, 0): loss = ln(1 + e^{−6}).
        let loss = LargeMarginSoftmaxLossConfig::new(2, 2)
            .init::<B>(&device)
            .with_W(Tensor::from_floats([[3.0, 0.0], [0.0, 3.0]], &device));
        let x = Tensor::<B, 2>::from_floats([[2.0, 0.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0], &device);
        let v = loss.forward(LossInput::new(x, labels)).into_scalar();
        assert!((v - (1.0 + (-6f32).exp()).ln()).abs() < 1e-5, "{v}");
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = LargeMarginSoftmaxLossConfig::new(3, 4)
            .init::<crate::gradcheck::B64>(&Default::default());
        crate::gradcheck::check_gradients(&loss, &[0, 1, 2, 0, 1, 2], 4, 7);
    }
}
