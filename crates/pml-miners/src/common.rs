//! Pieces shared by the miners: input checks, the counts PML records, chunked triplet mining.

use std::{ops::Range, sync::Mutex};

use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use pml_core::{
    Distance, IndicesTuple, Reference,
    labels::{matches_and_diffs, pairwise_equal},
    tensor::{argwhere_2d, constant, int_tensor, take},
};
use pml_distances::{AnyDistance, DistanceConfig};

/// Elements of the `[rows, m]` blocks that the triplet miners evaluate at once: bounds their
/// peak memory at `O(CHUNK_ELEMENTS)` whatever the batch size.
pub(crate) const CHUNK_ELEMENTS: usize = 1 << 22;

/// The counts PML's miners record after each call (`BaseMiner.num_pos_pairs`,
/// `num_neg_pairs`, `num_triplets`).
///
/// As in PML, a miner that returns pairs records `num_pos_pairs` and `num_neg_pairs` and leaves
/// `num_triplets` at 0; a miner that returns triplets records only `num_triplets`.
///
/// ```
/// # use burn::backend::NdArray;
/// use pml_core::IndicesTuple;
/// use pml_miners::MinerCounts;
/// let t = IndicesTuple::<NdArray>::triplets_from_slices(&[0, 1], &[1, 0], &[2, 2], &Default::default());
/// assert_eq!(MinerCounts::of(&t), MinerCounts { num_pos_pairs: 0, num_neg_pairs: 0, num_triplets: 2 });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinerCounts {
    /// Number of positive pairs returned (pair miners).
    pub num_pos_pairs: usize,
    /// Number of negative pairs returned (pair miners).
    pub num_neg_pairs: usize,
    /// Number of triplets returned (triplet miners).
    pub num_triplets: usize,
}

impl MinerCounts {
    /// The counts PML records for this mining output.
    pub fn of<B: Backend>(tuple: &IndicesTuple<B>) -> Self {
        match tuple {
            IndicesTuple::Pairs { .. } => Self {
                num_pos_pairs: tuple.num_pos_pairs(),
                num_neg_pairs: tuple.num_neg_pairs(),
                num_triplets: 0,
            },
            IndicesTuple::Triplets { .. } => Self {
                num_pos_pairs: 0,
                num_neg_pairs: 0,
                num_triplets: tuple.num_triplets(),
            },
        }
    }
}

/// The counts of a miner's last call, behind a lock so that `mine(&self)` can record them.
/// Cloning copies the current counts.
#[derive(Debug, Default)]
pub(crate) struct LastCounts(Mutex<MinerCounts>);

impl LastCounts {
    pub fn record<B: Backend>(&self, tuple: &IndicesTuple<B>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = MinerCounts::of(tuple);
    }

