//! Batch-permutation checks shared by the losses' property tests (tests only).

use burn::{
    backend::NdArray,
    tensor::{Tensor, TensorData},
};
use pml_core::{
    LossInput, MetricLoss,
    rng::SeededRng,
    tensor::{float_vec, int_tensor},
};

/// A uniformly shuffled permutation of `0..n` (Fisher–Yates, seeded).
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let rng = SeededRng::new(seed);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        perm.swap(i, rng.below(i + 1));
    }
    perm
}

/// A shuffled permutation that keeps the relative order of the samples of each label (for
/// losses that, as in PML, pick "the first" pair of a label).
pub fn shuffled_keeping_label_order(labels: &[i64], seed: u64) -> Vec<usize> {
    let mut perm = shuffled(labels.len(), seed);
    let mut labels_sorted: Vec<i64> = labels.to_vec();
    labels_sorted.sort_unstable();
    labels_sorted.dedup();
    for l in labels_sorted {
        let slots: Vec<usize> = (0..perm.len()).filter(|&k| labels[perm[k]] == l).collect();
        let mut members: Vec<usize> = slots.iter().map(|&k| perm[k]).collect();
        members.sort_unstable();
        for (k, m) in slots.into_iter().zip(members) {
            perm[k] = m;
        }
    }
    perm
}

/// Seeded embeddings `[n, d]` with entries in `[-1, 1)`, as host values.
pub fn random_values(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let rng = SeededRng::new(seed);
    (0..n * d)
        .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
        .collect()
}

/// The loss of `values` (rows of width `d`) with `labels`, rows reordered by `perm`.
pub fn loss_of(
    loss: &impl MetricLoss<NdArray>,
    values: &[f32],
    labels: &[i64],
    d: usize,
    perm: &[usize],
) -> f64 {
    let device = Default::default();
    let rows: Vec<f32> = perm
        .iter()
        .flat_map(|&i| values[i * d..(i + 1) * d].iter().copied())
        .collect();
    let labels: Vec<i64> = perm.iter().map(|&i| labels[i]).collect();
    let emb = Tensor::<NdArray, 2>::from_data(TensorData::new(rows, [perm.len(), d]), &device);
    float_vec(loss.forward(LossInput::new(emb, int_tensor(&labels, &device))))[0]
}

/// Checks that permuting embeddings and labels together with `perm` leaves the loss unchanged
/// (within `1e-5`, relative to `max(1, |loss|)`), for three seeded batches.
pub fn check_permutation(loss: &impl MetricLoss<NdArray>, labels: &[i64], perm: &[usize]) {
    let d = 6;
    for seed in 0..3 {
        let values = random_values(labels.len(), d, 100 + seed);
        let identity: Vec<usize> = (0..labels.len()).collect();
        let a = loss_of(loss, &values, labels, d, &identity);
        let b = loss_of(loss, &values, labels, d, perm);
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "loss {a} before and {b} after permuting the batch by {perm:?}"
        );
    }
}

/// [`check_permutation`] with a seeded uniform shuffle.
pub fn check_permutation_invariance(loss: &impl MetricLoss<NdArray>, labels: &[i64]) {
    check_permutation(loss, labels, &shuffled(labels.len(), 7));
}
