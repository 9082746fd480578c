//! Label utilities with PML's semantics (`loss_and_miner_utils` in PML).
//!
//! A `ref_labels` of `None` means "the reference set is the batch itself": only then are
//! self-pairs `(i, i)` removed from the positives. This is an explicit flag, never a pointer
//! comparison.

use std::ops::Range;

use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    IndicesTuple, LossInput,
    rng::SeededRng,
    tensor::{diagonal_of_tile, int_tensor, int_vec, narrow_to, take},
};

/// `out[i, j] = labels[i] == ref_labels[j]`, shape `[n, m]`.
pub fn pairwise_equal<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    ref_labels: &Tensor<B, 1, Int>,
) -> Tensor<B, 2, Bool> {
    let (n, m) = (labels.dims()[0], ref_labels.dims()[0]);
    if n == 0 || m == 0 {
        // Burn cannot expand to a zero-size dimension: an empty batch or reference has no
        // pairs.
        return Tensor::<B, 2, Int>::zeros([n, m], &labels.device()).bool();
    }
    // Broadcast by the comparison itself: expanding first materializes two `[n, m]` integer
    // matrices on burn-ndarray.
    labels
        .clone()
        .reshape([n, 1])
        .equal(ref_labels.clone().reshape([1, m]))
}

/// PML's `get_matches_and_diffs`: `matches[i, j]` when the labels agree, `diffs[i, j]` when they
/// differ, both `[n, m]`. With `ref_labels = None` the batch is its own reference and the
/// diagonal is removed from `matches`.
pub fn matches_and_diffs<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    ref_labels: Option<&Tensor<B, 1, Int>>,
) -> (Tensor<B, 2, Bool>, Tensor<B, 2, Bool>) {
    let m = ref_labels.unwrap_or(labels).dims()[0];
    matches_and_diffs_of_tile(labels, ref_labels, 0..labels.dims()[0], 0..m)
}

/// The tile `rows × cols` of [`matches_and_diffs`], `[rows.len(), cols.len()]` each: for
/// anchors processed in blocks, or pairs in tiles.
///
/// # Panics
/// If `rows` is not inside `0..n` or `cols` not inside `0..m`.
pub fn matches_and_diffs_of_tile<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    ref_labels: Option<&Tensor<B, 1, Int>>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> (Tensor<B, 2, Bool>, Tensor<B, 2, Bool>) {
    let refs = ref_labels.unwrap_or(labels);
    let matches = pairwise_equal(
        &narrow_to(labels.clone(), 0, rows.clone()),
        &narrow_to(refs.clone(), 0, cols.clone()),
    );
    let diffs = matches.clone().bool_not();
    let matches = match ref_labels {
        // An anchor is not its own positive: clear the diagonal where the tile crosses it.
        None if rows.start < cols.end && cols.start < rows.end => {
            matches.mask_fill(diagonal_of_tile(rows, cols, &labels.device()), false)
        }
        _ => matches,
    };
    (matches, diffs)
}

fn columns<B: Backend, const K: usize>(coords: Tensor<B, 2, Int>) -> [Tensor<B, 1, Int>; K] {
    let rows = coords.dims()[0];
    std::array::from_fn(|k| coords.clone().slice([0..rows, k..k + 1]).reshape([rows]))
}

/// Every positive pair `(a1, p)` and negative pair `(a2, n)` the labels allow, in row-major
/// order (PML's `get_all_pairs_indices`).
pub fn all_pairs<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    ref_labels: Option<&Tensor<B, 1, Int>>,
) -> IndicesTuple<B> {
    let (matches, diffs) = matches_and_diffs(labels, ref_labels);
    let [a1, p] = columns(matches.argwhere());
    let [a2, n] = columns(diffs.argwhere());
    IndicesTuple::Pairs { a1, p, a2, n }
}

/// Elements of the `[anchors, m, m]` mask block that [`all_triplets`] builds at once.
const TRIPLET_BLOCK_ELEMENTS: usize = 1 << 24;

