use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer};

use crate::ThresholdReducer;

/// Configuration of [`AvgNonZeroReducer`] (no parameters).
#[derive(Config, Debug)]
pub struct AvgNonZeroReducerConfig {}

impl AvgNonZeroReducerConfig {
    /// Builds the reducer.
    pub fn init(&self) -> AvgNonZeroReducer {
        AvgNonZeroReducer {
            inner: ThresholdReducer::with_bounds(Some(0.0), None),
        }
    }
}

/// The mean of the positive losses (PML's `AvgNonZeroReducer`, a `ThresholdReducer` with
/// `low = 0`): `Σ lᵢ / #{lᵢ > 0}`, zero when no loss is positive. The default reducer of most
/// pair and triplet losses.
#[derive(Clone, Debug)]
pub struct AvgNonZeroReducer {
    inner: ThresholdReducer,
}

impl AvgNonZeroReducer {
    /// The threshold this reducer averages above (`low = 0`, no `high`).
    pub fn threshold(&self) -> &ThresholdReducer {
        &self.inner
    }
}

impl<B: Backend> Reducer<B> for AvgNonZeroReducer {
    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        losses: Tensor<B, 1>,
        ctx: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        self.inner.reduce_losses(term, losses, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn averages_positive_losses() {
        let r = AvgNonZeroReducerConfig::new().init();
        let got = scalar(r.reduce_term(&element(&[0.0, 1.0, 0.0, 2.0]), &ctx(4, &[0; 4])));
        assert_eq!(got, 1.5);
    }
}
