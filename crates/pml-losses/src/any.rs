use burn::{
    module::Module,
    tensor::{
        Tensor, TensorData,
        backend::{AutodiffBackend, Backend},
    },
};
use pml_core::{LossInput, LossTerms, MetricLoss, PmlError};

use crate::{
    ContrastiveLoss, ContrastiveLossConfig, MarginLoss, MarginLossConfig, TripletMarginLoss,
    TripletMarginLossConfig,
};

/// Any loss, by configuration. Serializes as a PML spec with every slot inside `params`:
///
/// ```
/// use burn::backend::NdArray;
/// use pml_losses::LossConfig;
/// let c: LossConfig = serde_json::from_str(r#"{
///     "name": "TripletMarginLoss",
///     "params": {"margin": 0.2, "distance": {"name": "CosineSimilarity", "params": {}}}
/// }"#).unwrap();
/// let loss = c.try_init::<NdArray>(&Default::default()).unwrap();
/// assert_eq!(c.pml_name(), "TripletMarginLoss");
/// # let _ = loss;
/// ```
#[derive(Clone, Debug)]
pub enum LossConfig {
    /// [`ContrastiveLoss`].
    Contrastive(ContrastiveLossConfig),
    /// [`MarginLoss`].
    Margin(MarginLossConfig),
    /// [`TripletMarginLoss`].
    TripletMargin(TripletMarginLossConfig),
}

pml_core::spec_enum!(LossConfig {
    Contrastive(ContrastiveLossConfig) = "ContrastiveLoss" => ContrastiveLossConfig::new(),
    Margin(MarginLossConfig) = "MarginLoss" => MarginLossConfig::new(),
    TripletMargin(TripletMarginLossConfig) = "TripletMarginLoss" => TripletMarginLossConfig::new(),
});

impl LossConfig {
    /// Builds the loss on `device` (where trainable tensors live), refusing invalid
    /// configurations (including reducers PML refuses).
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<AnyLoss<B>, PmlError> {
        Ok(match self {
            Self::Contrastive(c) => AnyLoss::Contrastive(c.try_init()?),
            Self::Margin(c) => AnyLoss::Margin(c.try_init(device)?),
            Self::TripletMargin(c) => AnyLoss::TripletMargin(c.try_init()?),
        })
    }

    /// Builds the loss on `device`.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init<B: Backend>(&self, device: &B::Device) -> AnyLoss<B> {
        self.try_init(device).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Any built loss (see [`LossConfig`]): a Burn module, so losses with trainable tensors
/// nest in a model and are optimized and saved with it.
#[derive(Module, Debug)]
pub enum AnyLoss<B: Backend> {
    /// [`ContrastiveLoss`].
    Contrastive(ContrastiveLoss),
    /// [`MarginLoss`].
    Margin(MarginLoss<B>),
    /// [`TripletMarginLoss`].
    TripletMargin(TripletMarginLoss),
}

impl<B: Backend> AnyLoss<B> {
    /// Sets a trainable tensor from values, by PML's attribute name (`beta` for MarginLoss).
    pub fn load_parameter(
        self,
        name: &str,
        shape: &[usize],
        values: Vec<f32>,
    ) -> Result<Self, PmlError> {
        let unknown =
            || PmlError::invalid_input(name, "this loss has no trainable tensor of that name");
        match (self, name) {
            (Self::Margin(l), "beta") => {
                let expected = l.beta.dims();
                if shape != expected {
                    return Err(PmlError::invalid_input(
                        name,
                        format!("shape {shape:?}, expected {expected:?}"),
                    ));
                }
                let beta =
                    Tensor::from_data(TensorData::new(values, shape.to_vec()), &l.beta.device());
                Ok(Self::Margin(l.with_beta(beta)))
            }
            _ => Err(unknown()),
        }
    }
}

impl<B: AutodiffBackend> AnyLoss<B> {
    /// The gradient of the trainable tensor called `name` (PML's attribute name), flattened
    /// row-major; `None` when it did not take part in the loss.
    pub fn parameter_gradient(&self, name: &str, grads: &B::Gradients) -> Option<Vec<f64>> {
        match (self, name) {
            (Self::Margin(l), "beta") => l.beta.val().grad(grads).map(pml_core::tensor::float_vec),
            _ => None,
        }
    }
}

impl<B: Backend> MetricLoss<B> for AnyLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        match self {
            Self::Contrastive(l) => l.forward_terms(input),
            Self::Margin(l) => l.forward_terms(input),
            Self::TripletMargin(l) => l.forward_terms(input),
        }
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        match self {
            Self::Contrastive(l) => l.reduce(terms, input),
            Self::Margin(l) => l.reduce(terms, input),
            Self::TripletMargin(l) => l.reduce(terms, input),
        }
    }
}