    pub fn get(&self) -> MinerCounts {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clone for LastCounts {
    fn clone(&self) -> Self {
        Self(Mutex::new(self.get()))
    }
}

/// A miner's inputs after the checks of PML's `BaseMiner.forward`, detached from any autodiff
/// graph ([`constant`] copies). `ref_emb = None` means the batch is its own reference (self-pairs are excluded).
pub(crate) struct Batch<B: Backend> {
    pub embeddings: Tensor<B, 2>,
    pub labels: Tensor<B, 1, Int>,
    pub ref_emb: Option<Tensor<B, 2>>,
    pub ref_labels: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> Batch<B> {
    /// # Panics
    /// If the batch or the reference is empty, `labels` is not as long as the batch, the
    /// reference differs in width from the batch, or the reference has no labels or labels of
    /// another length.
    pub fn new(
        miner: &str,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> Self {
        let [n, d] = embeddings.dims();
        // Burn's ops on zero-size tensors are not all defined: refuse an empty batch here, as
        // `LossInput::check_shapes` does for losses, instead of failing inside them.
        assert!(
            n > 0,
            "{miner}: `embeddings` is an empty batch (shape [0, {d}])"
        );
        if let Some(r) = &reference {
            let [m, rd] = r.embeddings.dims();
            assert!(
                m > 0,
                "{miner}: `ref_emb` is an empty reference (shape [{m}, {rd}])"
            );
        }
        assert_eq!(
            labels.dims()[0],
            n,
            "{miner}: `labels` has length {} but `embeddings` has shape [{n}, {d}]",
            labels.dims()[0]
        );
        let (ref_emb, ref_labels) = match reference {
            None => (None, None),
            Some(Reference {
                embeddings: r,
                labels: rl,
            }) => {
                let [m, rd] = r.dims();
                assert_eq!(
                    rd, d,
                    "{miner}: `ref_emb` has shape [{m}, {rd}] but `embeddings` has shape [{n}, {d}]"
                );
                let rl = rl.unwrap_or_else(|| {
                    panic!("{miner}: `ref_labels` is required with `ref_emb` (shape [{m}, {rd}])")
                });
                assert_eq!(
                    rl.dims()[0],
                    m,
                    "{miner}: `ref_labels` has length {} but `ref_emb` has shape [{m}, {rd}]",
                    rl.dims()[0]
                );
                (Some(constant(r)), Some(rl))
            }
        };
        Self {
            embeddings: constant(embeddings),
            labels,
            ref_emb,
            ref_labels,
        }
    }

    /// The distance matrix `[n, m]` between the batch and the reference.
    pub fn matrix(&self, distance: &AnyDistance) -> Tensor<B, 2> {
        distance.forward(self.embeddings.clone(), self.ref_emb.clone())
    }

    /// The reference embeddings (the batch itself without a reference).
    pub fn reference(&self) -> Tensor<B, 2> {
        self.ref_emb
            .clone()
            .unwrap_or_else(|| self.embeddings.clone())
    }

    /// The reference labels (the batch's without a reference).
    pub fn reference_labels(&self) -> Tensor<B, 1, Int> {
        self.ref_labels
            .clone()
            .unwrap_or_else(|| self.labels.clone())
    }

    /// PML's `get_matches_and_diffs`: `[n, m]` masks of positive and negative pairs.
    pub fn masks(&self) -> (Tensor<B, 2, Bool>, Tensor<B, 2, Bool>) {
        matches_and_diffs(&self.labels, self.ref_labels.as_ref())
    }

    /// Every positive pair `(a1, p)` in row-major order.
    pub fn positive_pairs(&self) -> [Tensor<B, 1, Int>; 2] {
        argwhere_2d(self.masks().0)
    }

    /// `[rows, m]`: true where the reference label differs from the label of `rows[k]`.
    pub fn negatives_of(&self, rows: Tensor<B, 1, Int>) -> Tensor<B, 2, Bool> {
        pairwise_equal(&take(self.labels.clone(), rows), &self.reference_labels()).bool_not()
    }

    pub fn device(&self) -> B::Device {
        self.embeddings.device()
    }

    /// Number of reference rows.
    pub fn ref_len(&self) -> usize {
        match &self.ref_emb {
            Some(r) => r.dims()[0],
            None => self.embeddings.dims()[0],
        }
    }
}

/// An empty Int index list on `device`.
pub(crate) fn empty<B: Backend>(device: &B::Device) -> Tensor<B, 1, Int> {
    int_tensor(&[], device)
}

/// Triplets `(a1[k], p[k], j)` for every positive pair `k` and every reference row `j` where
/// `keep` is true, in row-major `(k, j)` order (so in PML's `(a, p, n)` order when the pairs are
/// in row-major order).
///
/// `keep(a, p, range)` gets the anchors and positives of the pairs `range` and returns their
/// `[range.len(), m]` mask; it is called on blocks of pairs so that at most about
/// [`CHUNK_ELEMENTS`] entries exist at once.
pub(crate) fn triplets_from_pairs<B: Backend>(
    a1: Tensor<B, 1, Int>,
    p: Tensor<B, 1, Int>,
    m: usize,
    mut keep: impl FnMut(Tensor<B, 1, Int>, Tensor<B, 1, Int>, Range<usize>) -> Tensor<B, 2, Bool>,
) -> IndicesTuple<B> {
    let device = a1.device();
    let num_pairs = a1.dims()[0];
    let rows = (CHUNK_ELEMENTS / m.max(1)).max(1);
    let (mut a_out, mut p_out, mut n_out) = (Vec::new(), Vec::new(), Vec::new());
    if m > 0 {
        for s in (0..num_pairs).step_by(rows) {
            let e = (s + rows).min(num_pairs);
            let (a, pos) = (a1.clone().slice(s..e), p.clone().slice(s..e));
            let [k, n] = argwhere_2d(keep(a.clone(), pos.clone(), s..e));
            if k.dims()[0] == 0 {
                continue;
            }
            a_out.push(take(a, k.clone()));
            p_out.push(take(pos, k));
            n_out.push(n);
        }
    }
    let cat = |v: Vec<Tensor<B, 1, Int>>| {
        if v.is_empty() {
            empty(&device)
        } else {
            Tensor::cat(v, 0)
        }
    };
    IndicesTuple::triplets(cat(a_out), cat(p_out), cat(n_out))
}

/// The `[LpDistance(p=2, power=1, normalize_embeddings=True)]` requirement of AngularMiner and
/// DistanceWeightedMiner (PML's `assert_distance_type`).
pub(crate) fn require_normalized_l2(
    miner: &str,
    distance: &DistanceConfig,
) -> Result<(), pml_core::PmlError> {
    let ok = matches!(
        distance,
        DistanceConfig::Lp(c) if c.p == 2.0 && c.power == 1.0 && c.normalize_embeddings
    );
    if ok {
        Ok(())
    } else {
        Err(pml_core::PmlError::invalid_argument(
            "distance",
            spec_string(distance),
            format!("{miner} requires LpDistance(p=2, power=1, normalize_embeddings=True)"),
        ))
    }
}

/// A config's spec as JSON text, for error messages.
pub(crate) fn spec_string(distance: &DistanceConfig) -> String {
    serde_json::to_string(distance).unwrap_or_else(|_| distance.pml_name().to_string())
}

/// Refuses a non-finite hyperparameter.
pub(crate) fn require_finite(
    miner: &str,
    argument: &str,
    value: f64,
) -> Result<(), pml_core::PmlError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(pml_core::PmlError::invalid_argument(
            argument,
            value,
            format!("{miner}: must be finite"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};

    #[test]
    fn mining_inputs_are_detached_from_the_graph() {
        type A = Autodiff<NdArray>;
        let device = Default::default();
        let x = Tensor::<A, 2>::ones([3, 2], &device).require_grad();
        let r = Tensor::<A, 2>::ones([4, 2], &device).require_grad();
        let batch = Batch::new(
            "Test",
            x.clone(),
            int_tensor(&[0, 0, 1], &device),
            Some(Reference {
                embeddings: r,
                labels: Some(int_tensor(&[0, 1, 1, 0], &device)),
            }),
        );
        assert!(x.is_require_grad());
        assert!(!batch.embeddings.is_require_grad());
        assert!(!batch.reference().is_require_grad());
    }

    #[test]
    #[should_panic(expected = "Test: `ref_labels` is required with `ref_emb` (shape [4, 2])")]
    fn a_reference_needs_labels() {
        let device = Default::default();
        let _ = Batch::<NdArray>::new(
            "Test",
            Tensor::ones([3, 2], &device),
            int_tensor(&[0, 0, 1], &device),
            Some(Reference {
                embeddings: Tensor::ones([4, 2], &device),
                labels: None,
            }),
        );
    }

    #[test]
    #[should_panic(expected = "Test: `labels` has length 2 but `embeddings` has shape [3, 2]")]
    fn labels_must_match_the_batch() {
        let device = Default::default();
        let _ = Batch::<NdArray>::new(
            "Test",
            Tensor::ones([3, 2], &device),
            int_tensor(&[0, 0], &device),
            None,
        );
    }
}
