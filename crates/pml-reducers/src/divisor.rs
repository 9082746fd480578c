use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer};

/// Configuration of [`DivisorReducer`] (no parameters).
#[derive(Config, Debug)]
pub struct DivisorReducerConfig {}

impl DivisorReducerConfig {
    /// Builds the reducer.
    pub fn init(&self) -> DivisorReducer {
        DivisorReducer
    }
}

/// The sum of the losses divided by the term's divisor (PML's `DivisorReducer`), zero when
/// the divisor is zero. Losses that use it attach the divisor to their terms.
///
/// # Panics
/// When a term carries no divisor.
#[derive(Clone, Debug, Default)]
pub struct DivisorReducer;

impl<B: Backend> Reducer<B> for DivisorReducer {
    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        losses: Tensor<B, 1>,
        _: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        let divisor = term.divisor.clone().unwrap_or_else(|| {
            panic!(
                "DivisorReducer: term `{}` carries no divisor (this loss does not support DivisorReducer)",
                term.name
            )
        });
        let zero = divisor.clone().equal_elem(0.0);
        // Where the divisor is zero, divide by one and zero the result.
        (losses.sum() / divisor.mask_fill(zero.clone(), 1.0)).mask_fill(zero, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn divides_the_sum() {
        let r = DivisorReducerConfig::new().init();
        let c = ctx(3, &[0; 3]);
        let term = element(&[1.0, 2.0, 3.0]).with_divisor(floats(&[4.0]));
        assert_eq!(scalar(r.reduce_term(&term, &c)), 1.5);
        let term = element(&[1.0, 2.0, 3.0]).with_divisor(floats(&[0.0]));
        assert_eq!(scalar(r.reduce_term(&term, &c)), 0.0);
    }
}
