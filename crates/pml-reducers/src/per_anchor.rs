use burn::{
    config::Config,
    tensor::{IndexingUpdateOp, Int, Tensor, backend::Backend},
};
use pml_core::{LossTerm, ReduceContext, Reducer, ReductionType, TermIndices};

use crate::{AnyReducer, ReducerConfig};

/// Configuration of [`PerAnchorReducer`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct PerAnchorReducerConfig {
    /// The reducer applied to the per-anchor losses.
    #[config(default = "Box::new(ReducerConfig::mean())")]
    pub reducer: Box<ReducerConfig>,
}

impl PerAnchorReducerConfig {
    /// Builds the reducer.
    pub fn init(&self) -> PerAnchorReducer {
        PerAnchorReducer {
            reducer: Box::new(self.reducer.init()),
        }
    }
}

/// Averages pair losses per anchor, then reduces the per-anchor losses with an inner reducer
/// (PML's `PerAnchorReducer`): `Lₐ = (1/|Pₐ|) Σ_{(a,j)∈Pₐ} l_{aj}` (0 for anchors without pairs),
/// then `reducer([L₀, …, L_{n−1}])`. Element losses go straight to the inner reducer. Triplet
/// losses are refused, as in PML.
///
/// # Panics
/// When asked to reduce triplet losses.
#[derive(Clone, Debug)]
pub struct PerAnchorReducer {
    reducer: Box<AnyReducer>,
}

impl PerAnchorReducer {
    /// Everything but triplets.
    pub fn supports_type(&self, reduction_type: ReductionType) -> bool {
        reduction_type != ReductionType::Triplet
    }
}

impl<B: Backend> Reducer<B> for PerAnchorReducer {
    fn supports(&self, reduction_type: ReductionType) -> bool {
        self.supports_type(reduction_type)
    }

    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        losses: Tensor<B, 1>,
        ctx: &ReduceContext<B>,
    ) -> Tensor<B, 1> {
        match &term.indices {
            TermIndices::Pair(anchors, _) => {
                let n = ctx.embeddings.dims()[0];
                let (device, dtype) = (losses.device(), losses.dtype());
                let sums = Tensor::<B, 1>::zeros([n], (&device, dtype)).select_assign(
                    0,
                    anchors.clone(),
                    losses.clone(),
                    IndexingUpdateOp::Add,
                );
                let counts = Tensor::<B, 1>::zeros([n], (&device, dtype)).select_assign(
                    0,
                    anchors.clone(),
                    losses.ones_like(),
                    IndexingUpdateOp::Add,
                );
                let empty = counts.clone().equal_elem(0.0);
                let per_anchor =
                    (sums / counts.mask_fill(empty.clone(), 1.0)).mask_fill(empty, 0.0);
                let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &device);
                self.reducer
                    .reduce_term(&LossTerm::element(&term.name, per_anchor, idx), ctx)
            }
            _ => self.reducer.reduce_term(term, ctx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use pml_core::tensor::int_tensor;

    #[test]
    fn averages_per_anchor_then_over_the_batch() {
        let r = PerAnchorReducerConfig::new().init();
        let device = Default::default();
        let term = LossTerm::neg_pair(
            "neg_loss",
            floats(&[1.0, 3.0, 4.0]),
            int_tensor(&[0, 0, 2], &device),
            int_tensor(&[1, 2, 0], &device),
        );
        // anchors: 0 -> mean(1, 3) = 2, 1 -> 0, 2 -> 4; mean over 3 anchors = 2.
        assert_eq!(scalar(r.reduce_term(&term, &ctx(3, &[0; 3]))), 2.0);
    }

    #[test]
    #[should_panic(expected = "cannot reduce `triplet` terms")]
    fn refuses_triplets() {
        let r = PerAnchorReducerConfig::new().init();
        let device = Default::default();
        let i = int_tensor(&[0], &device);
        let term = LossTerm::triplet("loss", floats(&[1.0]), i.clone(), i.clone(), i);
        r.reduce_term(&term, &ctx(1, &[0]));
    }
}