/// Every triplet `(a, p, n)` with `label[a] == ref_label[p]`, `label[a] != ref_label[n]` (and
/// `a != p` when the batch is its own reference), in row-major order (PML's
/// `get_all_triplets_indices`).
///
/// The `[n, m, m]` validity mask is built in blocks of anchors (at most 2²⁴ elements each), so
/// peak memory beyond the returned index lists stays bounded; the index lists themselves hold
/// every triplet, as the definition needs.
pub fn all_triplets<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    ref_labels: Option<&Tensor<B, 1, Int>>,
) -> IndicesTuple<B> {
    let (matches, diffs) = matches_and_diffs(labels, ref_labels);
    let [n, m] = matches.dims();
    let block = (TRIPLET_BLOCK_ELEMENTS / (m * m).max(1)).clamp(1, n.max(1));
    let (mut a, mut p, mut neg) = (Vec::new(), Vec::new(), Vec::new());
    for start in (0..n).step_by(block) {
        let end = (start + block).min(n);
        let rows = end - start;
        let valid = matches
            .clone()
            .slice([start..end, 0..m])
            .reshape([rows, m, 1])
            .expand([rows, m, m])
            .bool_and(
                diffs
                    .clone()
                    .slice([start..end, 0..m])
                    .reshape([rows, 1, m])
                    .expand([rows, m, m]),
            );
        let [ba, bp, bn] = columns(valid.argwhere());
        a.push(ba.add_scalar(start as i64));
        p.push(bp);
        neg.push(bn);
    }
    if a.is_empty() {
        let empty = int_tensor::<B>(&[], &labels.device());
        return IndicesTuple::Triplets {
            a: empty.clone(),
            p: empty.clone(),
            n: empty,
        };
    }
    IndicesTuple::Triplets {
        a: Tensor::cat(a, 0),
        p: Tensor::cat(p, 0),
        n: Tensor::cat(neg, 0),
    }
}

/// How many triplets per anchor a triplet loss samples when no indices tuple is given (PML's
/// `triplets_per_anchor`): `"all"` or a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TripletsPerAnchor {
    /// Every valid triplet.
    #[default]
    All,
    /// This many random triplets per anchor (positives and negatives drawn uniformly).
    Count(usize),
}

impl Serialize for TripletsPerAnchor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::All => s.serialize_str("all"),
            Self::Count(k) => s.serialize_u64(*k as u64),
        }
    }
}

impl<'de> Deserialize<'de> for TripletsPerAnchor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Count(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "all" => Ok(Self::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "triplets_per_anchor must be \"all\" or a positive integer, got \"{w}\""
            ))),
            Raw::Count(0) => Err(serde::de::Error::custom(
                "triplets_per_anchor must be \"all\" or a positive integer, got 0",
            )),
            Raw::Count(k) => Ok(Self::Count(k as usize)),
        }
    }
}

/// `per_anchor` random triplets for every anchor that has a positive and a negative (PML's
/// `get_random_triplet_indices`): for each label, each anchor of that label gets `per_anchor`
/// positives drawn uniformly (never itself when the batch is its own reference) and as many
/// negatives drawn uniformly from the other labels.
///
/// Runs on the host: it reads the labels back once.
pub fn random_triplets<B: Backend>(
    labels: &Tensor<B, 1, Int>,
    ref_labels: Option<&Tensor<B, 1, Int>>,
    per_anchor: usize,
    rng: &SeededRng,
) -> IndicesTuple<B> {
    let device = labels.device();
    let lab = int_vec(labels.clone());
    let is_self = ref_labels.is_none();
    let refl = match ref_labels {
        Some(r) => int_vec(r.clone()),
        None => lab.clone(),
    };
    let mut unique = lab.clone();
    unique.sort_unstable();
    unique.dedup();
    let (mut a, mut p, mut n) = (Vec::new(), Vec::new(), Vec::new());
    for label in unique {
        let pos: Vec<i64> = (0..refl.len() as i64)
            .filter(|&j| refl[j as usize] == label)
            .collect();
        let neg: Vec<i64> = (0..refl.len() as i64)
            .filter(|&j| refl[j as usize] != label)
            .collect();
        let anchors: Vec<i64> = (0..lab.len() as i64)
            .filter(|&i| lab[i as usize] == label)
            .collect();
        let min_pos = if is_self { 2 } else { 1 };
        if pos.len() < min_pos || neg.is_empty() {
            continue;
        }
        for (ai, &anchor) in anchors.iter().enumerate() {
            for _ in 0..per_anchor {
                let positive = if is_self {
                    // Skip the anchor's own position among the positives.
                    let k = rng.below(pos.len() - 1);
                    pos[if k >= ai { k + 1 } else { k }]
                } else {
                    pos[rng.below(pos.len())]
                };
                a.push(anchor);
                p.push(positive);
                n.push(neg[rng.below(neg.len())]);
            }
        }
    }
    IndicesTuple::triplets(
        int_tensor(&a, &device),
        int_tensor(&p, &device),
        int_tensor(&n, &device),
    )
}

