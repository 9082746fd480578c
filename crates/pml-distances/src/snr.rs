use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::Distance;

use crate::common::{BaseOptions, check_widths, empty_matrix, squared_euclidean};

/// Configuration of [`SNRDistance`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct SNRDistanceConfig {
    /// Divide each embedding by its `p`-norm first.
    #[config(default = true)]
    pub normalize_embeddings: bool,
    /// The norm used for normalization.
    #[config(default = 2.0)]
    pub p: f64,
    /// Raise every distance to this power.
    #[config(default = 1.0)]
    pub power: f64,
}

impl SNRDistanceConfig {
    /// Builds the distance.
    ///
    /// # Panics
    /// If `p` is not positive or `power` is not finite.
    pub fn init(&self) -> SNRDistance {
        SNRDistance {
            options: BaseOptions::new("SNRDistance", self.normalize_embeddings, self.p, self.power),
        }
    }
}

/// Signal-to-noise ratio distance `d(x, y) = Var(x − y) / Var(x)` (PML's `SNRDistance`; Yuan et
/// al., "Signal-To-Noise Ratio: A Robust Distance Metric for Deep Metric Learning", CVPR 2019),
/// with unbiased variances over the embedding dimension.
///
/// Computed with one matrix product on the centered rows `x̄ = x − mean(x)`:
/// `Var(x − y) = (‖x̄‖² + ‖ȳ‖² − 2 x̄·ȳ) / (d − 1)`, so `d(x, y) = ‖x̄ − ȳ‖² / ‖x̄‖²`.
///
/// # Shapes
/// - query `[n, d]`, reference `[m, d]` → `[n, m]`, with `d ≥ 2`
#[derive(Clone, Debug)]
pub struct SNRDistance {
    options: BaseOptions,
}

impl<B: Backend> Distance<B> for SNRDistance {
    fn forward(&self, query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        check_widths("SNRDistance", &query, reference.as_ref());
        if let Some(empty) = empty_matrix(&query, reference.as_ref()) {
            return empty;
        }
        let [n, d] = query.dims();
        if d == 0 {
            // PML's variance ratio over zero columns is 0 / 0.
            let m = reference.as_ref().map_or(n, |r| r.dims()[0]);
            return Tensor::full([n, m], f64::NAN, (&query.device(), query.dtype()));
        }
        let o = &self.options;
        let center = |x: Tensor<B, 2>| {
            let x = o.maybe_normalize(x);
            x.clone() - x.mean_dim(1)
        };
        let q = center(query);
        let q_sq = q.clone().powi_scalar(2).sum_dim(1);
        let noise = squared_euclidean(q, reference.map(center));
        // A constant query row has no variance: PML divides by zero (NaN); here the ratio is
        // the noise over the smallest positive f32, so its loss and gradient stay finite.
        o.apply_power(noise / q_sq.clamp_min(f32::MIN_POSITIVE))
    }

    fn is_inverted(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use pml_core::tensor::float_vec;

    #[test]
    fn snr_matches_the_variance_ratio() {
        let device = Default::default();
        let q = Tensor::<NdArray, 2>::from_floats([[1.0, 2.0, 4.0]], &device);
        let r = Tensor::<NdArray, 2>::from_floats([[0.0, 1.0, 1.0]], &device);
        let d = float_vec(
            SNRDistanceConfig::new()
                .with_normalize_embeddings(false)
                .init()
                .forward(q, Some(r)),
        );
        // var([1, 1, 3]) / var([1, 2, 4]) = (4/3) / (7/3)
        assert!((d[0] - 4.0 / 7.0).abs() < 1e-6, "{d:?}");
    }
}
