//! [`DataParallel`]: data-parallel training of a pml-train trainer over burn-collective.

use std::marker::PhantomData;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::{
    Tensor,
    backend::{AutodiffBackend, Backend},
};
use burn::train::TrainStep;

use crate::{DistributedError, PeerGroup};

/// Data-parallel training on one peer: each peer runs the trainer's step (forward, loss,
/// backward) on its own batch, the gradients are averaged over the peers with burn-collective's
/// all-reduce, and each peer applies the same optimizer step, so the replicas stay identical.
///
/// The step is any burn-train [`TrainStep`]: the pml-train trainers (`MetricLossOnly`,
/// `TrainWithClassifier`, ...) with a [`DistributedLossWrapper`](crate::DistributedLossWrapper)
/// as their loss give PML's distributed metric learning: every anchor meets the whole global
/// batch, and the averaged gradient equals the gradient of one device with the whole batch.
///
/// Why not burn-train's `ddp` feature: its `DistributedDataParallel` strategy syncs gradients
/// through burn's `DistributedBackend` trait, which burn 0.21 implements only for the CubeCL
/// backends with a device-side all-reduce (CUDA with NCCL), not for `NdArray`, and its peers
/// are told apart by device, which a CPU has one of. This loop uses burn-collective directly,
/// which works on every backend, for threads of one process and for processes on several
/// machines.
///
/// The gradients are synchronised in the module's structure order (never by parameter id,
/// which differs between processes), one all-reduce per parameter; a parameter without a
/// gradient on some peer contributes zeros there, so no peer waits for a missing tensor.
pub struct DataParallel<B: AutodiffBackend, T, O> {
    trainer: T,
    optimizer: O,
    group: PeerGroup,
    backend: PhantomData<B>,
}

impl<B, T, O> DataParallel<B, T, O>
where
    B: AutodiffBackend,
    T: TrainStep + AutodiffModule<B>,
    O: Optimizer<T, B>,
{
    /// Sets up the peer's replica: the parameters of rank 0 are broadcast to every peer (one
    /// all-reduce per parameter), so peers that initialised their models differently (separate
    /// processes) start from the same model.
    ///
    /// # Errors
    /// As [`PeerGroup::all_reduce_sum`] (a peer that never joins times out).
    pub fn new(trainer: T, optimizer: O, group: PeerGroup) -> Result<Self, DistributedError> {
        let mut broadcast = Broadcast {
            group: &group,
            error: None,
        };
        let trainer = trainer.map(&mut broadcast);
        if let Some(e) = broadcast.error {
            return Err(e);
        }
        Ok(Self {
            trainer,
            optimizer,
            group,
            backend: PhantomData,
        })
    }

    /// One training step on this peer's `batch` with learning rate `lr`: the trainer's
    /// [`TrainStep::step`], the gradients averaged over the peers, the optimizer step.
    /// Returns the step's output (for pml-train trainers, the loss this peer backpropagated,
    /// which with a distributed loss wrapper is `world_size ×` the global loss).
    ///
    /// # Errors
    /// As [`PeerGroup::all_reduce_sum`]; after an error the replicas may differ.
    pub fn step(&mut self, batch: T::Input, lr: f64) -> Result<T::Output, DistributedError> {
        let output = self.trainer.step(batch);
        let mut grads = output.grads;
        let mut sync = GradientSync::<B> {
            group: &self.group,
            grads: &mut grads,
            error: None,
            backend: PhantomData,
        };
        self.trainer.visit(&mut sync);
        if let Some(e) = sync.error {
            return Err(e);
        }
        self.trainer = self.optimizer.step(lr, self.trainer.clone(), grads);
        Ok(output.item)
    }

    /// The trainer (model and loss) as trained so far.
    pub fn trainer(&self) -> &T {
        &self.trainer
    }

    /// The trainer, ending the data-parallel run on this peer.
    pub fn into_trainer(self) -> T {
        self.trainer
    }

    /// The peers.
    pub fn group(&self) -> &PeerGroup {
        &self.group
    }
}

/// Averages every parameter's gradient over the peers.
struct GradientSync<'a, B: AutodiffBackend> {
    group: &'a PeerGroup,
    grads: &'a mut GradientsParams,
    error: Option<DistributedError>,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradientSync<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.error.is_some() {
            return;
        }
        let value = param.val();
        if !value.is_require_grad() {
            return;
        }
        let grad = self
            .grads
            .remove::<B::InnerBackend, D>(param.id)
            .unwrap_or_else(|| Tensor::zeros(value.dims(), &value.device()));
        match self.group.all_reduce_sum(grad) {
            Ok(sum) => {
                let mean = sum.div_scalar(self.group.world_size() as f64);
                self.grads.register::<B::InnerBackend, D>(param.id, mean);
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// Replaces every parameter by rank 0's.
struct Broadcast<'a> {
    group: &'a PeerGroup,
    error: Option<DistributedError>,
}

impl<B: Backend> ModuleMapper<B> for Broadcast<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        if self.error.is_some() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let require_grad = tensor.is_require_grad();
        let contribution = if self.group.rank() == 0 {
            tensor.clone()
        } else {
            tensor.zeros_like()
        };
        match self.group.all_reduce_sum(contribution) {
            Ok(value) => Param::from_mapped_value(id, value.set_require_grad(require_grad), mapper),
            Err(e) => {
                self.error = Some(e);
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}