/// Triplets from pairs, as PML's `convert_to_triplets`: every positive pair `(a1[i], p[i])`
/// combined with every negative pair `(a2[j], n[j])` of the same anchor, in row-major `(i, j)`
/// order.
pub fn pairs_to_triplets<B: Backend>(
    a1: Tensor<B, 1, Int>,
    p: Tensor<B, 1, Int>,
    a2: Tensor<B, 1, Int>,
    n: Tensor<B, 1, Int>,
) -> IndicesTuple<B> {
    let (np, nn) = (a1.dims()[0], a2.dims()[0]);
    if np == 0 || nn == 0 {
        let empty = int_tensor::<B>(&[], &a1.device());
        return IndicesTuple::Triplets {
            a: empty.clone(),
            p: empty.clone(),
            n: empty,
        };
    }
    // Every (positive pair i, negative pair j) with the same anchor, i-major as PML's
    // `torch.where(a1[:, None] == a2)`: negatives grouped by anchor in one pass on the host,
    // O(np + nn + triplets) instead of an [np, nn] equality matrix.
    let device = a1.device();
    let (anchors_p, anchors_n) = (int_vec(a1.clone()), int_vec(a2));
    let mut by_anchor: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for (j, &a) in anchors_n.iter().enumerate() {
        by_anchor.entry(a).or_default().push(j as i64);
    }
    let (mut pi, mut nj) = (Vec::new(), Vec::new());
    for (i, a) in anchors_p.iter().enumerate() {
        if let Some(js) = by_anchor.get(a) {
            pi.extend(std::iter::repeat_n(i as i64, js.len()));
            nj.extend_from_slice(js);
        }
    }
    let (i, j) = (int_tensor::<B>(&pi, &device), int_tensor::<B>(&nj, &device));
    IndicesTuple::Triplets {
        a: take(a1, i.clone()),
        p: take(p, i),
        n: take(n, j),
    }
}

/// The pairs a pair-based loss uses (PML's `convert_to_pairs`): the given pairs, triplets split
/// into `(a, p)` and `(a, n)`, or every pair the labels allow.
///
/// # Panics
/// If no indices tuple is given and the labels are missing (see
/// [`LossInput::tuple_labels`]).
pub fn convert_to_pairs<B: Backend>(input: &LossInput<B>) -> [Tensor<B, 1, Int>; 4] {
    let tuple = match &input.indices_tuple {
        Some(t) => t.clone(),
        None => {
            let (labels, ref_labels) = input.tuple_labels();
            all_pairs(&labels, ref_labels.as_ref())
        }
    };
    match tuple {
        IndicesTuple::Pairs { a1, p, a2, n } => [a1, p, a2, n],
        IndicesTuple::Triplets { a, p, n } => [a.clone(), p, a, n],
    }
}

