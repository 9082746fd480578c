use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer};

/// Configuration of [`SumReducer`] (no parameters).
#[derive(Config, Debug)]
pub struct SumReducerConfig {}

impl SumReducerConfig {
    /// Builds the reducer.
    pub fn init(&self) -> SumReducer {
        SumReducer
    }
}

/// The sum of the losses, `Σ lᵢ`, for every reduction type (PML's `SumReducer`).
#[derive(Clone, Debug, Default)]
pub struct SumReducer;

impl<B: Backend> Reducer<B> for SumReducer {
    fn reduce_losses(
        &self,
        _: &LossTerm<B>,
        losses: Tensor<B, 1>,
        _: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        losses.sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn sum_of_losses() {
        let r = SumReducerConfig::new().init();
        assert_eq!(
            scalar(r.reduce_term(&element(&[1.0, 2.0, 6.0]), &ctx(3, &[0, 0, 0]))),
            9.0
        );
    }
}
