use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{Distance, GramInputs};

use crate::{DotProductSimilarity, common::BaseOptions};

/// Configuration of [`CosineSimilarity`], with PML's argument names and defaults
/// (`normalize_embeddings` is always on, as in PML).
#[derive(Config, Debug)]
pub struct CosineSimilarityConfig {
    /// The norm used for normalization.
    #[config(default = 2.0)]
    pub p: f64,
    /// Raise every similarity to this power.
    #[config(default = 1.0)]
    pub power: f64,
}

impl CosineSimilarityConfig {
    /// Builds the similarity.
    ///
    /// # Panics
    /// If `p` is not positive or `power` is not finite.
    pub fn init(&self) -> CosineSimilarity {
        CosineSimilarity {
            inner: DotProductSimilarity::with_options(BaseOptions::new(
                "CosineSimilarity",
                true,
                self.p,
                self.power,
            )),
        }
    }
}

/// Cosine similarity `s(x, y) = (x · y / (‖x‖ ‖y‖))^power` (PML's `CosineSimilarity`): the dot
/// product of normalized rows, a similarity (larger = closer).
///
/// # Shapes
/// - query `[n, d]`, reference `[m, d]` → `[n, m]`
#[derive(Clone, Debug)]
pub struct CosineSimilarity {
    inner: DotProductSimilarity,
}

impl<B: Backend> Distance<B> for CosineSimilarity {
    fn forward(&self, query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        self.inner.forward(query, reference)
    }

    fn is_inverted(&self) -> bool {
        true
    }

    fn gram_inputs(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> Option<GramInputs<B>> {
        self.inner.gram_inputs(query, reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use pml_core::tensor::float_vec;

    #[test]
    fn cosine_of_orthogonal_and_parallel_rows() {
        let device = Default::default();
        let q = Tensor::<NdArray, 2>::from_floats([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], &device);
        let s = float_vec(CosineSimilarityConfig::new().init().forward(q, None));
        assert!((s[0] - 1.0).abs() < 1e-6);
        assert!(s[1].abs() < 1e-6);
        assert!((s[2] - 0.5f64.sqrt()).abs() < 1e-6);
    }
}
