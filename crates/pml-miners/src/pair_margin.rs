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

/// Configuration of [`PairMarginMiner`], with PML's argument names and defaults.
#[derive(Config, Debug)]
pub struct PairMarginMinerConfig {
    /// Positive pairs farther apart than this are returned.
    #[config(default = 0.2)]
    pub pos_margin: f64,
    /// Negative pairs closer than this are returned.
    #[config(default = 0.8)]
    pub neg_margin: f64,
    /// The distance (PML's default: `LpDistance`, normalized embeddings).
    #[config(default = "DistanceConfig::lp()")]
    pub distance: DistanceConfig,
}

impl PairMarginMinerConfig {
    /// Builds the miner, refusing non-finite margins or an invalid distance.
    pub fn try_init(&self) -> Result<PairMarginMiner, PmlError> {
        require_finite("PairMarginMiner", "pos_margin", self.pos_margin)?;
        require_finite("PairMarginMiner", "neg_margin", self.neg_margin)?;
        self.distance.validate()?;
        Ok(PairMarginMiner {
            pos_margin: self.pos_margin,
            neg_margin: self.neg_margin,
            distance: self.distance.init(),
            counts: LastCounts::default(),
        })
    }

    /// Builds the miner.
    ///
    /// # Panics
    /// Where [`try_init`](Self::try_init) returns an error.
    pub fn init(&self) -> PairMarginMiner {
        self.try_init().unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Pairs that violate a margin (PML's `PairMarginMiner`): positive pairs with
/// `d(a, p) > pos_margin` and negative pairs with `d(a, n) < neg_margin` (for similarities,
/// `s(a, p) < pos_margin` and `s(a, n) > neg_margin`).
///
/// Computed with masks over the distance matrix; only the selected index lists leave the
/// device. The counts PML records are [`last_counts`](Self::last_counts).
///
/// ```
/// # use burn::backend::NdArray;
/// # use burn::tensor::{Int, Tensor};
/// use pml_core::Miner;
/// use pml_miners::PairMarginMinerConfig;
/// let device = Default::default();
/// let x = Tensor::<NdArray, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]], &device);
/// let labels = Tensor::<NdArray, 1, Int>::from_ints([0, 0, 1], &device);
/// let miner = PairMarginMinerConfig::new().init();
/// let pairs = miner.mine(x, labels, None);
/// assert_eq!(pairs.num_pos_pairs(), 2); // (0, 1) and (1, 0): distance √2 > 0.2
/// assert_eq!(pairs.num_neg_pairs(), 2); // (0, 2) and (2, 0): close, different labels
/// ```
///
/// # Shapes
/// - embeddings `[n, d]`, labels `[n]`, optional reference `[m, d]` with labels `[m]`
/// - output: pairs `(a1, p, a2, n)`
///
/// # Panics
/// If the labels' length differs from the batch's, or the reference has no labels.
#[derive(Clone, Debug)]
pub struct PairMarginMiner {
    pos_margin: f64,
    neg_margin: f64,
    distance: AnyDistance,
    counts: LastCounts,
}

impl PairMarginMiner {
    /// The counts of the last call (PML's `num_pos_pairs`, `num_neg_pairs`).
    pub fn last_counts(&self) -> MinerCounts {
        self.counts.get()
    }
}

impl<B: Backend> Miner<B> for PairMarginMiner {
    fn mine(
        &self,
        embeddings: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
        reference: Option<Reference<B>>,
    ) -> IndicesTuple<B> {
        let batch = Batch::new("PairMarginMiner", embeddings, labels, reference);
        let mat = batch.matrix(&self.distance);
        let (matches, diffs) = batch.masks();
        // "Farther than the margin": d − margin > 0, or margin − s > 0 for similarities.
        let d = &self.distance;
        let pos = Distance::<B>::margin_to(d, mat.clone(), self.pos_margin).greater_elem(0.0);
        let neg = Distance::<B>::margin_from(d, self.neg_margin, mat).greater_elem(0.0);
        let [a1, p] = argwhere_2d(matches.bool_and(pos));
        let [a2, n] = argwhere_2d(diffs.bool_and(neg));
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
    fn hand_checked_pairs_with_distance_and_similarity() {
        let x = [[0.0], [0.5], [0.1], [2.0]];
        let labels = [0, 0, 1, 1];
        let miner = PairMarginMinerConfig::new()
            .with_pos_margin(0.3)
            .with_neg_margin(0.2)
            .with_distance(raw_lp())
            .init();
        let (pos, neg) = pair_sets(miner.mine(floats(&x), ints(&labels), None));
        // Positives: (0,1) d=0.5 > 0.3; (2,3) d=1.9. Negatives with d < 0.2: (0,2) d=0.1.
        assert_eq!(pos, set2(&[(0, 1), (1, 0), (2, 3), (3, 2)]));
        assert_eq!(neg, set2(&[(0, 2), (2, 0)]));
        assert_eq!(
            miner.last_counts(),
            MinerCounts {
                num_pos_pairs: 4,
                num_neg_pairs: 2,
                num_triplets: 0
            }
        );

        // Dot product: positives with s < 0.3, negatives with s > 0.2.
        let x = [[1.0], [0.2], [0.5], [1.0]];
        let miner = PairMarginMinerConfig::new()
            .with_pos_margin(0.3)
            .with_neg_margin(0.2)
            .with_distance(dot())
            .init();
        let (pos, neg) = pair_sets(miner.mine(floats(&x), ints(&labels), None));
        // s(0,1) = 0.2 < 0.3; s(2,3) = 0.5. Negatives: s(0,2)=0.5, s(0,3)=1, s(1,2)=0.1, s(1,3)=0.2.
        assert_eq!(pos, set2(&[(0, 1), (1, 0)]));
        assert_eq!(neg, set2(&[(0, 2), (2, 0), (0, 3), (3, 0)]));
    }
}
