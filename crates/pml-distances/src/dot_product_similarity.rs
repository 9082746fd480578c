use burn::{
    config::Config,
    tensor::{Tensor, backend::Backend},
};
use pml_core::{Distance, GramForm, GramInputs};

use crate::common::{BaseOptions, check_widths, empty_matrix, has_empty_side};

/// Configuration of [`DotProductSimilarity`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct DotProductSimilarityConfig {
    /// Divide each embedding by its `p`-norm first.
    #[config(default = true)]
    pub normalize_embeddings: bool,
    /// The norm used for normalization.
    #[config(default = 2.0)]
    pub p: f64,
    /// Raise every similarity to this power.
    #[config(default = 1.0)]
    pub power: f64,
}

impl DotProductSimilarityConfig {
    /// Builds the similarity.
    ///
    /// # Panics
    /// If `p` is not positive or `power` is not finite.
    pub fn init(&self) -> DotProductSimilarity {
        DotProductSimilarity {
            options: BaseOptions::new(
                "DotProductSimilarity",
                self.normalize_embeddings,
                self.p,
                self.power,
            ),
        }
    }
}

/// The dot product `s(x, y) = (x · y)^power` (PML's `DotProductSimilarity`), a similarity
/// (larger = closer), after optional normalization of the rows.
///
/// # Shapes
/// - query `[n, d]`, reference `[m, d]` → `[n, m]`
#[derive(Clone, Debug)]
pub struct DotProductSimilarity {
    options: BaseOptions,
}

impl DotProductSimilarity {
    pub(crate) fn with_options(options: BaseOptions) -> Self {
        Self { options }
    }
}

impl<B: Backend> Distance<B> for DotProductSimilarity {
    fn forward(&self, query: Tensor<B, 2>, reference: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        check_widths("DotProductSimilarity", &query, reference.as_ref());
        if let Some(empty) = empty_matrix(&query, reference.as_ref()) {
            return empty;
        }
        let o = &self.options;
        let q = o.maybe_normalize(query);
        let r = match reference {
            Some(r) => o.maybe_normalize(r),
            None => q.clone(),
        };
        o.apply_power(pml_core::math::matmul(q, r.transpose()))
    }

    fn is_inverted(&self) -> bool {
        true
    }

    /// The inner form, on the (optionally normalized) rows.
    fn gram_inputs(
        &self,
        query: Tensor<B, 2>,
        reference: Option<Tensor<B, 2>>,
    ) -> Option<GramInputs<B>> {
        if has_empty_side(&query, reference.as_ref()) {
            return None;
        }
        check_widths("DotProductSimilarity", &query, reference.as_ref());
        let o = &self.options;
        let form = GramForm::Inner { power: o.power };
        Some(GramInputs::new(
            o.maybe_normalize(query),
            reference.map(|r| o.maybe_normalize(r)),
            form,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use pml_core::tensor::float_vec;

    #[test]
    fn raw_and_normalized_dot_products() {
        let device = Default::default();
        let q = Tensor::<NdArray, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
        let raw = DotProductSimilarityConfig::new()
            .with_normalize_embeddings(false)
            .init();
        assert_eq!(
            float_vec(raw.forward(q.clone(), None)),
            vec![5.0, 11.0, 11.0, 25.0]
        );
        let cos = float_vec(DotProductSimilarityConfig::new().init().forward(q, None));
        assert!((cos[0] - 1.0).abs() < 1e-6);
        assert!((cos[1] - 11.0 / (5f64.sqrt() * 5.0)).abs() < 1e-6);
        assert!(Distance::<NdArray>::is_inverted(&raw));
    }
}
