use burn::{
    config::Config,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{Distance, LossTerm, PmlError, Regularizer, tensor::diagonal};
use pml_distances::{AnyDistance, DistanceConfig};
use pml_reducers::{AnyReducer, ReducerConfig};

use super::reduce_term;

const NAME: &str = "RegularFaceRegularizer";

/// Configuration of [`RegularFaceRegularizer`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct RegularFaceRegularizerConfig {
    /// The similarity between rows (PML requires a similarity: larger = closer).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// How the per-row penalties are reduced.
    #[config(default = "ReducerConfig::mean()")]
    pub reducer: ReducerConfig,
}

impl RegularFaceRegularizerConfig {
    /// Checks the configuration: the distance must be a similarity (`CosineSimilarity` or
    /// `DotProductSimilarity`), as PML asserts.
    pub fn validate(&self) -> Result<(), PmlError> {
        self.distance.validate()?;
        self.reducer.validate()?;
        match &self.distance {
            DistanceConfig::Cosine(_) | DistanceConfig::DotProduct(_) => Ok(()),
            other => Err(PmlError::Unsupported(format!(
                "{NAME} requires a similarity (an inverted distance), got {}",
                other.pml_name()
            ))),
        }
    }

    /// Builds the regularizer.
    ///
    /// # Panics
    /// Where [`validate`](Self::validate) returns an error.
    pub fn init(&self) -> RegularFaceRegularizer {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        RegularFaceRegularizer {
            distance: self.distance.init(),
            reducer: self.reducer.init(),
        }
    }
}

/// Pushes every row (class weight) away from its most similar other row (PML's
/// `RegularFaceRegularizer`, from Zhao et al., "RegularFace: Deep Face Recognition via
/// Exclusive Regularization", CVPR 2019):
///
/// `rᵢ = max_{j ≠ i} s(wᵢ, wⱼ)`, reduced (mean by default),
///
/// the nearest row `j` being chosen without gradient, as in PML.
///
/// # Shapes
/// `x`: `[n, d]` → `[1]`
#[derive(Clone, Debug)]
pub struct RegularFaceRegularizer {
    distance: AnyDistance,
    reducer: AnyReducer,
}

impl<B: Backend> Regularizer<B> for RegularFaceRegularizer {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        let device = x.device();
        let sim = self.distance.forward(x.clone(), None);
        let diagonal = diagonal([n, n], 0, &device);
        let nearest = sim
            .clone()
            .detach()
            .mask_fill(diagonal, f64::NEG_INFINITY)
            .argmax(1);
        let penalties = sim.gather(1, nearest).reshape([n]);
        let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
        reduce_term(&self.reducer, &x, LossTerm::element("loss", penalties, idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn mean_similarity_to_the_nearest_other_row() {
        let device = Default::default();
        // Rows at 0°, 60° and 180°: nearest cosines 0.5, 0.5 and −0.5; mean 1/6.
        let h = 3f32.sqrt() / 2.0;
        let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.5, h], [-1.0, 0.0]], &device);
        let r = RegularFaceRegularizerConfig::new().init();
        let v = Regularizer::forward(&r, x).into_scalar();
        assert!((v - 1.0 / 6.0).abs() < 1e-5, "{v}");
    }

    #[test]
    fn refuses_distances() {
        let c = RegularFaceRegularizerConfig::new().with_distance(DistanceConfig::lp());
        assert!(c.validate().is_err());
    }
}
