use burn::tensor::{Int, Tensor, backend::Backend};

use crate::{LossTerm, LossTerms, ReductionType};

/// What a reducer may look at besides the losses: the batch (for a zero loss that keeps the
/// gradient graph, and the batch size) and its labels (for class weights).
#[derive(Clone, Debug)]
pub struct ReduceContext<B: Backend> {
    /// The batch's embeddings, `[n, d]`.
    pub embeddings: Tensor<B, 2>,
    /// The batch's labels, `[n]` (element indices for regularizers).
    pub labels: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> ReduceContext<B> {
    /// A context for this batch.
    pub fn new(embeddings: Tensor<B, 2>, labels: Option<Tensor<B, 1, Int>>) -> Self {
        Self { embeddings, labels }
    }

    /// PML's zero loss, `sum(embeddings * 0)`: zero, but connected to the graph so that
    /// `backward` works and gives zero gradients.
    pub fn zero_loss(&self) -> Tensor<B, 1> {
        self.embeddings.clone().mul_scalar(0.0).sum()
    }
}

/// Turns a loss's terms into the scalar to backpropagate (PML's `BaseReducer`).
///
/// Implementors write [`reduce_losses`](Reducer::reduce_losses) for terms that carry losses;
/// zero terms and already-reduced terms are handled the same by every reducer.
pub trait Reducer<B: Backend> {
    /// Reduces the non-empty `losses` of `term` (whose type is not
    /// [`ReductionType::AlreadyReduced`]) to shape `[1]`.
    fn reduce_losses(
        &self,
        term: &LossTerm<B>,
        losses: Tensor<B, 1>,
        ctx: &ReduceContext<B>,
    ) -> Tensor<B, 1>;

    /// Whether this reducer can reduce terms of this type (PerAnchorReducer cannot reduce
    /// triplets, as in PML).
    fn supports(&self, reduction_type: ReductionType) -> bool {
        let _ = reduction_type;
        true
    }

    /// Reduces one term, shape `[1]`.
    ///
    /// # Panics
    /// If the term's type is not [supported](Reducer::supports).
    fn reduce_term(&self, term: &LossTerm<B>, ctx: &ReduceContext<B>) -> Tensor<B, 1> {
        match &term.losses {
            // No losses (no pairs or triplets): PML's zero loss, which keeps the graph.
            None => ctx.zero_loss(),
            Some(l) if l.dims()[0] == 0 => ctx.zero_loss(),
            Some(l) if term.reduction_type == ReductionType::AlreadyReduced => l.clone().sum(),
            Some(l) => {
                assert!(
                    self.supports(term.reduction_type),
                    "this reducer cannot reduce `{}` terms (term `{}`)",
                    term.reduction_type.pml_name(),
                    term.name
                );
                self.reduce_losses(term, l.clone(), ctx)
            }
        }
    }

    /// Reduces every term and sums the results (PML's `MultipleReducers` with this reducer for
    /// every term), shape `[1]`.
    fn reduce(&self, terms: &LossTerms<B>, ctx: &ReduceContext<B>) -> Tensor<B, 1> {
        terms
            .terms
            .iter()
            .map(|t| self.reduce_term(t, ctx))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| ctx.zero_loss())
    }
}
