//! The registry of losses: [`LossConfig`] (every PML loss and wrapper, by class name),
//! [`BaseLoss`] (every loss that is not a wrapper) and [`AnyLoss`] (a base loss or a wrapper).
//!
//! To add a loss, add one line to the `base_losses!` list below.

use burn::{
    module::{Module, Param},
    tensor::{
        Tensor, TensorData,
        backend::{AutodiffBackend, Backend},
    },
};
use pml_core::{LossInput, LossTerms, MetricLoss, PmlError};

use crate::{
    ContrastiveLossConfig, CrossBatchMemory, CrossBatchMemoryConfig, MultipleLosses,
    MultipleLossesConfig, SelfSupervisedLoss, SelfSupervisedLossConfig,
};

/// The config a spec's params are merged over: `<Config>::new()`, or the given expression for
/// configs with required arguments.
macro_rules! loss_default {
    ($config:ty) => {
        <$config>::new()
    };
    ($config:ty, $default:expr) => {
        $default
    };
}

/// Declares the base losses once: `Variant(ConfigType => LossType) = "PMLName", |config,
/// device| build-expression`; a loss with required PML arguments adds
/// `requires ["arg", ...] => default-config` after its name.
macro_rules! base_losses {
    ($($variant:ident($config:ty => $loss:ty) = $name:literal
        $(requires [$($req:literal),*] => $default:expr)?,
        |$c:ident, $d:ident| $init:expr;)+) => {
        /// Any loss, by configuration: every PML loss and loss wrapper. Serializes as a PML
        /// spec (`{"name": <class>, "params": {...}}`, slots such as `distance` and `reducer`
        /// inside `params` or next to it).
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
            $(
                #[doc = concat!("PML's `", $name, "`.")]
                $variant($config),
            )+
            /// [`SelfSupervisedLoss`].
            SelfSupervised(SelfSupervisedLossConfig),
            /// [`MultipleLosses`].
            MultipleLosses(MultipleLossesConfig),
            /// [`CrossBatchMemory`].
            CrossBatchMemory(CrossBatchMemoryConfig),
        }

        pml_core::spec_enum!(LossConfig {
            $($variant($config) = $name => loss_default!($config $(, $default)?)
                $(; requires [$($req),*])?,)+
            SelfSupervised(SelfSupervisedLossConfig) = "SelfSupervisedLoss"
                => SelfSupervisedLossConfig::new(Box::new(LossConfig::Contrastive(ContrastiveLossConfig::new())));
                requires ["loss"],
            MultipleLosses(MultipleLossesConfig) = "MultipleLosses"
                => MultipleLossesConfig::new(Vec::new()); requires ["losses"],
            CrossBatchMemory(CrossBatchMemoryConfig) = "CrossBatchMemory"
                => CrossBatchMemoryConfig::new(Box::new(LossConfig::Contrastive(ContrastiveLossConfig::new())), 1);
                requires ["loss", "embedding_size"],
        });

        impl LossConfig {
            /// Builds a loss that is not a wrapper (what wrappers hold), on `device`.
            pub fn try_init_base<B: Backend>(&self, device: &B::Device) -> Result<BaseLoss<B>, PmlError> {
                match self {
                    $(Self::$variant($c) => {
                        let $d = device;
                        let _ = $d;
                        Ok(BaseLoss::$variant($init?))
                    })+
                    wrapper => Err(PmlError::Unsupported(format!(
                        "{} is a loss wrapper and cannot be wrapped",
                        wrapper.pml_name()
                    ))),
                }
            }
        }

        /// Any loss that is not a wrapper: a Burn module, so losses with trainable tensors nest
        /// in a model and are optimized and saved with it.
        #[derive(Module, Debug)]
        pub enum BaseLoss<B: Backend> {
            $(
                #[doc = concat!("PML's `", $name, "`.")]
                $variant($loss),
            )+
        }

        impl<B: Backend> MetricLoss<B> for BaseLoss<B> {
            fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
                match self {
                    $(Self::$variant(l) => l.forward_terms(input),)+
                }
            }

            fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
                match self {
                    $(Self::$variant(l) => l.reduce(terms, input),)+
                }
            }

            fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
                match self {
                    $(Self::$variant(l) => l.forward(input),)+
                }
            }

            fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
                match self {
                    $(Self::$variant(l) => l.try_forward(input),)+
                }
            }
        }
    };
}

