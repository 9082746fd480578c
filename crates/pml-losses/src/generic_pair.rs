//! The pair mechanism shared by the pair-based losses (PML's `GenericPairLoss`): pairs from the
//! labels or the indices tuple, one distance matrix, and either the distances of the listed
//! pairs (PML's pair-based losses) or positive/negative masks over the whole matrix (PML's
//! matrix-based losses). `ref_emb` is handled here once.

use std::ops::Range;

use burn::tensor::{Bool, IndexingUpdateOp, Int, Tensor, backend::Backend};
use pml_core::{
    DetachedMatrix, Distance, IndicesTuple, LossInput, MatrixLink,
    blocks::{BLOCK_ENTRIES, block_threads},
    labels::{convert_to_pairs, matches_and_diffs_of_tile},
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

/// A block of anchor rows `r0..r0 + b` with its distances to the whole reference set (or a tile
/// of the matrix, from [`pair_mask_tiles`]) and its positive and negative masks (PML's
/// `mat_based_loss` inputs, restricted to those rows).
///
/// The losses compute their values and their derivatives `S = ∂L/∂mat` on the constant
/// [`mat`](Self::mat) and attach the gradient with [`link_rows`](Self::link_rows), or keep the
/// block's [`into_link`](Self::into_link) until `S` is known.
pub(crate) struct PairMasks<B: Backend> {
    /// `[b, m]`: `(i, j)` is a positive pair.
    pub pos: Tensor<B, 2, Bool>,
    /// `[b, m]`: `(i, j)` is a negative pair.
    pub neg: Tensor<B, 2, Bool>,
    /// How many times the block's pairs count: 1, or 2 for a tile of [`pair_mask_tiles`] that
    /// also stands for its mirror image.
    pub weight: f64,
    matrix: DetachedMatrix<B>,
}

impl<B: Backend> PairMasks<B> {
    /// The `[b, m]` distance matrix, a constant (off the autodiff graph).
    pub fn mat(&self) -> &Tensor<B, 2> {
        self.matrix.mat()
    }

    /// `[b]`: row `i` has the gradient of `Σ_j slopes_ij mat_ij` w.r.t. the embeddings, to be
    /// attached with [`value_with_gradient`](pml_core::tensor::value_with_gradient)
    /// ([`DetachedMatrix::link_rows`]).
    ///
    /// # Shapes
    /// - `slopes`: `[b, m]`, a constant
    pub fn link_rows(&self, slopes: Tensor<B, 2>) -> Tensor<B, 1> {
        self.matrix.link_rows(slopes)
    }

    /// The matrix's link alone, for a loss that knows its slopes only after every block
    /// ([`DetachedMatrix::into_link`]).
    pub fn into_link(self) -> MatrixLink<B> {
        self.matrix.into_link()
    }
}

/// How many positive and negative pairs the masks of all blocks held, and whether PML's
/// zero-loss rule (at most one positive and one negative pair) must still be checked on them.
pub(crate) struct PairCounts<B: Backend> {
    pos: Tensor<B, 1, Int>,
    neg: Tensor<B, 1, Int>,
    /// False when the indices tuple already passed that rule on the host.
    gate: bool,
}

impl<B: Backend> PairCounts<B> {
    /// Zeroes `losses` (any length) where PML would have returned its zero loss.
    pub fn gated(&self, losses: Tensor<B, 1>) -> Tensor<B, 1> {
        if !self.gate {
            return losses;
        }
        let n = losses.dims()[0];
        let open = self
            .pos
            .clone()
            .greater_elem(1)
            .bool_or(self.neg.clone().greater_elem(1));
        losses.mask_fill(open.bool_not().expand([n]), 0.0)
    }

    /// `[1]`: the masks hold at least one positive and one negative pair.
    pub fn any_both(&self) -> Tensor<B, 1, Bool> {
        self.pos
            .clone()
            .greater_elem(0)
            .bool_and(self.neg.clone().greater_elem(0))
    }
}

/// Where the masks of [`pair_mask_blocks`] come from.
enum MaskSource<B: Backend> {
    /// The `[n, m]` masks of an indices tuple's pairs.
    Tuple {
        pos: Tensor<B, 2, Bool>,
        neg: Tensor<B, 2, Bool>,
    },
    /// The labels, and the reference set's labels if it is not the batch itself.
    Labels {
        labels: Tensor<B, 1, Int>,
        refs: Option<Tensor<B, 1, Int>>,
    },
}

/// Calls `f` on the [`PairMasks`] of each block of anchor rows (on the CPU's threads where
/// [`block_threads`] says so) and returns its results in block order (at least one block) with
/// the pair counts; `None` when PML returns its zero loss and that is known without
/// reading the device. The masks come from the labels (no index lists are built) or from the
/// indices tuple; the blocks are those of [`Distance::map_detached_blocks`] with
/// [`BLOCK_ENTRIES`].
pub(crate) fn pair_mask_blocks<B: Backend, T: Send>(
    slots: &LossSlots,
    input: &LossInput<B>,
    f: impl Fn(PairMasks<B>) -> T + Sync,
) -> Option<(Vec<T>, PairCounts<B>)> {
    let threads = block_threads::<B>(&input.embeddings.device());
    blocks_of_entries(slots, input, BLOCK_ENTRIES, threads, false, f)
}

/// [`pair_mask_blocks`] for a loss whose terms are sums over the pairs of a function of their
/// entry, with symmetric slopes: where the batch is its own reference, the pairs come from the
/// labels and the distance has a Gram form, the masks are those of the upper-triangle tiles of
/// [`GramInputs::map_upper_tiles`](pml_core::GramInputs::map_upper_tiles), each with its
/// [`weight`](PairMasks::weight) (the counts are weighted); otherwise the row blocks of
/// `pair_mask_blocks`, weight 1.
pub(crate) fn pair_mask_tiles<B: Backend, T: Send>(
    slots: &LossSlots,
    input: &LossInput<B>,
    f: impl Fn(PairMasks<B>) -> T + Sync,
) -> Option<(Vec<T>, PairCounts<B>)> {
    let threads = block_threads::<B>(&input.embeddings.device());
    blocks_of_entries(slots, input, BLOCK_ENTRIES, threads, true, f)
}

/// [`pair_mask_blocks`] (`upper`: [`pair_mask_tiles`]) with blocks of about `entries` entries
/// (at least one row, and at least one block even for an empty batch) on up to `threads`
/// threads.
fn blocks_of_entries<B: Backend, T: Send>(
    slots: &LossSlots,
    input: &LossInput<B>,
    entries: usize,
    threads: usize,
    upper: bool,
    f: impl Fn(PairMasks<B>) -> T + Sync,
) -> Option<(Vec<T>, PairCounts<B>)> {
    let (n, m) = (input.embeddings.dims()[0], input.ref_len());
    let source = match &input.indices_tuple {
        None => {
            let (labels, refs) = input.tuple_labels();
            MaskSource::Labels { labels, refs }
        }
        Some(t) => {
            let (a1, p, a2, ng) = match t.clone() {
                IndicesTuple::Pairs { a1, p, a2, n } => (a1, p, a2, n),
                IndicesTuple::Triplets { a, p, n } => (a.clone(), p, a, n),
            };
            if a1.dims()[0] <= 1 && a2.dims()[0] <= 1 {
                return None;
            }
            let like = &input.embeddings;
            let pos = pair_counts(&a1, &p, n, m, like).greater_elem(0.0);
            let neg = pair_counts(&a2, &ng, n, m, like).greater_elem(0.0);
            MaskSource::Tuple { pos, neg }
        }
    };
    let device = input.embeddings.device();
    let tile = |rows: Range<usize>, cols: Range<usize>, weight: f64, matrix| {
        let (pos, neg) = match &source {
            MaskSource::Tuple { pos, neg } => {
                let narrow = |t: &Tensor<B, 2, Bool>| t.clone().narrow(0, rows.start, rows.len());
                (narrow(pos), narrow(neg))
            }
            MaskSource::Labels { labels, refs } => {
                matches_and_diffs_of_tile(labels, refs.as_ref(), rows.clone(), cols.clone())
            }
        };
        let pos_count = pos.clone().int().sum();
        let neg_count = match &source {
            MaskSource::Tuple { .. } => neg.clone().int().sum(),
            // Every pair of labels that is not positive is negative, but an anchor with
            // itself.
            MaskSource::Labels { refs, .. } => {
                let selves = match refs {
                    None => rows
                        .end
                        .min(cols.end)
                        .saturating_sub(rows.start.max(cols.start)),
                    Some(_) => 0,
                };
                let pairs = rows.len() * cols.len() - selves;
                pos_count.clone().neg().add_scalar(pairs as i64)
            }
        };
        let masks = PairMasks {
            pos,
            neg,
            weight,
            matrix,
        };
        let w = weight as i64;
        (f(masks), (pos_count.mul_scalar(w), neg_count.mul_scalar(w)))
    };
    let query = input.embeddings.clone();
    let reference = input.reference.as_ref().map(|r| r.embeddings.clone());
    let self_labels = matches!(source, MaskSource::Labels { refs: None, .. });
    let gram = (upper && self_labels && reference.is_none())
        .then(|| slots.distance.gram_inputs(query.clone(), None))
        .flatten();
    let blocks = match gram {
        Some(g) => g.map_upper_tiles(entries, threads, tile),
        None => slots.distance.map_detached_blocks(
            query,
            reference,
            entries,
            threads,
            |rows, matrix| tile(rows, 0..m, 1.0, matrix),
        ),
    };
    let mut counts = PairCounts {
        pos: Tensor::zeros([1], &device),
        neg: Tensor::zeros([1], &device),
        gate: matches!(source, MaskSource::Labels { .. }),
    };
    let mut parts = Vec::with_capacity(blocks.len());
    for (part, (pos, neg)) in blocks {
        counts.pos = counts.pos + pos;
        counts.neg = counts.neg + neg;
        parts.push(part);
    }
    Some((parts, counts))
}

/// Per-anchor losses over the blocks of [`pair_mask_blocks`]: `f` maps a block to its `[b]`
/// losses, which are concatenated to `[n]`.
pub(crate) fn anchor_losses<B: Backend>(
    slots: &LossSlots,
    input: &LossInput<B>,
    f: impl Fn(PairMasks<B>) -> Tensor<B, 1> + Sync,
) -> Option<(Tensor<B, 1>, PairCounts<B>)> {
    let (parts, counts) = pair_mask_blocks(slots, input, f)?;
    Some((Tensor::cat(parts, 0), counts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;
    use pml_core::{IndicesTuple, tensor::float_vec};
    use pml_distances::DistanceConfig;
    use pml_reducers::ReducerConfig;

    type B = NdArray<f64>;

    fn slots(distance: DistanceConfig) -> LossSlots {
        LossSlots::build("test", &distance, &ReducerConfig::mean(), None, 1.0, &[])
            .expect("valid slots")
    }

    /// The blocks' matrices and masks, stacked back to `[n, m]`, as flat vectors.
    fn stacked(
        slots: &LossSlots,
        input: &LossInput<B>,
        entries: usize,
        threads: usize,
    ) -> (usize, Vec<f64>, Vec<f64>, Vec<f64>, [i64; 2]) {
        let (parts, counts) = blocks_of_entries(slots, input, entries, threads, false, |m| {
            (m.mat().clone(), m.pos.float(), m.neg.float())
        })
        .expect("masks");
        let blocks = parts.len();
        let (mats, rest): (Vec<_>, Vec<_>) = parts.into_iter().map(|(a, b, c)| (a, (b, c))).unzip();
        let (pos, neg): (Vec<_>, Vec<_>) = rest.into_iter().unzip();
        let count = |t: Tensor<B, 1, Int>| t.into_scalar();
        (
            blocks,
            float_vec(Tensor::cat(mats, 0)),
            float_vec(Tensor::cat(pos, 0)),
            float_vec(Tensor::cat(neg, 0)),
            [count(counts.pos), count(counts.neg)],
        )
    }

    /// Blocks of any size on any number of threads give the matrix and masks of one block;
    /// a distance without a Gram form splits a batch that fits `entries` for no thread.
    fn assert_blocks_equal_one_block(slots: &LossSlots, input: &LossInput<B>, gram: bool) {
        let (one, mat, pos, neg, counts) = stacked(slots, input, usize::MAX, 1);
        assert_eq!(one, 1);
        let m = input.ref_len();
        let cases = [(1, 1), (m, 1), (3 * m - 1, 1), (usize::MAX, 2), (m, 3)];
        for (entries, threads) in cases {
            let (blocks, b_mat, b_pos, b_neg, b_counts) = stacked(slots, input, entries, threads);
            let case = format!("{entries} entries on {threads} threads");
            let split = entries < input.embeddings.dims()[0] * m || gram;
            assert_eq!(blocks > 1, split, "{case} give {blocks} blocks");
            assert_eq!((&b_pos, &b_neg, b_counts), (&pos, &neg, counts), "{case}");
            // Blocks measure against the reference as a separate tensor: an Lp self-distance
            // is then `sqrt` of a rounding error (~1e-16) instead of exactly zero.
            for (x, y) in b_mat.iter().zip(&mat) {
                assert!((x - y).abs() < 1e-7, "{case}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn blocks_of_rows_equal_the_whole_matrix() {
        let device = Default::default();
        let x = Tensor::<B, 2>::random(
            [7, 3],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let labels = Tensor::<B, 1, Int>::from_ints([0, 1, 0, 2, 1, 0, 2], &device);
        let lp = slots(DistanceConfig::lp());
        let cosine = slots(DistanceConfig::cosine());
        // The L1 distance has no Gram form: its blocks are `forward` on the autodiff graph.
        let l1 = slots(DistanceConfig::Lp(
            pml_distances::LpDistanceConfig::new().with_p(1.0),
        ));
        // The batch as its own reference: the diagonal is not a positive in any block.
        let own = LossInput::new(x.clone(), labels.clone());
        assert_blocks_equal_one_block(&lp, &own, true);
        assert_blocks_equal_one_block(&cosine, &own, true);
        assert_blocks_equal_one_block(&l1, &own, false);
        // A separate reference set.
        let refs = x.clone().narrow(0, 2, 5).mul_scalar(0.5);
        let with_ref = LossInput::new(x.clone(), labels.clone())
            .with_reference(refs, Tensor::from_ints([0, 2, 1, 1, 0], &device));
        assert_blocks_equal_one_block(&lp, &with_ref, true);
        assert_blocks_equal_one_block(&l1, &with_ref, false);
        // An indices tuple.
        let ints = |v: &[i64]| Tensor::<B, 1, Int>::from_ints(v, &device);
        let tuple = IndicesTuple::Pairs {
            a1: ints(&[0, 2, 2, 6]),
            p: ints(&[2, 0, 5, 3]),
            a2: ints(&[0, 1, 6, 6]),
            n: ints(&[1, 0, 0, 0]),
        };
        let mined = LossInput::new(x, labels).with_indices(tuple);
        assert_blocks_equal_one_block(&lp, &mined, true);
    }
}
