use burn::{
    config::Config,
    module::{Module, Param},
    tensor::{Tensor, backend::Backend},
};
use pml_core::{
    LossInput, LossTerm, LossTerms, MetricLoss, PmlError, ReductionType,
    math::{lp_norm_rows, scalar_div},
};
use pml_distances::DistanceConfig;
use pml_reducers::ReducerConfig;

use crate::{
    base::LossSlots,
    class_weights::{
        check_batch, expect_batch, one_hot_like, param, positive, replace, uniform, value_like,
    },
    regularizers::RegularizerConfig,
};

const NAME: &str = "P2SGradLoss";
const TERMS: [(&str, ReductionType); 1] = [("loss", ReductionType::AlreadyReduced)];

/// Configuration of [`P2SGradLoss`], with PML's argument names and defaults
/// (`descriptors_dim` and `num_classes` are required, as in PML).
#[derive(Config, Debug)]
pub struct P2SGradLossConfig {
    /// Width of the embeddings (rows of `weight`).
    pub descriptors_dim: usize,
    /// Number of classes (columns of `weight`).
    pub num_classes: usize,
    /// Accepted as in PML, unused (the loss computes cosines itself).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
    /// Accepted as in PML; the loss is already reduced, so every reducer passes it through.
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
    /// An optional penalty on the embeddings, added as the term `embedding_reg_loss`.
    pub embedding_regularizer: Option<RegularizerConfig>,
    /// Weight of the embedding penalty.
    #[config(default = 1.0)]
    pub embedding_reg_weight: f64,
}

