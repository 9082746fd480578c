//! Tuples of local anchors against the gathered reference (PML's `get_indices_tuple` in
//! `utils/distributed.py`), shared by both wrappers.

use burn::tensor::{Int, Tensor, backend::Backend};
use pml_core::{IndicesTuple, Miner, Reference, labels::all_pairs};

/// PML's `remove_self_comparisons` for a reference set that starts with the batch itself:
/// drops the positive pairs (or triplets) whose anchor and positive are the same row.
pub(crate) fn drop_self_pairs<B: Backend>(tuple: IndicesTuple<B>) -> IndicesTuple<B> {
    tuple.retain_positives(|a, p| a.clone().not_equal(p.clone()))
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
