use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{Regularizer, math::lp_norm_rows};
use pml_reducers::{AnyReducer, ReducerConfig};

use super::reduce_rows;

/// Configuration of [`LpRegularizer`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct LpRegularizerConfig {
    /// The norm's `p`.
    #[config(default = 2.0)]
    pub p: f64,
    /// Raise each norm to this power.
    #[config(default = 1.0)]
    pub power: f64,
    /// How the per-row penalties are reduced.
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
}

impl LpRegularizerConfig {
    /// Builds the regularizer.
    ///
    /// # Panics
    /// If `p` is not positive, or the reducer's hyperparameters are invalid.
    pub fn init(&self) -> LpRegularizer {
        assert!(
            self.p > 0.0,
            "LpRegularizer: `p` must be positive, got {}",
            self.p
        );
        LpRegularizer {
            p: self.p,
            power: self.power,
            reducer: self.reducer.init(),
        }
    }
}

/// Penalizes the size of each row: `rᵢ = ‖xᵢ‖_p^power`, reduced (mean by default) (PML's
/// `LpRegularizer`).
///
/// # Shapes
/// `x`: `[n, d]` → `[1]`
#[derive(Clone, Debug)]
pub struct LpRegularizer {
    p: f64,
    power: f64,
    reducer: AnyReducer,
}

impl<B: Backend> Regularizer<B> for LpRegularizer {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        let norms = lp_norm_rows(x.clone(), self.p).reshape([n]);
        let norms = if self.power == 1.0 {
            norms
        } else {
            norms.powf_scalar(self.power)
        };
        reduce_rows(&self.reducer, &x, norms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn mean_row_norm() {
        let device = Default::default();
        let x = Tensor::<NdArray, 2>::from_floats([[3.0, 4.0], [0.0, 1.0]], &device);
        let r = LpRegularizerConfig::new().init();
        assert_eq!(Regularizer::forward(&r, x.clone()).into_scalar(), 3.0);
        let sq = LpRegularizerConfig::new().with_power(2.0).init();
        assert_eq!(Regularizer::forward(&sq, x).into_scalar(), 13.0);
    }
}
