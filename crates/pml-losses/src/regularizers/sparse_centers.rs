use burn::{
    config::Config,
    tensor::{Int, Tensor, TensorData, backend::Backend},
};
use pml_core::{Distance, LossTerm, PmlError, Regularizer, tensor::int_tensor};
use pml_distances::{AnyDistance, DistanceConfig};
use pml_reducers::{AnyReducer, DivisorReducerConfig, ReducerConfig};

use super::reduce_term;

const NAME: &str = "SparseCentersRegularizer";

/// Configuration of [`SparseCentersRegularizer`], with PML's argument names and defaults
/// (`num_classes` and `centers_per_class` are required, as in PML).
#[derive(Config, Debug)]
pub struct SparseCentersRegularizerConfig {
    /// Number of classes.
    pub num_classes: usize,
    /// Centers per class (rows `c·K .. (c+1)·K` belong to class `c`); more than one.
    pub centers_per_class: usize,
    /// The similarity between centers (PML requires `CosineSimilarity`).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
    /// How the penalties are reduced (PML's default: `DivisorReducer`, dividing by twice the
    /// number of same-class pairs).
    #[config(default = "ReducerConfig::Divisor(DivisorReducerConfig::new())")]
    pub reducer: ReducerConfig,
}

impl SparseCentersRegularizerConfig {
    /// Checks the configuration: `centers_per_class > 1`, a positive `num_classes`, and
    /// `CosineSimilarity` (PML's assertions).
    pub fn validate(&self) -> Result<(), PmlError> {
        self.distance.validate()?;
        self.reducer.validate()?;
        if self.centers_per_class <= 1 {
            return Err(PmlError::invalid_argument(
                "centers_per_class",
                self.centers_per_class,
                format!("{NAME}: must be greater than 1"),
            ));
        }
        if self.num_classes == 0 {
            return Err(PmlError::invalid_argument(
                "num_classes",
                0,
                format!("{NAME}: must be positive"),
            ));
        }
        crate::common::require_cosine(&self.distance, NAME)
    }

    /// Builds the regularizer.
    ///
    /// # Panics
    /// Where [`validate`](Self::validate) returns an error.
    pub fn init(&self) -> SparseCentersRegularizer {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let (c, k) = (self.num_classes, self.centers_per_class);
        let total = c * k;
        // Row-major positions of the same-class pairs (i < j) in the `[c·k, c·k]` matrix.
        let mut pairs = Vec::with_capacity(c * k * (k - 1) / 2);
        for class in 0..c {
            for i in class * k..(class + 1) * k {
                for j in i + 1..(class + 1) * k {
                    pairs.push((i * total + j) as i64);
                }
            }
        }
        SparseCentersRegularizer {
            total,
            pairs,
            distance: self.distance.init(),
            reducer: self.reducer.init(),
        }
    }
}

/// Pulls the centers of each class together, so that unneeded centers merge (PML's
/// `SparseCentersRegularizer`, the regularizer of Qian et al., "SoftTriple Loss: Deep Metric
/// Learning Without Triplet Sampling", ICCV 2019): for each pair `i < j` of centers of the same
/// class,
///
/// `r_ij = sqrt(2 + tiny − min(2 s(wᵢ, wⱼ), 2))` (`tiny` the dtype's smallest normal number),
///
/// reduced by default as `Σ r_ij / (2 · #pairs)`.
///
/// # Shapes
/// `x`: `[num_classes · centers_per_class, d]` → `[1]`
///
/// # Panics
/// If `x` does not have `num_classes · centers_per_class` rows.
#[derive(Clone, Debug)]
pub struct SparseCentersRegularizer {
    total: usize,
    pairs: Vec<i64>,
    distance: AnyDistance,
    reducer: AnyReducer,
}

impl<B: Backend> Regularizer<B> for SparseCentersRegularizer {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = x.dims()[0];
        assert_eq!(
            n, self.total,
            "{NAME}: the weights have {n} rows, expected num_classes * centers_per_class = {}",
            self.total
        );
        let device = x.device();
        let tiny = match x.dtype() {
            burn::tensor::DType::F64 => f64::MIN_POSITIVE,
            burn::tensor::DType::F32 | burn::tensor::DType::Flex32 => f32::MIN_POSITIVE as f64,
            // f16 / bf16
            _ => 6.1e-5,
        };
        let sim = self.distance.forward(x.clone(), None).reshape([n * n]);
        let k = self.pairs.len();
        let same = sim.select(0, int_tensor(&self.pairs, &device));
        let penalties = same
            .mul_scalar(2.0)
            .clamp_max(2.0)
            .neg()
            .add_scalar(2.0 + tiny)
            .sqrt();
        let divisor = Tensor::<B, 1>::from_data(
            TensorData::new(vec![2.0 * k as f64], [1]),
            (&device, x.dtype()),
        );
        let idx = Tensor::<B, 1, Int>::arange(0..k as i64, &device);
        reduce_term(
            &self.reducer,
            &x,
            LossTerm::element("loss", penalties, idx).with_divisor(divisor),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    #[test]
    fn distance_between_centers_of_a_class() {
        let device = Default::default();
        // Class 0: orthogonal centers, r = sqrt(2 − 0) = √2; class 1: identical centers, r ≈ 0.
        // Divisor 2 · 2 pairs = 4: (√2 + 0) / 4.
        let x = Tensor::<NdArray, 2>::from_floats(
            [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]],
            &device,
        );
        let r = SparseCentersRegularizerConfig::new(2, 2).init();
        let v = Regularizer::forward(&r, x).into_scalar();
        assert!((v - 2f32.sqrt() / 4.0).abs() < 1e-3, "{v}");
    }

    #[test]
    fn refuses_one_center_per_class() {
        assert!(
            SparseCentersRegularizerConfig::new(3, 1)
                .validate()
                .is_err()
        );
    }
}
