//! Regularizers (PML's `regularizers` module): penalties on embeddings, added to a loss as an
//! extra term (`embedding_regularizer`, weighted by `embedding_reg_weight`), and on the
//! trainable weights of the losses that have them (`weight_regularizer`, weighted by
//! `weight_reg_weight`; the rows are then the classes, centers or proxies).

mod any;
mod center_invariant;
mod lp;
mod regular_face;
mod sparse_centers;
mod zero_mean;

pub use any::{AnyRegularizer, RegularizerConfig};
pub use center_invariant::{CenterInvariantRegularizer, CenterInvariantRegularizerConfig};
pub use lp::{LpRegularizer, LpRegularizerConfig};
pub use regular_face::{RegularFaceRegularizer, RegularFaceRegularizerConfig};
pub use sparse_centers::{SparseCentersRegularizer, SparseCentersRegularizerConfig};
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
    reduce_term(reducer, x, LossTerm::element("loss", penalties, idx))
}

/// Reduces one term of a regularizer on `x` with `reducer`, the row indices of `x` standing in
/// for labels (PML's `BaseRegularizer.forward`).
fn reduce_term<B: Backend>(
    reducer: &AnyReducer,
    x: &Tensor<B, 2>,
    term: LossTerm<B>,
) -> Tensor<B, 1> {
    let n = x.dims()[0];
    let idx = Tensor::<B, 1, Int>::arange(0..n as i64, &x.device());
    let terms = LossTerms::new().with(term);
    reducer.reduce(&terms, &ReduceContext::new(x.clone(), Some(idx)))
}
