//! Tuples of local anchors against the gathered reference (PML's `get_indices_tuple` in
//! `utils/distributed.py`), shared by both wrappers.

use burn::tensor::{Int, Tensor, backend::Backend};
use pml_core::{IndicesTuple, Miner, Reference, labels::all_pairs};

/// PML's `remove_self_comparisons` for a reference set that starts with the batch itself:
/// drops the positive pairs (or triplets) whose anchor and positive are the same row.
pub(crate) fn drop_self_pairs<B: Backend>(tuple: IndicesTuple<B>) -> IndicesTuple<B> {
    let keep = |a: &Tensor<B, 1, Int>, p: &Tensor<B, 1, Int>| {
        a.clone().not_equal(p.clone()).argwhere().reshape([-1])
    };
    match tuple {
        IndicesTuple::Pairs { a1, p, a2, n } => {
            let k = keep(&a1, &p);
            IndicesTuple::pairs(a1.select(0, k.clone()), p.select(0, k), a2, n)
        }
        IndicesTuple::Triplets { a, p, n } => {
            let k = keep(&a, &p);
            IndicesTuple::triplets(
                a.select(0, k.clone()),
                p.select(0, k.clone()),
                n.select(0, k),
            )
        }
    }
}

/// The efficient mode's tuples: this peer's anchors (`[n]` labels) against the gathered
/// reference (`[N, d]`, `[N]`, this peer's rows first), mined when a miner is given, else all
/// pairs; self-comparisons removed.
pub(crate) fn efficient_tuple<B: Backend>(
    embeddings: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    ref_emb: Tensor<B, 2>,
    ref_labels: Tensor<B, 1, Int>,
    miner: Option<&dyn Miner<B>>,
) -> IndicesTuple<B> {
    let tuple = match miner {
        Some(m) => m.mine(
            embeddings,
            labels,
            Some(Reference {
                embeddings: ref_emb,
                labels: Some(ref_labels),
            }),
        ),
        None => all_pairs(&labels, Some(&ref_labels)),
    };
    drop_self_pairs(tuple)
}
