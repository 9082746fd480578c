use burn::{
    config::Config,
    tensor::{Int, Tensor, backend::Backend},
};
use pml_core::{Distance, IndicesTuple, Miner, PmlError, Reference, tensor::argwhere_2d};
use pml_distances::{AnyDistance, DistanceConfig};

use crate::{
    MinerCounts,
    common::{Batch, LastCounts, require_finite},
};

/// Configuration of [`MultiSimilarityMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct MultiSimilarityMinerConfig {
    /// The slack `ε` of the mining rule.
    #[config(default = 0.1)]
    pub epsilon: f64,
    /// The distance (PML's default for this miner: `CosineSimilarity`).
    #[config(default = "DistanceConfig::cosine()")]
    pub distance: DistanceConfig,
}

impl MultiSimilarityMinerConfig {
    /// Builds the miner, refusing a non-finite `epsilon` or an invalid distance.
    pub fn try_init(&self) -> Result<MultiSimilarityMiner, PmlError> {
        require_finite("MultiSimilarityMiner", "epsilon", self.epsilon)?;
        self.distance.validate()?;
        Ok(MultiSimilarityMiner {
            epsilon: self.epsilon,
            distance: self.distance.init(),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> MultiSimilarityMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The pair mining of the multi-similarity loss (Wang et al., "Multi-Similarity Loss with
/// General Pair Weighting for Deep Metric Learning", CVPR 2019; PML's `MultiSimilarityMiner`).
///
/// With a similarity `s`, for each anchor `i`: a positive pair `(i, p)` is kept when
/// `s(i, p) − ε < max_n s(i, n)` (harder than the hardest negative plus the slack), a negative
/// pair `(i, n)` when `s(i, n) + ε > min_p s(i, p)`. With a distance the inequalities are
/// mirrored: `d(i, p) + ε > min_n d(i, n)` and `d(i, n) − ε < max_p d(i, p)`. Anchors without
/// positives (or without negatives) yield no pairs.
///
/// PML sorts each row to apply the rule; the result is the same set of pairs as the masks used
/// here (row extrema, one comparison per entry), and only the selected index lists leave the
/// device. The counts PML records are [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::MultiSimilarityMinerConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1], &device);
/// let pairs = MultiSimilarityMinerConfig::new().init().mine(x, labels, None);
/// assert_eq!(pairs.num_pos_pairs(), 2);
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: pairs `(a1, p, a2, n)`
///
/// # Panics
/// If the labels' length differs from the batch's, or the reference has no labels.
#[derive(Clone, Debug)]
pub struct MultiSimilarityMiner {
    epsilon: f64,
    distance: AnyDistance,
    counts: LastCounts,
}

impl MultiSimilarityMiner {
    /// The counts of the last call (PML's `num_pos_pairs`, `num_neg_pairs`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }
}

impl<B: Backend> Miner<B> for MultiSimilarityMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("MultiSimilarityMiner", embeddings, labels, reference);
        let mat = batch.matrix(&self.distance);
        let (matches, diffs) = batch.masks();
        let [n, m] = mat.dims();
        let eps = self.epsilon;
        // Entries outside each set are filled so that they never win the extremum and never
        // pass the rule (PML's pos_ignore / neg_ignore).
        let (pos, neg) = if Distance::<B>::is_inverted(&self.distance) {
            let pos = mat
                .clone()
                .mask_fill(matches.clone().bool_not(), f64::INFINITY);
            let neg = mat.mask_fill(diffs.clone().bool_not(), f64::NEG_INFINITY);
            let hardest_neg = neg.clone().max_dim(1).expand([n, m]);
            let hardest_pos = pos.clone().min_dim(1).expand([n, m]);
            (
                pos.sub_scalar(eps).lower(hardest_neg),
                neg.add_scalar(eps).greater(hardest_pos),
            )
        } else {
            let pos = mat
                .clone()
                .mask_fill(matches.clone().bool_not(), f64::NEG_INFINITY);
            let neg = mat.mask_fill(diffs.clone().bool_not(), f64::INFINITY);
            let hardest_neg = neg.clone().min_dim(1).expand([n, m]);
            let hardest_pos = pos.clone().max_dim(1).expand([n, m]);
            (
                pos.add_scalar(eps).greater(hardest_neg),
                neg.sub_scalar(eps).lower(hardest_pos),
            )
        };
        let [a1, p] = argwhere_2d(pos.bool_and(matches));
        let [a2, n] = argwhere_2d(neg.bool_and(diffs));
        let tuple = IndicesTuple::pairs(a1, p, a2, n);
        self.counts.record(&tuple);
        tuple
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn hand_checked_rule_with_a_distance() {
        // Raw 1-D distances from anchor 0 (at 0): positive 1 at 0.5, negatives 2 at 0.45, 3 at 2.
        let x = [[0.0], [0.5], [0.45], [2.0]];
        let labels = [0, 0, 1, 2];
        let miner = MultiSimilarityMinerConfig::new()
            .with_epsilon(0.1)
            .with_distance(raw_lp())
            .init();
        let (pos, neg) = pair_sets(miner.mine(floats(&x), ints(&labels), None));
        // Anchor 0: min neg 0.45, max pos 0.5: pos (0,1): 0.6 > 0.45 yes; neg n: d − 0.1 < 0.5
        // → 2 (0.35) yes, 3 (1.9) no. Anchor 1 (at 0.5): pos 0 d=0.5, negs 2 (0.05), 3 (1.5):
        // pos 0.6 > 0.05 yes; negs: 2 yes, 3 no. Anchors 2, 3 have no positives.
        assert_eq!(pos, set2(&[(0, 1), (1, 0)]));
        assert_eq!(neg, set2(&[(0, 2), (1, 2)]));
    }

    #[test]
    fn easy_pairs_are_skipped_with_a_similarity() {
        // Dot products: anchor 0 with positive 1 (s = 1) and negative 2 (s = 0.5): the positive
        // is easy (1 − 0.1 > 0.5) and so is the negative (0.5 + 0.1 < 1).
        let x = [[1.0], [1.0], [0.5]];
        let miner = MultiSimilarityMinerConfig::new()
            .with_distance(dot())
            .init();
        let (pos, neg) = pair_sets(miner.mine(floats(&x), ints(&[0, 0, 1]), None));
        assert!(pos.is_empty() && neg.is_empty(), "{pos:?} {neg:?}");
    }
}
