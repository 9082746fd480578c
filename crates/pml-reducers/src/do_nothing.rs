use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer};

/// Configuration of [`DoNothingReducer`] (no parameters).
#[derive(Config, Debug)]
pub struct DoNothingReducerConfig {}

impl DoNothingReducerConfig {
    /// Builds the reducer.
    pub fn init(&self) -> DoNothingReducer {
        DoNothingReducer
    }
}

/// PML's `DoNothingReducer`: the loss is returned unreduced. In pml-rs the unreduced loss is
/// what [`MetricLoss::forward_terms`](pml_core::MetricLoss::forward_terms) returns; a loss
/// configured with this reducer is meant to be called through `forward_terms`.
///
/// # Panics
/// When asked to reduce (that is, from `MetricLoss::forward`), with a message pointing to
/// `forward_terms`.
#[derive(Clone, Debug, Default)]
pub struct DoNothingReducer;

impl<B: Backend> Reducer<B> for DoNothingReducer {
    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        _: Tensor<B, 1>,
        _: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        panic!(
            "DoNothingReducer does not reduce (term `{}`): call `forward_terms` to get the unreduced losses",
            term.name
        )
    }
}
