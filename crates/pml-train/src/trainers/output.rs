//! What the trainers' steps return to burn-train, and the adaptors for the metrics.

use burn::module::{AutodiffModule, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{
    ElementConversion, Int, Tensor,
    backend::{AutodiffBackend, Backend},
};
use burn::train::{ItemLazy, TrainOutput};

use super::StepGuard;
use super::metrics::{EmbeddingsInput, StepLossInput};

/// The result of a training step, read back to the host: the loss that was backpropagated and
/// whether the batch was skipped ([`NonFinitePolicy`](super::NonFinitePolicy)).
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// The batch's total loss (the weighted sum of the trainer's losses).
    pub loss: f64,
    /// The number of items in the batch.
    pub batch_size: usize,
    /// The loss was not finite and the batch's gradients were dropped.
    pub skipped: bool,
}

impl ItemLazy for StepOutput {
    type ItemSync = Self;

    fn sync(self) -> Self {
        self
    }
}

impl burn::train::metric::Adaptor<StepLossInput> for StepOutput {
    fn adapt(&self) -> StepLossInput {
        StepLossInput {
            loss: self.loss,
            batch_size: self.batch_size,
            skipped: self.skipped,
        }
    }
}

/// The result of a validation step: the batch's embeddings and labels, which the
/// [`AccuracyMetric`](super::AccuracyMetric)s collect over the validation split.
#[derive(Clone, Debug)]
pub struct EmbeddingOutput<B: Backend> {
    /// `[batch, d]`.
    pub embeddings: Tensor<B, 2>,
    /// `[batch]`.
    pub labels: Tensor<B, 1, Int>,
}

impl<B: Backend> ItemLazy for EmbeddingOutput<B> {
    type ItemSync = Self;

    fn sync(self) -> Self {
        self
    }
}

impl<B: Backend> burn::train::metric::Adaptor<EmbeddingsInput<B>> for EmbeddingOutput<B> {
    fn adapt(&self) -> EmbeddingsInput<B> {
        EmbeddingsInput {
            embeddings: self.embeddings.clone(),
            labels: self.labels.clone(),
        }
    }
}

/// Ends a training step: reads the loss back, applies the guard's policy, and backpropagates
/// when the loss is finite. `trainable` restricts the gradients to these parameters (frozen
/// parts of a trainer get none, so no optimizer moves them); `None` keeps all.
pub(crate) fn finish_step<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    guard: &StepGuard,
    loss: Tensor<B, 1>,
    batch_size: usize,
    trainable: Option<&[ParamId]>,
) -> TrainOutput<StepOutput> {
    let step = guard.next_step();
    let value = loss.clone().into_scalar().elem::<f64>();
    if !guard.accept(value, step) {
        return TrainOutput {
            grads: GradientsParams::new(),
            item: StepOutput {
                loss: value,
                batch_size,
                skipped: true,
            },
        };
    }
    let mut grads = loss.backward();
    let grads = match trainable {
        None => GradientsParams::from_module(&mut grads, module),
        Some(ids) => GradientsParams::from_params(&mut grads, module, ids),
    };
    TrainOutput {
        grads,
        item: StepOutput {
            loss: value,
            batch_size,
            skipped: false,
        },
    }
}