base_losses! {
    Angular(crate::AngularLossConfig => crate::AngularLoss) = "AngularLoss", |c, d| c.try_init();
    ArcFace(crate::ArcFaceLossConfig => crate::ArcFaceLoss<B>) = "ArcFaceLoss"
        requires ["num_classes", "embedding_size"] => crate::ArcFaceLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    Circle(crate::CircleLossConfig => crate::CircleLoss) = "CircleLoss", |c, d| c.try_init();
    Contrastive(ContrastiveLossConfig => crate::ContrastiveLoss) = "ContrastiveLoss", |c, d| c.try_init();
    CosFace(crate::CosFaceLossConfig => crate::CosFaceLoss<B>) = "CosFaceLoss"
        requires ["num_classes", "embedding_size"] => crate::CosFaceLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    DynamicSoftMargin(crate::DynamicSoftMarginLossConfig => crate::DynamicSoftMarginLoss) = "DynamicSoftMarginLoss", |c, d| c.try_init();
    FastAP(crate::FastAPLossConfig => crate::FastAPLoss) = "FastAPLoss", |c, d| c.try_init();
    GeneralizedLiftedStructure(crate::GeneralizedLiftedStructureLossConfig => crate::GeneralizedLiftedStructureLoss)
        = "GeneralizedLiftedStructureLoss", |c, d| c.try_init();
    Histogram(crate::HistogramLossConfig => crate::HistogramLoss) = "HistogramLoss", |c, d| c.try_init();
    Instance(crate::InstanceLossConfig => crate::InstanceLoss) = "InstanceLoss", |c, d| c.try_init();
    IntraPairVariance(crate::IntraPairVarianceLossConfig => crate::IntraPairVarianceLoss)
        = "IntraPairVarianceLoss", |c, d| c.try_init();
    LargeMarginSoftmax(crate::LargeMarginSoftmaxLossConfig => crate::LargeMarginSoftmaxLoss<B>) = "LargeMarginSoftmaxLoss"
        requires ["num_classes", "embedding_size"] => crate::LargeMarginSoftmaxLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    LiftedStructure(crate::LiftedStructureLossConfig => crate::LiftedStructureLoss)
        = "LiftedStructureLoss", |c, d| c.try_init();
    Manifold(crate::ManifoldLossConfig => crate::ManifoldLoss<B>) = "ManifoldLoss"
        requires ["l"] => crate::ManifoldLossConfig::new(1),
        |c, d| c.try_init(d);
    Margin(crate::MarginLossConfig => crate::MarginLoss<B>) = "MarginLoss", |c, d| c.try_init(d);
    MultiSimilarity(crate::MultiSimilarityLossConfig => crate::MultiSimilarityLoss)
        = "MultiSimilarityLoss", |c, d| c.try_init();
    Nca(crate::NCALossConfig => crate::NCALoss) = "NCALoss", |c, d| c.try_init();
    NormalizedSoftmax(crate::NormalizedSoftmaxLossConfig => crate::NormalizedSoftmaxLoss<B>) = "NormalizedSoftmaxLoss"
        requires ["num_classes", "embedding_size"] => crate::NormalizedSoftmaxLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    NPairs(crate::NPairsLossConfig => crate::NPairsLoss) = "NPairsLoss", |c, d| c.try_init();
    NtXent(crate::NTXentLossConfig => crate::NTXentLoss) = "NTXentLoss", |c, d| c.try_init();
    P2SGrad(crate::P2SGradLossConfig => crate::P2SGradLoss<B>) = "P2SGradLoss"
        requires ["descriptors_dim", "num_classes"] => crate::P2SGradLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    Pnp(crate::PNPLossConfig => crate::PNPLoss) = "PNPLoss", |c, d| c.try_init();
    ProxyAnchor(crate::ProxyAnchorLossConfig => crate::ProxyAnchorLoss<B>) = "ProxyAnchorLoss"
        requires ["num_classes", "embedding_size"] => crate::ProxyAnchorLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    ProxyNCA(crate::ProxyNCALossConfig => crate::ProxyNCALoss<B>) = "ProxyNCALoss"
        requires ["num_classes", "embedding_size"] => crate::ProxyNCALossConfig::new(1, 1),
        |c, d| c.try_init(d);
    RankedList(crate::RankedListLossConfig => crate::RankedListLoss) = "RankedListLoss", |c, d| c.try_init();
    SignalToNoiseRatioContrastive(crate::SignalToNoiseRatioContrastiveLossConfig => crate::SignalToNoiseRatioContrastiveLoss)
        = "SignalToNoiseRatioContrastiveLoss", |c, d| c.try_init();
    SmoothAP(crate::SmoothAPLossConfig => crate::SmoothAPLoss) = "SmoothAPLoss", |c, d| c.try_init();
    SoftTriple(crate::SoftTripleLossConfig => crate::SoftTripleLoss<B>) = "SoftTripleLoss"
        requires ["num_classes", "embedding_size"] => crate::SoftTripleLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    SphereFace(crate::SphereFaceLossConfig => crate::SphereFaceLoss<B>) = "SphereFaceLoss"
        requires ["num_classes", "embedding_size"] => crate::SphereFaceLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    SubCenterArcFace(crate::SubCenterArcFaceLossConfig => crate::SubCenterArcFaceLoss<B>) = "SubCenterArcFaceLoss"
        requires ["num_classes", "embedding_size"] => crate::SubCenterArcFaceLossConfig::new(1, 1),
        |c, d| c.try_init(d);
    SupCon(crate::SupConLossConfig => crate::SupConLoss) = "SupConLoss", |c, d| c.try_init();
    ThresholdConsistentMargin(crate::ThresholdConsistentMarginLossConfig => crate::ThresholdConsistentMarginLoss) = "ThresholdConsistentMarginLoss", |c, d| c.try_init();
    TripletMargin(crate::TripletMarginLossConfig => crate::TripletMarginLoss) = "TripletMarginLoss", |c, d| c.try_init();
    TupletMargin(crate::TupletMarginLossConfig => crate::TupletMarginLoss) = "TupletMarginLoss", |c, d| c.try_init();
    VICReg(crate::VICRegLossConfig => crate::VICRegLoss) = "VICRegLoss", |c, d| c.try_init();
}

