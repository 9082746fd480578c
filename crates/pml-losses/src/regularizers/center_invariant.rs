use burn::{
    config::Config,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{LossTerm, PmlError, Regularizer, math::lp_norm_rows};
use pml_distances::{DistanceConfig, LpDistanceConfig};
use pml_reducers::{AnyReducer, ReducerConfig};

use super::reduce_term;

const NAME: &str = "CenterInvariantRegularizer";

/// Configuration of [`CenterInvariantRegularizer`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct CenterInvariantRegularizerConfig {
    /// The distance whose norm measures the rows (PML requires
    /// `LpDistance(power=1, normalize_embeddings=False)`; its `p` is the norm's).
    #[config(
        default = "DistanceConfig::Lp(LpDistanceConfig::new().with_power(1.0).with_normalize_embeddings(false))"
    )]
    pub distance: DistanceConfig,
    /// How the per-row penalties are reduced.
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
}

impl CenterInvariantRegularizerConfig {
    /// Checks the configuration: the distance must be an `LpDistance` with `power = 1` and
    /// `normalize_embeddings = false` (PML's `assert_distance_type`).
    pub fn validate(&self) -> Result<(), PmlError> {
        self.distance.validate()?;
        self.reducer.validate()?;
        match &self.distance {
            DistanceConfig::Lp(c) if c.power == 1.0 && !c.normalize_embeddings => Ok(()),
            DistanceConfig::Lp(c) => Err(PmlError::Unsupported(format!(
                "{NAME} requires LpDistance(power=1, normalize_embeddings=False), got \
                 LpDistance(power={}, normalize_embeddings={})",
                c.power, c.normalize_embeddings
            ))),
            other => Err(PmlError::Unsupported(format!(
                "{NAME} requires LpDistance(power=1, normalize_embeddings=False), got {}",
                other.pml_name()
            ))),
        }
    }

    /// Builds the regularizer.
    ///
    /// # Panics
    /// Where [`validate`](Self::validate) returns an error.
    pub fn init(&self) -> CenterInvariantRegularizer {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let p = match &self.distance {
            DistanceConfig::Lp(c) => c.p,
            _ => unreachable!("validated above"),
        };
        CenterInvariantRegularizer {
            p,
            reducer: self.reducer.init(),
        }
    }
}

/// Pushes every row (class weight) towards the same squared norm (PML's
/// `CenterInvariantRegularizer`, from Wu et al., "Deep Face Recognition with Center Invariant
/// Loss", ACM MM workshops 2017):
///
/// `rᵢ = (‖wᵢ‖² − mean_j ‖wⱼ‖²)² / 4`, reduced (mean by default).
///
/// # Shapes
/// `x`: `[n, d]` → `[1]`
#[derive(Clone, Debug)]
pub struct CenterInvariantRegularizer {
    p: f64,
    reducer: AnyReducer,
}

impl<B: Backend> Regularizer<B> for CenterInvariantRegularizer {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        let squared = lp_norm_rows(x.clone(), self.p).powi_scalar(2).reshape([n]);
        let deviations = squared.clone() - squared.mean();
        let penalties = deviations.powi_scalar(2).div_scalar(4.0);
        let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &x.device());
        reduce_term(&self.reducer, &x, LossTerm::element("loss", penalties, idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn squared_deviation_of_squared_norms() {
        let device = Default::default();
        // Squared norms 25 and 1, mean 13: deviations ±12, penalties 144/4 = 36 each.
        let x = Tensor::<NdArray, 2>::from_floats([[3.0, 4.0], [0.0, 1.0]], &device);
        let r = CenterInvariantRegularizerConfig::new().init();
        assert!((Regularizer::forward(&r, x).into_scalar() - 36.0).abs() < 1e-4);
    }

    #[test]
    fn refuses_other_distances() {
        let c = CenterInvariantRegularizerConfig::new().with_distance(DistanceConfig::cosine());
        assert!(c.validate().is_err());
    }
}
