//! The pair mechanism shared by the pair-based losses (PML's `GenericPairLoss`): pairs from the
//! labels or the indices tuple, one distance matrix, and either the distances of the listed
//! pairs (PML's pair-based losses) or positive/negative masks over the whole matrix (PML's
//! matrix-based losses). `ref_emb` is handled here once.

use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor, backend::Backend};
use pml_core::{
    IndicesTuple, LossInput,
    labels::{convert_to_pairs, matches_and_diffs},
    math::masked_logsumexp,
    tensor::gather_pairs,
};

use crate::base::LossSlots;

/// Positive pairs `(a1, p)`, negative pairs `(a2, n)`, the distance matrix and the pairs'
/// distances.
pub(crate) struct PairDistances<B: Backend> {
    pub a1: Tensor<B, 1, Int>,
    pub p: Tensor<B, 1, Int>,
    pub a2: Tensor<B, 1, Int>,
    pub n: Tensor<B, 1, Int>,
    /// The `[n, m]` distance matrix.
    pub mat: Tensor<B, 2>,
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
    let neg = (num_neg > 0).then(|| gather_pairs(mat.clone(), a2.clone(), n.clone()));
    Some(PairDistances {
        a1,
        p,
        a2,
        n,
        mat,
        pos,
        neg,
    })
}

impl<B: Backend> PairDistances<B> {
    /// For each anchor row `i`, `log Σ exp(values[i, k])` over the negative pairs `(i, k)`,
    /// counting a pair listed twice twice (as PML's per-pair formulation does), and whether
    /// the row has any negative pair. `values` is `[n, m]` (a function of the distance
    /// matrix); computed densely, `O(n·m)`, instead of PML's positives × negatives matrix.
    pub fn negatives_logsumexp(&self, values: Tensor<B, 2>) -> (Tensor<B, 1>, Tensor<B, 1, Bool>) {
        let [rows, cols] = values.dims();
        let counts = pair_counts(&self.a2, &self.n, rows, cols, &values);
        let keep = counts.clone().greater_elem(0.0);
        // log(count) weights repeated pairs; kept entries have count ≥ 1.
        let weighted = values + counts.clamp_min(1.0).log();
        let lse = masked_logsumexp(weighted, Some(keep.clone()), false).reshape([rows]);
        (lse, keep.any_dim(1).reshape([rows]))
    }
}

/// How often each `(rows[k], cols[k])` occurs, as an `[n, m]` float matrix like `like`.
fn pair_counts<B: Backend>(
    rows: &Tensor<B, 1, Int>,
    cols: &Tensor<B, 1, Int>,
    n: usize,
    m: usize,
    like: &Tensor<B, 2>,
) -> Tensor<B, 2> {
    let flat = rows.clone().mul_scalar(m as i64).add(cols.clone());
    let k = flat.dims()[0];
    let zeros = Tensor::<B, 1>::zeros([n * m], (&like.device(), like.dtype()));
    let ones = Tensor::<B, 1>::ones([k], (&like.device(), like.dtype()));
    zeros
        .select_assign(0, flat, ones, IndexingUpdateOp::Add)
        .reshape([n, m])
}

/// The distance matrix with positive and negative masks (PML's `mat_based_loss`).
pub(crate) struct PairMasks<B: Backend> {
    /// The `[n, m]` distance matrix.
    pub mat: Tensor<B, 2>,
    /// `[n, m]`: `(i, j)` is a positive pair.
    pub pos: Tensor<B, 2, Bool>,
    /// `[n, m]`: `(i, j)` is a negative pair.
    pub neg: Tensor<B, 2, Bool>,
    /// `[1]`, false where PML returns its zero loss (at most one positive and one negative
    /// pair); `None` when that is already known to be false on the host.
    gate: Option<Tensor<B, 1, Bool>>,
}

/// The masks of `input`: from the labels (no index lists are built), or from the indices
/// tuple. `None` when PML returns its zero loss and that is known without reading the device.
pub(crate) fn pair_masks<B: Backend>(
    slots: &LossSlots,
    input: &LossInput<B>,
) -> Option<PairMasks<B>> {
    let (n, m) = (input.embeddings.dims()[0], input.ref_len());
    let mat = slots.distance_matrix(input);
    let (pos, neg, gate) = match &input.indices_tuple {
        None => {
            let (labels, ref_labels) = input.tuple_labels();
            let (pos, neg) = matches_and_diffs(&labels, ref_labels.as_ref());
            let count = |mask: &Tensor<B, 2, Bool>| mask.clone().int().sum();
            let gate = count(&pos)
                .greater_elem(1)
                .bool_or(count(&neg).greater_elem(1));
            (pos, neg, Some(gate))
        }
        Some(t) => {
            let (a1, p, a2, ng) = match t.clone() {
                IndicesTuple::Pairs { a1, p, a2, n } => (a1, p, a2, n),
                IndicesTuple::Triplets { a, p, n } => (a.clone(), p, a, n),
            };
            if a1.dims()[0] <= 1 && a2.dims()[0] <= 1 {
                return None;
            }
            let pos = pair_counts(&a1, &p, n, m, &mat).greater_elem(0.0);
            let neg = pair_counts(&a2, &ng, n, m, &mat).greater_elem(0.0);
            (pos, neg, None)
        }
    };
    Some(PairMasks {
        mat,
        pos,
        neg,
        gate,
    })
}

impl<B: Backend> PairMasks<B> {
    /// Zeroes per-anchor losses (`[n]`) where PML would have returned its zero loss.
    pub fn gated(&self, losses: Tensor<B, 1>) -> Tensor<B, 1> {
        match &self.gate {
            None => losses,
            Some(g) => {
                let n = losses.dims()[0];
                losses.mask_fill(g.clone().bool_not().expand([n]), 0.0)
            }
        }
    }
}
