use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::Regularizer;
use pml_reducers::{AnyReducer, ReducerConfig};

use super::reduce_rows;

/// Configuration of [`ZeroMeanRegularizer`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct ZeroMeanRegularizerConfig {
    /// How the per-row penalties are reduced.
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
}

impl ZeroMeanRegularizerConfig {
    /// Builds the regularizer.
    pub fn init(&self) -> ZeroMeanRegularizer {
        ZeroMeanRegularizer {
            reducer: self.reducer.init(),
        }
    }
}

/// Pushes each row's components to sum to zero: `rᵢ = |Σⱼ xᵢⱼ|`, reduced (mean by default)
/// (PML's `ZeroMeanRegularizer`).
///
/// # Shapes
/// `x`: `[n, d]` → `[1]`
#[derive(Clone, Debug)]
pub struct ZeroMeanRegularizer {
    reducer: AnyReducer,
}

impl<B: Backend> Regularizer<B> for ZeroMeanRegularizer {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        let penalties = x.clone().sum_dim(1).abs().reshape([n]);
        reduce_rows(&self.reducer, &x, penalties)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn mean_absolute_row_sum() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_floats([[1.0, -3.0], [2.0, 2.0]], &device);
        let r = ZeroMeanRegularizerConfig::new().init();
        assert_eq!(Regularizer::forward(&r, x).into_scalar(), 3.0);
    }
}
