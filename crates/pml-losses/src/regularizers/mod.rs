//! Regularizers (PML's `regularizers` module): penalties on embeddings, added to a loss as an
//! extra term (`embedding_regularizer`, weighted by `embedding_reg_weight`).

mod any;
mod lp;
mod zero_mean;

pub use any::{AnyRegularizer, RegularizerConfig};
pub use lp::{LpRegularizer, LpRegularizerConfig};
pub use zero_mean::{ZeroMeanRegularizer, ZeroMeanRegularizerConfig};

use burn::tensor::{Int, Tensor, backend::Backend};
use pml_core::{LossTerm, LossTerms, ReduceContext, Reducer};
use pml_reducers::AnyReducer;

/// Reduces per-row penalties `[n]` with `reducer`, as PML's `BaseRegularizer.forward` does
/// (element reduction, the row indices standing in for labels).
fn reduce_rows<B: Backend>(
    reducer: &AnyReducer,
    x: &Tensor<B, 2>,
    penalties: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let n = x.dims()[0];
    let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &x.device());
    let terms = LossTerms::new().with(LossTerm::element("loss", penalties, idx.clone()));
    reducer.reduce(&terms, &ReduceContext::new(x.clone(), Some(idx)))
}
