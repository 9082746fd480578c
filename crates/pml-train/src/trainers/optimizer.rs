//! [`LossOptimizer`]: a second optimizer for the loss functions' own parameters.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::{GradientsParams, MultiGradientsParams, Optimizer};
use burn::tensor::{Tensor, backend::AutodiffBackend};

/// A trainer whose loss functions may hold trainable parameters (proxies, class weights,
/// learned margins: PML's `loss_funcs` that get their own `<name>_optimizer`).
pub trait HasLosses<B: AutodiffBackend>: AutodiffModule<B> {
    /// The loss functions, as one module.
    type Losses: AutodiffModule<B>;

    /// The loss functions.
    fn losses(&self) -> &Self::Losses;

    /// The trainer with these loss functions.
    fn with_losses(self, losses: Self::Losses) -> Self;
}

/// PML's per-module optimizers, for burn-train's single-optimizer `Learner`: the models'
/// optimizer `model` steps every parameter except the loss functions', which the `loss`
/// optimizer steps with learning rate `lr * loss_lr_factor` (`lr` is the learner's, from its
/// scheduler). A loss without parameters costs nothing; both optimizers' states are saved in
/// burn-train's optimizer checkpoint.
///
/// ```
/// use burn::backend::{Autodiff, NdArray};
/// use burn::nn::Linear;
/// use burn::optim::{AdamConfig, Optimizer, SgdConfig};
/// use pml_losses::ProxyAnchorLoss;
/// use pml_train::trainers::{LossOptimizer, MetricLossOnly};
///
/// type B = Autodiff<NdArray>;
/// type Trainer = MetricLossOnly<B, Linear<B>, ProxyAnchorLoss<B>>;
/// fn for_trainer<O: Optimizer<Trainer, B>>(optim: O) -> O { optim }
/// // Adam for the network, SGD with a 100x larger rate for the proxies.
/// let optim = for_trainer(LossOptimizer::new(AdamConfig::new().init(), SgdConfig::new().init(), 100.0));
/// # let _ = optim;
/// ```
#[derive(Clone)]
pub struct LossOptimizer<OM, OL> {
    model: OM,
    loss: OL,
    loss_lr_factor: f64,
}

impl<OM, OL> LossOptimizer<OM, OL> {
    /// The models' optimizer, the losses' optimizer and the ratio of their learning rates.
    ///
    /// # Panics
    /// If `loss_lr_factor` is negative or not finite.
    pub fn new(model: OM, loss: OL, loss_lr_factor: f64) -> Self {
        assert!(
            loss_lr_factor.is_finite() && loss_lr_factor >= 0.0,
            "loss_lr_factor must be finite and >= 0, got {loss_lr_factor}"
        );
        Self {
            model,
            loss,
            loss_lr_factor,
        }
    }
}

/// Moves the gradients of a module's parameters from one container to another.
struct TakeGrads<'a> {
    from: &'a mut GradientsParams,
    to: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for TakeGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.from.remove::<B::InnerBackend, D>(param.id) {
            self.to.register::<B::InnerBackend, D>(param.id, grad);
        }
    }
}

impl<T, B, OM, OL> Optimizer<T, B> for LossOptimizer<OM, OL>
where
    B: AutodiffBackend,
    T: HasLosses<B>,
    OM: Optimizer<T, B>,
    OL: Optimizer<T::Losses, B>,
{
    type Record = (OM::Record, OL::Record);

    fn step(&mut self, lr: f64, module: T, mut grads: GradientsParams) -> T {
        let mut take = TakeGrads {
            from: &mut grads,
            to: GradientsParams::new(),
        };
        module.losses().visit(&mut take);
        let loss_grads = take.to;
        let module = self.model.step(lr, module, grads);
        if loss_grads.is_empty() {
            return module;
        }
        let losses = module.losses().clone();
        let losses = self.loss.step(lr * self.loss_lr_factor, losses, loss_grads);
        module.with_losses(losses)
    }

    fn step_multi(&mut self, lr: f64, module: T, grads: MultiGradientsParams) -> T {
        // Gradients from several devices: the loss parameters are split off per device.
        let mut loss_grads = MultiGradientsParams::default();
        let mut model_grads = MultiGradientsParams::default();
        for (mut g, device) in grads.grads {
            let mut take = TakeGrads {
                from: &mut g,
                to: GradientsParams::new(),
            };
            module.losses().visit(&mut take);
            loss_grads.grads.push((take.to, device));
            model_grads.grads.push((g, device));
        }
        let module = self.model.step_multi(lr, module, model_grads);
        let losses = module.losses().clone();
        let losses = self
            .loss
            .step_multi(lr * self.loss_lr_factor, losses, loss_grads);
        module.with_losses(losses)
    }

    fn to_record(&self) -> Self::Record {
        (self.model.to_record(), self.loss.to_record())
    }

    fn load_record(self, record: Self::Record) -> Self {
        let (model, loss) = record;
        Self {
            model: self.model.load_record(model),
            loss: self.loss.load_record(loss),
            loss_lr_factor: self.loss_lr_factor,
        }
    }
}