/// The triplets a triplet-based loss uses (PML's `convert_to_triplets`): the given triplets,
/// pairs combined by anchor, or triplets from the labels (`all`, or `per_anchor` random ones).
///
/// # Panics
/// If no indices tuple is given and the labels are missing (see
/// [`LossInput::tuple_labels`]).
pub fn convert_to_triplets<B: Backend>(
    input: &LossInput<B>,
    per_anchor: TripletsPerAnchor,
    rng: &SeededRng,
) -> [Tensor<B, 1, Int>; 3] {
    let tuple = match &input.indices_tuple {
        Some(IndicesTuple::Pairs { a1, p, a2, n }) => {
            pairs_to_triplets(a1.clone(), p.clone(), a2.clone(), n.clone())
        }
        Some(t) => t.clone(),
        None => {
            let (labels, ref_labels) = input.tuple_labels();
            match per_anchor {
                TripletsPerAnchor::All => all_triplets(&labels, ref_labels.as_ref()),
                TripletsPerAnchor::Count(k) => {
                    random_triplets(&labels, ref_labels.as_ref(), k, rng)
                }
            }
        }
    };
    match tuple {
        IndicesTuple::Triplets { a, p, n } => [a, p, n],
        IndicesTuple::Pairs { .. } => unreachable!("pairs were converted above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray;

    fn ints(v: &[i64]) -> Tensor<B, 1, Int> {
        int_tensor(v, &Default::default())
    }

    fn host<const K: usize>(t: [Tensor<B, 1, Int>; K]) -> Vec<Vec<i64>> {
        t.into_iter().map(int_vec).collect()
    }

    #[test]
    fn all_pairs_removes_self_pairs_only_for_the_batch_itself() {
        let labels = ints(&[0, 0, 1]);
        let IndicesTuple::Pairs { a1, p, a2, n } = all_pairs(&labels, None) else {
            panic!()
        };
        assert_eq!(host([a1, p]), vec![vec![0, 1], vec![1, 0]]);
        assert_eq!(host([a2, n]), vec![vec![0, 1, 2, 2], vec![2, 2, 0, 1]]);

        let same = ints(&[0, 0, 1]);
        let IndicesTuple::Pairs { a1, p, .. } = all_pairs(&labels, Some(&same)) else {
            panic!()
        };
        assert_eq!(
            host([a1, p]),
            vec![vec![0, 0, 1, 1, 2], vec![0, 1, 0, 1, 2]]
        );
    }

    #[test]
    fn all_triplets_in_row_major_order() {
        let labels = ints(&[0, 0, 1]);
        let IndicesTuple::Triplets { a, p, n } = all_triplets(&labels, None) else {
            panic!()
        };
        assert_eq!(host([a, p, n]), vec![vec![0, 1], vec![1, 0], vec![2, 2]]);
    }

    #[test]
    fn all_triplets_in_blocks_equal_the_whole_cube() {
        // 300 rows: 300² = 90,000 elements per anchor, so 186 anchors per block: two blocks.
        let labels: Vec<i64> = (0..300).map(|i| i % 7).collect();
        let t = all_triplets(&ints(&labels), None);
        let IndicesTuple::Triplets { a, p, n } = t else {
            panic!()
        };
        let (a, p, n) = (int_vec(a), int_vec(p), int_vec(n));
        let mut k = 0;
        for i in 0..300usize {
            for j in 0..300usize {
                for l in 0..300usize {
                    if i != j && labels[i] == labels[j] && labels[i] != labels[l] {
                        assert_eq!((a[k], p[k], n[k]), (i as i64, j as i64, l as i64));
                        k += 1;
                    }
                }
            }
        }
        assert_eq!(k, a.len());
    }

    #[test]
    fn pairs_become_triplets_by_anchor() {
        let t = pairs_to_triplets(
            ints(&[0, 1]),
            ints(&[1, 0]),
            ints(&[0, 0, 1]),
            ints(&[2, 3, 2]),
        );
        let IndicesTuple::Triplets { a, p, n } = t else {
            panic!()
        };
        assert_eq!(
            host([a, p, n]),
            vec![vec![0, 0, 1], vec![1, 1, 0], vec![2, 3, 2]]
        );
    }

    #[test]
    fn random_triplets_are_valid_and_seeded() {
        let labels = ints(&[0, 0, 1, 1, 1, 2]);
        let draw = |seed| {
            let IndicesTuple::Triplets { a, p, n } =
                random_triplets(&labels, None, 3, &SeededRng::new(seed))
            else {
                panic!()
            };
            host([a, p, n])
        };
        let t = draw(1);
        let lab = [0, 0, 1, 1, 1, 2];
        // Label 2 has a single sample: no anchor; 5 anchors x 3.
        assert_eq!(t[0].len(), 15);
        for ((&a, &p), &n) in t[0].iter().zip(&t[1]).zip(&t[2]) {
            let (a, p, n) = (a as usize, p as usize, n as usize);
            assert_ne!(a, p);
            assert_eq!(lab[a], lab[p]);
            assert_ne!(lab[a], lab[n]);
        }
        assert_eq!(t, draw(1));
    }

    #[test]
    fn triplets_per_anchor_serde() {
        let all: TripletsPerAnchor = serde_json::from_str("\"all\"").unwrap();
        assert_eq!(all, TripletsPerAnchor::All);
        let k: TripletsPerAnchor = serde_json::from_str("5").unwrap();
        assert_eq!(k, TripletsPerAnchor::Count(5));
        assert!(serde_json::from_str::<TripletsPerAnchor>("\"some\"").is_err());
        assert_eq!(serde_json::to_string(&k).unwrap(), "5");
    }
}
