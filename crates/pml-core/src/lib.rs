//! Core traits and shared types of **pml-rs**, a port of
//! [pytorch-metric-learning](https://github.com/KevinMusgrave/pytorch-metric-learning) (PML) 2.9
//! to [Burn](https://burn.dev).
//!
//! Everything here is generic over Burn's [`Backend`](burn::tensor::backend::Backend), so the same
//! losses, miners and reducers run on CPU (`NdArray`), WGPU and CUDA.
//!
//! * [`Distance`], [`MetricLoss`], [`Miner`], [`Reducer`], [`Regularizer`]: the traits every
//!   pml crate implements.
//! * [`IndicesTuple`]: mined pairs `(a1, p, a2, n)` or triplets `(a, p, n)` as Int tensors on the
//!   device.
//! * [`LossTerms`]: PML's "loss dict": unreduced losses with their indices and reduction type.
//! * [`labels`]: label utilities with PML's semantics (match/diff masks, all pairs, all triplets,
//!   `convert_to_pairs`, `convert_to_triplets`).
//! * [`PmlError`]: errors for everything that depends on data or user configuration.
//! * [`backend`]: names of the backends the workspace's programs run on and the `PML_BACKEND`
//!   override (no backend is compiled here).
//! * [`blocks`]: independent blocks of tensor work on the CPU's threads.
#![warn(missing_docs)]

pub mod backend;
pub mod blocks;
pub mod config;
mod error;
mod indices;
mod input;
pub mod labels;
pub mod math;
pub mod rng;
pub mod tensor;
mod terms;
mod traits;

pub use error::PmlError;
pub use indices::IndicesTuple;
pub use input::{LossInput, Reference};
pub use terms::{LossTerm, LossTerms, ReductionType, TermIndices};
pub use traits::{
    distance::{DetachedMatrix, Distance, GramForm, GramInputs, MatrixLink, SumGradient},
    loss::MetricLoss,
    miner::Miner,
    reducer::{ReduceContext, Reducer},
    regularizer::Regularizer,
};

/// The items most programs need: `use pml_core::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Distance, IndicesTuple, LossInput, LossTerm, LossTerms, MetricLoss, Miner, PmlError,
        ReduceContext, Reducer, ReductionType, Reference, Regularizer, TermIndices,
    };
}
