//! The pair mechanism shared by pair-based losses (PML's `GenericPairLoss`): pairs from the
//! labels or the indices tuple, one distance matrix, and the distances of the pairs.

use burn::tensor::{Int, Tensor, backend::Backend};
use pml_core::{LossInput, labels::convert_to_pairs, tensor::gather_pairs};

use crate::base::LossSlots;

/// Positive pairs `(a1, p)`, negative pairs `(a2, n)` and their distances.
pub(crate) struct PairDistances<B: Backend> {
    pub a1: Tensor<B, 1, Int>,
    pub p: Tensor<B, 1, Int>,
    pub a2: Tensor<B, 1, Int>,
    pub n: Tensor<B, 1, Int>,
    /// `mat[a1, p]`, `None` when there is no positive pair.
    pub pos: Option<Tensor<B, 1>>,
    /// `mat[a2, n]`, `None` when there is no negative pair.
    pub neg: Option<Tensor<B, 1>>,
}

/// The pairs of `input` and their distances; `None` when PML returns its zero loss (every index
/// list has at most one element).
pub(crate) fn pair_distances<B: Backend>(
    slots: &LossSlots,
    input: &LossInput<B>,
) -> Option<PairDistances<B>> {
    let [a1, p, a2, n] = convert_to_pairs(input);
    let (num_pos, num_neg) = (a1.dims()[0], a2.dims()[0]);
    if num_pos <= 1 && num_neg <= 1 {
        return None;
    }
    let mat = slots.distance_matrix(input);
    let pos = (num_pos > 0).then(|| gather_pairs(mat.clone(), a1.clone(), p.clone()));
    let neg = (num_neg > 0).then(|| gather_pairs(mat, a2.clone(), n.clone()));
    Some(PairDistances {
        a1,
        p,
        a2,
        n,
        pos,
        neg,
    })
}