impl P2SGradLossConfig {
    /// Builds the loss on `device`, with PML's initialisation of `weight` (entries drawn from
    /// `U(−1, 1)`, then every column scaled to unit norm); refuses zero sizes and invalid
    /// slots.
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<P2SGradLoss<B>, PmlError> {
        positive(NAME, "descriptors_dim", self.descriptors_dim)?;
        positive(NAME, "num_classes", self.num_classes)?;
        let raw = uniform::<B>([self.descriptors_dim, self.num_classes], 1.0, device);
        Ok(P2SGradLoss {
            weight: param(unit_columns(raw)),
            descriptors_dim: self.descriptors_dim,
            num_classes: self.num_classes,
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
    pub fn init<B: Backend>(&self, device: &B::Device) -> P2SGradLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// PyTorch's `w.renorm(2, 1, 1e-5).mul(1e5)`: columns with a norm above `1e-5` scaled to
/// (almost exactly) unit norm, the others multiplied by `1e5`.
fn unit_columns<B: Backend>(w: Tensor<B, 2>) -> Tensor<B, 2> {
    let c = w.dims()[1];
    let norms = lp_norm_rows(w.clone().transpose(), 2.0).reshape([1, c]);
    let large = norms.clone().greater_elem(1e-5);
    let small = norms.ones_like().mul_scalar(1e5);
    let factor = scalar_div(1.0, norms.add_scalar(1e-7)).mask_where(large.bool_not(), small);
    w * factor
}

/// P2SGrad (Zhang et al., "P2SGrad: Refined Gradients for Optimizing Deep Face Models", CVPR
/// 2019; PML's `P2SGradLoss`): the mean squared error between the cosines of the embeddings to
/// the class weights and the one-hot labels,
///
/// `L = 1/(n C) Σ_i Σ_c (cos θ_ic − [c = y_i])²`, `cos θ_ic = clamp(x_i · w_c / ‖x_i‖, −1, 1)`,
///
/// whose gradient is the paper's equation 11. The columns of `weight` are used at unit norm:
/// PML renormalizes the stored parameter in place at every call; a Burn module is immutable
/// in `forward`, so here the normalized value is used with the gradient PML reports (that of
/// the normalized weight, straight through to `weight`), and
/// [`renormalized`](Self::renormalized) stores it, as PML's call does. Term `loss`, already
/// reduced.
///
/// `weight` is a trainable `Param` (`[descriptors_dim, num_classes]`, PML's attribute name), so
/// the loss nests in a model and is optimized and saved with it.
///
/// # Shapes
/// - embeddings `[n, descriptors_dim]`, labels `[n]` with values in `0..num_classes`
/// - output `[1]`
///
/// # Panics
/// On the shape errors of [`LossInput::validate`](pml_core::LossInput::validate), without
/// labels, with a reference set or an indices tuple (PML refuses both), when the embeddings
/// are not `descriptors_dim` wide, or when a label is not below `num_classes` (checked on the
/// device, one scalar read back). Use [`try_forward`](pml_core::MetricLoss::try_forward) to
/// get these as errors.
#[derive(Module, Debug)]
pub struct P2SGradLoss<B: Backend> {
    /// The class weights, PML's attribute `weight`, `[descriptors_dim, num_classes]`.
    pub weight: Param<Tensor<B, 2>>,
    descriptors_dim: usize,
    num_classes: usize,
    slots: LossSlots,
}

impl<B: Backend> P2SGradLoss<B> {
    /// Replaces `weight` with the given values (same shape; the parameter id is kept).
    ///
    /// # Panics
    /// If the shape differs from `weight`'s.
    pub fn with_weight(mut self, weight: Tensor<B, 2>) -> Self {
        self.weight = replace(&self.weight, weight, NAME, "weight");
        self
    }

    /// The loss with `weight`'s columns stored at unit norm (what PML's forward does to its
    /// parameter; call it after an optimizer step to follow PML exactly).
    pub fn renormalized(self) -> Self {
        let w = unit_columns(self.weight.val().detach());
        self.with_weight(w)
    }

    fn check(&self, input: &LossInput<B>) -> Result<(), PmlError> {
        if input.indices_tuple.is_some() {
            return Err(PmlError::Unsupported(format!(
                "{NAME}: indices_tuple is not supported for this loss function"
            )));
        }
        check_batch(NAME, input, self.descriptors_dim, self.num_classes).map(|_| ())
    }
}

impl<B: Backend> MetricLoss<B> for P2SGradLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        input.validate();
        if let Err(e) = self.check(input) {
            panic!("{e}");
        }
        let labels = expect_batch(NAME, input, self.descriptors_dim, self.num_classes);
        let x = input.embeddings.clone();
        let w = value_like(&self.weight, &x);
        // Value: the unit-norm columns; gradient: straight through to `weight`.
        let w = unit_columns(w.clone().detach()) + (w.clone() - w.detach());
        // Zero rows get cosine 0 (PML divides by their zero norm: a NaN loss).
        let norms = lp_norm_rows(x.clone(), 2.0).clamp_min(1e-12);
        let cos = (pml_core::math::matmul(x, w) / norms).clamp(-1.0, 1.0);
        let target = one_hot_like(&labels, &cos);
        let loss = (cos - target).powi_scalar(2).mean();
        let terms = LossTerms::new().with(LossTerm::already_reduced("loss", loss));
        self.slots.with_regularization(terms, input)
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
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::Int;
    use pml_core::tensor::float_vec;

    type B = Autodiff<NdArray>;

    #[test]
    fn hand_checked_value_and_weight_gradient() {
        let device = Default::default();
        // weight columns (2, 0) → e₀ and (0, 1); x = (3, 4), label 0: cosines 0.6, 0.8.
        // L = ((0.6 − 1)² + 0.8²) / 2 = 0.4. dL/dw₀ = (0.6 − 1) x/‖x‖ = −0.4 (0.6, 0.8),
        // dL/dw₁ = 0.8 (0.6, 0.8) (straight through the normalization).
        let loss = P2SGradLossConfig::new(2, 2)
            .init::<B>(&device)
            .with_weight(Tensor::from_floats([[2.0, 0.0], [0.0, 1.0]], &device));
        let x = Tensor::<B, 2>::from_floats([[3.0, 4.0]], &device);
        let labels = Tensor::<B, 1, Int>::from_ints([0], &device);
        let v = loss.forward(LossInput::new(x, labels));
        assert!((v.clone().into_scalar() - 0.4).abs() < 1e-5);
        let g = float_vec(loss.weight.val().grad(&v.backward()).unwrap());
        let want = [-0.24, 0.48, -0.32, 0.64];
        assert!(
            g.iter().zip(want).all(|(g, w)| (g - w).abs() < 1e-5),
            "{g:?}"
        );
        let stored = float_vec(loss.renormalized().weight.val());
        assert!((stored[0] - 1.0).abs() < 1e-6 && (stored[3] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let loss = P2SGradLossConfig::new(4, 3).init::<crate::gradcheck::B64>(&Default::default());
        crate::gradcheck::check_gradients(&loss, &[0, 1, 2, 0, 1, 2], 4, 31);
    }
}