impl LossConfig {
    /// Builds the loss on `device` (where trainable tensors live), refusing invalid
    /// configurations (including reducers and wrapped losses PML refuses).
    pub fn try_init<B: Backend>(&self, device: &B::Device) -> Result<AnyLoss<B>, PmlError> {
        Ok(match self {
            Self::SelfSupervised(c) => AnyLoss::SelfSupervised(c.try_init(device)?),
            Self::MultipleLosses(c) => AnyLoss::MultipleLosses(c.try_init(device)?),
            Self::CrossBatchMemory(c) => AnyLoss::CrossBatchMemory(c.try_init(device)?),
            base => AnyLoss::Base(base.try_init_base(device)?),
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

/// Any built loss or loss wrapper (see [`LossConfig`]), a Burn module.
// Burn 0.21 implements `Module` for `Vec` but not for `Box`, so the variants cannot be boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum AnyLoss<B: Backend> {
    /// A loss that is not a wrapper.
    Base(BaseLoss<B>),
    /// [`SelfSupervisedLoss`].
    SelfSupervised(SelfSupervisedLoss<B>),
    /// [`MultipleLosses`].
    MultipleLosses(MultipleLosses<B>),
    /// [`CrossBatchMemory`].
    CrossBatchMemory(CrossBatchMemory<B>),
}

impl<B: Backend> BaseLoss<B> {
    /// Sets a trainable tensor from values, by PML's attribute name (`beta` for MarginLoss).
    pub fn load_parameter(
        self,
        name: &str,
        shape: &[usize],
        values: Vec<f32>,
    ) -> Result<Self, PmlError> {
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
            (Self::ArcFace(l), "W") => {
                let w = load_2d(&l.W, name, shape, values)?;
                Ok(Self::ArcFace(l.with_W(w)))
            }
            (Self::CosFace(l), "W") => {
                let w = load_2d(&l.W, name, shape, values)?;
                Ok(Self::CosFace(l.with_W(w)))
            }
            (Self::SphereFace(l), "W") => {
                let w = load_2d(&l.W, name, shape, values)?;
                Ok(Self::SphereFace(l.with_W(w)))
            }
            (Self::LargeMarginSoftmax(l), "W") => {
                let w = load_2d(&l.W, name, shape, values)?;
                Ok(Self::LargeMarginSoftmax(l.with_W(w)))
            }
            (Self::SubCenterArcFace(l), "W") => {
                let w = load_2d(&l.W, name, shape, values)?;
                Ok(Self::SubCenterArcFace(l.with_W(w)))
            }
            (Self::NormalizedSoftmax(l), "W") => {
                let w = load_2d(&l.W, name, shape, values)?;
                Ok(Self::NormalizedSoftmax(l.with_W(w)))
            }
            (Self::ProxyAnchor(l), "proxies") => {
                let p = load_2d(&l.proxies, name, shape, values)?;
                Ok(Self::ProxyAnchor(l.with_proxies(p)))
            }
            (Self::ProxyNCA(l), "proxies") => {
                let p = load_2d(&l.proxies, name, shape, values)?;
                Ok(Self::ProxyNCA(l.with_proxies(p)))
            }
            (Self::SoftTriple(l), "fc") => {
                let fc = load_2d(&l.fc, name, shape, values)?;
                Ok(Self::SoftTriple(l.with_fc(fc)))
            }
            (Self::P2SGrad(l), "weight") => {
                let w = load_2d(&l.weight, name, shape, values)?;
                Ok(Self::P2SGrad(l.with_weight(w)))
            }
            (Self::Manifold(l), "proxies") => {
                let p = load_2d(&l.proxies, name, shape, values)?;
                Ok(Self::Manifold(l.with_proxies(p)))
            }
            _ => Err(PmlError::invalid_input(
                name,
                "this loss has no trainable tensor of that name",
            )),
        }
    }
}

impl<B: AutodiffBackend> BaseLoss<B> {
    /// The gradient of the trainable tensor called `name` (PML's attribute name), flattened
    /// row-major; `None` when it did not take part in the loss.
    pub fn parameter_gradient(&self, name: &str, grads: &B::Gradients) -> Option<Vec<f64>> {
        match (self, name) {
            (Self::Margin(l), "beta") => l.beta.val().grad(grads).map(pml_core::tensor::float_vec),
            (Self::ArcFace(l), "W") => grad_2d(&l.W, grads),
            (Self::CosFace(l), "W") => grad_2d(&l.W, grads),
            (Self::SphereFace(l), "W") => grad_2d(&l.W, grads),
            (Self::LargeMarginSoftmax(l), "W") => grad_2d(&l.W, grads),
            (Self::SubCenterArcFace(l), "W") => grad_2d(&l.W, grads),
            (Self::NormalizedSoftmax(l), "W") => grad_2d(&l.W, grads),
            (Self::ProxyAnchor(l), "proxies") => grad_2d(&l.proxies, grads),
            (Self::ProxyNCA(l), "proxies") => grad_2d(&l.proxies, grads),
            (Self::SoftTriple(l), "fc") => grad_2d(&l.fc, grads),
            (Self::P2SGrad(l), "weight") => grad_2d(&l.weight, grads),
            (Self::Manifold(l), "proxies") => grad_2d(&l.proxies, grads),
            _ => None,
        }
    }
}

/// A 2-D trainable tensor's new value from `values`, checked against its current shape.
fn load_2d<B: Backend>(
    current: &Param<Tensor<B, 2>>,
    name: &str,
    shape: &[usize],
    values: Vec<f32>,
) -> Result<Tensor<B, 2>, PmlError> {
    let expected = current.dims();
    if shape != expected {
        return Err(PmlError::invalid_input(
            name,
            format!("shape {shape:?}, expected {expected:?}"),
        ));
    }
    Ok(Tensor::from_data(
        TensorData::new(values, shape.to_vec()),
        &current.device(),
    ))
}

/// The gradient of a 2-D trainable tensor, flattened row-major.
fn grad_2d<B: AutodiffBackend>(
    param: &Param<Tensor<B, 2>>,
    grads: &B::Gradients,
) -> Option<Vec<f64>> {
    param.val().grad(grads).map(pml_core::tensor::float_vec)
}

impl<B: Backend> BaseLoss<B> {
    /// PML's `get_logits(embeddings)` for the losses that have it (the large-margin family,
    /// NormalizedSoftmax, ProxyAnchor, ProxyNCA, SoftTriple): class scores
    /// `[n, num_classes]` whose argmax classifies; `None` for the other losses.
    ///
    /// # Panics
    /// If the embeddings' width is not the loss's `embedding_size`.
    pub fn logits(&self, embeddings: Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        match self {
            Self::ArcFace(l) => Some(l.get_logits(embeddings)),
            Self::CosFace(l) => Some(l.get_logits(embeddings)),
            Self::SphereFace(l) => Some(l.get_logits(embeddings)),
            Self::LargeMarginSoftmax(l) => Some(l.get_logits(embeddings)),
            Self::SubCenterArcFace(l) => Some(l.get_logits(embeddings)),
            Self::NormalizedSoftmax(l) => Some(l.get_logits(embeddings)),
            Self::ProxyAnchor(l) => Some(l.get_logits(embeddings)),
            Self::ProxyNCA(l) => Some(l.get_logits(embeddings)),
            Self::SoftTriple(l) => Some(l.get_logits(embeddings)),
            _ => None,
        }
    }
}

impl<B: Backend> AnyLoss<B> {
    /// [`BaseLoss::logits`] of a base loss; `None` for wrappers and losses without
    /// `get_logits`.
    ///
    /// # Panics
    /// If the embeddings' width is not the loss's `embedding_size`.
    pub fn logits(&self, embeddings: Tensor<B, 2>) -> Option<Tensor<B, 2>> {
        match self {
            Self::Base(l) => l.logits(embeddings),
            _ => None,
        }
    }
}

impl<B: Backend> AnyLoss<B> {
    /// Sets a trainable tensor from values, by PML's attribute name (`loss.<name>` for the
    /// loss inside a wrapper, as in PML's state dict).
    pub fn load_parameter(
        self,
        name: &str,
        shape: &[usize],
        values: Vec<f32>,
    ) -> Result<Self, PmlError> {
        match self {
            Self::Base(l) => Ok(Self::Base(l.load_parameter(name, shape, values)?)),
            _ => Err(PmlError::invalid_input(
                name,
                "loading trainable tensors into wrappers is not supported",
            )),
        }
    }
}

impl<B: AutodiffBackend> AnyLoss<B> {
    /// The gradient of the trainable tensor called `name`, flattened row-major; `None` when it
    /// did not take part in the loss.
    pub fn parameter_gradient(&self, name: &str, grads: &B::Gradients) -> Option<Vec<f64>> {
        match self {
            Self::Base(l) => l.parameter_gradient(name, grads),
            _ => None,
        }
    }
}

impl<B: Backend> MetricLoss<B> for AnyLoss<B> {
    fn forward_terms(&self, input: &LossInput<B>) -> LossTerms<B> {
        match self {
            Self::Base(l) => l.forward_terms(input),
            Self::SelfSupervised(l) => l.forward_terms(input),
            Self::MultipleLosses(l) => l.forward_terms(input),
            Self::CrossBatchMemory(l) => l.forward_terms(input),
        }
    }

    fn reduce(&self, terms: LossTerms<B>, input: &LossInput<B>) -> Tensor<B, 1> {
        match self {
            Self::Base(l) => l.reduce(terms, input),
            Self::SelfSupervised(l) => l.reduce(terms, input),
            Self::MultipleLosses(l) => l.reduce(terms, input),
            Self::CrossBatchMemory(l) => l.reduce(terms, input),
        }
    }

    fn forward(&self, input: LossInput<B>) -> Tensor<B, 1> {
        match self {
            Self::Base(l) => l.forward(input),
            Self::SelfSupervised(l) => l.forward(input),
            Self::MultipleLosses(l) => l.forward(input),
            Self::CrossBatchMemory(l) => l.forward(input),
        }
    }

    fn try_forward(&self, input: LossInput<B>) -> Result<Tensor<B, 1>, PmlError> {
        match self {
            Self::Base(l) => l.try_forward(input),
            Self::SelfSupervised(l) => l.try_forward(input),
            Self::MultipleLosses(l) => l.try_forward(input),
            Self::CrossBatchMemory(l) => l.try_forward(input),
        }
    }
}
