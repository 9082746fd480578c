use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer};

/// Configuration of [`MeanReducer`] (no parameters).
#[derive(Config, Debug)]
pub struct MeanReducerConfig {}

impl MeanReducerConfig {
    /// Builds the reducer.
    pub fn init(&self) -> MeanReducer {
        MeanReducer
    }
}

/// The mean of the losses, `(1/k) Σ lᵢ`, for every reduction type (PML's `MeanReducer`).
#[derive(Clone, Debug, Default)]
pub struct MeanReducer;

impl<B: Backend> Reducer<B> for MeanReducer {
    fn reduce_losses(
        &self,
        _: &LossTerm<B>,
        losses: Tensor<B, 1>,
        _: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        losses.mean()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn mean_of_losses() {
        let r = MeanReducerConfig::new().init();
        assert_eq!(
            scalar(r.reduce_term(&element(&[1.0, 2.0, 6.0]), &ctx(3, &[0, 0, 0]))),
            3.0
        );
    }
}
