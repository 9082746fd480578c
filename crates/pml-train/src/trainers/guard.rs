//! What a trainer does with a batch whose loss is NaN or infinite.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::train::Interrupter;
use serde::{Deserialize, Serialize};

/// What to do when a batch's loss is not finite (NaN or ±inf). Either way the batch's
/// gradients are not applied, so the model and the optimizer state stay as they were.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum NonFinitePolicy {
    /// Skip the batch, log a warning and go on (the default).
    #[default]
    Skip,
    /// Stop the training cleanly after this batch (burn-train's interrupter): the run ends with
    /// the model of the last finite step and [`FitOutcome::stopped`](super::FitOutcome::stopped)
    /// says why.
    Stop,
}

/// Shared by a trainer and its clones (burn-train forks and copies the model): the
/// [`NonFinitePolicy`], the count of skipped batches, the training step count, and the
/// [`Interrupter`] that [`fit`](super::fit) hands to burn-train.
#[derive(Clone)]
pub struct StepGuard {
    policy: NonFinitePolicy,
    skipped: Arc<AtomicUsize>,
    steps: Arc<AtomicUsize>,
    interrupter: Interrupter,
}

impl fmt::Debug for StepGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepGuard")
            .field("policy", &self.policy)
            .field("skipped", &self.skipped())
            .field("steps", &self.steps())
            .finish()
    }
}

impl Default for StepGuard {
    fn default() -> Self {
        Self::new(NonFinitePolicy::default())
    }
}

impl StepGuard {
    /// A guard with this policy.
    pub fn new(policy: NonFinitePolicy) -> Self {
        Self {
            policy,
            skipped: Arc::new(AtomicUsize::new(0)),
            steps: Arc::new(AtomicUsize::new(0)),
            interrupter: Interrupter::new(),
        }
    }

    /// The policy.
    pub fn policy(&self) -> NonFinitePolicy {
        self.policy
    }

    /// How many batches had a non-finite loss so far.
    pub fn skipped(&self) -> usize {
        self.skipped.load(Ordering::Relaxed)
    }

    /// How many training steps ran so far (skipped ones included).
    pub fn steps(&self) -> usize {
        self.steps.load(Ordering::Relaxed)
    }

    /// Sets the step count, e.g. to `iterations_per_epoch * epochs_done` when resuming a
    /// trainer whose schedule depends on the epoch.
    pub fn set_steps(&self, steps: usize) {
        self.steps.store(steps, Ordering::Relaxed);
    }

    /// The handle that stops the training (given to burn-train by [`fit`](super::fit)).
    pub fn interrupter(&self) -> Interrupter {
        self.interrupter.clone()
    }

    /// Counts a step and returns its index (from 0).
    pub(crate) fn next_step(&self) -> usize {
        self.steps.fetch_add(1, Ordering::Relaxed)
    }

    /// Applies the policy to a loss value; `true` when the step may update the model.
    pub(crate) fn accept(&self, loss: f64, step: usize) -> bool {
        if loss.is_finite() {
            return true;
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        match self.policy {
            NonFinitePolicy::Skip => {
                log::warn!("step {step}: the loss is {loss}; the batch is skipped");
            }
            NonFinitePolicy::Stop => {
                let reason = format!("step {step}: the loss is {loss}; training stopped");
                log::warn!("{reason}");
                self.interrupter.stop(Some(&reason));
            }
        }
        false
    }
}
